//! `m6-dataplane`: loads the site configuration, starts DPDK ports and one pinned polling
//! worker per configured lcore, keeps ISP link state fresh, and on SIGINT/SIGTERM stops
//! cleanly and prints the final counters.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender, TrySendError};
use dataplane::io::{run_worker, ControlMsg, IoCounters, WorkerPlan, WorkerSnapshot};
use dataplane::{Control, Counters, Pipeline, PortInfo, Site};
use dpdk_bindings::{Eal, Mempool, Port, PortConfig};
use proto::config::DataplaneConfig;

/// Depth of the control channels (updates between bursts; a few per second normally).
const CHANNEL_DEPTH: usize = 4096;
/// How often the control thread re-reads link state.
const LINK_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often the control thread wakes to run the neighbor owner and check for stop.
const CONTROL_TICK: Duration = Duration::from_millis(1);
/// Mbuf headroom (`RTE_PKTMBUF_HEADROOM`): room for the ICMPv6 errors built in place.
const MBUF_HEADROOM: usize = 128;
/// Mbuf data room after the headroom at least (DPDK's default).
const MBUF_MIN_DATA: usize = 2048;

/// The command line.
#[derive(clap::Parser)]
#[command(
    name = "m6-dataplane",
    version,
    about = "The M6 border router's DPDK dataplane"
)]
struct Args {
    /// The site's YAML configuration (see configs/).
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Validate the configuration and exit, touching no port.
    #[arg(long = "check")]
    check_only: bool,
}

