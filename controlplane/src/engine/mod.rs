//! The sans-I/O M6 signaling engine (seed 001 sections 3, 4, 5, 7 and appendix A; the proxy
//! role of seed 002; DESIGN.md section 8).
//!
//! One [`Engine`] runs the host-pair context protocol on behalf of many local (proxied)
//! hosts. It does no I/O and reads no clock: the caller feeds it [`Event`]s with the current
//! time and carries out the [`Action`]s it returns (send a control message, program the
//! dataplane, start a DNS lookup, arm a timer). Randomness comes from a seeded generator the
//! engine owns, so a run replays exactly from its seed (the simulation in
//! `tests/sim.rs` relies on it).
//!
//! States (section 7.1, appendix A): IDLE is "no context"; a [`Context`] is in
//! [`State::InitSent`], [`State::CcrSent`], [`State::Established`], [`State::UrSent`] or
//! [`State::Closing`]. The responder keeps no state per INIT: the would-be state travels in
//! the CC, authenticated by `proto::cc`, and a context is created only from a valid CCR
//! (sections 3.3.2, 7.3, 7.5).
//!
//! Safety rule kept throughout (section 7.13, \[M6THREATS\] third-party DoS): the dataplane is
//! only ever given verified peer locators as destinations ([`DataplaneContext::lsv_peer`],
//! [`DataplaneContext::lp_peer`]); a locator is verified by forward + reverse DNS, or, for
//! the peer's AID only, by return routability during the handshake.
//!
//! Nothing here panics on network data: no `unwrap`/`expect`/indexing (denied below).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod admission;
mod alloc;
mod context;
pub mod dns;
mod handshake;
mod locset;
mod maintain;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;
use std::time::Duration;

pub use alloc::{FlowLabels, Rng, FLOW_LABEL_MAX};
pub use context::{Context, PeerName, State};
pub use dns::{DnsAnswer, DnsQuery, DnsQueryId, DnsResult};
pub use locset::LocSet;
pub use proto::wire::m6::{Piggyback, Repr};
pub use proto::wire::FlowLabel;

/// Index of a local (proxied) host inside one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(pub u32);

/// Identifies a context towards the dataplane: F(local) is unique per receiving host
/// (section 3.2), so (host, F(local)) names exactly one context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextKey {
    pub host: HostId,
    pub f_local: FlowLabel,
}

/// An opaque timer handle; the caller arms it and reports [`Event::Timer`] when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

