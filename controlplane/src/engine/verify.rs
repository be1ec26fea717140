//! Discovery and DNS verification (seed 001 sections 3.1, 4.1 step 1, 4.2, 4.5, 5.2, 7.13).
//!
//! - Discovery (initiator, and the proxy's first packet, seed 002 section 6 step 4C): PTR of
//!   AID(peer) -> FQDN, then AAAA + M6 marker of the FQDN. M6 and AID(peer) in the AAAA set:
//!   the AID is verified (forward + reverse agree) and a context starts with Lsr(peer) = the
//!   AAAA set. Otherwise the destination is negatively cached (5.2).
//! - Responder (after the CCR): the same two lookups give FQDN(peer) and Lsr(peer); a
//!   permanent failure means no FQDN and Lsr(peer) = {AID} (7.13).
//! - Each other locator of Ls(peer) is verified by its own PTR pointing back at FQDN(peer);
//!   only then it enters Lsv(peer) and may become a destination.
//!
//! Identical lookups in flight are merged; results are cached for their TTL; transient
//! failures are retried with binary exponential backoff (7.13) until CONTEXT_IDLE_TIME.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::Duration;

use super::context::PeerName;
use super::dns::{names_contain, normalize_name, DnsAnswer, DnsQuery, DnsQueryId, DnsResult};
use super::locset::LocSet;
use super::{Action, DestinationStatus, Engine, HostId, Piggyback, TimerPurpose};

/// Who waits for a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Waiter {
    /// Discovery for (host, AID(local), AID(peer)).
    Discovery((HostId, Ipv6Addr, Ipv6Addr)),
    /// Responder: PTR of AID(peer) for context id.
    PeerName(u64),
    /// Forward lookup of FQDN(peer) for context id.
    PeerForward(u64),
    /// PTR of one peer locator for context id.
    Verify(u64, Ipv6Addr),
}

#[derive(Debug)]
struct Inflight {
    waiters: Vec<Waiter>,
    first: Duration,
    backoff: Duration,
}

/// The engine's DNS bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct DnsState {
    next_id: u64,
    inflight: HashMap<DnsQuery, Inflight>,
    by_id: HashMap<DnsQueryId, DnsQuery>,
    /// Timeout timer of each lookup in flight ([`super::EngineConfig::dns_timeout`]).
    timeouts: HashMap<DnsQueryId, super::TimerId>,
    pub(super) cache: HashMap<DnsQuery, (DnsResult, Duration)>,
    /// Last sweep of expired answers made to find room (at most one per second).
    swept: Option<Duration>,
}

impl DnsState {
    pub(crate) fn expire(&mut self, now: Duration) {
        self.cache.retain(|_, (_, until)| *until > now);
    }

    /// Caches an answer within `cap` entries: expired answers go first (one sweep per
    /// second at most), then an arbitrary one.
    fn insert_bounded(
        &mut self,
        q: DnsQuery,
        entry: (DnsResult, Duration),
        cap: usize,
        now: Duration,
    ) {
        if self.cache.len() >= cap.max(1) && !self.cache.contains_key(&q) {
            if self.swept.is_none_or(|t| now >= t + Duration::from_secs(1)) {
                self.swept = Some(now);
                self.expire(now);
            }
            if self.cache.len() >= cap.max(1) {
                if let Some(k) = self.cache.keys().next().cloned() {
                    self.cache.remove(&k);
                }
            }
        }
        self.cache.insert(q, entry);
    }
}

/// A discovery in progress.
#[derive(Debug, Clone)]
pub(crate) struct Discovery {
    piggyback: Option<Piggyback>,
    fqdn: Option<String>,
    /// Further PTR names of AID(peer) to try, in answer order (16.2 "virtual hosting").
    names: VecDeque<String>,
}

