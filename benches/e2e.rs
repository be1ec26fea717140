//! The router's real worker loop against DPDK's io forwarding, side by side on ring ports:
//! `make bench-e2e` (`cargo bench -p dataplane --bench e2e`; docs/performance.md).
//!
//! A 2-core machine cannot run a traffic generator and a forwarder as two polling processes
//! without them fighting for the cores, so one lcore drains pre-loaded rings instead. Three
//! ports made of `rte_ring`s (the net_ring PMD: LAN, ISP1, ISP2) stand for the NICs. Each
//! round fills the ingress port's RX ring with prepared frames of one class, then times
//! `Worker::poll` (RX burst, pipeline, TX burst, exactly what `m6-dataplane` runs) until the
//! ring is empty; the TX rings are drained and counted after the clock stops. The baseline
//! is testpmd's `--forward-mode=io` loop (RX burst on one port, TX burst on the other,
//! nothing read or written), and beside it its `macswap` loop (the same, each packet's
//! Ethernet addresses swapped), run by the harness on a second set of ring ports of the
//! same PMD, in interleaved rounds; the figure is the median round.
//!
//! Then: the same with 2 workers (a queue pair per worker on every port, each worker on its
//! own core, started together); latency and loss at 50% of the router's capacity (the
//! generator on the other core stamps each mbuf's private area with the TSC); and loss after
//! idle, where an adaptive worker sleeping at its ceiling meets a burst into a
//! 1024-slot RX ring, with Linux's default timer slack and with the worker's own.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use crossbeam_channel::{bounded, Receiver, Sender};
use dataplane::io::{Worker, WorkerPlan, WorkerSnapshot, WORKER_TIMER_SLACK_NS};
use dataplane::Pipeline;
use dpdk_bindings::{
    free_bulk, tsc, tsc_hz, Eal, Mbuf, Mempool, Port, PortConfig, Ring, RxQueue, TxQueue,
};
use proto::config::PollingMode;

const PORTS: usize = 3;
const BURST: usize = 32;
/// Slots per ring of the capacity rigs (a round of 2,048 fits, as a NIC's larger RX rings
/// hold), and of the idle rig (a NIC's default 1024 RX descriptors). A round's packets stay
/// within what a core's share of the last-level cache holds (2,048 mbufs of 2.3 KiB), as
/// they would behind a real RX ring.
const RING_SLOTS: u32 = 4096;
const IDLE_RING_SLOTS: u32 = 1024;
/// Octets of each mbuf's private area: the TSC when the generator enqueued it.
const STAMP: u16 = 8;
const HOT: usize = 1_000;
const COLD: usize = 1 << 20;
/// Linux's default timer slack for a normal thread (ns).
const DEFAULT_SLACK_NS: u64 = 50_000;

/// How much of everything: `cargo bench` runs it in full; without `--bench` (cargo test
/// --benches) it is a quick pass that checks the harness works.
struct Scale {
    round: usize,
    rounds: usize,
    load: Duration,
    idle_trials: usize,
    contexts: usize,
}

/// Three ring ports (LAN, ISP1, ISP2) of `queues` queue pairs. `rx[p][q]` is what port p's
/// RX queue q reads (the harness fills it); `tx[p][q]` is what its TX queue q writes (the
/// harness drains it).
struct Rig {
    ports: Vec<Port>,
    rx: Vec<Vec<Arc<Ring>>>,
    tx: Vec<Vec<Arc<Ring>>>,
}

fn rig(name: &str, queues: usize, (rx_slots, tx_slots): (u32, u32), pool: &Mempool) -> Rig {
    let mut rig = Rig {
        ports: Vec::new(),
        rx: Vec::new(),
        tx: Vec::new(),
    };
    for p in 0..PORTS {
        let ring = |dir: &str, q: usize, slots: u32| {
            Arc::new(Ring::new(&format!("{name}{p}{dir}{q}"), slots).expect("rte_ring_create"))
        };
        let rx: Vec<_> = (0..queues).map(|q| ring("r", q, rx_slots)).collect();
        let tx: Vec<_> = (0..queues).map(|q| ring("t", q, tx_slots)).collect();
        let (rx_refs, tx_refs): (Vec<&Ring>, Vec<&Ring>) = (
            rx.iter().map(|r| &**r).collect(),
            tx.iter().map(|r| &**r).collect(),
        );
        let port = Port::from_rings(&format!("{name}{p}"), &rx_refs, &tx_refs).expect("port");
        let cfg = PortConfig {
            rx_queues: queues as u16,
            tx_queues: queues as u16,
            rx_desc: rx_slots as u16,
            tx_desc: tx_slots as u16,
            ..PortConfig::default()
        };
        port.configure(&cfg, pool).expect("configure");
        port.start().expect("start");
        rig.ports.push(port);
        rig.rx.push(rx);
        rig.tx.push(tx);
    }
    rig
}