/// Protocol constants and policy knobs. Defaults follow the seed where it gives a value.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// CONTEXT_IDLE_TIME, the "X minutes" of appendix A (section 7.10 suggests 5 or 15 min):
    /// retransmissions stop after it, and a context that received nothing for it closes.
    pub context_idle_time: Duration,
    /// Initial retransmission timer (section 7.10: 4 s).
    pub initial_rto: Duration,
    /// Upper bound of one backed-off retransmission interval (our choice; the seed gives
    /// none). Keeps a few retries inside CONTEXT_IDLE_TIME.
    pub max_rto: Duration,
    /// Maximum segment lifetime added to the CLOSE retransmission period ("X+MSL",
    /// appendix A) so delayed packets cannot outlive the peer's state.
    pub msl: Duration,
    /// MAX_BIRTHDAY_INCR (section 7.14: e.g. 900).
    pub max_birthday_incr: u32,
    /// How long a CC stays acceptable when echoed in a CCR (section 7.5 "recent").
    pub cc_lifetime: Duration,
    /// Unknown Context messages and unverifiable CLOSEACKs per second (token bucket).
    pub uc_per_second: u32,
    /// Burst of that token bucket.
    pub uc_burst: u32,
    /// Send UC for unknown flow labels only during the first CONTEXT_IDLE_TIME after start
    /// (section 5: with the close exchange, UC "only needs to be \[sent\] when packets with an
    /// unknown flow label are received during the first X minutes after the reboot").
    pub uc_only_after_start: bool,
    /// Negative-cache time for a permanent DNS failure or a peer without M6 (section 5.2).
    pub negative_ttl: Duration,
    /// Bounds applied to DNS TTLs.
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// Quarantine of a released flow label before reuse.
    pub label_quarantine: Duration,
    /// Most peer locators verified per context (bounds DNS work per peer).
    pub max_peer_locators: usize,
    /// First and longest retry interval of a transiently failed DNS lookup (7.13).
    pub dns_retry_initial: Duration,
    pub dns_retry_max: Duration,
    /// Discoveries that traffic to unknown destinations may start per second, and the
    /// burst of that token bucket: a scan of random destinations cannot flood the resolver.
    pub discovery_per_second: u32,
    pub discovery_burst: u32,
    /// Most peer AIDs in the destination cache (discoveries in progress + "not M6" entries,
    /// DESIGN.md section 6); the oldest "not M6" entries make room.
    pub destination_cache_size: usize,
    /// Most DNS answers the engine caches.
    pub dns_cache_size: usize,
    /// Most PTR names of one address tried as the peer's FQDN (section 16.2 "virtual
    /// hosting": several names may share an address).
    pub max_ptr_names: usize,
    /// Period of the engine's own CC key rotation (secret drawn from the engine's CSPRNG);
    /// zero disables it (the caller then rotates with [`Engine::rotate_cc_key`]). Must be
    /// at least `cc_lifetime` so a CC stays checkable with the previous key.
    pub cc_key_rotation: Duration,
    /// How long the engine waits for the answer to one [`Action::Dns`] before counting the
    /// lookup as a transient failure (retried with backoff); zero disables the timeout.
    pub dns_timeout: Duration,
    /// CCs the responder sends per second in answer to INITs without a context, and the
    /// burst of that token bucket (each CC costs a MAC; excess INITs are dropped and counted
    /// in [`EngineStats::cc_rate_limited`]).
    pub cc_per_second: u32,
    pub cc_burst: u32,
    /// Responder DNS lookups (PTR of AID(peer)) that CCR-created contexts may start per
    /// second, and the burst; a context refused a lookup keeps Ls(peer) = {AID} (no
    /// agility, 7.13) and is counted in [`EngineStats::responder_lookups_limited`].
    pub responder_lookups_per_second: u32,
    pub responder_lookups_burst: u32,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        use proto::wire::consts;
        EngineConfig {
            context_idle_time: consts::CONTEXT_IDLE_TIME,
            initial_rto: consts::INITIAL_RETRANSMIT,
            max_rto: Duration::from_secs(64),
            msl: Duration::from_secs(120),
            max_birthday_incr: consts::MAX_BIRTHDAY_INCR,
            cc_lifetime: consts::CC_LIFETIME,
            uc_per_second: consts::UC_RATE_PER_SEC,
            uc_burst: consts::UC_RATE_BURST,
            uc_only_after_start: true,
            negative_ttl: Duration::from_secs(300),
            min_ttl: Duration::from_secs(5),
            max_ttl: Duration::from_secs(86_400),
            label_quarantine: Duration::from_secs(120),
            max_peer_locators: 16,
            dns_retry_initial: consts::DNS_RETRY_INITIAL,
            dns_retry_max: consts::DNS_RETRY_MAX,
            discovery_per_second: 50,
            discovery_burst: 100,
            destination_cache_size: 65_536,
            dns_cache_size: 131_072,
            max_ptr_names: 4,
            cc_key_rotation: consts::CC_KEY_ROTATION,
            dns_timeout: Duration::from_secs(30),
            cc_per_second: 1_000,
            cc_burst: 2_000,
            responder_lookups_per_second: 50,
            responder_lookups_burst: 100,
        }
    }
}

/// A local (proxied) host whose contexts the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalHost {
    /// Lsl(local): the locators the host has (one per ISP prefix in the proxy case). Any of
    /// them can be an AID (section 2.1: "AID(A) is always one member of A's locator set").
    pub locators: Vec<Ipv6Addr>,
    /// Whether the host's forward and reverse DNS are consistent. When false the engine
    /// announces only the AID as Lsl and never sets "rewrite ok" (section 7.13).
    pub dns_verifiable: bool,
}

/// What the engine reacts to.
#[derive(Debug, Clone)]
pub enum Event {
    /// An M6 control message arrived, with the IPv6 source and destination of the packet
    /// that carried it (the real locators, possibly rewritten in flight).
    Received {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        repr: Repr,
    },
    /// A timer armed by [`Action::ArmTimer`] fired.
    Timer(TimerId),
    /// The answer to [`Action::Dns`].
    Dns { id: DnsQueryId, result: DnsResult },
    /// Something the dataplane saw.
    DataPath(DataPathEvent),
    /// An operator command.
    Admin(AdminCommand),
}