/// The PTR names of an answer, normalised, without duplicates, at most `max`.
fn ptr_names(names: &[String], max: usize) -> VecDeque<String> {
    let mut v: VecDeque<String> = VecDeque::new();
    for n in names.iter().map(|n| normalize_name(n)) {
        if !n.is_empty() && !v.contains(&n) && v.len() < max.max(1) {
            v.push_back(n);
        }
    }
    v
}

impl Engine {
    /// Starts (or joins) a lookup for `waiter`. A cached answer is delivered at once.
    pub(crate) fn lookup(
        &mut self,
        q: DnsQuery,
        waiter: Waiter,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        if let Some((res, until)) = self.dns.cache.get(&q) {
            if *until > now {
                let res = res.clone();
                self.stats.dns_cache_hits += 1;
                self.dispatch(waiter, &q, res, now, out);
                return;
            }
        }
        self.stats.dns_cache_misses += 1;
        if let Some(inf) = self.dns.inflight.get_mut(&q) {
            if !inf.waiters.contains(&waiter) {
                inf.waiters.push(waiter);
            }
            return;
        }
        self.dns.inflight.insert(
            q.clone(),
            Inflight {
                waiters: vec![waiter],
                first: now,
                backoff: self.cfg.dns_retry_initial,
            },
        );
        self.issue(q, now, out);
    }

    fn issue(&mut self, q: DnsQuery, now: Duration, out: &mut Vec<Action>) {
        self.dns.next_id += 1;
        let id = DnsQueryId(self.dns.next_id);
        self.dns.by_id.insert(id, q.clone());
        out.push(Action::Dns { id, query: q });
        // The engine does not trust the caller to answer every lookup: one that gets no
        // answer in time counts as a transient failure (retried with backoff, 7.13).
        if !self.cfg.dns_timeout.is_zero() {
            let t = self.arm_timer(
                TimerPurpose::DnsTimeout(id),
                now + self.cfg.dns_timeout,
                out,
            );
            self.dns.timeouts.insert(id, t);
        }
    }

    /// A lookup's timeout fired: a late answer is ignored and the lookup fails transiently.
    pub(crate) fn dns_timeout(&mut self, id: DnsQueryId, now: Duration, out: &mut Vec<Action>) {
        self.dns.timeouts.remove(&id);
        if self.dns.by_id.contains_key(&id) {
            self.stats.dns_timeouts += 1;
            self.on_dns(id, DnsResult::Transient, now, out);
        }
    }

    pub(crate) fn on_dns(
        &mut self,
        id: DnsQueryId,
        result: DnsResult,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(q) = self.dns.by_id.remove(&id) else {
            return; // unknown, or answered after its timeout
        };
        let timer = self.dns.timeouts.remove(&id);
        self.cancel_timer(timer, out);
        let give_up = self.cfg.context_idle_time;
        if result == DnsResult::Transient {
            if let Some(inf) = self.dns.inflight.get_mut(&q) {
                if now < inf.first + give_up {
                    // 7.13: "redone (using binary exponential backoff until it either
                    // succeeds or fails with a permanent error)".
                    let wait = inf.backoff;
                    inf.backoff = inf.backoff.saturating_mul(2).min(self.cfg.dns_retry_max);
                    let at = now + self.jittered(wait);
                    self.arm_timer(TimerPurpose::DnsRetry(q), at, out);
                    return;
                }
            }
        }
        let Some(inf) = self.dns.inflight.remove(&q) else {
            return;
        };
        let ttl = match &result {
            DnsResult::Ok { ttl, .. } => {
                Some(Duration::from_secs(u64::from(*ttl)).clamp(self.cfg.min_ttl, self.cfg.max_ttl))
            }
            DnsResult::Permanent => Some(self.cfg.negative_ttl),
            DnsResult::Transient => None,
        };
        if let Some(ttl) = ttl {
            let cap = self.cfg.dns_cache_size;
            self.dns
                .insert_bounded(q.clone(), (result.clone(), now + ttl), cap, now);
        }
        for w in inf.waiters {
            self.dispatch(w, &q, result.clone(), now, out);
        }
    }