/// Queue `q` of every port of a rig: the rings on the harness's side.
#[derive(Clone)]
struct Rings {
    rx: Vec<Arc<Ring>>,
    tx: Vec<Arc<Ring>>,
}

impl Rig {
    fn rings(&self, q: usize) -> Rings {
        Rings {
            rx: self.rx.iter().map(|v| Arc::clone(&v[q])).collect(),
            tx: self.tx.iter().map(|v| Arc::clone(&v[q])).collect(),
        }
    }

    fn plan(&self, q: usize, pool: &Arc<Mempool>, polling: PollingMode) -> WorkerPlan {
        // Nobody listens to the worker's events here: a disconnected channel only counts
        // them as dropped.
        let (_, control) = bounded(1);
        let (events, _) = bounded(1);
        let (m6_events, _) = bounded(1);
        WorkerPlan {
            name: format!("e2e-worker-{q}"),
            rx: (0..PORTS)
                .map(|p| (p, self.ports[p].rx_queue(q as u16).expect("rx queue")))
                .collect(),
            tx: (0..PORTS)
                .map(|p| self.ports[p].tx_queue(q as u16).expect("tx queue"))
                .collect(),
            pool: Arc::clone(pool),
            polling,
            control,
            events,
            m6_events,
            epoch: Instant::now(),
            published: Arc::new(Mutex::new(WorkerSnapshot::default())),
        }
    }
}

/// Enqueues frames `first..first + n` of `frames` (cycled) into `ring`, each mbuf's private
/// area stamped with `stamp()`; returns how many the ring took (the rest are freed).
fn fill(
    ring: &Ring,
    pool: &Mempool,
    frames: &[Vec<u8>],
    first: usize,
    n: usize,
    stamp: &dyn Fn() -> u64,
) -> usize {
    let mut burst: Vec<Mbuf> = (first..first + n)
        .map(|i| Mbuf::from_slice(pool, &frames[i % frames.len()]).expect("mempool"))
        .collect();
    // Stamped once the burst is built, just before it is offered.
    let t = stamp().to_le_bytes();
    burst
        .iter_mut()
        .for_each(|m| m.private_mut().copy_from_slice(&t));
    let took = ring.enqueue_burst(&mut burst);
    free_bulk(&mut burst);
    took
}

/// Dequeues and frees everything in `rings`; calls `each` with every mbuf first.
fn drain(rings: &[Arc<Ring>], each: &mut dyn FnMut(&Mbuf)) -> usize {
    let mut got = Vec::with_capacity(256);
    let mut total = 0;
    for r in rings {
        while r.dequeue_burst(&mut got, 256) > 0 {
            got.iter().for_each(&mut *each);
            total += got.len();
            free_bulk(&mut got);
        }
    }
    total
}

/// What a lane thread is asked to do.
enum Cmd {
    /// `rounds` timed rounds of `frames` into port `ingress`, router then io forwarding
    /// (io: to `egress`); every lane of a scaling run waits at `start` before each.
    Capacity {
        frames: Arc<Vec<Vec<u8>>>,
        ingress: usize,
        egress: usize,
        round: usize,
        rounds: usize,
        start: Arc<Barrier>,
    },
    /// Run the worker loop (with its back-off) until `stop`, with this timer slack.
    Serve {
        stop: Arc<AtomicBool>,
        slack_ns: u64,
    },
    /// One polling round with no traffic: the worker takes its table updates.
    Sync,
}

/// One round's figures: cycles taken and packets forwarded by the router, io forwarding
/// and macswap forwarding.
struct Round {
    router: (u64, usize),
    io: (u64, usize),
    macswap: (u64, usize),
}

/// What a lane answers.
enum Reply {
    Rounds(Vec<Round>),
    /// Served until stopped, using this much CPU time (user and system).
    Served {
        cpu: Duration,
    },
}

/// A worker core's state: the router's worker on queue `q` of the router rig, and io
/// forwarding's queues on queue `q` of the io rig.
struct Lane {
    worker: Worker,
    router: Rings,
    io: Rings,
    io_rx: Vec<RxQueue>,
    io_tx: Vec<TxQueue>,
    pool: Arc<Mempool>,
}

