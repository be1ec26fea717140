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
    mut plan: WorkerPlan,
    mut pipeline: Pipeline,
    stop: &AtomicBool,
) -> (Pipeline, IoCounters) {
    let ports = plan.tx.len();
    let mut io = IoCounters {
        tx_full_drops: vec![0; ports],
        ..IoCounters::default()
    };
    let mut rx_burst: Vec<Mbuf> = Vec::with_capacity(BURST_SIZE);
    let mut next = [Next::Drop; BURST_SIZE];
    // Every RX queue's burst may go to one port, plus the frames the pipeline and the
    // control thread originate (released held packets at most MAX_HELD): sized so that the
    // loop does not reallocate in steady state.
    let tx_room = (plan.rx.len() + 1) * BURST_SIZE + crate::neighbor::datapath::MAX_HELD;
    let mut tx_bursts: Vec<Vec<Mbuf>> = (0..ports).map(|_| Vec::with_capacity(tx_room)).collect();
    // Dropped mbufs are freed together, one DPDK call per loop instead of one per packet.
    let mut dropped: Vec<Mbuf> = Vec::with_capacity(tx_room * ports.max(1));
    let epoch = plan.epoch;
    let mut idle_rounds: u32 = 0;
    let mut published_at: u64 = 0;

    while !stop.load(Ordering::Relaxed) {
        let pool = &plan.pool;
        for msg in plan.control.try_iter() {
            match msg {
                ControlMsg::Transmit { port, frame } => {
                    enqueue(pool, &mut tx_bursts, port, &frame, &mut io)
                }
            }
        }
        let now_ns = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        pipeline.service(now_ns);

        let mut received = 0;
        for (port, rxq) in plan.rx.iter_mut() {
            let n = rxq.rx_burst(&mut rx_burst, BURST_SIZE);
            if n == 0 {
                continue;
            }
            received += n;
            for chained in rx_burst.extract_if(.., |m| m.nb_segs() != 1) {
                pipeline.count_drop_multi_segment(*port, chained.pkt_len());
                dropped.push(chained);
            }
            let n = rx_burst.len();
            let now_ns = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            pipeline.process_burst(*port, &mut rx_burst[..n], &mut next[..n], now_ns);
            for (mbuf, verdict) in rx_burst.drain(..).zip(next.iter()) {
                match *verdict {
                    Next::Tx(out) if out < ports => tx_bursts[out].push(mbuf),
                    // Dropped, or held (the pipeline kept a copy).
                    _ => dropped.push(mbuf),
                }
            }
        }

        pipeline.drain_generated(&mut |port, frame: &[u8]| {
            enqueue(pool, &mut tx_bursts, port, frame, &mut io)
        });
        let events = &plan.events;
        pipeline.drain_events(&mut |ev| {
            if events.try_send(ev).is_err() {
                io.events_dropped += 1;
            }
        });
        let m6_events = &plan.m6_events;
        pipeline.drain_m6_events(&mut |ev| {
            if m6_events.try_send(ev).is_err() {
                io.events_dropped += 1;
            }
        });

        for (port, burst) in tx_bursts.iter_mut().enumerate() {
            if burst.is_empty() {
                continue;
            }
            plan.tx[port].tx_burst(burst);
            if !burst.is_empty() {
                // One retry: the PMD may have freed descriptors in the meantime.
                plan.tx[port].tx_burst(burst);
                io.tx_full_drops[port] += burst.len() as u64;
                dropped.append(burst);
            }
        }
        if !dropped.is_empty() {
            free_bulk(&mut dropped);
        }

        if received > 0 {
            io.polls_busy += 1;
        } else {
            io.polls_idle += 1;
        }
        if now_ns.saturating_sub(published_at) >= PUBLISH_INTERVAL_NS {
            if let Ok(mut slot) = plan.published.try_lock() {
                published_at = now_ns;
                match slot.counters.as_mut() {
                    Some(c) => c.clone_from(pipeline.counters()),
                    None => slot.counters = Some(pipeline.counters().clone()),
                }
                slot.io.clone_from(&io);
                slot.at_ns = now_ns;
            }
        }
        if received > 0 {
            idle_rounds = 0;
        } else if let PollingMode::Adaptive { max_idle_sleep_us } = plan.polling {
            idle_rounds = idle_rounds.saturating_add(1);
            back_off(idle_rounds, max_idle_sleep_us, &mut io);
        }
    }
    // Give this lcore's cached mbufs back to the pool before the thread leaves EAL.
    plan.pool.flush_local_cache();
    (pipeline, io)
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

/// Spin a little, then sleep with a doubling interval up to the configured ceiling, so
/// an idle worker leaves its core to others (2-core labs) yet reacts within the ceiling.
fn back_off(idle_rounds: u32, max_sleep_us: u64, io: &mut IoCounters) {
    if idle_rounds <= SPIN_ROUNDS {
        std::hint::spin_loop();
        return;
    }
    let exponent = (idle_rounds - SPIN_ROUNDS).min(20);
    let sleep_us = (1u64 << exponent).min(max_sleep_us.max(1));
    io.idle_sleeps += 1;
    std::thread::sleep(Duration::from_micros(sleep_us));
}