/// Events reported by the dataplane (rate-limited and de-duplicated there, DESIGN.md 6).
#[derive(Debug, Clone)]
pub enum DataPathEvent {
    /// A local host sent a packet to a peer AID with no usable context: start discovery and
    /// maybe a context (section 4.1 steps 1-3; seed 002 section 6 step 4). The packet itself
    /// was forwarded as plain IPv6 unless `piggyback` hands it to the engine to piggyback on
    /// the INIT.
    FirstPacket {
        aid_local: Ipv6Addr,
        aid_peer: Ipv6Addr,
        piggyback: Option<Piggyback>,
    },
    /// M6 data arrived with a flow label no context has (section 7.11 step 1a).
    UnknownFlowLabel {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        flow_label: FlowLabel,
        /// The packet from its IPv6 header on (truncated as the dataplane likes).
        packet: Vec<u8>,
    },
    /// M6 data for a context arrived from a source locator other than Lp(peer) that is in
    /// Lsl(peer) (section 7.11 steps 3b/3c).
    NewSourceLocator { key: ContextKey, src: Ipv6Addr },
    /// Packets were received on the context since the last report (feeds the idle timer of
    /// appendix A).
    Activity { key: ContextKey },
}

/// Operator commands.
#[derive(Debug, Clone)]
pub enum AdminCommand {
    /// Establish a context now (as if a first packet had been seen).
    Open {
        aid_local: Ipv6Addr,
        aid_peer: Ipv6Addr,
    },
    /// Close the context for this AID pair (appendix A).
    Close {
        aid_local: Ipv6Addr,
        aid_peer: Ipv6Addr,
    },
    /// A local host's locator set changed (renumbering, section 4.5): update the peers.
    SetLocators {
        host: HostId,
        locators: Vec<Ipv6Addr>,
    },
    /// Close every context and start no new one.
    Shutdown,
}

/// The tuple the dataplane needs for one context (DESIGN.md sections 2 and 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneContext {
    pub key: ContextKey,
    /// AID(local), AID(peer): restored on receive, matched on transmit.
    pub aid_local: Ipv6Addr,
    pub aid_peer: Ipv6Addr,
    /// F(peer): the flow label put on transmitted packets; `None` until the peer told us.
    pub f_peer: Option<FlowLabel>,
    /// Lsl(local): acceptable destinations of received packets (section 7.11 step 2).
    pub lsl_local: Vec<Ipv6Addr>,
    /// Ls(local) = Lsl(local) ∩ Lsr(local) + AID: the sources the peer can verify, i.e. the
    /// prefixes a rewriting egress may put in the source field.
    pub ls_local: Vec<Ipv6Addr>,
    /// Lp(local): preferred source locator.
    pub lp_local: Ipv6Addr,
    /// Lsl(peer): acceptable sources of received packets (section 7.11 step 3).
    pub lsl_peer: Vec<Ipv6Addr>,
    /// Lsv(peer): verified peer locators, the only allowed destinations (section 7.13).
    pub lsv_peer: Vec<Ipv6Addr>,
    /// Lp(peer): the destination of transmitted packets, a member of `lsv_peer`.
    pub lp_peer: Option<Ipv6Addr>,
    /// Use the rewrite-ok protocol range P1 (true) or the no-rewrite range P2 (section 6).
    pub rewrite_ok: bool,
    /// Whether the context may carry transmitted data: established, F(peer) and Lp(peer)
    /// known, and not CLOSING (appendix A: "No data packets can be sent ... in closing").
    pub transmit: bool,
}

/// Status of a peer AID in the dataplane's destination cache (DESIGN.md section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationStatus {
    /// Discovery in progress: keep forwarding as plain IPv6, do not report again.
    Pending,
    /// Not M6 capable (or not reachable with M6) until this time: plain IPv6.
    NotM6 { until: Duration },
    /// M6 context in progress or established.
    M6,
}

/// Notices for logs and metrics; the engine's behaviour does not depend on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Established(ContextKey),
    Closing(ContextKey),
    Discarded(ContextKey),
    /// A UC was accepted: the context is dropped and re-initiated (section 7.12).
    PeerLostState {
        key: ContextKey,
        peer_rebooted: bool,
    },
    /// The handshake gave up after CONTEXT_IDLE_TIME.
    GaveUp(ContextKey),
    /// No flow label left for the host (2^20 - 1 contexts).
    FlowLabelsExhausted(HostId),
}