impl Lane {
    /// One timed round of `n` packets, frames `first..first + n` (cycled) of the class.
    fn capacity(
        &mut self,
        frames: &[Vec<u8>],
        (ingress, egress): (usize, usize),
        first: usize,
        n: usize,
        start: &Barrier,
    ) -> Round {
        let took = fill(
            &self.router.rx[ingress],
            &self.pool,
            frames,
            first,
            n,
            &|| 0,
        );
        assert_eq!(took, n, "the RX ring holds a round");
        start.wait();
        let t0 = tsc();
        while self.worker.poll() > 0 {}
        let router = (tsc().wrapping_sub(t0), drain(&self.router.tx, &mut |_| {}));
        let io = self.forward(frames, (ingress, egress), first, n, start, false);
        let macswap = self.forward(frames, (ingress, egress), first, n, start, true);
        Round {
            router,
            io,
            macswap,
        }
    }

    /// testpmd's io forwarding (RX burst, TX burst to the other port), or with `swap` its
    /// macswap forwarding (each packet's Ethernet addresses swapped on the way: the least
    /// a forwarder that reads and writes the packet does). Returns (cycles, forwarded).
    fn forward(
        &mut self,
        frames: &[Vec<u8>],
        (ingress, egress): (usize, usize),
        first: usize,
        n: usize,
        start: &Barrier,
        swap: bool,
    ) -> (u64, usize) {
        fill(&self.io.rx[ingress], &self.pool, frames, first, n, &|| 0);
        start.wait();
        let mut burst = Vec::with_capacity(BURST);
        let (rx, tx) = (&mut self.io_rx[ingress], &mut self.io_tx[egress]);
        let t0 = tsc();
        while rx.rx_burst(&mut burst, BURST) > 0 {
            if swap {
                for m in burst.iter_mut() {
                    let d = m.data_mut();
                    for i in 0..6 {
                        d.swap(i, i + 6);
                    }
                }
            }
            tx.tx_burst(&mut burst);
            if !burst.is_empty() {
                free_bulk(&mut burst);
            }
        }
        (tsc().wrapping_sub(t0), drain(&self.io.tx, &mut |_| {}))
    }

    fn serve(&mut self, stop: &AtomicBool, slack_ns: u64) -> Duration {
        nix::sys::prctl::set_timerslack(slack_ns).expect("PR_SET_TIMERSLACK");
        let before = thread_cpu();
        while !stop.load(Ordering::Relaxed) {
            let received = self.worker.poll();
            self.worker.back_off(received);
        }
        thread_cpu().saturating_sub(before)
    }
}

/// CPU time the calling thread has used (getrusage RUSAGE_THREAD).
fn thread_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage");
    let d =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    d(u.user_time()) + d(u.system_time())
}

/// Starts a lane's thread on `cpu`, registered with EAL; it builds nothing itself (the
/// pipeline comes with its tables already synced) and answers each command on `done`.
fn spawn_lane(cpu: usize, lane: Lane) -> (Sender<Cmd>, Receiver<Reply>) {
    let (cmd_tx, cmd_rx) = bounded::<Cmd>(1);
    let (done_tx, done_rx) = bounded(1);
    thread::spawn(move || {
        assert!(
            core_affinity::set_for_current(core_affinity::CoreId { id: cpu }),
            "cannot pin a lane to CPU {cpu}"
        );
        dpdk_bindings::thread_register().expect("rte_thread_register");
        let mut lane = lane;
        for cmd in cmd_rx {
            let out = match cmd {
                Cmd::Capacity {
                    frames,
                    ingress,
                    egress,
                    round,
                    rounds,
                    start,
                } => Reply::Rounds(
                    (0..rounds)
                        .map(|k| {
                            lane.capacity(&frames, (ingress, egress), k * round, round, &start)
                        })
                        .collect(),
                ),
                Cmd::Serve { stop, slack_ns } => Reply::Served {
                    cpu: lane.serve(&stop, slack_ns),
                },
                Cmd::Sync => {
                    lane.worker.poll();
                    Reply::Rounds(Vec::new())
                }
            };
            if done_tx.send(out).is_err() {
                break;
            }
        }
        lane.pool.flush_local_cache();
    });
    (cmd_tx, done_rx)
}

struct LaneHandle {
    cmd: Sender<Cmd>,
    done: Receiver<Reply>,
    router: Rings,
}

