//! The `m6-controlplane` daemon: a mio loop that joins the sans-I/O engine to the world
//! (DESIGN section 8; issue 8 item 1):
//!
//! - the dataplane, over the channel (`proto::channel`): the daemon connects to the
//!   dataplane's socket, says hello, re-sends every context and destination it holds
//!   between `ResyncBegin` and `ResyncEnd`, then turns punted M6 control packets and
//!   data-path reports into engine events, and engine actions into table updates and
//!   injected packets. When the dataplane is away it retries every
//!   [`RECONNECT_INTERVAL`]; the engine keeps its state;
//! - the DNS service (its own thread, waking the loop through a `mio::Waker`);
//! - the engine's timers, kept here in a map ordered by deadline;
//! - the birthday counter, incremented durably before the engine starts (seed 001 section
//!   7.14).
//!
//! Either process can restart while the other runs. A restarted control plane resyncs the
//! dataplane. The contexts its predecessor installed stay and carry traffic until the
//! protocol replaces them: the peer's next control message meets an unknown context, gets
//! UC (section 7.12), and a new handshake follows. A restarted dataplane is resynced on
//! reconnection.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use proto::cc::{CcKey, CcKeyring, SECRET_LEN};
use proto::channel::{self, ContextMsg, DestinationMsg, Message, Role};
use proto::wire::m6::{IcmpTypes, Packet, Repr};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::admin::AdminSocket;
use crate::config::ControlplaneConfig;
use crate::dns::service::DnsService;
use crate::engine::{
    Action, AdminCommand, ContextKey, DataPathEvent, DataplaneContext, DestinationStatus, Engine,
    EngineConfig, Event, HostId, LocalHost, Rng, TimerId,
};
use crate::storage::{self, BirthdayCounter};

/// DNS cache entries `m6ctl dns cache` shows at most (the answer must be written within the
/// admin socket's deadline).
const MAX_DNS_CACHE_SHOWN: usize = 1000;
/// How often the loop tells systemd's watchdog it is alive (the units set WatchdogSec=10).
const WATCHDOG_INTERVAL: Duration = Duration::from_secs(1);
/// How often the daemon tries to reach an absent dataplane.
pub const RECONNECT_INTERVAL: Duration = Duration::from_millis(200);
/// Messages queued for the dataplane at most (a resync of a million contexts fits; beyond:
/// counted and lost).
pub const MAX_QUEUED: usize = 1 << 21;

const CHANNEL: Token = Token(0);
const WAKER: Token = Token(1);
const ADMIN: Token = Token(2);

/// The daemon's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonCounters {
    pub connections: u64,
    pub received: u64,
    pub sent: u64,
    pub unsent: u64,
    pub punts_unparsed: u64,
    pub injected: u64,
}

struct Link {
    sock: Socket,
    hello: bool,
    out: VecDeque<Vec<u8>>,
    /// Registered for writability (the queue could not be written out).
    writable: bool,
}

/// The daemon's state between loop turns.
pub struct Daemon {
    engine: Engine,
    dns: DnsService,
    socket_path: PathBuf,
    link: Option<Link>,
    last_attempt: Option<Instant>,
    timers: BTreeMap<(Duration, u64), TimerId>,
    cancelled: HashSet<u64>,
    /// What the dataplane should hold, re-sent at every (re)connection.
    installed: HashMap<ContextKey, DataplaneContext>,
    destinations: HashMap<Ipv6Addr, DestinationStatus>,
    /// Each configured host's full locator set.
    hosts: Vec<Vec<Ipv6Addr>>,
    /// Prefixes of the ISPs the dataplane reports unusable: (network, length).
    down: HashSet<(Ipv6Addr, u8)>,
    /// Every metric (`crate::metrics`), served on `metrics_address`.
    metrics: crate::metrics::Metrics,
    /// The dataplane's counters as last received (for `m6ctl stats`).
    dataplane_counters: Vec<(String, u64)>,
    /// The id of the last request sent to the dataplane for an admin client.
    next_request: u64,
    /// The dataplane's answers for admin clients, to hand over after this turn's reads.
    replies: Vec<(u64, serde_json::Value)>,
    /// The dataplane's last word on each ISP (for `m6ctl isp list`), by index.
    isps: std::collections::BTreeMap<u16, serde_json::Value>,
    start: Instant,
    instance: u64,
    buf: Vec<u8>,
    pub counters: DaemonCounters,
    pub birthday: u32,
    /// Print every engine action (`M6_CONTROLPLANE_TRACE=1`).
    trace: bool,
    /// The engine's responder version last sent to the dataplane, to send it again only
    /// when the key or a host changed.
    responder_sent: Option<u64>,
    admin: Option<AdminSocket>,
}