    pub(crate) fn dns_retry(&mut self, q: DnsQuery, now: Duration, out: &mut Vec<Action>) {
        if self.dns.inflight.contains_key(&q) {
            self.issue(q, now, out);
        }
    }

    /// Expiry time of a cached answer (for the forward TTL of FQDN(peer)).
    fn cache_expiry(&self, q: &DnsQuery) -> Option<Duration> {
        self.dns.cache.get(q).map(|(_, t)| *t)
    }

    fn dispatch(
        &mut self,
        w: Waiter,
        q: &DnsQuery,
        res: DnsResult,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        match w {
            Waiter::Discovery(key) => self.discovery_step(key, q, res, now, out),
            Waiter::PeerName(id) => self.peer_name_result(id, res, now, out),
            Waiter::PeerForward(id) => self.peer_forward_result(id, q, res, now, out),
            Waiter::Verify(id, loc) => self.verify_result(id, loc, res, now, out),
        }
    }

    // ------------------------------------------------------------------ discovery

    /// A local host sends to `aid_peer` with no context (4.1 steps 1-3, 5.2; seed 002 6.4).
    /// `from_traffic`: started by a packet, so subject to the lookup rate and the
    /// destination cache bound ([`Engine::admit_discovery`]); an operator's command is not.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_discovery(
        &mut self,
        aid_local: Ipv6Addr,
        aid_peer: Ipv6Addr,
        piggyback: Option<Piggyback>,
        from_traffic: bool,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(host) = self.host_of(&aid_local) else {
            return;
        };
        let current = self
            .hosts
            .get(host.0 as usize)
            .is_some_and(|h| h.cfg.locators.contains(&aid_local));
        if !current || self.shutting_down || self.host_of(&aid_peer).is_some() {
            return;
        }
        let key = (host, aid_local, aid_peer);
        if self.by_aids.contains_key(&key) || self.discoveries.contains_key(&key) {
            return;
        }
        if let Some(until) = self.negative.get(&aid_peer) {
            if *until > now {
                return;
            }
        }
        if from_traffic && !self.admit_discovery(now) {
            // Over the rate or the cache is full of pending lookups: the packets keep
            // flowing as plain IPv6 and the dataplane reports the destination again later.
            return;
        }
        self.discoveries.insert(
            key,
            Discovery {
                piggyback,
                fqdn: None,
                names: VecDeque::new(),
            },
        );
        out.push(Action::Destination {
            aid_peer,
            status: DestinationStatus::Pending,
        });
        self.lookup(
            DnsQuery::Reverse(aid_peer),
            Waiter::Discovery(key),
            now,
            out,
        );
    }

    fn discovery_step(
        &mut self,
        key: (HostId, Ipv6Addr, Ipv6Addr),
        q: &DnsQuery,
        res: DnsResult,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let (host, aid_local, aid_peer) = key;
        if !self.discoveries.contains_key(&key) {
            return;
        }
        match (q, res) {
            (
                DnsQuery::Reverse(_),
                DnsResult::Ok {
                    answer: DnsAnswer::Reverse { names },
                    ..
                },
            ) if names.iter().any(|n| !normalize_name(n).is_empty()) => {
                // Several PTR names (16.2 "virtual hosting"): each is tried in answer order
                // until one lists the AID and has the marker.
                let mut names = ptr_names(&names, self.cfg.max_ptr_names);
                let Some(fqdn) = names.pop_front() else {
                    // Not reached: the guard saw a non-empty name.
                    self.discoveries.remove(&key);
                    return;
                };
                if let Some(d) = self.discoveries.get_mut(&key) {
                    d.fqdn = Some(fqdn.clone());
                    d.names = names;
                }
                self.lookup(DnsQuery::Forward(fqdn), Waiter::Discovery(key), now, out);
            }
            (
                DnsQuery::Forward(_),
                DnsResult::Ok {
                    answer: DnsAnswer::Forward { addrs, m6 },
                    ..
                },
            ) if m6 && addrs.contains(&aid_peer) => {
                let Some(d) = self.discoveries.remove(&key) else {
                    return;
                };
                let expires = self.cache_expiry(q);
                // PTR(AID) named the FQDN and the FQDN lists the AID: verified (3.1).
                let lsr = LocSet::from_slice(&addrs);
                self.start_initiator(
                    host,
                    aid_local,
                    aid_peer,
                    lsr,
                    d.fqdn,
                    expires,
                    true,
                    d.piggyback,
                    now,
                    out,
                );
            }
            (DnsQuery::Forward(_), _)
                if self
                    .discoveries
                    .get(&key)
                    .is_some_and(|d| !d.names.is_empty()) =>
            {
                // This name is not the M6 host with that address: try the next PTR name.
                let Some(d) = self.discoveries.get_mut(&key) else {
                    return;
                };
                let Some(fqdn) = d.names.pop_front() else {
                    return;
                };
                d.fqdn = Some(fqdn.clone());
                self.lookup(DnsQuery::Forward(fqdn), Waiter::Discovery(key), now, out);
            }
            (_, res) => {
                // Not M6, inconsistent DNS or a failure: plain IPv6, cached negatively for
                // the TTL of the answer (5.2 "negative caching").
                self.discoveries.remove(&key);
                let ttl = match res {
                    DnsResult::Ok { ttl, .. } => Duration::from_secs(u64::from(ttl))
                        .clamp(self.cfg.min_ttl, self.cfg.max_ttl),
                    _ => self.cfg.negative_ttl,
                };
                let until = now + ttl;
                self.remember_not_m6(aid_peer, until);
                out.push(Action::Destination {
                    aid_peer,
                    status: DestinationStatus::NotM6 { until },
                });
            }
        }
    }

    // ------------------------------------------------------------------ responder lookups

    /// 7.5 / 4.1 step 7: the responder looks up FQDN(peer) from AID(peer).
    pub(crate) fn start_peer_lookup(&mut self, id: u64, now: Duration, out: &mut Vec<Action>) {
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        if ctx.peer_name != PeerName::Unknown {
            return;
        }
        // Contexts made by CCRs cost DNS work: limited to a rate; meanwhile Ls(peer) = {AID}.
        let (rate, burst) = (
            self.cfg.responder_lookups_per_second,
            self.cfg.responder_lookups_burst,
        );
        if !self.responder_lookup_bucket.take(now, rate, burst) {
            // Stays Unknown: tried again on the context's next event (verify_all).
            self.stats.responder_lookups_limited += 1;
            return;
        }
        ctx.peer_name = PeerName::Pending;
        let aid = ctx.aid_peer;
        self.lookup(DnsQuery::Reverse(aid), Waiter::PeerName(id), now, out);
    }

    fn peer_name_result(&mut self, id: u64, res: DnsResult, now: Duration, out: &mut Vec<Action>) {
        let max_names = self.cfg.max_ptr_names;
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        if ctx.peer_name != PeerName::Pending {
            return;
        }
        match res {
            DnsResult::Ok {
                answer: DnsAnswer::Reverse { names },
                ..
            } if names.iter().any(|n| !normalize_name(n).is_empty()) => {
                // Several PTR names (16.2): tried in answer order, see peer_forward_result.
                let mut names = ptr_names(&names, max_names);
                let Some(fqdn) = names.pop_front() else {
                    // Not reached: the guard saw a non-empty name.
                    ctx.peer_name = PeerName::None;
                    return;
                };
                ctx.peer_name = PeerName::Known(fqdn.clone());
                ctx.peer_names = names;
                ctx.peer_fallback = None;
                self.lookup(DnsQuery::Forward(fqdn), Waiter::PeerForward(id), now, out);
            }
            DnsResult::Transient => {
                // Gave up retrying: try again later from scratch.
                ctx.peer_name = PeerName::Unknown;
            }
            _ => {
                // 7.13: permanent failure on the AID's reverse lookup: no FQDN; Lsr(peer) is
                // only the AID; we still accept any Lsl(peer) source.
                ctx.peer_name = PeerName::None;
                ctx.lsr_peer = Some(LocSet::single(ctx.aid_peer));
                self.after_lsr_change(id, now, out);
            }
        }
    }

    fn peer_forward_result(
        &mut self,
        id: u64,
        q: &DnsQuery,
        res: DnsResult,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let expires = self.cache_expiry(q);
        let max = self.cfg.max_peer_locators;
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        let PeerName::Known(fqdn) = &ctx.peer_name else {
            return;
        };
        let fqdn = fqdn.clone();
        if *q != DnsQuery::Forward(fqdn.clone()) {
            return;
        }
        // Virtual hosting (16.2): FQDN(peer) is the first PTR name whose AAAA set holds the
        // AID and that has the M6 marker, else the first that holds the AID.
        let best = matches!(&res, DnsResult::Ok { answer: DnsAnswer::Forward { addrs, m6 }, .. }
            if *m6 && addrs.contains(&ctx.aid_peer));
        if !best {
            if let DnsResult::Ok {
                answer: DnsAnswer::Forward { addrs, .. },
                ..
            } = &res
            {
                if addrs.contains(&ctx.aid_peer) && ctx.peer_fallback.is_none() {
                    ctx.peer_fallback = Some(fqdn.clone());
                }
            }
            let next = if ctx.peer_names.is_empty() {
                ctx.peer_fallback.take().filter(|f| *f != fqdn)
            } else {
                ctx.peer_names.pop_front()
            };
            if let Some(next) = next {
                ctx.peer_name = PeerName::Known(next.clone());
                self.lookup(DnsQuery::Forward(next), Waiter::PeerForward(id), now, out);
                return;
            }
        }
        ctx.peer_fallback = None;
        match res {
            DnsResult::Ok {
                answer: DnsAnswer::Forward { addrs, .. },
                ..
            } => {
                ctx.forward_expires = expires;
                if addrs.contains(&ctx.aid_peer) {
                    // PTR(AID) -> FQDN and FQDN -> AID: the AID is verified (3.1).
                    let mut lsr: LocSet = addrs.iter().take(max).copied().collect();
                    // Locators whose PTR failed permanently stay excluded (7.13).
                    let failed: Vec<Ipv6Addr> = lsr
                        .iter()
                        .filter(|l| {
                            **l != ctx.aid_peer
                                && matches!(self.dns.cache.get(&DnsQuery::Reverse(**l)),
                                    Some((DnsResult::Permanent, until)) if *until > now)
                        })
                        .copied()
                        .collect();
                    for l in &failed {
                        lsr.remove(l);
                    }
                    lsr.insert(ctx.aid_peer);
                    ctx.verified.insert(ctx.aid_peer);
                    // A locator gone from the DNS is no longer verified.
                    let keep: LocSet = ctx
                        .verified
                        .iter()
                        .filter(|l| lsr.contains(l))
                        .copied()
                        .collect();
                    ctx.verified = keep;
                    ctx.lsr_peer = Some(lsr);
                } else {
                    // Forward and reverse disagree: no agility, only the AID (7.13).
                    ctx.lsr_peer = Some(LocSet::single(ctx.aid_peer));
                }
            }
            DnsResult::Permanent => {
                ctx.lsr_peer = Some(LocSet::single(ctx.aid_peer));
            }
            DnsResult::Transient | DnsResult::Ok { .. } => return,
        }
        self.after_lsr_change(id, now, out);
    }

    /// Lsr(peer) changed: new destinations may need verification, Lp(peer) may change, and
    /// the peer may need an UR (7.7).
    fn after_lsr_change(&mut self, id: u64, now: Duration, out: &mut Vec<Action>) {
        self.sync(id, out);
        self.verify_all(id, now, out);
        self.maybe_send_ur(id, now, out);
    }

    // ------------------------------------------------------------------ locator verification

    /// Verifies every locator of Ls(peer) (or Lsr(peer) before the peer announced its Lsl)
    /// that is not verified yet: PTR pointing back at FQDN(peer) (3.1, 7.13).
    pub(crate) fn verify_all(&mut self, id: u64, now: Duration, out: &mut Vec<Action>) {
        let max = self.cfg.max_peer_locators;
        let Some(ctx) = self.contexts.get(&id) else {
            return;
        };
        if !matches!(ctx.peer_name, PeerName::Known(_)) {
            return;
        }
        let Some(lsr) = &ctx.lsr_peer else { return };
        let candidates: Vec<Ipv6Addr> = match &ctx.lsl_peer {
            Some(_) => ctx.ls_peer().iter().copied().collect(),
            None => lsr.iter().copied().collect(),
        };
        let todo: Vec<Ipv6Addr> = candidates
            .into_iter()
            .filter(|l| lsr.contains(l) && !ctx.verified.contains(l))
            .take(max)
            .collect();
        for l in todo {
            self.lookup(DnsQuery::Reverse(l), Waiter::Verify(id, l), now, out);
        }
    }

    /// 7.11 step 3b: a new source locator seen in data gets verified first.
    pub(crate) fn verify_locator(
        &mut self,
        id: u64,
        loc: Ipv6Addr,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(ctx) = self.contexts.get(&id) else {
            return;
        };
        if !matches!(ctx.peer_name, PeerName::Known(_)) {
            if ctx.peer_name == PeerName::Unknown {
                self.start_peer_lookup(id, now, out);
            }
            return;
        }
        if ctx.lsr_peer.as_ref().is_some_and(|l| l.contains(&loc)) {
            self.lookup(DnsQuery::Reverse(loc), Waiter::Verify(id, loc), now, out);
        } else {
            self.refresh_forward_if_expired(id, now, out);
        }
    }

    /// 4.5 / 7.8: when the forward lookup's TTL has run out, look FQDN(peer) up again.
    pub(crate) fn refresh_forward_if_expired(
        &mut self,
        id: u64,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(ctx) = self.contexts.get(&id) else {
            return;
        };
        let PeerName::Known(fqdn) = &ctx.peer_name else {
            return;
        };
        if ctx.forward_expires.is_some_and(|t| t > now) {
            return;
        }
        let q = DnsQuery::Forward(fqdn.clone());
        self.lookup(q, Waiter::PeerForward(id), now, out);
    }

    fn verify_result(
        &mut self,
        id: u64,
        loc: Ipv6Addr,
        res: DnsResult,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        let PeerName::Known(fqdn) = &ctx.peer_name else {
            return;
        };
        match res {
            DnsResult::Ok {
                answer: DnsAnswer::Reverse { names },
                ..
            } => {
                let in_forward = ctx.lsr_peer.as_ref().is_some_and(|l| l.contains(&loc));
                if in_forward && names_contain(&names, fqdn) {
                    ctx.verified.insert(loc);
                    self.sync(id, out);
                }
            }
            DnsResult::Permanent if loc != ctx.aid_peer => {
                // 7.13: "exclude those locator(s) from the set": the locator leaves Lsr(peer)
                // (so Ls(peer)) and the reduced Lsr is signalled to the peer in a UR. While
                // the negative answer is cached a forward refresh keeps it out.
                let removed = match ctx.lsr_peer.as_mut() {
                    Some(l) if l.contains(&loc) => {
                        l.remove(&loc);
                        true
                    }
                    _ => false,
                };
                ctx.verified.remove(&loc);
                if removed {
                    self.stats.locators_excluded += 1;
                    self.sync(id, out);
                    self.maybe_send_ur(id, now, out);
                }
            }
            _ => {}
        }
    }
}