impl LaneHandle {
    /// Has the lane run its worker loop, with this timer slack, until [`LaneHandle::stop`].
    fn serve(&self, slack_ns: u64) -> Arc<AtomicBool> {
        let stop = Arc::new(AtomicBool::new(false));
        self.cmd
            .send(Cmd::Serve {
                stop: Arc::clone(&stop),
                slack_ns,
            })
            .expect("lane alive");
        stop
    }

    /// Stops a serving lane; returns the CPU time it used meanwhile.
    fn stop(&self, stop: &AtomicBool) -> Duration {
        stop.store(true, Ordering::Relaxed);
        match self.done.recv() {
            Ok(Reply::Served { cpu }) => cpu,
            _ => panic!("lane answered no CPU time"),
        }
    }
}

/// A class of traffic: frames (cycled), the port they arrive on, and the port io
/// forwarding sends them to.
struct Class {
    name: String,
    frames: Arc<Vec<Vec<u8>>>,
    ingress: usize,
    egress: usize,
}

fn class(name: &str, len: usize, frames: Vec<Vec<u8>>, ingress: usize, egress: usize) -> Class {
    Class {
        name: format!("{name}, {len} B"),
        frames: Arc::new(frames),
        ingress,
        egress,
    }
}

/// The classes with every lookup in cache: proxied packets meet the 1,000 installed
/// contexts in random order.
fn hot_classes(len: usize, contexts: &[dataplane::contexts::Context], round: usize) -> Vec<Class> {
    let mut rng = Rng(7);
    let hot: Vec<usize> = (0..round)
        .map(|_| (rng.next() as usize) % contexts.len())
        .collect();
    let out_hot = proxy_out(contexts, &hot, len);
    let mut mix = Vec::with_capacity(round);
    for chunk in out_hot.chunks(BURST) {
        mix.extend(plain(BURST / 4, len));
        mix.extend(rewrite(BURST / 4, len));
        mix.extend(chunk[..chunk.len().min(BURST / 2)].iter().cloned());
    }
    vec![
        class("plain (source prefix)", len, plain(BURST, len), LAN, ISP1),
        class("rewrite ok (M6 data)", len, rewrite(BURST, len), LAN, ISP1),
        class("proxy out, 1k contexts", len, out_hot, LAN, ISP1),
        class(
            "proxy in, 1k contexts",
            len,
            proxy_in(contexts, &hot, len),
            ISP1,
            LAN,
        ),
        class("mix (plain, rewrite, proxy)", len, mix, LAN, ISP1),
    ]
}

/// The proxy classes against a million contexts: `count` frames (at most one per context),
/// each for a context no other frame of the class has, in random order, so that no packet
/// meets a context an earlier one brought into the caches.
fn cold_classes(len: usize, contexts: &[dataplane::contexts::Context], count: usize) -> Vec<Class> {
    // Each class its own order of the contexts, without repeats (Fisher-Yates).
    let order = |seed: u64| -> Vec<usize> {
        let mut rng = Rng(seed);
        let mut v: Vec<usize> = (0..contexts.len()).collect();
        for i in (1..v.len()).rev() {
            v.swap(i, (rng.next() as usize) % (i + 1));
        }
        v.truncate(count);
        v
    };
    vec![
        class(
            "proxy out, 1M contexts",
            len,
            proxy_out(contexts, &order(11), len),
            LAN,
            ISP1,
        ),
        class(
            "proxy in, 1M contexts",
            len,
            proxy_in(contexts, &order(13), len),
            ISP1,
            LAN,
        ),
    ]
}

/// Median cycles per packet of the router, io and macswap forwarding, and what each
/// forwarded over all rounds.
struct Figures {
    router: f64,
    io: f64,
    macswap: f64,
    router_out: usize,
    io_out: usize,
    macswap_out: usize,
}