/// One line about an action, for the trace.
fn action_summary(a: &Action) -> String {
    match a {
        Action::Send { src, dst, repr } => {
            format!("send {:?} {src} -> {dst}", repr.message.code())
        }
        Action::Install(c) => format!(
            "install f_local {} lp_peer {:?} lsv_peer {:?} transmit {}",
            c.key.f_local.value(),
            c.lp_peer,
            c.lsv_peer,
            c.transmit
        ),
        other => format!("{other:?}").chars().take(160).collect(),
    }
}

/// A random CC secret from the OS.
fn random_secret() -> std::io::Result<[u8; SECRET_LEN]> {
    let mut rng = Rng::from_os()?;
    let mut s = [0u8; SECRET_LEN];
    for chunk in s.chunks_mut(8) {
        let v = rng.next_u64().to_be_bytes();
        chunk.copy_from_slice(v.get(..chunk.len()).unwrap_or(&[]));
    }
    Ok(s)
}

impl Daemon {
    /// Starts the engine (birthday incremented and stored first), the DNS service and the
    /// first attempt to reach the dataplane. Errors name what failed.
    pub fn new(cfg: &ControlplaneConfig, poll: &Poll) -> Result<Daemon, String> {
        let counter = BirthdayCounter::new(&cfg.birthday_file);
        let birthday = counter
            .start(storage::random_initial())
            .map_err(|e| format!("birthday_file {}: {e}", cfg.birthday_file.display()))?;
        let mut ecfg = EngineConfig::default();
        cfg.dns.apply_to(&mut ecfg);
        let secret = random_secret().map_err(|e| format!("random CC secret: {e}"))?;
        let keyring = CcKeyring::new(CcKey::new(1, &secret));
        let mut engine =
            Engine::new_os_seeded(ecfg, birthday, keyring).map_err(|e| format!("engine: {e}"))?;
        for h in &cfg.hosts {
            engine.add_host(LocalHost {
                locators: h.locators.clone(),
                dns_verifiable: h.dns_verifiable,
            });
        }
        let waker =
            Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| format!("mio waker: {e}"))?);
        let setup = cfg
            .dns
            .resolver_setup()
            .map_err(|e| format!("dns: {}: {}", e.field, e.message))?;
        let dns = DnsService::start(setup, Some(waker)).map_err(|e| format!("dns: {e}"))?;
        let metrics = crate::metrics::Metrics::new();
        metrics.birthday(u64::from(birthday));
        if let Some(addr) = cfg.metrics_address {
            crate::metrics::serve(addr, metrics.registry())?;
        }
        let admin = AdminSocket::bind(&cfg.admin_socket)?;
        let fd = admin.listener().as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), ADMIN, Interest::READABLE)
            .map_err(|e| format!("admin_socket: poll: {e}"))?;
        Ok(Daemon {
            engine,
            dns,
            socket_path: cfg.dataplane_socket.clone(),
            link: None,
            last_attempt: None,
            timers: BTreeMap::new(),
            cancelled: HashSet::new(),
            installed: HashMap::new(),
            destinations: HashMap::new(),
            hosts: cfg.hosts.iter().map(|h| h.locators.clone()).collect(),
            down: HashSet::new(),
            isps: std::collections::BTreeMap::new(),
            metrics,
            dataplane_counters: Vec::new(),
            next_request: 0,
            replies: Vec::new(),
            start: Instant::now(),
            instance: u64::from(birthday) << 32 | u64::from(std::process::id()),
            buf: vec![0; channel::MAX_MESSAGE + 1],
            counters: DaemonCounters::default(),
            birthday,
            trace: std::env::var("M6_CONTROLPLANE_TRACE").is_ok_and(|v| v == "1"),
            responder_sent: None,
            admin: Some(admin),
        })
    }

    /// Whether the dataplane is connected and has said hello.
    pub fn connected(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.hello)
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, poll: &mut Poll, stop: &AtomicBool) -> Result<(), String> {
        let mut events = Events::with_capacity(64);
        // systemd (Type=notify, WatchdogSec=): ready now, alive at every turn of the loop
        // (at least once per RECONNECT_INTERVAL); both are no-ops outside systemd.
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let mut last_watchdog = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if last_watchdog.elapsed() >= WATCHDOG_INTERVAL {
                last_watchdog = Instant::now();
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
            self.connect(poll);
            let timeout = self.next_timeout();
            if let Err(e) = poll.poll(&mut events, Some(timeout)) {
                if e.kind() != ErrorKind::Interrupted {
                    return Err(format!("poll: {e}"));
                }
            }
            self.turn(poll);
        }
        Ok(())
    }

    /// One turn of the loop's work (also what tests drive): DNS answers, channel input,
    /// due timers, output.
    pub fn turn(&mut self, poll: &mut Poll) {
        while let Some(c) = self.dns.try_recv() {
            let now = self.now();
            let outcome = match &c.result {
                crate::engine::dns::DnsResult::Ok { .. } => "ok",
                crate::engine::dns::DnsResult::Permanent => "permanent",
                crate::engine::dns::DnsResult::Transient => "transient",
            };
            self.metrics.dns_lookup(outcome, c.took);
            let actions = self.engine.handle(
                Event::Dns {
                    id: c.id,
                    result: c.result,
                },
                now,
            );
            self.apply(actions);
        }
        self.read(poll);
        self.fire_timers();
        self.publish_responder();
        self.flush(poll);
        self.update_metrics();
        if let Some(mut admin) = self.admin.take() {
            admin.serve(|command| self.admin_answer(command));
            for (id, value) in self.replies.drain(..) {
                admin.complete(id, &value);
            }
            admin.expire();
            self.admin = Some(admin);
        }
    }

    /// Brings the engine's and the channel's figures into the metrics.
    fn update_metrics(&mut self) {
        for took in self.engine.take_handshake_durations() {
            self.metrics.handshake(took);
        }
        let by_state = self.engine.contexts_by_state();
        self.metrics.engine(self.engine.stats(), &by_state);
        let connected = self.connected();
        self.metrics.channel(self.counters.connections, connected);
    }

    /// The answer to one admin command (`crate::admin`).
    fn admin_answer(&mut self, command: &str) -> crate::admin::Answer {
        use crate::admin::Answer;
        use proto::channel::RequestMsg;
        use serde_json::json;
        let words: Vec<&str> = command.split_whitespace().collect();
        let to_dataplane = match words.as_slice() {
            ["neighbors"] => Some(RequestMsg::Neighbors),
            ["reload"] => Some(RequestMsg::Reload),
            _ => None,
        };
        if let Some(request) = to_dataplane {
            if !self.connected() {
                return Answer::Now(json!({ "error": "the dataplane is not connected" }));
            }
            self.next_request += 1;
            let id = self.next_request;
            self.send(Message::Request { id, request });
            return Answer::Later(id);
        }
        Answer::Now(self.admin_answer_now(&words, command))
    }

    /// The answer to an admin command the control plane answers itself.
    fn admin_answer_now(&mut self, words: &[&str], command: &str) -> serde_json::Value {
        use serde_json::json;
        match *words {
            ["isps"] => {
                return serde_json::Value::Array(self.isps.values().cloned().collect());
            }
            ["context", label] => {
                let Ok(f) = label.parse::<u32>() else {
                    return json!({ "error": format!("expected a flow label (decimal), found {label:?}") });
                };
                let found: Vec<serde_json::Value> = self
                    .installed
                    .values()
                    .filter(|c| c.key.f_local.value() == f)
                    .map(|c| {
                        let state = self
                            .engine
                            .contexts()
                            .find(|e| e.key() == c.key)
                            .map(|e| format!("{:?}", e.state));
                        json!({
                            "aid_local": c.aid_local.to_string(),
                            "aid_peer": c.aid_peer.to_string(),
                            "f_local": c.key.f_local.value(),
                            "f_peer": c.f_peer.map(|f| f.value()),
                            "state": state,
                            "lp_local": c.lp_local.to_string(),
                            "lp_peer": c.lp_peer.map(|a| a.to_string()),
                            "lsl_local": c.lsl_local.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                            "ls_local": c.ls_local.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                            "lsl_peer": c.lsl_peer.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                            "lsv_peer": c.lsv_peer.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                            "rewrite_ok": c.rewrite_ok,
                            "transmit": c.transmit,
                        })
                    })
                    .collect();
                if found.is_empty() {
                    return json!({ "error": format!("no context with F(local) {f}") });
                }
                return serde_json::Value::Array(found);
            }
            ["dns", "cache"] => {
                let now = self.now();
                let mut v: Vec<serde_json::Value> = self
                    .engine
                    .dns_cache()
                    .into_iter()
                    .map(|(q, r, until)| {
                        use crate::engine::dns::{DnsAnswer, DnsQuery, DnsResult};
                        let (kind, name) = match q {
                            DnsQuery::Reverse(a) => ("PTR", a.to_string()),
                            DnsQuery::Forward(n) => ("AAAA+M6", n.clone()),
                        };
                        let answer = match r {
                            DnsResult::Ok {
                                answer: DnsAnswer::Reverse { names },
                                ..
                            } => names.join(" "),
                            DnsResult::Ok {
                                answer: DnsAnswer::Forward { addrs, m6 },
                                ..
                            } => format!(
                                "{}{}",
                                addrs
                                    .iter()
                                    .map(|a| a.to_string())
                                    .collect::<Vec<_>>()
                                    .join(" "),
                                if *m6 {
                                    " (M6 marker)"
                                } else {
                                    " (no M6 marker)"
                                }
                            ),
                            DnsResult::Permanent => "permanent failure (NXDOMAIN/NODATA)".into(),
                            DnsResult::Transient => "transient failure".into(),
                        };
                        json!({
                            "query": kind,
                            "name": name,
                            "answer": answer,
                            "expires_in_secs": until.saturating_sub(now).as_secs_f64(),
                        })
                    })
                    .collect();
                v.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                let total = v.len();
                v.truncate(MAX_DNS_CACHE_SHOWN);
                return json!({ "total": total, "entries": v });
            }
            ["stats"] => {
                let counters: serde_json::Map<String, serde_json::Value> = self
                    .dataplane_counters
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                return json!({
                    "uptime_secs": self.now().as_secs_f64(),
                    "dataplane_connected": self.connected(),
                    "counters": counters,
                });
            }
            ["isp", verb @ ("drain" | "undrain"), name] => {
                if !self.connected() {
                    return json!({ "error": "the dataplane is not connected" });
                }
                if !self.isps.values().any(|v| v["name"] == *name) {
                    let names: Vec<String> =
                        self.isps.values().map(|v| v["name"].to_string()).collect();
                    return json!({
                        "error": format!("no ISP named {name:?} (ISPs: {})", names.join(", "))
                    });
                }
                let drained = verb == "drain";
                self.send(Message::Drain {
                    isp: (*name).to_string(),
                    drained,
                });
                return json!({ "isp": name, "drained": drained });
            }
            _ => {}
        }
        match command {
            "status" => json!({
                "birthday": self.birthday,
                "uptime_secs": self.now().as_secs_f64(),
                "dataplane": {
                    "socket": self.socket_path.display().to_string(),
                    "connected": self.connected(),
                },
                "hosts": self.hosts.len(),
                "contexts": self.installed.len(),
                "destinations": self.destinations.len(),
                "cc_key_serial": self.engine.cc_key_serial(),
                "isp_prefixes_down": self
                    .down
                    .iter()
                    .map(|(p, l)| format!("{p}/{l}"))
                    .collect::<Vec<_>>(),
                "counters": {
                    "connections": self.counters.connections,
                    "received": self.counters.received,
                    "sent": self.counters.sent,
                    "unsent": self.counters.unsent,
                    "punts_unparsed": self.counters.punts_unparsed,
                    "injected": self.counters.injected,
                },
            }),
            "contexts" => {
                let mut v: Vec<&DataplaneContext> = self.installed.values().collect();
                v.sort_by_key(|c| (c.aid_local, c.aid_peer, c.key.f_local));
                serde_json::Value::Array(
                    v.into_iter()
                        .map(|c| {
                            json!({
                                "aid_local": c.aid_local.to_string(),
                                "aid_peer": c.aid_peer.to_string(),
                                "f_local": c.key.f_local.value(),
                                "f_peer": c.f_peer.map(|f| f.value()),
                                "lp_peer": c.lp_peer.map(|a| a.to_string()),
                                "lsv_peer": c.lsv_peer.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                                "lsl_peer": c.lsl_peer.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                                "transmit": c.transmit,
                            })
                        })
                        .collect(),
                )
            }
            other => {
                json!({ "error": format!(
                    "unknown command {other:?}; known: status, contexts, context FLOWLABEL, isps, \
                     isp drain NAME, isp undrain NAME, neighbors, dns cache, stats, reload"
                ) })
            }
        }
    }

    /// Hands the workers what they need to answer INITs (DESIGN section 5) after a
    /// (re)connection, a CC key rotation or a change of a host's locators.
    fn publish_responder(&mut self) {
        if !self.connected() {
            return;
        }
        let version = self.engine.responder_version();
        if self.responder_sent == Some(version) {
            return;
        }
        let unsent = self.counters.unsent;
        self.send(Message::CcResponder(self.engine.cc_responder(self.now())));
        // Remembered only once queued: a lost publication is retried next turn.
        if self.counters.unsent == unsent {
            self.responder_sent = Some(version);
        }
    }

    fn next_timeout(&self) -> Duration {
        let mut t = RECONNECT_INTERVAL.min(WATCHDOG_INTERVAL);
        // Admin clients part-way through their request: look again soon.
        if self.admin.as_ref().is_some_and(|a| a.reading()) {
            t = t.min(Duration::from_millis(5));
        }
        if let Some(((at, _), _)) = self.timers.iter().next() {
            t = t.min(at.saturating_sub(self.now()));
        }
        t
    }

    fn connect(&mut self, poll: &mut Poll) {
        if self.link.is_some()
            || self
                .last_attempt
                .is_some_and(|t| t.elapsed() < RECONNECT_INTERVAL)
        {
            return;
        }
        self.last_attempt = Some(Instant::now());
        let Ok(sock) = Socket::new(Domain::UNIX, Type::SEQPACKET, None) else {
            return;
        };
        let Ok(addr) = SockAddr::unix(&self.socket_path) else {
            return;
        };
        // Nonblocking first: a dataplane whose backlog is full answers EAGAIN at once
        // instead of stalling the loop (DNS, timers) in connect(2); the next attempt comes
        // after RECONNECT_INTERVAL.
        if sock.set_nonblocking(true).is_err() || sock.connect(&addr).is_err() {
            return;
        }
        let fd = sock.as_raw_fd();
        if poll
            .registry()
            .register(&mut SourceFd(&fd), CHANNEL, Interest::READABLE)
            .is_err()
        {
            return;
        }
        let mut link = Link {
            sock,
            hello: false,
            out: VecDeque::new(),
            writable: false,
        };
        if let Ok(b) = channel::encode(&Message::Hello {
            version: channel::VERSION,
            role: Role::Controlplane,
            instance: self.instance,
        }) {
            link.out.push_back(b);
        }
        self.link = Some(link);
    }

    fn drop_link(&mut self, poll: &mut Poll) {
        if let Some(l) = self.link.take() {
            let fd = l.sock.as_raw_fd();
            let _ = poll.registry().deregister(&mut SourceFd(&fd));
        }
    }

    fn read(&mut self, poll: &mut Poll) {
        let mut close = false;
        let mut msgs = Vec::new();
        while let Some(link) = self.link.as_mut() {
            match link.sock.read(&mut self.buf) {
                Ok(0) => {
                    close = true;
                    break;
                }
                Ok(n) => match self.buf.get(..n).map(channel::decode) {
                    Some(Ok(m)) => {
                        self.counters.received += 1;
                        if !link.hello {
                            if channel::check_hello(&m, Role::Dataplane).is_err() {
                                close = true;
                                break;
                            }
                            link.hello = true;
                            self.counters.connections += 1;
                            self.resync();
                            continue;
                        }
                        msgs.push(m);
                    }
                    _ => {
                        close = true;
                        break;
                    }
                },
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    close = true;
                    break;
                }
            }
        }
        for m in msgs {
            self.on_message(m);
        }
        if close {
            self.drop_link(poll);
        }
    }

    /// After a (re)connection: everything the dataplane should hold.
    fn resync(&mut self) {
        self.send(Message::ResyncBegin);
        let ctxs: Vec<ContextMsg> = self.installed.values().map(context_msg).collect();
        for c in ctxs {
            self.send(Message::Install(c));
        }
        let now = self.now();
        // Negative entries that have expired are not worth re-sending (nor keeping).
        self.destinations
            .retain(|_, s| !matches!(s, DestinationStatus::NotM6 { until } if *until <= now));
        let dests: Vec<(Ipv6Addr, DestinationStatus)> =
            self.destinations.iter().map(|(a, s)| (*a, *s)).collect();
        for (aid_peer, s) in dests {
            self.send(Message::Destination {
                aid_peer,
                status: Some(destination_msg(s, now)),
            });
        }
        self.send(Message::ResyncEnd);
        self.responder_sent = None;
    }

    fn on_message(&mut self, m: Message) {
        let now = self.now();
        let event = match m {
            Message::Punt { packet, .. } => match received(&packet) {
                Some(e) => e,
                None => {
                    self.counters.punts_unparsed += 1;
                    return;
                }
            },
            Message::FirstPacket {
                aid_local,
                aid_peer,
            } => Event::DataPath(DataPathEvent::FirstPacket {
                aid_local,
                aid_peer,
                piggyback: None,
            }),
            Message::UnknownFlowLabel {
                src,
                dst,
                flow_label,
            } => {
                let Some(fl) = proto::wire::FlowLabel::new(flow_label) else {
                    return;
                };
                Event::DataPath(DataPathEvent::UnknownFlowLabel {
                    src,
                    dst,
                    flow_label: fl,
                    packet: Vec::new(),
                })
            }
            Message::NewSourceLocator {
                aid_local,
                f_local,
                src,
            } => {
                let (Some(host), Some(fl)) = (
                    self.engine.host_of(&aid_local),
                    proto::wire::FlowLabel::new(f_local),
                ) else {
                    return;
                };
                Event::DataPath(DataPathEvent::NewSourceLocator {
                    key: ContextKey { host, f_local: fl },
                    src,
                })
            }
            Message::Activity { aid_local, f_local } => {
                let (Some(host), Some(fl)) = (
                    self.engine.host_of(&aid_local),
                    proto::wire::FlowLabel::new(f_local),
                ) else {
                    return;
                };
                Event::DataPath(DataPathEvent::Activity {
                    key: ContextKey { host, f_local: fl },
                })
            }
            Message::IspState {
                isp,
                name,
                prefix,
                prefix_len,
                usable,
                drained,
                cause,
                rtt_us,
                probe_rounds,
                withdrawals,
            } => {
                self.metrics.isp_state(&crate::metrics::IspSample {
                    isp,
                    name: &name,
                    usable,
                    drained,
                    withdrawals,
                    probe_rounds,
                    rtt_us,
                });
                if self.trace {
                    eprintln!("m6-controlplane: isp {prefix}/{prefix_len} usable {usable}");
                }
                self.isps.insert(
                    isp,
                    serde_json::json!({
                        "name": name,
                        "prefix": format!("{prefix}/{prefix_len}"),
                        "usable": usable,
                        "drained": drained,
                        "cause": cause,
                        "rtt_ms": (rtt_us > 0).then(|| f64::from(rtt_us) / 1000.0),
                        "withdrawals": withdrawals,
                    }),
                );
                // A drained ISP's locators are withdrawn from the peers too, so that
                // their traffic moves as ours does (it still delivers meanwhile).
                let usable = usable && !drained;
                let changed = if usable {
                    self.down.remove(&(prefix, prefix_len))
                } else {
                    self.down.insert((prefix, prefix_len))
                };
                if changed {
                    self.announce_locators(now);
                }
                return;
            }
            Message::Reply { id, reply } => {
                self.replies.push((id, reply_json(reply)));
                return;
            }
            Message::Counters { values } => {
                self.metrics.dataplane_counters(&values);
                self.dataplane_counters = values;
                return;
            }
            _ => return,
        };
        let actions = self.engine.handle(event, now);
        self.apply(actions);
    }

    /// While an ISP is down, the hosts' locators under its prefix are not announced: the
    /// peers get an Update Request with the rest (seed 001 sections 4.5, 7.8) and move
    /// their Lp(peer) to a locator that works; they come back when the ISP does. A host
    /// that would be left with none keeps them all.
    fn announce_locators(&mut self, now: Duration) {
        let down_prefixes: Vec<(Ipv6Addr, u8)> = self.down.iter().copied().collect();
        let down = |a: &Ipv6Addr| {
            down_prefixes.iter().any(|(p, len)| {
                let mask = if *len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from((*len).min(128)))
                };
                u128::from(*a) & mask == u128::from(*p) & mask
            })
        };
        let updates: Vec<(HostId, Vec<Ipv6Addr>)> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, locs)| {
                let up: Vec<Ipv6Addr> = locs.iter().filter(|a| !down(a)).copied().collect();
                let set = if up.is_empty() { locs.clone() } else { up };
                (HostId(i as u32), set)
            })
            .collect();
        for (host, locators) in updates {
            let actions = self.engine.handle(
                Event::Admin(AdminCommand::SetLocators { host, locators }),
                now,
            );
            self.apply(actions);
        }
        // A peer that only sends (a download) would go on sending to our locator under the
        // failed ISP: nothing from us reaches it to show another one works (seed 001 section
        // 7.11 step 3c switches Lp(peer) on the source of received data). Each context gets
        // one empty M6 data packet (escape header, No Next Header) from a working locator;
        // the peer's receive path switches to it at once, its host discards the empty packet.
        let hints: Vec<Vec<u8>> = self
            .installed
            .values()
            .filter(|c| c.transmit)
            .filter_map(|c| {
                let src = c.ls_local.iter().find(|l| !down(l))?;
                let dst = c.lp_peer?;
                let f_peer = c.f_peer?.value();
                let base = if c.rewrite_ok {
                    proto::wire::consts::P1_DEFAULT
                } else {
                    proto::wire::consts::P2_DEFAULT
                };
                let mut p = ipv6_packet(src, &dst, base + 7, &[59, 0, 0, 0, 0, 0, 0, 0]);
                p[1] = (f_peer >> 16) as u8 & 0x0f;
                p[2] = (f_peer >> 8) as u8;
                p[3] = f_peer as u8;
                Some(p)
            })
            .collect();
        for p in hints {
            self.inject(p);
        }
    }

    fn fire_timers(&mut self) {
        loop {
            let now = self.now();
            let Some((&(at, seq), &id)) = self.timers.iter().next() else {
                return;
            };
            if at > now {
                return;
            }
            self.timers.remove(&(at, seq));
            if self.cancelled.remove(&id.0) {
                continue;
            }
            let actions = self.engine.handle(Event::Timer(id), now);
            self.apply(actions);
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        let now = self.now();
        for a in actions {
            if self.trace {
                eprintln!(
                    "m6-controlplane: {:>9.3} {}",
                    now.as_secs_f64(),
                    action_summary(&a)
                );
            }
            match a {
                Action::Send { src, dst, repr } => {
                    if let Some(p) = control_packet(&src, &dst, &repr) {
                        self.inject(p);
                    }
                }
                Action::Install(ctx) => {
                    self.send(Message::Install(context_msg(&ctx)));
                    self.installed.insert(ctx.key, ctx);
                }
                Action::Remove(key) => {
                    if let Some(ctx) = self.installed.remove(&key) {
                        self.send(Message::Remove {
                            aid_local: ctx.aid_local,
                            f_local: key.f_local.value(),
                        });
                    }
                }
                Action::Destination { aid_peer, status } => {
                    self.destinations.insert(aid_peer, status);
                    self.send(Message::Destination {
                        aid_peer,
                        status: Some(destination_msg(status, now)),
                    });
                }
                Action::DeliverUlp {
                    src,
                    dst,
                    piggyback,
                    ..
                } => {
                    let p = ipv6_packet(&src, &dst, piggyback.next_header, &piggyback.data);
                    self.inject(p);
                }
                Action::ResendUlp { key, piggyback } => {
                    // Through the context the dataplane now holds: as the host would send it.
                    if let Some(ctx) = self.installed.get(&key) {
                        let p = ipv6_packet(
                            &ctx.aid_local,
                            &ctx.aid_peer,
                            piggyback.next_header,
                            &piggyback.data,
                        );
                        self.inject(p);
                    }
                }
                Action::Dns { id, query } => self.dns.submit(id, query),
                Action::ArmTimer { id, at } => {
                    self.cancelled.remove(&id.0);
                    self.timers.insert((at, id.0), id);
                }
                Action::CancelTimer(id) => {
                    self.cancelled.insert(id.0);
                }
                Action::Notice(n) => eprintln!("m6-controlplane: {n:?}"),
            }
        }
    }

    fn inject(&mut self, packet: Vec<u8>) {
        self.counters.injected += 1;
        self.send(Message::Inject { isp: None, packet });
    }

    fn send(&mut self, m: Message) {
        let Some(link) = self.link.as_mut() else {
            self.counters.unsent += 1;
            return;
        };
        match channel::encode(&m) {
            Ok(b) if link.out.len() < MAX_QUEUED => link.out.push_back(b),
            _ => self.counters.unsent += 1,
        }
    }

    fn flush(&mut self, poll: &mut Poll) {
        let mut close = false;
        if let Some(link) = self.link.as_mut() {
            while let Some(b) = link.out.front() {
                match link.sock.write(b) {
                    Ok(_) => {
                        link.out.pop_front();
                        self.counters.sent += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        close = true;
                        break;
                    }
                }
            }
            // Wait for writability only while something is queued (no busy wake-ups).
            let want = !link.out.is_empty();
            if want != link.writable {
                let interest = if want {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                let fd = link.sock.as_raw_fd();
                if poll
                    .registry()
                    .reregister(&mut SourceFd(&fd), CHANNEL, interest)
                    .is_ok()
                {
                    link.writable = want;
                }
            }
        }
        if close {
            self.drop_link(poll);
        }
    }

    /// The socket path it connects to.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }
}

/// The engine event for a punted IPv6 packet carrying an M6 control message.
fn received(packet: &[u8]) -> Option<Event> {
    if packet.get(6) != Some(&58) {
        return None;
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(packet.get(8..24)?).ok()?);
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(packet.get(24..40)?).ok()?);
    let msg = packet.get(40..)?;
    let repr = Repr::parse(
        &Packet::new_unchecked(msg),
        &src,
        &dst,
        &IcmpTypes::default(),
    )
    .ok()?;
    Some(Event::Received { src, dst, repr })
}