/// What the engine asks its caller to do, in order.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send a control message from `src` to `dst`.
    Send {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        repr: Repr,
    },
    /// Create or replace the dataplane entry for `ctx.key`.
    Install(DataplaneContext),
    /// Remove the dataplane entry.
    Remove(ContextKey),
    /// Update the destination cache for a peer AID.
    Destination {
        aid_peer: Ipv6Addr,
        status: DestinationStatus,
    },
    /// Pass a piggybacked ULP packet to the local host, addressed with the AIDs.
    DeliverUlp {
        host: HostId,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        piggyback: Piggyback,
    },
    /// Send again through the now established context a ULP packet that was piggybacked on
    /// the INIT and that the responder reported discarded (section 4.1 step 5).
    ResendUlp {
        key: ContextKey,
        piggyback: Piggyback,
    },
    /// Start a DNS lookup; answer with [`Event::Dns`].
    Dns { id: DnsQueryId, query: DnsQuery },
    /// Report [`Event::Timer`] with `id` at time `at` (absolute, same clock as `now`).
    ArmTimer { id: TimerId, at: Duration },
    /// Forget a timer (a late [`Event::Timer`] for it is ignored anyway).
    CancelTimer(TimerId),
    /// For logs and metrics.
    Notice(Notice),
}

/// Counters for metrics and the simulation's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub received: u64,
    pub sent: u64,
    pub dropped: u64,
    pub contexts_created: u64,
    pub contexts_discarded: u64,
    pub uc_sent: u64,
    pub uc_accepted: u64,
    pub retransmissions: u64,
    /// CC keys rotated by the engine's own timer.
    pub cc_key_rotations: u64,
    /// DNS lookups that got no answer within `dns_timeout`.
    pub dns_timeouts: u64,
    /// Locators refused because another local host owns them.
    pub locator_conflicts: u64,
    /// Peer locators excluded from Lsr(peer) after a permanent PTR failure (7.13).
    pub locators_excluded: u64,
    /// INITs not answered because the CC token bucket was empty.
    pub cc_rate_limited: u64,
    /// Responder FQDN lookups refused by their token bucket.
    pub responder_lookups_limited: u64,
    /// Control messages sent, by code ([`code_index`]: INIT .. CLOSE-ACK).
    pub sent_by_code: [u64; CODES],
    /// Control messages received, by code.
    pub received_by_code: [u64; CODES],
    /// Received control messages dropped (no context, wrong state, nonce or locators), by
    /// code.
    pub dropped_by_code: [u64; CODES],
    /// Retransmissions, by code of the message retransmitted.
    pub retransmissions_by_code: [u64; CODES],
    /// Contexts that reached ESTABLISHED for the first time (handshakes completed; the
    /// started ones are `contexts_created`).
    pub handshakes_completed: u64,
    /// Contexts discarded before ever reaching ESTABLISHED.
    pub handshakes_failed: u64,
    /// Lookups answered from the engine's DNS cache.
    pub dns_cache_hits: u64,
    /// Lookups not in the cache (joined to one in flight, or sent).
    pub dns_cache_misses: u64,
}

/// Handshake durations kept for the daemon at most between two takes.
pub const MAX_HANDSHAKE_DURATIONS: usize = 4096;

/// M6 control message codes (seed 001 section 3.3, appendix A): INIT, CC, CCR, CONF, UR,
/// UA, UC, CLOSE, CLOSE-ACK.
pub const CODES: usize = 9;

/// The index of `code` in the per-code arrays of [`EngineStats`] (code 1 is index 0).
pub fn code_index(code: proto::wire::m6::Code) -> usize {
    usize::from(code as u8).saturating_sub(1).min(CODES - 1)
}

/// Adds one to `per_code`'s count for `code`.
pub(crate) fn bump(per_code: &mut [u64; CODES], code: proto::wire::m6::Code) {
    if let Some(n) = per_code.get_mut(code_index(code)) {
        *n += 1;
    }
}

/// The lower-case names of the codes, by [`code_index`].
pub const CODE_NAMES: [&str; CODES] = [
    "init",
    "cc",
    "ccr",
    "conf",
    "ur",
    "ua",
    "uc",
    "close",
    "close_ack",
];

