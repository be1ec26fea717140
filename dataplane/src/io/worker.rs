//! One polling worker per lcore: RX burst -> pipeline -> TX burst, with idle back-off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use dpdk_bindings::{free_bulk, Mbuf, Mempool, RxQueue, TxQueue};
use proto::config::PollingMode;

use crate::contexts::datapath::M6Event;
use crate::control::WorkerEvent;
use crate::pipeline::{Next, Pipeline};
use crate::stats::Counters;

/// Packets per RX burst; also the pipeline's batch size.
pub const BURST_SIZE: usize = 32;

/// Idle rounds spent spinning before the worker starts to sleep.
const SPIN_ROUNDS: u32 = 32;

/// What the control thread asks of a worker (table changes travel through
/// [`crate::tables`], not here).
#[derive(Debug, Clone)]
pub enum ControlMsg {
    /// Send this frame on port `port` (a Neighbor Solicitation of the neighbor owner: the
    /// control thread has no TX queue of its own).
    Transmit { port: usize, frame: Vec<u8> },
}

/// What a worker owns: its RX queues, a TX queue on every port (indexed by port), and
/// its channels to the control thread.
pub struct WorkerPlan {
    pub name: String,
    pub rx: Vec<(usize, RxQueue)>,
    pub tx: Vec<TxQueue>,
    pub pool: Arc<Mempool>,
    pub polling: PollingMode,
    pub control: Receiver<ControlMsg>,
    /// Neighbor events for the control thread (bounded: a full channel loses the event,
    /// counted, rather than block or allocate; the next packet asks again).
    pub events: Sender<WorkerEvent>,
    /// M6 reports for the control plane (bounded the same way).
    pub m6_events: Sender<M6Event>,
    /// The clock every worker and the control thread share (neighbor timers compare
    /// times from different threads).
    pub epoch: Instant,
    /// Where the worker publishes a copy of its counters every [`PUBLISH_INTERVAL_NS`]
    /// for the control thread to read while traffic runs. The worker only ever
    /// `try_lock`s it: a reader holding it costs the worker one skipped publication, never
    /// a wait.
    pub published: Arc<Mutex<WorkerSnapshot>>,
}

/// How often a worker publishes its counters (ns).
pub const PUBLISH_INTERVAL_NS: u64 = 100_000_000;

/// A worker's counters as last published.
#[derive(Debug, Default, Clone)]
pub struct WorkerSnapshot {
    pub counters: Option<Counters>,
    pub io: IoCounters,
    /// When it was published, on the workers' clock (ns since the epoch of the plan): the
    /// control thread tells systemd's watchdog only while every worker publishes.
    pub at_ns: u64,
}

/// Counters of the I/O layer itself, per port index.
#[derive(Debug, Default, Clone)]
pub struct IoCounters {
    /// Packets the TX queue would not take (ring full) and that were freed.
    pub tx_full_drops: Vec<u64>,
    /// Router-originated frames lost because the mempool was empty.
    pub alloc_failures: u64,
    /// Neighbor events lost to a full channel to the control thread.
    pub events_dropped: u64,
    pub idle_sleeps: u64,
    /// Polling rounds that received at least one packet.
    pub polls_busy: u64,
    /// Polling rounds that received nothing.
    pub polls_idle: u64,
}

impl IoCounters {
    pub fn merge(&mut self, other: &IoCounters) {
        if self.tx_full_drops.len() < other.tx_full_drops.len() {
            self.tx_full_drops.resize(other.tx_full_drops.len(), 0);
        }
        for (a, b) in self.tx_full_drops.iter_mut().zip(&other.tx_full_drops) {
            *a += b;
        }
        self.alloc_failures += other.alloc_failures;
        self.events_dropped += other.events_dropped;
        self.idle_sleeps += other.idle_sleeps;
        self.polls_busy += other.polls_busy;
        self.polls_idle += other.polls_idle;
    }
}

/// Polls until `stop` is set, then returns the worker's pipeline (for its counters) and
/// the I/O counters. Runs on the calling thread, which the caller has pinned and
/// registered with EAL.
pub fn run_worker(
    plan: WorkerPlan,
    pipeline: Pipeline,
    stop: &AtomicBool,
) -> (Pipeline, IoCounters) {
    Worker::new(plan, pipeline).run(stop)
}

/// A polling worker's state between rounds: its plan, pipeline and the burst buffers it
/// reuses. [`run_worker`] loops over [`Worker::poll`]; benchmarks call it round by round.
pub struct Worker {
    plan: WorkerPlan,
    pipeline: Pipeline,
    io: IoCounters,
    rx_burst: Vec<Mbuf>,
    next: [Next; BURST_SIZE],
    tx_bursts: Vec<Vec<Mbuf>>,
    dropped: Vec<Mbuf>,
    idle_rounds: u32,
    published_at: u64,
}