fn main() -> ExitCode {
    // Usage errors exit with status 2, as configuration errors do.
    let args = <Args as clap::Parser>::parse();
    // The whole configuration is checked before EAL or any port is touched.
    let config = match DataplaneConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("m6-dataplane: {e}");
            return ExitCode::from(2);
        }
    };
    // Worker CPUs are checked here rather than in the config crate: they depend on the
    // machine (and the CPU set) the file is checked on.
    if let Err(e) = check_worker_cpus(&config) {
        eprintln!("m6-dataplane: {}: {e}", args.config.display());
        return ExitCode::from(2);
    }
    if args.check_only {
        println!(
            "m6-dataplane: {}: configuration is valid",
            args.config.display()
        );
        return ExitCode::SUCCESS;
    }
    match run(&config, &args.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("m6-dataplane: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &DataplaneConfig, path: &std::path::Path) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .map_err(|e| format!("cannot install signal handler: {e}"))?;
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| format!("cannot install signal handler: {e}"))?;
    }
    let eal = Eal::init(&config.full_eal_args()).map_err(|e| format!("EAL init: {e}"))?;
    // Every frame of the largest MTU fits one segment (the pipeline reads single-segment
    // buffers): data room = headroom + max(2048, MTU + Ethernet header).
    let max_frame = config
        .ports
        .iter()
        .map(|p| usize::from(p.mtu) + 14)
        .max()
        .unwrap_or(0);
    let data_room = u16::try_from(MBUF_HEADROOM + max_frame.max(MBUF_MIN_DATA))
        .map_err(|_| "mbuf data room over 64 KiB")?;
    let pool = Arc::new(
        Mempool::new(
            "m6_pkts",
            config.mempool_mbufs,
            config.mempool_cache,
            data_room,
        )
        .map_err(|e| format!("mempool: {e}"))?,
    );

    let tx_queues = u16::try_from(config.workers.len()).map_err(|_| "too many workers")?;
    let mut ports = Vec::with_capacity(config.ports.len());
    let mut port_infos = Vec::with_capacity(config.ports.len());
    for p in &config.ports {
        let port = Port::by_name(p.device.port_name())
            .map_err(|e| format!("port {}: device {:?}: {e}", p.name, p.device.port_name()))?;
        let port_cfg = PortConfig {
            rx_queues: config.rx_queue_count(ports.len()),
            tx_queues,
            rx_desc: p.rx_desc,
            tx_desc: p.tx_desc,
            rss: true,
            mtu: Some(p.mtu),
        };
        port.configure(&port_cfg, &pool)
            .map_err(|e| format!("port {}: {e}", p.name))?;
        // Solicited-node multicast must reach us for Neighbor Discovery. A device without a
        // receive filter to open (virtio-user, whose vhost-user backend delivers every
        // frame) says it does not support the call: that is no failure.
        match port.set_promiscuous(true) {
            Ok(()) => {}
            // EOPNOTSUPP
            Err(dpdk_bindings::Error::Dpdk { errno: 95, .. }) => {
                eprintln!(
                    "m6-dataplane: port {}: no promiscuous mode on this device (it filters nothing)",
                    p.name
                )
            }
            Err(e) => return Err(format!("port {}: {e}", p.name)),
        }
        port.start().map_err(|e| format!("port {}: {e}", p.name))?;
        let mac = port
            .mac_addr()
            .map_err(|e| format!("port {}: {e}", p.name))?;
        port_infos.push(PortInfo {
            name: p.name.clone(),
            mac,
            addresses: p.addresses.clone(),
            mtu: p.mtu,
        });
        ports.push(port);
    }

    let site = Site {
        ports: port_infos,
        lan_port: config.lan_port,
        isps: config.isps.clone(),
        icmp_errors_per_sec: config.icmp_errors_per_sec,
        nd: config.nd,
        proxied: config.proxy_prefixes.clone(),
        policy: config.policy.clone(),
        health: config.health,
        ra: config.router_advertisements.clone(),
        probe_cookie: random_cookie(),
    };

    site.validate().map_err(|e| format!("site: {e}"))?;

    // The control thread owns every table the workers read (neighbors, ISP state).
    let mut control_plane = Control::new(&site);
    for n in &config.neighbors {
        control_plane.add_static_neighbor(n.port, n.address, n.mac);
    }
    let epoch = Instant::now();
    // The channel to m6-controlplane; this start's instance number tells a reconnecting
    // control plane that the dataplane's tables are new.
    let instance = epoch.elapsed().as_nanos() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let mut channel = dataplane::channel::ChannelServer::bind(
        &config.channel.path,
        config.channel.mode,
        instance,
    )
    .map_err(|e| format!("channel.path: {e}"))?;

    // Workers: each gets its RX queues, TX queue `w` on every port, its replicas of the
    // tables, and channels to the control thread. Bounded channels: a stuck receiver
    // costs counted events, never unbounded memory.
    let mut published: Vec<Arc<Mutex<WorkerSnapshot>>> = Vec::new();
    let (events_tx, events_rx) = bounded(CHANNEL_DEPTH);
    let (m6_tx, m6_rx) = bounded(CHANNEL_DEPTH);
    let mut control: Vec<Sender<ControlMsg>> = Vec::new();
    let mut handles = Vec::new();
    for (w, worker) in config.workers.iter().enumerate() {
        let (ctl_tx, ctl_rx) = bounded(CHANNEL_DEPTH);
        control.push(ctl_tx);
        let w16 = w as u16;
        let queue_err = |e| format!("workers[{w}]: {e}");
        let rx = worker
            .rx
            .iter()
            .map(|q| ports[q.port].rx_queue(q.queue).map(|rxq| (q.port, rxq)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(queue_err)?;
        let tx = ports
            .iter()
            .map(|p| p.tx_queue(w16))
            .collect::<Result<Vec<_>, _>>()
            .map_err(queue_err)?;
        let plan = WorkerPlan {
            name: format!("m6-worker-{}", worker.lcore),
            rx,
            tx,
            pool: Arc::clone(&pool),
            polling: config.polling,
            control: ctl_rx,
            events: events_tx.clone(),
            m6_events: m6_tx.clone(),
            epoch,
            published: Arc::new(Mutex::new(WorkerSnapshot::default())),
        };
        published.push(Arc::clone(&plan.published));
        let site = site.clone();
        let tables = control_plane.worker_tables();
        let cpu = worker.lcore;
        let stop = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name(plan.name.clone())
            .spawn(move || {
                // EAL pinned the main thread to one CPU and we inherited that mask: re-pin.
                if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                    eprintln!("m6-dataplane: cannot pin worker to CPU {cpu}");
                }
                if let Err(e) = dpdk_bindings::thread_register() {
                    eprintln!("m6-dataplane: worker on CPU {cpu} not registered with EAL: {e}");
                }
                // Built on the worker's own thread, after pinning, so its tables and
                // counters are allocated apart from other workers' (no shared cache lines).
                let pipeline = Pipeline::new(site, tables);
                let result = run_worker(plan, pipeline, &stop);
                dpdk_bindings::thread_unregister();
                result
            })
            .map_err(|e| format!("cannot start worker: {e}"))?;
        handles.push(handle);
    }
    drop(events_tx);
    drop(m6_tx);

    println!(
        "m6-dataplane: forwarding on {} ports ({}) with {} workers",
        ports.len(),
        config
            .ports
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        handles.len()
    );
    if let proto::config::PollingMode::Adaptive { max_idle_sleep_us } = config.polling {
        // What an operator needs to know of the back-off: how big a burst after idle the
        // RX queues absorb before a sleeping worker wakes.
        let rx_desc = config.ports.iter().map(|p| p.rx_desc).min().unwrap_or(0);
        println!(
            "m6-dataplane: adaptive polling: idle workers sleep up to {max_idle_sleep_us} µs; a \
             burst after idle above about {:.1} Mpps may overflow RX queues of {rx_desc} \
             descriptors (lower polling.max_idle_sleep_us, raise rx_desc, or poll busy; \
             vdev PMDs size their rings from their own arguments, af_packet from framecnt)",
            dataplane::io::burst_after_idle_pps(rx_desc, max_idle_sleep_us) as f64 / 1e6
        );
    }

    // systemd (Type=notify, WatchdogSec=): ready now; alive while every worker polls
    // (each publishes its counters every 100 ms), told with the counters each second. Both
    // are no-ops outside systemd.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    // Control loop: neighbor owner, link state, stop.
    let mut link_up: Vec<Option<bool>> = vec![None; config.isps.len()];
    let mut last_poll = Instant::now() - LINK_POLL_INTERVAL;
    // The control thread's own I/O counters: [transmit_dropped, inject_unroutable].
    let mut extra = [0u64; 2];
    // ISP states as last told to the control plane (all again after a reconnection).
    let mut told: Vec<Option<proto::channel::Message>> = vec![None; config.isps.len()];
    let mut config = config.clone();
    let mut told_connections = 0;
    let mut last_counters = Instant::now();
    let mut last_watchdog = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        for ev in events_rx.try_iter() {
            control_plane.handle(ev, now);
        }
        for ev in m6_rx.try_iter() {
            control_plane.m6_event(ev);
        }
        control_plane.drain_m6_events(&mut |e| channel.report(e));
        let mut injected = Vec::new();
        channel.poll(&mut control_plane, now, &mut |i| injected.push(i));
        if let Some(w0) = control.first() {
            for i in injected {
                match control_plane.frame_for_injected(i.isp, &i.packet) {
                    Some((port, frame)) => {
                        if w0.try_send(ControlMsg::Transmit { port, frame }).is_err() {
                            extra[0] += 1;
                        }
                    }
                    None => extra[1] += 1,
                }
            }
        }
        control_plane.tick(now);
        // Solicitations go out through worker 0's TX queues.
        if let Some(w0) = control.first() {
            control_plane.drain_frames(&mut |port, frame| {
                let msg = ControlMsg::Transmit {
                    port,
                    frame: frame.to_vec(),
                };
                if let Err(TrySendError::Full(_)) = w0.try_send(msg) {
                    extra[0] += 1;
                }
            });
        }
        if last_poll.elapsed() >= LINK_POLL_INTERVAL {
            last_poll = Instant::now();
            for (i, isp) in config.isps.iter().enumerate() {
                let port = &config.ports[isp.port];
                let pmd_up = ports[isp.port].link().up;
                let carrier_up = port.device.af_packet_iface().is_none_or(kernel_carrier_up);
                let up = pmd_up && carrier_up;
                if link_up[i] != Some(up) {
                    link_up[i] = Some(up);
                    control_plane.set_link(i, up, now);
                }
            }
        }
        if channel.counters.connections != told_connections {
            told_connections = channel.counters.connections;
            told.iter_mut().for_each(|t| *t = None);
        }
        if channel.connected() {
            for (i, t) in told.iter_mut().enumerate() {
                let state = isp_state(&control_plane, &config, i);
                if t.as_ref() != Some(&state) {
                    channel.send(&state);
                    *t = Some(state);
                }
            }
        }
        if last_watchdog.elapsed() >= COUNTERS_INTERVAL {
            last_watchdog = Instant::now();
            let stuck = published.iter().any(|slot| {
                let at = slot.lock().map_or(0, |s| s.at_ns);
                now.saturating_sub(at) > WORKER_STUCK_NS
            });
            if !stuck {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
        }
        // Live counters for the control plane's metrics, once a second.
        if channel.connected() && last_counters.elapsed() >= COUNTERS_INTERVAL {
            last_counters = Instant::now();
            let values = live_counters(
                now,
                &ports,
                &config,
                &published,
                &control_plane,
                &channel,
                &extra,
            );
            channel.send(&proto::channel::Message::Counters { values });
        }
        if reload.swap(false, Ordering::Relaxed) {
            if let Err(e) = apply_reload(path, &mut config, &mut control_plane, now) {
                eprintln!("m6-dataplane: {e}");
            }
        }
        for (id, request) in channel.take_requests() {
            use proto::channel::{Message, NeighborMsg, ReplyMsg, RequestMsg};
            let reply = match request {
                RequestMsg::Neighbors => {
                    let limit = proto::channel::MAX_NEIGHBORS_IN_REPLY;
                    let (entries, total) = control_plane.neighbors.entries(limit);
                    ReplyMsg::Neighbors {
                        entries: entries
                            .into_iter()
                            .map(|(port, a, mac, state)| NeighborMsg {
                                port: config
                                    .ports
                                    .get(port)
                                    .map_or_else(|| port.to_string(), |p| p.name.clone()),
                                address: dataplane::net::addr::to_std(a),
                                mac,
                                state: state.to_string(),
                            })
                            .collect(),
                        total: u32::try_from(total).unwrap_or(u32::MAX),
                    }
                }
                RequestMsg::Reload => {
                    match apply_reload(path, &mut config, &mut control_plane, now) {
                        Ok(applied) => ReplyMsg::Reloaded {
                            ok: true,
                            message: applied,
                        },
                        Err(e) => {
                            eprintln!("m6-dataplane: {e}");
                            ReplyMsg::Reloaded {
                                ok: false,
                                message: e,
                            }
                        }
                    }
                }
            };
            channel.send(&Message::Reply { id, reply });
        }
        control_plane.drain_log(&mut |line| eprintln!("m6-dataplane: {line}"));
        thread::sleep(CONTROL_TICK);
    }

    for (h, slot) in handles.into_iter().zip(&published) {
        match h.join() {
            Ok((pipeline, worker_io)) => {
                let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                slot.counters = Some(pipeline.counters().clone());
                slot.io = worker_io;
            }
            Err(_) => eprintln!("m6-dataplane: a worker panicked; its counters are lost"),
        }
    }
    println!("m6-dataplane: stopped; final counters");
    let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    for (name, value) in live_counters(
        now,
        &ports,
        &config,
        &published,
        &control_plane,
        &channel,
        &extra,
    ) {
        println!("counter {name} {value}");
    }
    for port in &ports {
        if let Err(e) = port.stop().and_then(|()| port.close()) {
            eprintln!("m6-dataplane: port {}: {e}", port.id());
        }
    }
    // Ports and the mempool go before EAL is cleaned up.
    drop(ports);
    drop(pool);
    drop(eal);
    Ok(())
}