/// Why a timer was armed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TimerPurpose {
    /// Retransmission of INIT / CCR / UR / CLOSE for a context (section 7.10, appendix A).
    Retransmit(u64),
    /// Idle check: appendix A step 1.
    Idle(u64),
    /// Retry of a transiently failed DNS lookup (section 7.13).
    DnsRetry(DnsQuery),
    /// Periodic CC key rotation ([`EngineConfig::cc_key_rotation`]).
    CcKeyRotation,
    /// A DNS lookup got no answer in time ([`EngineConfig::dns_timeout`]).
    DnsTimeout(DnsQueryId),
}

/// The signaling engine. See the module documentation.
pub struct Engine {
    cfg: EngineConfig,
    birthday: u32,
    rng: Rng,
    cc_key: proto::cc::CcKeyring,
    hosts: Vec<HostState>,
    /// Local locator -> host.
    loc_host: HashMap<Ipv6Addr, HostId>,
    /// Changes whenever what [`Engine::cc_responder`] returns changes other than its clock
    /// (CC key rotations, hosts' locators), so the daemon republishes only then.
    responder_version: u64,
    /// All contexts by internal id; a BTreeMap so iteration order is deterministic.
    contexts: BTreeMap<u64, Context>,
    /// (host, AID(local), AID(peer)) -> the context that is not CLOSING (appendix A: only
    /// one such context per AID pair; CLOSING ones are invisible to new traffic).
    by_aids: HashMap<(HostId, Ipv6Addr, Ipv6Addr), u64>,
    /// (host, F(local)) -> context, every state.
    by_flow: HashMap<ContextKey, u64>,
    /// F(peer) -> contexts using it (section 7.12 matches UC by peer flow label).
    by_peer_flow: HashMap<FlowLabel, Vec<u64>>,
    timers: HashMap<TimerId, TimerPurpose>,
    next_timer: u64,
    next_ctx: u64,
    dns: verify::DnsState,
    /// Discoveries in progress for (host, AID(local), AID(peer)).
    discoveries: BTreeMap<(HostId, Ipv6Addr, Ipv6Addr), verify::Discovery>,
    /// Peer AID -> not M6 until.
    negative: HashMap<Ipv6Addr, Duration>,
    /// Rate limit of traffic-triggered discoveries and the destination cache bound.
    admission: admission::Admission,
    started_at: Option<Duration>,
    uc_tokens: f64,
    cc_bucket: admission::TokenBucket,
    responder_lookup_bucket: admission::TokenBucket,
    uc_last: Duration,
    shutting_down: bool,
    stats: EngineStats,
    /// How long each handshake took (context created to ESTABLISHED), until the daemon
    /// takes them for its histogram ([`Engine::take_handshake_durations`]).
    handshake_durations: Vec<Duration>,
    last_housekeeping: Duration,
}

pub(crate) struct HostState {
    pub cfg: LocalHost,
    pub labels: FlowLabels,
}

impl Engine {
    /// A new engine for one incarnation: `birthday` comes from
    /// [`crate::storage::BirthdayCounter::start`], `rng_seed` from the OS (or the test), and
    /// `cc_key` is the per-host CC secret (section 3.3.2, never shared).
    ///
    /// The seed makes the run replayable (tests, simulation); production uses
    /// [`Engine::new_os_seeded`].
    pub fn new(
        cfg: EngineConfig,
        birthday: u32,
        rng_seed: u64,
        cc_key: proto::cc::CcKeyring,
    ) -> Engine {
        Engine::with_rng(cfg, birthday, Rng::new(rng_seed), cc_key)
    }

    /// As [`Engine::new`] with the ChaCha20 generator keyed from the operating system.
    pub fn new_os_seeded(
        cfg: EngineConfig,
        birthday: u32,
        cc_key: proto::cc::CcKeyring,
    ) -> std::io::Result<Engine> {
        Ok(Engine::with_rng(cfg, birthday, Rng::from_os()?, cc_key))
    }

    /// As [`Engine::new`] with a caller-made generator.
    pub fn with_rng(
        cfg: EngineConfig,
        birthday: u32,
        rng: Rng,
        cc_key: proto::cc::CcKeyring,
    ) -> Engine {
        let tokens = f64::from(cfg.uc_burst);
        Engine {
            cfg,
            birthday,
            rng,
            cc_key,
            hosts: Vec::new(),
            loc_host: HashMap::new(),
            responder_version: 0,
            contexts: BTreeMap::new(),
            by_aids: HashMap::new(),
            by_flow: HashMap::new(),
            by_peer_flow: HashMap::new(),
            timers: HashMap::new(),
            next_timer: 1,
            next_ctx: 1,
            dns: verify::DnsState::default(),
            discoveries: BTreeMap::new(),
            negative: HashMap::new(),
            admission: admission::Admission::default(),
            started_at: None,
            uc_tokens: tokens,
            cc_bucket: admission::TokenBucket::default(),
            responder_lookup_bucket: admission::TokenBucket::default(),
            uc_last: Duration::ZERO,
            shutting_down: false,
            stats: EngineStats::default(),
            handshake_durations: Vec::new(),
            last_housekeeping: Duration::ZERO,
        }
    }