/// Runs `rounds` of a class on `lanes` at once; the figures per lane (the first round,
/// which warms caches and tables up, left out).
fn capacity(lanes: &[&LaneHandle], class: &Class, scale: &Scale) -> Vec<Figures> {
    let start = Arc::new(Barrier::new(lanes.len()));
    for l in lanes {
        l.cmd
            .send(Cmd::Capacity {
                frames: Arc::clone(&class.frames),
                ingress: class.ingress,
                egress: class.egress,
                round: scale.round,
                rounds: scale.rounds + 1,
                start: Arc::clone(&start),
            })
            .expect("lane alive");
    }
    lanes
        .iter()
        .map(|l| {
            let Ok(Reply::Rounds(rounds)) = l.done.recv() else {
                panic!("lane answered no rounds")
            };
            let r = &rounds[1..];
            let per = |f: &dyn Fn(&Round) -> (u64, usize)| {
                median(
                    r.iter()
                        .map(|x| f(x).0 as f64 / scale.round as f64)
                        .collect(),
                )
            };
            let out = |f: &dyn Fn(&Round) -> (u64, usize)| r.iter().map(|x| f(x).1).sum();
            let expected = scale.round * scale.rounds;
            for (what, got) in [
                ("router", out(&|x| x.router)),
                ("io", out(&|x| x.io)),
                ("macswap", out(&|x| x.macswap)),
            ] {
                // Every class is forwardable and every ring holds a round: anything less is a
                // fault of the router or of the harness, not a figure.
                assert_eq!(
                    got, expected,
                    "{}: {what} forwarded {got} of {expected}",
                    class.name
                );
            }
            Figures {
                router: per(&|x| x.router),
                io: per(&|x| x.io),
                macswap: per(&|x| x.macswap),
                router_out: out(&|x| x.router),
                io_out: out(&|x| x.io),
                macswap_out: out(&|x| x.macswap),
            }
        })
        .collect()
}

/// The generator's TSC frequency and the pool it allocates from.
struct Clock {
    hz: u64,
    pool: Arc<Mempool>,
}

/// Offers `frames` to a serving lane at `rate` packets per second for `time`, from this
/// thread, in bursts of 32 paced by the TSC; drains the TX rings as it goes. Returns
/// (offered, refused by a full RX ring, forwarded, latencies in cycles).
fn offer(
    lane: &LaneHandle,
    class: &Class,
    rate: f64,
    time: Duration,
    clock: &Clock,
) -> (usize, usize, usize, Vec<u64>) {
    let (rings, ingress, frames) = (&lane.router, class.ingress, &class.frames[..]);
    // Cold classes: past the frames the capacity rounds used.
    let first = frames.len() / 2;
    let (hz, pool, slack_ns) = (clock.hz, &*clock.pool, WORKER_TIMER_SLACK_NS);
    let stop = lane.serve(slack_ns);
    let period = (BURST as f64 * hz as f64 / rate) as u64;
    // Room for every latency, its pages touched now: growing it while the generator runs
    // would stall the only drainer of the TX rings.
    let expected = (rate * time.as_secs_f64() * 1.2) as usize + 4096;
    let mut lat: Vec<u64> = vec![0; expected];
    lat.clear();
    let (mut offered, mut refused, mut out) = (0, 0, 0);
    let begin = tsc();
    let sink = |lat: &mut Vec<u64>| {
        drain(&rings.tx, &mut |m| {
            let mut t = [0u8; 8];
            t.copy_from_slice(&m.private()[..8]);
            let t = u64::from_le_bytes(t);
            // A frame the router made itself carries whatever its mbuf held before.
            if t >= begin {
                lat.push(tsc().wrapping_sub(t));
            }
        })
    };
    let end = begin + (time.as_secs_f64() * hz as f64) as u64;
    let mut next = begin;
    while tsc() < end {
        if tsc() >= next {
            let took = fill(
                &rings.rx[ingress],
                pool,
                frames,
                first + offered,
                BURST,
                &tsc,
            );
            offered += BURST;
            refused += BURST - took;
            next += period;
        }
        out += sink(&mut lat);
    }
    // Let the worker finish what is queued.
    let settle = tsc() + hz / 100;
    while tsc() < settle && out + refused < offered {
        out += sink(&mut lat);
    }
    lane.stop(&stop);
    out += sink(&mut lat);
    (offered, refused, out, lat)
}

/// CPU time (share of one core) an idle lane uses in `time` of serving nothing.
fn idle_cpu(lane: &LaneHandle, time: Duration, slack_ns: u64) -> f64 {
    let stop = lane.serve(slack_ns);
    thread::sleep(time);
    lane.stop(&stop).as_secs_f64() / time.as_secs_f64()
}