/// Eight unpredictable octets for the health probes (from the kernel's random source).
fn random_cookie() -> [u8; 8] {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        // Without /dev/urandom: the clock, which an off-path attacker still cannot read.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        b = (t ^ u64::from(std::process::id()).rotate_left(32)).to_be_bytes();
    }
    b
}

/// A worker that has not published its counters for this long (ns) is stuck: systemd's
/// watchdog is no longer told the dataplane is alive, and restarts it.
const WORKER_STUCK_NS: u64 = 3_000_000_000;

/// How often the control plane gets the counters.
const COUNTERS_INTERVAL: Duration = Duration::from_secs(1);

/// Every counter by dotted name, read while traffic runs: each port's PMD statistics and
/// per-queue packets (`port.<port>.*`), each worker's published counters merged (the
/// pipeline's names) and its own (`worker.<n>.*`), the I/O layer's (`io.*`), the channel's
/// and the control thread's (neighbor owner, probes, RAs).
fn live_counters(
    now_ns: u64,
    ports: &[Port],
    config: &DataplaneConfig,
    published: &[Arc<Mutex<WorkerSnapshot>>],
    control: &Control,
    channel: &dataplane::channel::ChannelServer,
    extra: &[u64; 2],
) -> Vec<(String, u64)> {
    // The dataplane's clock (ns since start) at this reading: rates divide by its
    // differences; a smaller value than the last one means the dataplane restarted.
    let mut out: Vec<(String, u64)> = vec![("clock.ns".to_string(), now_ns)];
    let mut merged: Option<Counters> = None;
    let mut io = IoCounters::default();
    for (w, slot) in published.iter().enumerate() {
        let slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        let Some(c) = slot.counters.as_ref() else {
            continue;
        };
        let rx: u64 = c.rx.iter().map(|f| f.packets).sum();
        out.push((format!("worker.{w}.rx_packets"), rx));
        out.push((format!("worker.{w}.polls_busy"), slot.io.polls_busy));
        out.push((format!("worker.{w}.polls_idle"), slot.io.polls_idle));
        match merged.as_mut() {
            Some(m) => m.merge(c),
            None => merged = Some(c.clone()),
        }
        io.merge(&slot.io);
    }
    for (p, port) in ports.iter().enumerate() {
        let name = &config.ports[p].name;
        if let Ok(s) = port.stats() {
            for (k, v) in [
                ("ipackets", s.ipackets),
                ("opackets", s.opackets),
                ("ibytes", s.ibytes),
                ("obytes", s.obytes),
                ("imissed", s.imissed),
                ("ierrors", s.ierrors),
                ("oerrors", s.oerrors),
                ("rx_nombuf", s.rx_nombuf),
            ] {
                out.push((format!("port.{name}.{k}"), v));
            }
        }
        // Per-queue packets, where the PMD counts them.
        for (k, v) in port.xstats().unwrap_or_default() {
            let queue = (k.starts_with("rx_q") || k.starts_with("tx_q")) && k.ends_with("_packets");
            if queue {
                out.push((format!("port.{name}.{k}"), v));
            }
        }
        out.push((
            format!("port.{name}.tx_full_drops"),
            io.tx_full_drops.get(p).copied().unwrap_or(0),
        ));
    }
    for (k, v) in [
        ("io.alloc_failures", io.alloc_failures),
        ("io.events_dropped", io.events_dropped),
        ("io.transmit_dropped", extra[0]),
        ("io.inject_unroutable", extra[1]),
        ("io.idle_sleeps", io.idle_sleeps),
    ] {
        out.push((k.to_string(), v));
    }
    let mut add = |name: &str, value: u64| out.push((name.to_string(), value));
    channel.counters.for_each(&mut add);
    control.counters().for_each(&mut add);
    control.for_each_health_counter(&mut add);
    if let Some(c) = merged {
        c.for_each(|name, value| out.push((name.to_string(), value)));
    }
    out
}

