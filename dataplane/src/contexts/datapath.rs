//! The worker's side of the contexts: its replica, the Lp(peer) it switched to on its own
//! evidence (seed 001 section 7.11 step 3c: "at once"), and its reports to the control
//! plane, rate-limited per key and, for unknown flow labels, per worker (a flood of M6 data
//! with random labels must not become a flood of reports; each one costs the control plane
//! an Unknown Context message).

use hashbrown::HashMap;

use super::{Context, ContextKey, ContextTable, Destination};
use crate::buf::PacketBuf;
use crate::net::addr::Addr;
use crate::nodes::cc_answer::{self, CcLimiter};
use crate::nodes::classify::Parsed;
use crate::nodes::icmp_error::TokenBucket;
use crate::stats::named_counters;
use crate::tables::Reader;

/// At most one report per key per this interval.
pub const REPORT_INTERVAL_NS: u64 = 1_000_000_000;
/// A context that carries data is reported active at most this often (the engine closes a
/// context idle for CONTEXT_IDLE_TIME, minutes).
pub const ACTIVITY_INTERVAL_NS: u64 = 30_000_000_000;
/// One translated packet in this many is checked for an activity report (the check is a
/// hash lookup; sampling keeps it off most packets).
pub const ACTIVITY_SAMPLE: u32 = 16;

/// Unknown-flow-label reports per worker per second at most.
pub const UNKNOWN_LABEL_REPORTS_PER_SEC: u32 = 100;
/// Keys remembered for rate limiting, and Lp(peer) overrides held, at most (cleared when
/// full).
pub const MAX_KEYS: usize = 4096;
/// Reports queued between two drains at most.
pub const MAX_EVENTS: usize = 1024;

/// Punted M6 control packets per worker per second at most (an INIT flood is cut here).
pub const PUNTS_PER_SEC: u32 = 2000;

/// What a worker reports about M6 traffic (the engine's `DataPathEvent`s), and the M6
/// control packets it hands to the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum M6Event {
    /// An M6 control message (ICMPv6 type 200/201) for the router or a proxied host: the
    /// IPv6 packet as received on `port`.
    Punt { port: u16, packet: Vec<u8> },
    /// A proxied host sent to a peer AID with no context and no destination cache entry
    /// (seed 001 section 4.1; seed 002 section 6 step 4).
    FirstPacket { aid_local: Addr, aid_peer: Addr },
    /// M6 data with a flow label no context has (7.11 step 1a): answer with UC.
    UnknownFlowLabel {
        src: Addr,
        dst: Addr,
        flow_label: u32,
    },
    /// A source locator other than Lp(peer) arrived on a context (7.11 steps 3b, 3c).
    NewSourceLocator {
        aid_local: Addr,
        f_local: u32,
        src: Addr,
    },
    /// The context carried data lately (the engine's idle timer, appendix A).
    Activity { aid_local: Addr, f_local: u32 },
}

named_counters! {
    /// The proxy (`proxy.*`).
    pub struct ProxyCounters("proxy") {
        /// Packets from proxied hosts sent as M6 data.
        translated_out,
        /// M6 data restored and delivered to proxied hosts.
        translated_in,
        /// Packets from proxied hosts sent as plain IPv6 (no usable context yet).
        plain_out,
        /// Reports queued (first packets, unknown labels, new source locators).
        reported,
        /// Reports held back by the rate limits.
        report_ratelimited,
        /// Reports lost to a full queue.
        report_dropped,
        /// Lp(peer) changed on this worker by a source in Lsv(peer) (7.11 step 3c).
        lp_switched,
        /// M6 control packets handed to the control plane.
        punted,
        /// M6 control packets not handed over: the punt rate limit.
        punt_ratelimited,
        /// INITs answered with a CC by the worker (`nodes::cc_answer`), counted when the CC
        /// goes to the ISP's next-hop lookup.
        cc_answered,
    }
}

/// One worker's view of the contexts.
pub struct ContextReader {
    table: Reader<ContextTable>,
    /// (AID(local), AID(peer)) -> (Lp(peer) this worker switched to, the published Lp(peer)
    /// it overrode): a newer publication from the owner wins.
    lp_override: HashMap<(Addr, Addr), (Addr, [u8; 16])>,
    reported: HashMap<(Addr, Addr, u32), u64>,
    unknown_bucket: TokenBucket,
    punt_bucket: TokenBucket,
    activity: HashMap<(Addr, u32), u64>,
    sample: u32,
    events: Vec<M6Event>,
    /// The CC rate limits of this worker.
    pub cc_limiter: CcLimiter,
    pub counters: ProxyCounters,
}

impl ContextReader {
    pub fn new(table: Reader<ContextTable>) -> ContextReader {
        ContextReader {
            table,
            lp_override: HashMap::new(),
            reported: HashMap::with_capacity(MAX_KEYS),
            unknown_bucket: TokenBucket::new(UNKNOWN_LABEL_REPORTS_PER_SEC),
            punt_bucket: TokenBucket::new(PUNTS_PER_SEC),
            activity: HashMap::new(),
            sample: 0,
            events: Vec::with_capacity(MAX_EVENTS),
            cc_limiter: CcLimiter::new(),
            counters: ProxyCounters::default(),
        }
    }

    /// Applies the owner's changes; how many.
    pub fn sync(&mut self) -> usize {
        self.table.sync()
    }

    /// Answers the INIT in `buf` with a CC in place, or says to punt it
    /// ([`cc_answer::answer`]).
    pub fn answer_init<B: PacketBuf>(
        &mut self,
        buf: &mut B,
        p: &Parsed,
        now: u64,
    ) -> Result<cc_answer::Outcome, cc_answer::DropReason> {
        let table = self.table.get();
        cc_answer::answer(buf, p, table.responder(), table, &mut self.cc_limiter, now)
    }