    /// Adds a local host. A locator that already belongs to another host is not taken from
    /// it: it is left out of the new host's set and counted in
    /// [`EngineStats::locator_conflicts`] (use [`Engine::try_add_host`] to refuse instead).
    pub fn add_host(&mut self, mut host: LocalHost) -> HostId {
        let id = HostId(self.hosts.len() as u32);
        let before = host.locators.len();
        host.locators = self.own_locators(id, host.locators);
        self.stats.locator_conflicts += (before - host.locators.len()) as u64;
        self.hosts.push(HostState {
            cfg: host,
            labels: FlowLabels::default(),
        });
        self.rebuild_loc_host();
        id
    }

    /// Adds a local host unless one of its locators belongs to another host (returned).
    pub fn try_add_host(&mut self, host: LocalHost) -> Result<HostId, Ipv6Addr> {
        if let Some(l) = host.locators.iter().find(|l| self.loc_host.contains_key(l)) {
            return Err(*l);
        }
        Ok(self.add_host(host))
    }

    /// `locators` without duplicates and without those owned by a host other than `id`.
    pub(crate) fn own_locators(&self, id: HostId, locators: Vec<Ipv6Addr>) -> Vec<Ipv6Addr> {
        let mut v: Vec<Ipv6Addr> = Vec::with_capacity(locators.len());
        for l in locators {
            let other = self.loc_host.get(&l).is_some_and(|h| *h != id);
            if !other && !v.contains(&l) {
                v.push(l);
            }
        }
        v
    }

    /// Rebuilds locator -> host from the hosts' current locator sets (a withdrawn locator
    /// no longer maps to its host, so an INIT naming it is dropped, section 7.3).
    pub(crate) fn rebuild_loc_host(&mut self) {
        self.responder_version += 1;
        self.loc_host.clear();
        for (i, h) in self.hosts.iter().enumerate() {
            for l in &h.cfg.locators {
                self.loc_host.entry(*l).or_insert(HostId(i as u32));
            }
        }
    }

    /// Replaces the CC key by one made from a fresh secret (serial + 1); CCs made with the
    /// previous key stay acceptable until the next rotation. The daemon calls this every
    /// `proto::wire::consts::CC_KEY_ROTATION` with 32 octets from the OS.
    pub fn rotate_cc_key(&mut self, secret: &[u8; proto::cc::SECRET_LEN]) {
        self.cc_key.rotate(secret);
        self.responder_version += 1;
    }