/// ISP `i`'s state for the control plane.
fn isp_state(control: &Control, config: &DataplaneConfig, i: usize) -> proto::channel::Message {
    let live = control.isps.get(i).unwrap_or(dataplane::isp::IspLive::UP);
    let prefix = config.isps[i].prefix;
    proto::channel::Message::IspState {
        isp: i as u16,
        name: config.isps[i].name.clone(),
        prefix: prefix.network(),
        prefix_len: prefix.len(),
        usable: live.usable(),
        drained: live.drained,
        cause: live.cause().unwrap_or_default().to_string(),
        rtt_us: control
            .prober()
            .last_rtt(i)
            .map_or(0, |ns| u32::try_from(ns / 1000).unwrap_or(u32::MAX)),
        probe_rounds: control.prober().answered(i),
        withdrawals: control.isps.withdrawals(i),
    }
}

/// A reload (SIGHUP or `m6ctl reload`) at `now` (ns): reads `path` again and applies what
/// may change live to the control thread's tables; `running` becomes the new file. `Ok`
/// says what was applied; `Err` why nothing was (the previous configuration stays).
fn apply_reload(
    path: &std::path::Path,
    running: &mut DataplaneConfig,
    control: &mut Control,
    now: u64,
) -> Result<String, String> {
    let new = reload_config(path, running)
        .map_err(|e| format!("reload refused, still running the previous configuration: {e}"))?;
    // `reload_config` has checked that only live fields differ, so the ISPs are taken whole.
    let mut s = control.site().clone();
    s.isps = new.isps.clone();
    for (port, n) in s.ports.iter_mut().zip(&new.ports) {
        port.addresses = n.addresses.clone();
    }
    s.proxied = new.proxy_prefixes.clone();
    s.nd = new.nd;
    s.policy = new.policy.clone();
    s.health = new.health;
    s.ra = new.router_advertisements.clone();
    for (i, n) in new.isps.iter().enumerate() {
        control.set_admin(i, n.admin_up);
    }
    control.reconfigure(&s, now);
    *running = new;
    let weights: Vec<String> = s
        .isps
        .iter()
        .map(|i| format!("{}={}", i.name, i.weight))
        .collect();
    Ok(format!(
        "{}: applied: weights {}, {} policy rules; prefixes, addresses, beacons, admin states, ND timers, health and router advertisements as in the file",
        path.display(),
        weights.join(" "),
        s.policy.len()
    ))
}