    /// The replica.
    #[inline]
    pub fn table(&self) -> &ContextTable {
        self.table.get()
    }

    /// Lp(peer) as this worker uses it: its own switch while the owner has published
    /// nothing newer and the locator is still in Lsl(peer) and Lsv(peer) (an Update Request
    /// may have withdrawn it), else the published one.
    #[inline]
    pub fn lp_peer(&self, ctx: &Context) -> Option<Addr> {
        // Until this worker first switches an Lp(peer), skip hashing the AID pair (the map
        // only grows, up to MAX_KEYS, then starts over).
        if self.lp_override.is_empty() {
            return ctx.lp_peer();
        }
        match self.lp_override.get(&(ctx.aid_local(), ctx.aid_peer())) {
            Some(&(a, overridden))
                if overridden == ctx.lp_peer
                    && ctx.lsv_peer.contains(a)
                    && ctx.lsl_peer.contains(a) =>
            {
                Some(a)
            }
            _ => ctx.lp_peer(),
        }
    }

    /// Switches Lp(peer) of `ctx` to `src` on this worker (7.11 step 3c) and reports it.
    pub fn switch_lp(&mut self, ctx: &ContextKey, src: Addr, now: u64) {
        if self.lp_override.len() >= MAX_KEYS {
            self.lp_override.clear();
        }
        self.lp_override
            .insert((ctx.aid_local, ctx.aid_peer), (src, ctx.lp_peer));
        self.counters.lp_switched += 1;
        self.new_source(ctx, src, now);
    }

    /// `ctx` carried a packet: now and then (sampled, and per context at most every
    /// [`ACTIVITY_INTERVAL_NS`]) an activity report.
    #[inline]
    pub fn used(&mut self, ctx: &ContextKey, now: u64) {
        self.sample = self.sample.wrapping_add(1);
        if !self.sample.is_multiple_of(ACTIVITY_SAMPLE) {
            return;
        }
        let key = (ctx.aid_local, ctx.f_local);
        let due = match self.activity.get(&key) {
            Some(&last) => now.saturating_sub(last) >= ACTIVITY_INTERVAL_NS,
            None => true,
        };
        if due {
            if self.activity.len() >= MAX_KEYS {
                self.activity.clear();
            }
            self.activity.insert(key, now);
            self.push(M6Event::Activity {
                aid_local: key.0,
                f_local: key.1,
            });
        }
    }

    /// Reports a source locator other than Lp(peer) on `ctx`.
    pub fn new_source(&mut self, ctx: &ContextKey, src: Addr, now: u64) {
        if self.due((ctx.aid_local, src, ctx.f_local), now) {
            self.push(M6Event::NewSourceLocator {
                aid_local: ctx.aid_local,
                f_local: ctx.f_local,
                src,
            });
        }
    }

    /// A proxied host sends to `aid_peer` without a usable context: reports it when the
    /// destination cache does not already know the peer (or its negative entry expired).
    pub fn first_packet(&mut self, aid_local: Addr, aid_peer: Addr, now: u64) {
        // Discovery of the peer in progress, or the peer known not to speak M6: nothing to
        // report. Known to speak M6 but no context for this AID pair (another host, or a
        // context closed since): report, so the control plane establishes one.
        let known = match self.table().destination(aid_peer) {
            Some(Destination::Pending) => true,
            Some(Destination::NotM6 { until_ns }) => now < until_ns,
            Some(Destination::M6) | None => false,
        };
        if !known && self.due((aid_local, aid_peer, u32::MAX), now) {
            self.push(M6Event::FirstPacket {
                aid_local,
                aid_peer,
            });
        }
    }

    /// M6 data arrived with a flow label no context has.
    pub fn unknown_label(&mut self, src: Addr, dst: Addr, flow_label: u32, now: u64) {
        if !self.unknown_bucket.take(now) {
            self.counters.report_ratelimited += 1;
            return;
        }
        if self.due((src, dst, flow_label), now) {
            self.push(M6Event::UnknownFlowLabel {
                src,
                dst,
                flow_label,
            });
        }
    }

    /// Hands an M6 control packet (the IPv6 packet) received on `port` to the control
    /// plane, within the punt rate; whether it was taken.
    pub fn punt(&mut self, port: usize, packet: &[u8], now: u64) -> bool {
        if !self.punt_bucket.take(now) {
            self.counters.punt_ratelimited += 1;
            return false;
        }
        self.counters.punted += 1;
        self.push(M6Event::Punt {
            port: port as u16,
            packet: packet.to_vec(),
        });
        true
    }

    /// Hands every queued report to `out`, and forgets them.
    pub fn drain_events(&mut self, out: &mut impl FnMut(M6Event)) {
        for e in self.events.drain(..) {
            out(e);
        }
    }

    fn due(&mut self, key: (Addr, Addr, u32), now: u64) -> bool {
        if let Some(last) = self.reported.get_mut(&key) {
            if now.saturating_sub(*last) < REPORT_INTERVAL_NS {
                self.counters.report_ratelimited += 1;
                return false;
            }
            *last = now;
            return true;
        }
        if self.reported.len() >= MAX_KEYS {
            self.reported.clear();
        }
        self.reported.insert(key, now);
        true
    }

    fn push(&mut self, e: M6Event) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(e);
            self.counters.reported += 1;
        } else {
            self.counters.report_dropped += 1;
        }
    }
}