/// Offers 4096 packets at `rate` after the worker has idled for 20 ms, `trials` times;
/// returns the packets offered, per trial how many a full RX ring refused, and the rate
/// (packets per second) the generator really reached.
fn after_idle(
    lane: &LaneHandle,
    frames: &[Vec<u8>],
    rate: f64,
    trials: usize,
    slack_ns: u64,
    clock: &Clock,
) -> (usize, Vec<usize>, f64) {
    let (rings, hz, pool) = (&lane.router, clock.hz, &*clock.pool);
    let stop = lane.serve(slack_ns);
    let period = (BURST as f64 * hz as f64 / rate) as u64;
    let mut offered = 0;
    let mut refused = vec![0; trials];
    // The rate the generator really reached: (first, last) enqueue of every trial.
    let mut spans = 0u64;
    for lost in refused.iter_mut() {
        thread::sleep(Duration::from_millis(20));
        drain(&rings.tx, &mut |_| {});
        let begin = tsc();
        let mut next = begin;
        for _ in 0..(4096 / BURST) {
            while tsc() < next {
                std::hint::spin_loop();
            }
            let took = fill(&rings.rx[LAN], pool, frames, offered, BURST, &|| 0);
            offered += BURST;
            *lost += BURST - took;
            next += period;
        }
        spans += next - period - begin;
    }
    thread::sleep(Duration::from_millis(5));
    drain(&rings.tx, &mut |_| {});
    lane.stop(&stop);
    drain(&rings.tx, &mut |_| {});
    let achieved = (offered - trials * BURST) as f64 * hz as f64 / spans.max(1) as f64;
    (offered, refused, achieved)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full {
        Scale {
            round: 2_048,
            rounds: 31,
            load: Duration::from_millis(500),
            idle_trials: 40,
            contexts: COLD,
        }
    } else {
        Scale {
            round: 1_024,
            rounds: 2,
            load: Duration::from_millis(50),
            idle_trials: 2,
            contexts: HOT,
        }
    };
    let cpus = core_affinity::get_core_ids().map_or(1, |c| c.len());
    let eal = Eal::init(&[
        "--in-memory",
        "--no-pci",
        "--no-telemetry",
        "-l",
        "0",
        "-m",
        "512",
        "--log-level=error",
    ])
    .unwrap_or_else(|e| panic!("EAL init failed: {e} (the harness needs root and free 2 MiB hugepages; `make setup` reserves them)"));
    let pool = Arc::new(
        Mempool::with_private("e2e", 65_535, 256, STAMP, Mempool::DEFAULT_DATA_ROOM)
            .expect("mempool"),
    );
    let hz = tsc_hz(Duration::from_millis(200));
    let workers = cpus.min(2);

    let router = rig("r", workers, (RING_SLOTS, RING_SLOTS), &pool);
    let io = rig("i", workers, (RING_SLOTS, RING_SLOTS), &pool);
    // The idle rig's TX rings hold a whole trial, so that the worker never meets a full
    // TX ring there (drained between trials).
    let idle = rig("a", 2, (IDLE_RING_SLOTS, 8192), &pool);

    // One pipeline per lane, all replicas of one control side's tables.
    let site = site();
    let mut control = control(&site);
    let mut pipelines: Vec<Pipeline> = (0..workers + 2)
        .map(|_| Pipeline::new(site.clone(), control.worker_tables()))
        .collect();
    // The hot phase runs with 1,000 contexts; the cold one (full runs) installs the rest
    // of the million later, through the lanes.
    let ctx = contexts(scale.contexts);
    {
        let mut refs: Vec<&mut Pipeline> = pipelines.iter_mut().collect();
        install(&mut control, &mut refs, &ctx[..HOT]);
    }
    let mut lanes = Vec::new();
    for (q, pl) in pipelines.drain(..workers).enumerate() {
        let lane = Lane {
            worker: Worker::new(router.plan(q, &pool, PollingMode::Busy), pl),
            router: router.rings(q),
            io: io.rings(q),
            io_rx: io
                .ports
                .iter()
                .map(|p| p.rx_queue(q as u16).expect("rx"))
                .collect(),
            io_tx: io
                .ports
                .iter()
                .map(|p| p.tx_queue(q as u16).expect("tx"))
                .collect(),
            pool: Arc::clone(&pool),
        };
        let (cmd, done) = spawn_lane(q, lane);
        lanes.push(LaneHandle {
            cmd,
            done,
            router: router.rings(q),
        });
    }
    // Two adaptive workers on the idle rig (queues 0 and 1), sleeping at most 200 and
    // 50 µs, on the first core.
    let mut idle_lanes = Vec::new();
    for (q, (pl, ceiling)) in pipelines.drain(..).zip([200u64, 50]).enumerate() {
        let polling = PollingMode::Adaptive {
            max_idle_sleep_us: ceiling,
        };
        let lane = Lane {
            worker: Worker::new(idle.plan(q, &pool, polling), pl),
            router: idle.rings(q),
            io: idle.rings(q),
            io_rx: Vec::new(),
            io_tx: Vec::new(),
            pool: Arc::clone(&pool),
        };
        let (cmd, done) = spawn_lane(0, lane);
        idle_lanes.push((
            ceiling,
            LaneHandle {
                cmd,
                done,
                router: idle.rings(q),
            },
        ));
    }

    println!(
        "e2e: ring ports (net_ring PMD), {} packets per round, median of {} rounds; TSC {:.2} GHz",
        scale.round,
        scale.rounds,
        hz as f64 / 1e9,
    );
    let mpps = |cpp: f64| hz as f64 / cpp / 1e6;
    let capacities = |classes: Vec<Class>| -> Vec<(Class, f64)> {
        println!(
            "{:<36} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7} {:>7} {:>7} {:>9}",
            "class (1 worker)",
            "router",
            "io",
            "macswap",
            "ratio io",
            "ratio ms",
            "router",
            "io",
            "macswap",
            "forwarded"
        );
        println!(
            "{:<36} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7} {:>7} {:>7} {:>9}",
            "", "Mpps", "Mpps", "Mpps", "", "", "c/p", "c/p", "c/p", ""
        );
        classes
            .into_iter()
            .map(|class| {
                let r = capacity(&[&lanes[0]], &class, &scale).remove(0);
                let expected = scale.round * scale.rounds;
                println!(
                    "{:<36} {:>8.2} {:>8.1} {:>8.1} {:>8.3}x {:>8.3}x {:>7.1} {:>7.1} {:>7.1} {:>8.1}%",
                    class.name,
                    mpps(r.router),
                    mpps(r.io),
                    mpps(r.macswap),
                    r.io / r.router,
                    r.macswap / r.router,
                    r.router,
                    r.io,
                    r.macswap,
                    100.0 * r.router_out as f64 / expected as f64
                );
                if r.io_out != expected || r.macswap_out != expected {
                    println!(
                        "  (io forwarded {}, macswap {}, of {expected})",
                        r.io_out, r.macswap_out
                    );
                }
                (class, mpps(r.router))
            })
            .collect()
    };
    let hot = &ctx[..HOT];
    let mut capacity_of = capacities(hot_classes(64, hot, scale.round));
    capacity_of.extend(capacities(hot_classes(512, hot, scale.round)));

    if lanes.len() > 1 {
        println!("\nscaling: the same rounds on 1 and 2 workers at once (a queue pair each, one core each)");
        println!(
            "{:<38} {:>8} {:>16} {:>11} {:>12}",
            "class", "workers", "Mpps per worker", "total Mpps", "vs 1 worker"
        );
        for (class, _) in capacity_of
            .iter()
            .filter(|(c, _)| c.name.ends_with(" 64 B"))
            .take(5)
        {
            let one = capacity(&[&lanes[0]], class, &scale)[0].router;
            println!(
                "{:<38} {:>8} {:>16.2} {:>11.2} {:>11.2}x",
                class.name,
                1,
                mpps(one),
                mpps(one),
                1.0
            );
            let two = capacity(&[&lanes[0], &lanes[1]], class, &scale);
            let per: Vec<f64> = two.iter().map(|r| mpps(r.router)).collect();
            let total: f64 = per.iter().sum();
            println!(
                "{:<38} {:>8} {:>16} {:>11.2} {:>11.2}x",
                "",
                2,
                per.iter()
                    .map(|m| format!("{m:.2}"))
                    .collect::<Vec<_>>()
                    .join(" / "),
                total,
                total / mpps(one)
            );
        }
    } else {
        println!("\nscaling: one CPU only, so no 2-worker run");
    }

    // The generator runs on the other core from here on.
    let gen_cpu = if cpus > 1 { 1 } else { 0 };
    core_affinity::set_for_current(core_affinity::CoreId { id: gen_cpu });
    println!(
        "\nlatency and loss at 50% of the router's capacity (1 busy worker; offered from core {gen_cpu} for {} ms)",
        scale.load.as_millis()
    );
    let us = |c: u64| c as f64 * 1e6 / hz as f64;
    let clock = Clock {
        hz,
        pool: Arc::clone(&pool),
    };
    let latencies = |classes: &[(Class, f64)]| {
        println!(
            "{:<38} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8}",
            "class", "offered", "Mpps", "lost", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
        );
        for (class, cap) in classes.iter().filter(|(c, _)| c.name.ends_with(" 64 B")) {
            let rate = cap * 0.5 * 1e6;
            let (offered, refused, out, mut lat) =
                offer(&lanes[0], class, rate, scale.load, &clock);
            lat.sort_unstable();
            println!(
                "{:<38} {:>9} {:>9.2} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                class.name,
                offered,
                rate / 1e6,
                offered - out.min(offered),
                us(percentile(&lat, 0.5)),
                us(percentile(&lat, 0.99)),
                us(percentile(&lat, 0.999)),
                us(lat.last().copied().unwrap_or(0))
            );
            if refused > 0 {
                println!("  ({refused} refused by a full RX ring)");
            }
        }
    };
    latencies(&capacity_of);

    println!(
        "\nloss after idle: an adaptive worker idle for 20 ms, then 4096 packets at a rate into a {IDLE_RING_SLOTS}-slot RX ring ({} trials)",
        scale.idle_trials
    );
    println!(
        "{:>12} {:>14} {:>11} {:>9} {:>9} {:>10} {:>12}",
        "sleep ceiling", "timer slack", "Mpps (real)", "offered", "lost", "trials", "median lost"
    );
    let frames = plain(BURST, 64);
    for (ceiling, lane) in &idle_lanes {
        for slack in [DEFAULT_SLACK_NS, WORKER_TIMER_SLACK_NS] {
            println!(
                "{:>10} µs {:>11} µs {:>11} {:>9} {:>19}",
                ceiling,
                slack as f64 / 1000.0,
                "idle",
                "",
                format!(
                    "CPU {:.1}% of a core",
                    100.0 * idle_cpu(lane, scale.load, slack)
                )
            );
            for rate in [1.0, 2.0, 4.0, 8.0, 16.0] {
                let (offered, mut lost, achieved) =
                    after_idle(lane, &frames, rate * 1e6, scale.idle_trials, slack, &clock);
                let total: usize = lost.iter().sum();
                let with_loss = lost.iter().filter(|&&l| l > 0).count();
                lost.sort_unstable();
                println!(
                    "{:>10} µs {:>11} µs {:>4.0} ({:>4.1}) {:>9} {:>8.2}% {:>8}/{} {:>12}",
                    ceiling,
                    slack as f64 / 1000.0,
                    rate,
                    achieved / 1e6,
                    offered,
                    100.0 * total as f64 / offered as f64,
                    with_loss,
                    lost.len(),
                    lost[lost.len() / 2]
                );
            }
        }
    }
    println!("\nwhat an idle worker's sleep really takes (core 0, 500 sleeps each)");
    println!(
        "{:>12} {:>14} {:>10} {:>10} {:>10}",
        "asked", "timer slack", "p50 µs", "p99 µs", "max µs"
    );
    for asked in [50u64, 200] {
        for slack in [DEFAULT_SLACK_NS, WORKER_TIMER_SLACK_NS] {
            let mut took: Vec<u64> = thread::spawn(move || {
                core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
                nix::sys::prctl::set_timerslack(slack).expect("PR_SET_TIMERSLACK");
                (0..500)
                    .map(|_| {
                        let t0 = Instant::now();
                        thread::sleep(Duration::from_micros(asked));
                        t0.elapsed().as_nanos() as u64
                    })
                    .collect()
            })
            .join()
            .expect("sleeper");
            took.sort_unstable();
            println!(
                "{:>9} µs {:>11} µs {:>10.1} {:>10.1} {:>10.1}",
                asked,
                slack as f64 / 1000.0,
                percentile(&took, 0.5) as f64 / 1000.0,
                percentile(&took, 0.99) as f64 / 1000.0,
                took.last().copied().unwrap_or(0) as f64 / 1000.0
            );
        }
    }
    if full {
        // The rest of the million, taken by every lane between bursts as a running
        // worker would.
        let every: Vec<&LaneHandle> = lanes
            .iter()
            .chain(idle_lanes.iter().map(|(_, l)| l))
            .collect();
        for chunk in ctx[HOT..].chunks(4096) {
            chunk.iter().for_each(|c| control.install_context(*c));
            control.tick(0);
            for l in &every {
                l.cmd.send(Cmd::Sync).expect("lane alive");
                l.done.recv().expect("lane answers");
            }
        }
        println!(
            "\ncold: {} contexts installed, each proxied packet's drawn at random",
            ctx.len()
        );
        // A frame per context: enough for the capacity rounds and the latency run, so
        // neither repeats a context.
        let cold = capacities(cold_classes(64, &ctx, ctx.len()));
        println!();
        latencies(&cold);
    }
    drop(lanes);
    drop(idle_lanes);
    drop(eal);
}