/// Reads the configuration again for a reload (SIGHUP): returns it if what differs from
/// `running` may change live (ISP prefixes, weights, beacons and admin states, the ports'
/// addresses, proxied prefixes, ND timers, policy rules, health probes and dampening,
/// Router Advertisements); otherwise names what needs a restart.
fn reload_config(
    path: &std::path::Path,
    running: &DataplaneConfig,
) -> Result<DataplaneConfig, String> {
    let new = DataplaneConfig::load(path).map_err(|e| e.to_string())?;
    let mut same = new.clone();
    for (s, r) in same.isps.iter_mut().zip(&running.isps) {
        s.weight = r.weight;
        s.beacons = r.beacons.clone();
        s.admin_up = r.admin_up;
        s.prefix = r.prefix;
    }
    for (s, r) in same.ports.iter_mut().zip(&running.ports) {
        s.addresses = r.addresses.clone();
    }
    same.policy = running.policy.clone();
    same.health = running.health;
    same.router_advertisements = running.router_advertisements.clone();
    same.proxy_prefixes = running.proxy_prefixes.clone();
    same.nd = running.nd;
    if same == *running {
        return Ok(new);
    }
    let differs: Vec<&str> = [
        ("eal", same.eal_args != running.eal_args),
        (
            "mempool",
            (same.mempool_mbufs, same.mempool_cache)
                != (running.mempool_mbufs, running.mempool_cache),
        ),
        ("ports (other than addresses)", same.ports != running.ports),
        ("lan_port", same.lan_port != running.lan_port),
        (
            "isps (other than prefix, weight, beacons, admin)",
            same.isps != running.isps,
        ),
        ("workers", same.workers != running.workers),
        ("polling", same.polling != running.polling),
        ("neighbors", same.neighbors != running.neighbors),
        (
            "icmp_errors_per_sec",
            same.icmp_errors_per_sec != running.icmp_errors_per_sec,
        ),
        ("channel", same.channel != running.channel),
    ]
    .into_iter()
    .filter_map(|(n, d)| d.then_some(n))
    .collect();
    Err(format!(
        "{}: {} changed, which needs a restart",
        path.display(),
        differs.join(", ")
    ))
}

/// Every worker's lcore must be a CPU this process may run on.
fn check_worker_cpus(config: &DataplaneConfig) -> Result<(), String> {
    let cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    for (i, w) in config.workers.iter().enumerate() {
        if !cpus.contains(&w.lcore) {
            return Err(format!(
                "workers[{i}].lcore: expected one of the CPUs this process may use {cpus:?}, \
                 found {}",
                w.lcore
            ));
        }
    }
    Ok(())
}

/// The af_packet PMD always reports link up, so for it the kernel interface's carrier
/// is the link state.
fn kernel_carrier_up(iface: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/carrier"))
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}