impl Worker {
    /// Sizes the burst buffers so that the loop does not reallocate in steady state.
    pub fn new(plan: WorkerPlan, pipeline: Pipeline) -> Worker {
        let ports = plan.tx.len();
        // Every RX queue's burst may go to one port, plus the frames the pipeline and the
        // control thread originate (released held packets at most MAX_HELD).
        let tx_room = (plan.rx.len() + 1) * BURST_SIZE + crate::neighbor::datapath::MAX_HELD;
        Worker {
            io: IoCounters {
                tx_full_drops: vec![0; ports],
                ..IoCounters::default()
            },
            rx_burst: Vec::with_capacity(BURST_SIZE),
            next: [Next::Drop; BURST_SIZE],
            tx_bursts: (0..ports).map(|_| Vec::with_capacity(tx_room)).collect(),
            // Dropped mbufs are freed together, one DPDK call per round instead of one per
            // packet.
            dropped: Vec::with_capacity(tx_room * ports.max(1)),
            idle_rounds: 0,
            published_at: 0,
            plan,
            pipeline,
        }
    }

    /// Polls until `stop` is set, backing off while idle as the plan's polling mode says;
    /// then gives the lcore's cached mbufs back and returns the pipeline and I/O counters.
    pub fn run(mut self, stop: &AtomicBool) -> (Pipeline, IoCounters) {
        if matches!(self.plan.polling, PollingMode::Adaptive { .. }) && !tighten_timer_slack() {
            eprintln!(
                "{}: the kernel refused a {WORKER_TIMER_SLACK_NS} ns timer slack; idle sleeps may \
                 overrun by 50 µs",
                self.plan.name
            );
        }
        while !stop.load(Ordering::Relaxed) {
            let received = self.poll();
            self.back_off(received);
        }
        self.finish()
    }