    /// This incarnation's birthday counter.
    pub fn birthday(&self) -> u32 {
        self.birthday
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// The durations of the handshakes completed since the last call (context created to
    /// ESTABLISHED), for the daemon's histogram.
    pub fn take_handshake_durations(&mut self) -> Vec<Duration> {
        std::mem::take(&mut self.handshake_durations)
    }

    /// How many contexts are in each state: (state name, count), every state listed.
    pub fn contexts_by_state(&self) -> Vec<(&'static str, u64)> {
        let mut v = vec![
            ("init_sent", 0u64),
            ("ccr_sent", 0),
            ("established", 0),
            ("ur_sent", 0),
            ("closing", 0),
        ];
        for c in self.contexts.values() {
            let i = match c.state {
                State::InitSent => 0,
                State::CcrSent => 1,
                State::Established => 2,
                State::UrSent => 3,
                State::Closing => 4,
            };
            if let Some(e) = v.get_mut(i) {
                e.1 += 1;
            }
        }
        v
    }

    /// Every context, in creation order (for m6ctl and the tests).
    pub fn contexts(&self) -> impl Iterator<Item = &Context> {
        self.contexts.values()
    }

    /// The DNS cache: (query, answer, when it expires on the engine's clock), in no order.
    pub fn dns_cache(&self) -> Vec<(&dns::DnsQuery, &dns::DnsResult, Duration)> {
        self.dns
            .cache
            .iter()
            .map(|(q, (r, until))| (q, r, *until))
            .collect()
    }

    /// The context that is not CLOSING for an AID pair.
    pub fn context_for(&self, aid_local: Ipv6Addr, aid_peer: Ipv6Addr) -> Option<&Context> {
        let host = *self.loc_host.get(&aid_local)?;
        let id = self.by_aids.get(&(host, aid_local, aid_peer))?;
        self.contexts.get(id)
    }

    /// The context with this key, in any state.
    pub fn context(&self, key: ContextKey) -> Option<&Context> {
        self.by_flow.get(&key).and_then(|id| self.contexts.get(id))
    }

    /// The host owning a locator.
    pub fn host_of(&self, locator: &Ipv6Addr) -> Option<HostId> {
        self.loc_host.get(locator).copied()
    }

    /// Feeds one event at time `now` (monotonic, same clock for every call) and returns the
    /// actions to carry out, in order.
    pub fn handle(&mut self, event: Event, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        self.handle_into(event, now, &mut out);
        out
    }

    /// As [`Engine::handle`] but appends to the caller's vector.
    pub fn handle_into(&mut self, event: Event, now: Duration, out: &mut Vec<Action>) {
        if self.started_at.is_none() {
            self.started_at = Some(now);
            self.arm_cc_rotation(now, out);
        }
        self.housekeeping(now);
        match event {
            Event::Received { src, dst, repr } => {
                self.stats.received += 1;
                let code = repr.message.code();
                bump(&mut self.stats.received_by_code, code);
                let dropped = self.stats.dropped;
                self.on_message(src, dst, repr, now, out);
                if self.stats.dropped > dropped {
                    bump(&mut self.stats.dropped_by_code, code);
                }
            }
            Event::Timer(id) => self.on_timer(id, now, out),
            Event::Dns { id, result } => self.on_dns(id, result, now, out),
            Event::DataPath(ev) => self.on_datapath(ev, now, out),
            Event::Admin(cmd) => self.on_admin(cmd, now, out),
        }
    }

    fn on_message(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        repr: Repr,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        use proto::wire::m6::Message;
        let Repr {
            nonce,
            message,
            piggyback,
            ..
        } = repr;
        match message {
            Message::Init(m) => self.on_init(src, dst, nonce, m, piggyback, now, out),
            Message::Cc(m) => self.on_cc(src, dst, nonce, m, piggyback, now, out),
            Message::Ccr(m) => self.on_ccr(src, dst, nonce, m, piggyback, now, out),
            Message::Conf(m) => self.on_conf(src, dst, nonce, m, piggyback, now, out),
            Message::Ur(m) => self.on_ur(src, dst, nonce, m, now, out),
            Message::Ua(m) => self.on_ua(src, dst, nonce, m, now, out),
            Message::Uc(m) => self.on_uc(src, dst, m, now, out),
            Message::Close(m) => self.on_close(src, dst, nonce, m, now, out),
            Message::CloseAck(m) => self.on_closeack(src, dst, nonce, m, now, out),
        }
    }

    fn on_timer(&mut self, id: TimerId, now: Duration, out: &mut Vec<Action>) {
        let Some(purpose) = self.timers.remove(&id) else {
            return; // cancelled or stale
        };
        match purpose {
            TimerPurpose::Retransmit(ctx) => self.on_retransmit(ctx, id, now, out),
            TimerPurpose::Idle(ctx) => self.on_idle_timer(ctx, id, now, out),
            TimerPurpose::DnsRetry(q) => self.dns_retry(q, now, out),
            TimerPurpose::DnsTimeout(q) => self.dns_timeout(q, now, out),
            TimerPurpose::CcKeyRotation => {
                let mut secret = [0u8; proto::cc::SECRET_LEN];
                self.rng.fill(&mut secret);
                self.cc_key.rotate(&secret);
                self.responder_version += 1;
                self.stats.cc_key_rotations += 1;
                self.arm_cc_rotation(now, out);
            }
        }
    }

    fn arm_cc_rotation(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.cfg.cc_key_rotation.is_zero() {
            return;
        }
        let period = self.cfg.cc_key_rotation.max(self.cfg.cc_lifetime);
        self.arm_timer(TimerPurpose::CcKeyRotation, now + period, out);
    }

    /// Changes whenever [`Engine::cc_responder`] would answer differently other than in its
    /// clock.
    pub fn responder_version(&self) -> u64 {
        self.responder_version
    }

    /// Serial of the CC key currently used to make CCs.
    pub fn cc_key_serial(&self) -> u32 {
        self.cc_key.current().serial()
    }

    fn on_admin(&mut self, cmd: AdminCommand, now: Duration, out: &mut Vec<Action>) {
        match cmd {
            AdminCommand::Open {
                aid_local,
                aid_peer,
            } => self.start_discovery(aid_local, aid_peer, None, false, now, out),
            AdminCommand::Close {
                aid_local,
                aid_peer,
            } => {
                let Some(host) = self.host_of(&aid_local) else {
                    return;
                };
                if let Some(&id) = self.by_aids.get(&(host, aid_local, aid_peer)) {
                    self.enter_closing(id, now, out);
                }
            }
            AdminCommand::SetLocators { host, locators } => {
                self.set_locators(host, locators, now, out)
            }
            AdminCommand::Shutdown => {
                self.shutting_down = true;
                let ids: Vec<u64> = self.contexts.keys().copied().collect();
                for id in ids {
                    self.enter_closing(id, now, out);
                }
            }
        }
    }

    // ---- helpers shared by the submodules ----

    pub(crate) fn arm_timer(
        &mut self,
        purpose: TimerPurpose,
        at: Duration,
        out: &mut Vec<Action>,
    ) -> TimerId {
        let id = TimerId(self.next_timer);
        self.next_timer += 1;
        self.timers.insert(id, purpose);
        out.push(Action::ArmTimer { id, at });
        id
    }

    pub(crate) fn cancel_timer(&mut self, id: Option<TimerId>, out: &mut Vec<Action>) {
        if let Some(id) = id {
            if self.timers.remove(&id).is_some() {
                out.push(Action::CancelTimer(id));
            }
        }
    }

    pub(crate) fn send(&mut self, src: Ipv6Addr, dst: Ipv6Addr, repr: Repr, out: &mut Vec<Action>) {
        self.stats.sent += 1;
        bump(&mut self.stats.sent_by_code, repr.message.code());
        out.push(Action::Send { src, dst, repr });
    }

    /// A retransmission interval: `rto` times a uniform factor in [0.75, 1.25]
    /// (section 7.10: "some randomness be applied to the retransmit timer";
    /// `proto::wire::consts::RETRANSMIT_JITTER`).
    pub(crate) fn jittered(&mut self, rto: Duration) -> Duration {
        let quarter = rto / 4;
        rto - quarter + self.rng.duration_upto(quarter * 2)
    }

    /// Lsl(local) as announced for `host` with AID `aid`: the host's locators, or only the
    /// AID when the host's DNS does not verify (section 7.13); the AID is always included.
    pub(crate) fn announced_lsl(&self, host: HostId, aid: Ipv6Addr) -> LocSet {
        match self.hosts.get(host.0 as usize) {
            Some(h) if h.cfg.dns_verifiable => {
                let mut s = LocSet::from_slice(&h.cfg.locators);
                s.insert(aid);
                s
            }
            _ => LocSet::single(aid),
        }
    }

    /// Whether control messages and data of `host` may carry "rewrite ok" (section 7.13: not
    /// when only the AID is announced).
    pub(crate) fn host_rewrite_ok(&self, host: HostId) -> bool {
        self.hosts
            .get(host.0 as usize)
            .map(|h| h.cfg.dns_verifiable && h.cfg.locators.len() > 1)
            .unwrap_or(false)
    }

    /// Token bucket shared by UC and unverifiable CLOSEACK answers.
    pub(crate) fn take_uc_token(&mut self, now: Duration) -> bool {
        let rate = f64::from(self.cfg.uc_per_second);
        let elapsed = now.saturating_sub(self.uc_last).as_secs_f64();
        self.uc_last = now;
        let burst = f64::from(self.cfg.uc_burst.max(1));
        self.uc_tokens = (self.uc_tokens + elapsed * rate).min(burst);
        if self.uc_tokens >= 1.0 {
            self.uc_tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn housekeeping(&mut self, now: Duration) {
        if now.saturating_sub(self.last_housekeeping) < Duration::from_secs(60) {
            return;
        }
        self.last_housekeeping = now;
        for h in &mut self.hosts {
            h.labels.expire(now);
        }
        self.negative.retain(|_, until| *until > now);
        self.dns.expire(now);
    }
}