/// An IPv6 packet (hop limit 64) carrying `payload` as `next_header`.
fn ipv6_packet(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + payload.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next_header, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// The IPv6 packet (fixed header on) of an M6 control message from `src` to `dst`, as the
/// daemon injects it; `None` when the message cannot be encoded.
pub fn control_packet(src: &Ipv6Addr, dst: &Ipv6Addr, repr: &Repr) -> Option<Vec<u8>> {
    let mut msg = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut Packet::new_unchecked(&mut msg[..]),
        src,
        dst,
        &IcmpTypes::default(),
    )
    .ok()?;
    Some(ipv6_packet(src, dst, 58, &msg))
}

fn context_msg(c: &DataplaneContext) -> ContextMsg {
    ContextMsg {
        f_local: c.key.f_local.value(),
        aid_local: c.aid_local,
        aid_peer: c.aid_peer,
        f_peer: c.f_peer.map(|f| f.value()),
        lsl_local: c.lsl_local.clone(),
        ls_local: c.ls_local.clone(),
        lsl_peer: c.lsl_peer.clone(),
        lsv_peer: c.lsv_peer.clone(),
        lp_peer: c.lp_peer,
        rewrite_ok: c.rewrite_ok,
        transmit: c.transmit,
    }
}

fn destination_msg(s: DestinationStatus, now: Duration) -> DestinationMsg {
    match s {
        DestinationStatus::Pending => DestinationMsg::Pending,
        DestinationStatus::M6 => DestinationMsg::M6,
        DestinationStatus::NotM6 { until } => DestinationMsg::NotM6 {
            for_ms: until.saturating_sub(now).as_millis() as u64,
        },
    }
}

/// The JSON an admin client gets for a dataplane's reply.
fn reply_json(reply: proto::channel::ReplyMsg) -> serde_json::Value {
    use proto::channel::ReplyMsg;
    use serde_json::json;
    match reply {
        ReplyMsg::Neighbors { entries, total } => json!({
            "total": total,
            "entries": entries
                .iter()
                .map(|n| json!({
                    "port": n.port,
                    "address": n.address.to_string(),
                    "mac": n.mac.map(|m| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")),
                    "state": n.state,
                }))
                .collect::<Vec<_>>(),
        }),
        ReplyMsg::Reloaded { ok: true, message } => json!({ "reloaded": true, "message": message }),
        ReplyMsg::Reloaded { ok: false, message } => json!({ "error": message }),
    }
}