    /// One polling round: the control thread's frames, timers, one burst from each RX
    /// queue through the pipeline, generated frames and events out, TX bursts sent.
    /// Returns how many packets were received.
    pub fn poll(&mut self) -> usize {
        let ports = self.plan.tx.len();
        let io = &mut self.io;
        let tx_bursts = &mut self.tx_bursts;
        let dropped = &mut self.dropped;
        let pipeline = &mut self.pipeline;
        let pool = &self.plan.pool;
        for msg in self.plan.control.try_iter() {
            match msg {
                ControlMsg::Transmit { port, frame } => enqueue(pool, tx_bursts, port, &frame, io),
            }
        }
        // One clock read per round serves every burst of it: the pipeline's timers run in
        // milliseconds, and a read costs as much as classifying a packet (perf, docs/
        // performance.md).
        let now_ns = u64::try_from(self.plan.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        pipeline.service(now_ns);

        let mut received = 0;
        for (port, rxq) in self.plan.rx.iter_mut() {
            let rx_burst = &mut self.rx_burst;
            let n = rxq.rx_burst(rx_burst, BURST_SIZE);
            if n == 0 {
                continue;
            }
            received += n;
            for chained in rx_burst.extract_if(.., |m| m.nb_segs() != 1) {
                pipeline.count_drop_multi_segment(*port, chained.pkt_len());
                dropped.push(chained);
            }
            let n = rx_burst.len();
            pipeline.process_burst(*port, &mut rx_burst[..n], &mut self.next[..n], now_ns);
            for (mbuf, verdict) in rx_burst.drain(..).zip(self.next.iter()) {
                match *verdict {
                    Next::Tx(out) if out < ports => tx_bursts[out].push(mbuf),
                    // Dropped, or held (the pipeline kept a copy).
                    _ => dropped.push(mbuf),
                }
            }
        }

        pipeline
            .drain_generated(&mut |port, frame: &[u8]| enqueue(pool, tx_bursts, port, frame, io));
        let events = &self.plan.events;
        pipeline.drain_events(&mut |ev| {
            if events.try_send(ev).is_err() {
                io.events_dropped += 1;
            }
        });
        let m6_events = &self.plan.m6_events;
        pipeline.drain_m6_events(&mut |ev| {
            if m6_events.try_send(ev).is_err() {
                io.events_dropped += 1;
            }
        });

        for (port, burst) in tx_bursts.iter_mut().enumerate() {
            if burst.is_empty() {
                continue;
            }
            self.plan.tx[port].tx_burst(burst);
            if !burst.is_empty() {
                // One retry: the PMD may have freed descriptors in the meantime.
                self.plan.tx[port].tx_burst(burst);
                io.tx_full_drops[port] += burst.len() as u64;
                dropped.append(burst);
            }
        }
        if !dropped.is_empty() {
            free_bulk(dropped);
        }

        if received > 0 {
            io.polls_busy += 1;
        } else {
            io.polls_idle += 1;
        }
        if now_ns.saturating_sub(self.published_at) >= PUBLISH_INTERVAL_NS {
            if let Ok(mut slot) = self.plan.published.try_lock() {
                self.published_at = now_ns;
                match slot.counters.as_mut() {
                    Some(c) => c.clone_from(pipeline.counters()),
                    None => slot.counters = Some(pipeline.counters().clone()),
                }
                slot.io.clone_from(io);
                slot.at_ns = now_ns;
            }
        }
        received
    }

    /// After a round that received `received` packets: nothing when busy; when idle and
    /// the polling mode is adaptive, spin a little, then sleep with a doubling interval up
    /// to the configured ceiling, so an idle worker leaves its core to others (2-core labs)
    /// yet reacts within the ceiling.
    pub fn back_off(&mut self, received: usize) {
        if received > 0 {
            self.idle_rounds = 0;
            return;
        }
        let PollingMode::Adaptive { max_idle_sleep_us } = self.plan.polling else {
            return;
        };
        self.idle_rounds = self.idle_rounds.saturating_add(1);
        if self.idle_rounds <= SPIN_ROUNDS {
            std::hint::spin_loop();
            return;
        }
        // 1, 2, 4 ... µs: idle_rounds > SPIN_ROUNDS here.
        let exponent = (self.idle_rounds - SPIN_ROUNDS - 1).min(20);
        let sleep_us = (1u64 << exponent).min(max_idle_sleep_us.max(1));
        self.io.idle_sleeps += 1;
        std::thread::sleep(Duration::from_micros(sleep_us));
    }

    /// The I/O counters so far.
    pub fn io(&self) -> &IoCounters {
        &self.io
    }

    /// The pipeline (counters, tables) so far.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Gives this lcore's cached mbufs back to the pool (before the thread leaves EAL) and
    /// returns the pipeline and the I/O counters.
    pub fn finish(self) -> (Pipeline, IoCounters) {
        self.plan.pool.flush_local_cache();
        (self.pipeline, self.io)
    }
}

/// Copies `frame` into a fresh mbuf queued for `port`.
fn enqueue(
    pool: &Mempool,
    bursts: &mut [Vec<Mbuf>],
    port: usize,
    frame: &[u8],
    io: &mut IoCounters,
) {
    let Some(burst) = bursts.get_mut(port) else {
        return;
    };
    match pool.alloc() {
        Some(mut m) => match m.append(frame.len()) {
            Some(room) => {
                room.copy_from_slice(frame);
                burst.push(m);
            }
            None => io.alloc_failures += 1,
        },
        None => io.alloc_failures += 1,
    }
}

/// Timer slack an adaptive worker asks for (ns): a sleeping worker wakes this late at most,
/// beyond its sleep and the scheduler's wake-up.
pub const WORKER_TIMER_SLACK_NS: u64 = 1_000;

/// How late a sleeping worker may run again beyond the sleep it asked for, with
/// [`WORKER_TIMER_SLACK_NS`] (µs): the 99th percentile of the overrun of a 50 µs sleep on
/// the 2-core virtual machine (it took 68 to 76 µs at the median, 89 to 123 µs at the
/// 99th percentile on a quiet run; `make bench-e2e`, docs/performance.md, "Loss after
/// idle").
pub const WAKE_UP_US: u64 = 70;

/// The packet rate (per second) of a burst arriving at an idle adaptive worker that an RX
/// queue of `rx_desc` descriptors surely absorbs before the worker wakes: `rx_desc` over
/// the sleep ceiling plus [`WAKE_UP_US`]. Conservative: a burst mostly arrives mid-sleep.
pub fn burst_after_idle_pps(rx_desc: u16, max_idle_sleep_us: u64) -> u64 {
    u64::from(rx_desc) * 1_000_000 / max_idle_sleep_us.saturating_add(WAKE_UP_US).max(1)
}

/// Sets the calling thread's timer slack to [`WORKER_TIMER_SLACK_NS`]
/// (`prctl(PR_SET_TIMERSLACK)`). Linux lets a normal thread's sleep overrun by 50 µs by
/// default, so a 200 µs back-off really sleeps about 280 µs, and the RX ring fills during
/// the overrun when a burst follows idleness (docs/performance.md, "Loss after idle").
/// Returns whether the kernel took it; a refusal leaves the default, which only costs
/// latency after idle.
pub fn tighten_timer_slack() -> bool {
    nix::sys::prctl::set_timerslack(WORKER_TIMER_SLACK_NS).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adaptive_worker_gets_the_timer_slack_it_asks_for() {
        // On a thread of its own: the slack is per thread.
        std::thread::spawn(|| {
            assert_ne!(
                nix::sys::prctl::get_timerslack().unwrap() as u64,
                WORKER_TIMER_SLACK_NS,
                "a new thread starts with its parent's slack (Linux: 50 µs)"
            );
            assert!(tighten_timer_slack());
            assert_eq!(
                nix::sys::prctl::get_timerslack().unwrap() as u64,
                WORKER_TIMER_SLACK_NS
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_burst_an_idle_worker_absorbs_grows_with_the_ring_and_shrinks_with_the_sleep() {
        // 1024 descriptors over 50 µs of sleep and 70 µs of wake-up: 8.5 Mpps.
        assert_eq!(burst_after_idle_pps(1024, 50), 8_533_333);
        assert_eq!(burst_after_idle_pps(4096, 50), 4 * 8_533_333 + 1);
        assert!(burst_after_idle_pps(1024, 200) < burst_after_idle_pps(1024, 50));
        assert_eq!(burst_after_idle_pps(0, 50), 0);
    }
}
