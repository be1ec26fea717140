//! Context establishment: INIT, CC, CCR, CONF (seed 001 sections 4.1, 4.3, 7.2-7.6) and
//! retransmission (section 7.10).

use std::net::Ipv6Addr;
use std::time::Duration;

use proto::cc::{self, CcInput, CcPolicy, Locators};
use proto::wire::m6::{Cc, Conf, Init, Message, Piggyback, Repr};

use super::context::{Context, PeerName, Retx, RetxKind, State};
use super::locset::LocSet;
use super::{Action, DestinationStatus, Engine, HostId, Notice, TimerPurpose};

impl Engine {
    // ------------------------------------------------------------------ context life

    /// Creates a context with a fresh F(local) (section 3.2: unique per receiving host).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_context(
        &mut self,
        host: HostId,
        aid_local: Ipv6Addr,
        aid_peer: Ipv6Addr,
        initiator: bool,
        state: State,
        now: Duration,
        out: &mut Vec<Action>,
    ) -> Option<u64> {
        let h = self.hosts.get_mut(host.0 as usize)?;
        let Some(f_local) = h.labels.allocate(&mut self.rng, now) else {
            out.push(Action::Notice(Notice::FlowLabelsExhausted(host)));
            return None;
        };
        let id = self.next_ctx;
        self.next_ctx += 1;
        let lsl_local = self.announced_lsl(host, aid_local);
        let ctx = Context {
            host,
            state,
            initiator,
            aid_local,
            aid_peer,
            f_local,
            f_peer: None,
            lsl_local,
            lsl_local_withdrawn: LocSet::new(),
            lsr_local: None,
            sets_from_ur: false,
            ur_applied: Vec::new(),
            lsl_peer: None,
            lsr_peer: None,
            lsr_peer_told: None,
            lsr_peer_maybe: Vec::new(),
            verified: LocSet::new(),
            lp_peer: None,
            lp_candidate: None,
            peer_name: PeerName::Unknown,
            peer_names: std::collections::VecDeque::new(),
            peer_fallback: None,
            forward_expires: None,
            peer_birthday: None,
            nonce: 0,
            retx: None,
            idle_timer: None,
            last_rx: now,
            last_peer_src: aid_peer,
            last_local_dst: aid_local,
            held_ulp: None,
            ulp_discarded: false,
            ccr_answered: None,
            cc_received: None,
            last_ccr: None,
            ur_pending: false,
            ur_sent: None,
            lsl_local_acked: None,
            established_once: false,
            closing_deadline: None,
            installed: None,
            created: now,
        };
        let key = ctx.key();
        self.contexts.insert(id, ctx);
        self.by_flow.insert(key, id);
        self.by_aids.insert((host, aid_local, aid_peer), id);
        self.stats.contexts_created += 1;
        Some(id)
    }

    /// Records F(peer), keeping the UC index (section 7.12) in step.
    pub(crate) fn set_f_peer(&mut self, id: u64, f: super::FlowLabel) {
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        if ctx.f_peer == Some(f) {
            return;
        }
        if let Some(old) = ctx.f_peer.replace(f) {
            if let Some(v) = self.by_peer_flow.get_mut(&old) {
                v.retain(|x| *x != id);
                if v.is_empty() {
                    self.by_peer_flow.remove(&old);
                }
            }
        }
        self.by_peer_flow.entry(f).or_default().push(id);
    }

    /// Brings the dataplane in line with the context: picks Lp(peer) among the verified
    /// locators and installs the tuple if it changed. Every path that changes a context ends
    /// here, so the dataplane never holds an unverified destination (section 7.13).
    pub(crate) fn sync(&mut self, id: u64, out: &mut Vec<Action>) {
        let Some(host) = self.contexts.get(&id).map(|c| c.host) else {
            return;
        };
        let rw = self.host_rewrite_ok(host);
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        ctx.refresh_lp();
        let dp = ctx.dataplane(rw);
        if ctx.installed.as_ref() != Some(&dp) {
            ctx.installed = Some(dp.clone());
            out.push(Action::Install(dp));
        }
    }

    /// Discards a context: dataplane entry, timers, indices; F(local) goes to quarantine.
    pub(crate) fn discard(&mut self, id: u64, now: Duration, out: &mut Vec<Action>) {
        let Some(ctx) = self.contexts.remove(&id) else {
            return;
        };
        let key = ctx.key();
        self.by_flow.remove(&key);
        if self.by_aids.get(&(ctx.host, ctx.aid_local, ctx.aid_peer)) == Some(&id) {
            self.by_aids
                .remove(&(ctx.host, ctx.aid_local, ctx.aid_peer));
        }
        if let Some(f) = ctx.f_peer {
            if let Some(v) = self.by_peer_flow.get_mut(&f) {
                v.retain(|x| *x != id);
                if v.is_empty() {
                    self.by_peer_flow.remove(&f);
                }
            }
        }
        self.cancel_timer(ctx.retx.as_ref().map(|r| r.timer), out);
        self.cancel_timer(ctx.idle_timer, out);
        let quarantine = now + self.cfg.label_quarantine;
        if let Some(h) = self.hosts.get_mut(ctx.host.0 as usize) {
            h.labels.release(ctx.f_local, quarantine);
        }
        if ctx.installed.is_some() {
            out.push(Action::Remove(key));
        }
        out.push(Action::Notice(Notice::Discarded(key)));
        self.stats.contexts_discarded += 1;
        if !ctx.established_once {
            self.stats.handshakes_failed += 1;
        }
    }

    /// Marks a context ESTABLISHED: stops the handshake retransmission, arms the idle timer
    /// (appendix A), resends a discarded piggybacked packet, and sends a pending UR.
    pub(crate) fn become_established(&mut self, id: u64, now: Duration, out: &mut Vec<Action>) {
        let idle = self.cfg.context_idle_time;
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        if ctx.is_established() || ctx.state == State::Closing {
            return;
        }
        ctx.state = State::Established;
        ctx.last_rx = now;
        if !ctx.established_once {
            ctx.established_once = true;
            self.stats.handshakes_completed += 1;
            if self.handshake_durations.len() < super::MAX_HANDSHAKE_DURATIONS {
                self.handshake_durations
                    .push(now.saturating_sub(ctx.created));
            }
        }
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        let retx = ctx.retx.take().map(|r| r.timer);
        let old_idle = ctx.idle_timer.take();
        let key = ctx.key();
        let resend = if ctx.ulp_discarded {
            ctx.held_ulp.take()
        } else {
            None
        };
        ctx.held_ulp = None;
        self.cancel_timer(retx, out);
        self.cancel_timer(old_idle, out);
        let t = self.arm_timer(TimerPurpose::Idle(id), now + idle, out);
        if let Some(ctx) = self.contexts.get_mut(&id) {
            ctx.idle_timer = Some(t);
        }
        self.sync(id, out);
        out.push(Action::Notice(Notice::Established(key)));
        if let Some(p) = resend {
            out.push(Action::ResendUlp { key, piggyback: p });
        }
        self.maybe_send_ur(id, now, out);
    }

    // ------------------------------------------------------------------ 7.2 sending INIT

    /// Starts a context as initiator after discovery found the peer M6 capable with
    /// Lsr(peer) (section 4.1 steps 1-3, 7.2).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_initiator(
        &mut self,
        host: HostId,
        aid_local: Ipv6Addr,
        aid_peer: Ipv6Addr,
        lsr_peer: LocSet,
        fqdn: Option<String>,
        forward_expires: Option<Duration>,
        aid_verified: bool,
        piggyback: Option<Piggyback>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        if self.shutting_down || self.by_aids.contains_key(&(host, aid_local, aid_peer)) {
            return;
        }
        // 7.2: "The initiator must verify that the AIDs are part of the locator sets".
        let own = self
            .hosts
            .get(host.0 as usize)
            .map(|h| h.cfg.locators.contains(&aid_local))
            .unwrap_or(false);
        if !own || !lsr_peer.contains(&aid_peer) {
            return;
        }
        let Some(id) = self.new_context(host, aid_local, aid_peer, true, State::InitSent, now, out)
        else {
            return;
        };
        let nonce = self.rng.next_u64();
        let max = self.cfg.max_peer_locators;
        if let Some(ctx) = self.contexts.get_mut(&id) {
            let mut lsr: LocSet = lsr_peer.iter().take(max).copied().collect();
            lsr.insert(aid_peer);
            ctx.lsr_peer = Some(lsr.clone());
            ctx.lsr_peer_told = Some(lsr);
            ctx.peer_name = match fqdn {
                Some(n) => PeerName::Known(n),
                None => PeerName::None,
            };
            ctx.forward_expires = forward_expires;
            if aid_verified {
                ctx.verified.insert(aid_peer);
            }
            ctx.nonce = nonce;
            ctx.held_ulp = piggyback;
        }
        out.push(Action::Destination {
            aid_peer,
            status: DestinationStatus::M6,
        });
        self.start_retx(id, RetxKind::Init, now, out);
        // Receive path ready before the peer can send (its CONF/CCR carry our F(local)).
        self.sync(id, out);
        self.verify_all(id, now, out);
    }

    /// INIT for retransmission `attempt`: the first goes AID to AID (7.2: "The first INIT
    /// message is sent to the destination locator which is the AID"); later ones walk
    /// through the other destination locators, then the other source locators ("a different
    /// destination locator should be used ... try different source locators as well").
    fn build_init(&self, ctx: &Context, attempt: u32) -> Option<(Ipv6Addr, Ipv6Addr, Repr)> {
        let mut dsts = vec![ctx.aid_peer];
        if let Some(lsr) = &ctx.lsr_peer {
            dsts.extend(lsr.iter().filter(|l| **l != ctx.aid_peer));
        }
        let mut srcs = vec![ctx.aid_local];
        srcs.extend(ctx.lsl_local.iter().filter(|l| **l != ctx.aid_local));
        let k = attempt as usize;
        let dst = *dsts.get(k % dsts.len())?;
        let src = *srcs.get((k / dsts.len()) % srcs.len())?;
        // A piggybacked packet can only be delivered if the INIT's source is the AID and is
        // not rewritten in flight (7.3), so such an INIT goes with "no rewrite".
        let piggyback = if src == ctx.aid_local {
            ctx.held_ulp.clone()
        } else {
            None
        };
        let rewrite_ok = self.host_rewrite_ok(ctx.host) && piggyback.is_none();
        let repr = Repr {
            rewrite_ok,
            nonce: ctx.nonce,
            message: Message::Init(Init {
                aid_initiator: ctx.aid_local,
                aid_responder: ctx.aid_peer,
                lsl_initiator: ctx.lsl_local.to_vec(),
                lsr_responder: ctx
                    .lsr_peer_told
                    .as_ref()
                    .map(|s| s.to_vec())
                    .unwrap_or_default(),
                flow_label: ctx.f_local,
                birthday: self.birthday,
            }),
            piggyback,
        };
        Some((src, dst, repr))
    }

    /// The message a retransmission of `kind` sends now, rebuilt from the current state.
    fn build_retx(
        &mut self,
        id: u64,
        kind: RetxKind,
        attempt: u32,
    ) -> Option<(Ipv6Addr, Ipv6Addr, Repr)> {
        let ctx = self.contexts.get(&id)?;
        match kind {
            RetxKind::Init => self.build_init(ctx, attempt),
            RetxKind::Ccr => ctx.last_ccr.clone(),
            RetxKind::Ur => self.build_ur(ctx, attempt),
            RetxKind::Close => self.build_close(ctx, attempt),
        }
    }

    /// Sends the first copy of a request and arms its retransmission timer (section 7.10).
    pub(crate) fn start_retx(
        &mut self,
        id: u64,
        kind: RetxKind,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let old = self
            .contexts
            .get_mut(&id)
            .and_then(|c| c.retx.take())
            .map(|r| r.timer);
        self.cancel_timer(old, out);
        if let Some((src, dst, repr)) = self.build_retx(id, kind, 0) {
            self.send(src, dst, repr, out);
        }
        let rto = self.cfg.initial_rto;
        let at = now + self.jittered(rto);
        let timer = self.arm_timer(TimerPurpose::Retransmit(id), at, out);
        if let Some(ctx) = self.contexts.get_mut(&id) {
            ctx.retx = Some(Retx {
                kind,
                first: now,
                rto,
                attempts: 1,
                timer,
            });
        }
    }

    /// A retransmission timer fired: resend with the interval doubled, or give up after
    /// CONTEXT_IDLE_TIME (section 7.10) / X+MSL for CLOSE (appendix A step 4).
    pub(crate) fn on_retransmit(
        &mut self,
        id: u64,
        timer: super::TimerId,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let idle = self.cfg.context_idle_time;
        let cc_lifetime = self.cfg.cc_lifetime;
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        let Some(retx) = ctx.retx.as_ref() else {
            return;
        };
        if retx.timer != timer {
            return;
        }
        let kind = retx.kind;
        let limit = match kind {
            RetxKind::Close => ctx.closing_deadline.unwrap_or(retx.first + idle),
            _ => retx.first + idle,
        };
        if now >= limit {
            ctx.retx = None;
            let key = ctx.key();
            match kind {
                RetxKind::Init | RetxKind::Ccr => {
                    // The peer is unreachable or not M6 after all: plain IPv6 for a while,
                    // and keep the state CLOSING so late answers find it (appendix A).
                    let aid_peer = ctx.aid_peer;
                    let until = now + self.cfg.negative_ttl;
                    self.remember_not_m6(aid_peer, until);
                    out.push(Action::Destination {
                        aid_peer,
                        status: DestinationStatus::NotM6 { until },
                    });
                    out.push(Action::Notice(Notice::GaveUp(key)));
                    self.enter_closing(id, now, out);
                }
                RetxKind::Ur => {
                    // Unacknowledged: the peer may have applied the UR and only the UA was
                    // lost (7.9), or never got it. Both views stay possible until a later
                    // UR is acknowledged; try again later (the idle timer re-evaluates).
                    // No copy of this UR is still in flight (the last one was sent at least
                    // MSL ago, below), so it cannot overtake the next UR.
                    if ctx.state == State::UrSent {
                        ctx.state = State::Established;
                    }
                    if let Some((lsr, local, lsl)) = ctx.ur_sent.take() {
                        ctx.ur_pending |= local;
                        ctx.peer_may_hold(lsr);
                        // The peer holds the old Lsl(local) or this one: send only from
                        // locators in both.
                        if let Some(acked) = ctx.lsl_local_acked.as_mut() {
                            let both: Vec<Ipv6Addr> =
                                acked.iter().filter(|l| lsl.contains(l)).copied().collect();
                            *acked = LocSet::from_slice(&both);
                        }
                    }
                    self.sync(id, out);
                }
                RetxKind::Close => self.discard(id, now, out),
            }
            return;
        }
        // A CC ages out at the responder (proto::cc lifetime): a CCR older than that would be
        // dropped, so go back to INIT for a fresh CC.
        let mut kind = kind;
        if kind == RetxKind::Ccr && ctx.cc_received.is_some_and(|t| now >= t + cc_lifetime) {
            ctx.state = State::InitSent;
            ctx.cc_received = None;
            ctx.last_ccr = None;
            kind = RetxKind::Init;
        }
        let Some(retx) = ctx.retx.as_mut() else {
            return;
        };
        retx.kind = kind;
        let attempt = retx.attempts;
        retx.attempts += 1;
        retx.rto = retx.rto.saturating_mul(2).min(self.cfg.max_rto);
        let rto = retx.rto;
        self.stats.retransmissions += 1;
        if let Some((src, dst, repr)) = self.build_retx(id, kind, attempt) {
            super::bump(&mut self.stats.retransmissions_by_code, repr.message.code());
            self.send(src, dst, repr, out);
        }
        let mut at = (now + self.jittered(rto)).min(limit.max(now + Duration::from_millis(1)));
        if kind == RetxKind::Ur && at >= limit {
            // The last copy: give up only once it cannot arrive any more (MSL), so that a
            // late copy of an abandoned UR, which the peer has never seen and so cannot
            // recognise as old, never lands after the next UR and undoes it (7.8, 7.10).
            at = at.max(now + self.cfg.msl);
        }
        let t = self.arm_timer(TimerPurpose::Retransmit(id), at, out);
        if let Some(r) = self.contexts.get_mut(&id).and_then(|c| c.retx.as_mut()) {
            r.timer = t;
        }
    }

    // ------------------------------------------------------------------ 7.3 INIT received

    /// The local host an INIT or CCR is for: the one owning AID(responder), reached at one
    /// of its own locators (7.3, 7.5). Anything else is dropped and counted.
    fn responder_host(&mut self, aid_responder: &Ipv6Addr, dst: &Ipv6Addr) -> Option<HostId> {
        let host = self.host_of(aid_responder);
        if host.is_none() || self.host_of(dst) != host {
            self.stats.dropped += 1;
            return None;
        }
        host
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_init(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        nonce: u64,
        m: Init,
        piggyback: Option<Piggyback>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(host) = self.responder_host(&m.aid_responder, &dst) else {
            return;
        };
        if let Some(&id) = self.by_aids.get(&(host, m.aid_responder, m.aid_initiator)) {
            self.init_for_existing(id, src, dst, nonce, m, piggyback, now, out);
            return;
        }
        // No context: answer statelessly with a CC (sections 3.3.2, 4.1 step 5, 7.3).
        if self.shutting_down {
            return;
        }
        // Each CC costs a MAC and a packet: a flood of INITs is answered only up to a rate.
        let (rate, burst) = (self.cfg.cc_per_second, self.cfg.cc_burst);
        if !self.cc_bucket.take(now, rate, burst) {
            self.stats.cc_rate_limited += 1;
            self.stats.dropped += 1;
            return;
        }
        let lsl_responder = self.announced_lsl(host, m.aid_responder);
        let deliver = src == m.aid_initiator;
        let ulp_discarded = piggyback.is_some() && !deliver;
        let lsl_i = LocSet::from_slice(&m.lsl_initiator);
        let lsr_r = LocSet::from_slice(&m.lsr_responder);
        let input = CcInput {
            init_src: src,
            init_dst: dst,
            aid_initiator: m.aid_initiator,
            aid_responder: m.aid_responder,
            initiator_nonce: nonce,
            initiator_flow_label: m.flow_label,
            initiator_birthday: m.birthday,
            responder_birthday: self.birthday,
            ulp_discarded,
            lsl_initiator: Locators::from_addrs(lsl_i.as_slice()),
            lsr_responder: Locators::from_addrs(lsr_r.as_slice()),
            lsl_responder: Locators::from_addrs(lsl_responder.as_slice()),
        };
        let state = cc::generate(&self.cc_key, &input, cc_clock(now));
        if let Some(p) = piggyback {
            if deliver {
                // Safe: the INIT came from AID(initiator), so any ULP answer goes to a
                // locator that sent this packet (7.3).
                out.push(Action::DeliverUlp {
                    host,
                    src: m.aid_initiator,
                    dst: m.aid_responder,
                    piggyback: p,
                });
            }
        }
        let repr = Repr {
            rewrite_ok: self.host_rewrite_ok(host),
            nonce,
            message: Message::Cc(Cc {
                aid_initiator: m.aid_initiator,
                aid_responder: m.aid_responder,
                lsl_initiator: lsl_i.to_vec(),
                lsr_responder: lsr_r.to_vec(),
                lsl_responder: lsl_responder.to_vec(),
                state,
            }),
            piggyback: None,
        };
        // "The CC message is sent to the source locator of the INIT, even if the peer AID is
        // different" (4.1 step 5).
        self.send(dst, src, repr, out);
    }

    /// What the dataplane's workers need to answer INITs with CCs themselves (seed 001
    /// sections 3.3.2 and 7.3; DESIGN section 5): the current key, the birthday counter,
    /// the clock at `now` (the CC clock is it in whole seconds, `cc_clock`), the rate limit
    /// (per worker), and each host's locators as `on_init` uses
    /// them. A CC made from this verifies in `on_ccr` exactly as one made here.
    pub fn cc_responder(&self, now: Duration) -> proto::channel::CcResponderMsg {
        let key = self.cc_key.current();
        let hosts = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| proto::channel::ResponderHost {
                locators: h.cfg.locators.clone(),
                dns_verifiable: h.cfg.dns_verifiable,
                rewrite_ok: self.host_rewrite_ok(HostId(i as u32)),
            })
            .collect();
        proto::channel::CcResponderMsg {
            key_serial: key.serial(),
            secret: *key.secret(),
            birthday: self.birthday,
            clock_ms: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
            per_second: self.cfg.cc_per_second,
            hosts,
        }
    }

    /// 7.3 with an existing context for the AID pair (crossing INITs 4.3.1, a re-INIT after
    /// the peer lost its state 5.2, or a duplicate).
    #[allow(clippy::too_many_arguments)]
    fn init_for_existing(
        &mut self,
        id: u64,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        nonce: u64,
        m: Init,
        piggyback: Option<Piggyback>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        // Checks of 7.3: state INIT-SENT or ESTABLISHED (UR-SENT is established, 7.1);
        // source in Lsl(peer); destination in Lsl(host). A context in CCR-SENT ignores the
        // INIT: the CONF for our CCR will tell the peer our flow label (4.3.2 step 5).
        let state_ok = matches!(
            ctx.state,
            State::InitSent | State::Established | State::UrSent
        );
        if !state_ok || !ctx.accept_peer().contains(&src) || !ctx.lsl_local.contains(&dst) {
            self.stats.dropped += 1;
            return;
        }
        // A late copy of an INIT whose context already sent us an UR must not undo it; an
        // INIT from a new peer context (5.2) starts afresh (`handshake_sets_apply`). A
        // crossing INIT (4.3.1) in INIT-SENT has no F(peer) to compare yet.
        if ctx.handshake_sets_apply(m.flow_label, m.birthday) {
            let mut lsl_peer = LocSet::from_slice(&m.lsl_initiator);
            lsl_peer.insert(ctx.aid_peer);
            ctx.lsl_peer = Some(lsl_peer);
            ctx.lsr_local = Some(LocSet::from_slice(&m.lsr_responder));
        }
        ctx.peer_birthday = Some(m.birthday);
        ctx.last_rx = now;
        ctx.last_peer_src = src;
        ctx.last_local_dst = dst;
        // The CONF tells the peer our view Lsr(peer) when we have one (not known to be
        // applied: see `lsr_peer_maybe`).
        let lsr_told = ctx.lsr_peer.clone();
        if let Some(lsr) = &lsr_told {
            ctx.peer_may_hold(lsr.clone());
        }
        let (host, aid_local, aid_peer, f_local) =
            (ctx.host, ctx.aid_local, ctx.aid_peer, ctx.f_local);
        let lsl_local = ctx.lsl_local.clone();
        self.set_f_peer(id, m.flow_label);
        if let Some(p) = piggyback {
            out.push(Action::DeliverUlp {
                host,
                src: aid_peer,
                dst: aid_local,
                piggyback: p,
            });
        }
        let repr = Repr {
            rewrite_ok: self.host_rewrite_ok(host),
            nonce,
            message: Message::Conf(Conf {
                aid_initiator: aid_peer,
                aid_responder: aid_local,
                flow_label: f_local,
                birthday: self.birthday,
                lsr_initiator: lsr_told.map(|s| s.to_vec()),
                lsl_responder: Some(lsl_local.to_vec()),
            }),
            piggyback: None,
        };
        self.send(dst, src, repr, out);
        self.sync(id, out);
    }

    // ------------------------------------------------------------------ 7.4 CC received

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_cc(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        nonce: u64,
        m: Cc,
        piggyback: Option<Piggyback>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(host) = self.host_of(&m.aid_initiator) else {
            self.stats.dropped += 1;
            return;
        };
        let Some(&id) = self.by_aids.get(&(host, m.aid_initiator, m.aid_responder)) else {
            self.stats.dropped += 1;
            return;
        };
        let rw = self.host_rewrite_ok(host);
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        // 7.4: no context, not INIT-SENT, or nonce mismatch -> silently dropped.
        if ctx.state != State::InitSent
            || nonce != ctx.nonce
            || m.state.initiator_nonce != ctx.nonce
            || m.state.initiator_flow_label != ctx.f_local
        {
            self.stats.dropped += 1;
            return;
        }
        let mut lsl_peer = LocSet::from_slice(&m.lsl_responder);
        lsl_peer.insert(ctx.aid_peer);
        ctx.lsl_peer = Some(lsl_peer);
        ctx.peer_birthday = Some(m.state.responder_birthday);
        ctx.state = State::CcrSent;
        ctx.cc_received = Some(now);
        ctx.last_rx = now;
        ctx.last_peer_src = src;
        ctx.last_local_dst = dst;
        // The peer received our INIT on its AID and answered where we are: the AID is
        // return routable (7.13).
        if m.state.init_dst == ctx.aid_peer {
            ctx.verified.insert(ctx.aid_peer);
        }
        // Which INIT the CC answers decides the fate of a held piggyback: only INITs sent
        // from AID(local) carry it (`build_init`), and the CC echoes that INIT's source. If
        // the answered INIT did not carry it (the ones that did were lost), or the responder
        // discarded it, the packet is kept and resent once established (ResendUlp).
        if ctx.held_ulp.is_some() {
            let carried = m.state.init_src == ctx.aid_local;
            if m.state.ulp_discarded || !carried {
                ctx.ulp_discarded = true;
            } else {
                ctx.held_ulp = None;
                ctx.ulp_discarded = false;
            }
        }
        // Piggyback (7.4): delivered when the addresses are the AIDs, or within the locator
        // sets known to the initiator; otherwise silently ignored.
        let deliver = (src == ctx.aid_peer && dst == ctx.aid_local)
            || (ctx.ls_peer().contains(&src) && ctx.lsl_local.contains(&dst));
        let (aid_local, aid_peer) = (ctx.aid_local, ctx.aid_peer);
        // The CCR echoes the CC and reuses the INIT nonce (7.4 allows either).
        let ccr = Repr {
            rewrite_ok: rw,
            nonce: ctx.nonce,
            message: Message::Ccr(m),
            piggyback: None,
        };
        // "The message is sent to the source locator for the CC message" (4.1 step 6).
        ctx.last_ccr = Some((dst, src, ccr));
        if let (Some(p), true) = (piggyback, deliver) {
            out.push(Action::DeliverUlp {
                host,
                src: aid_peer,
                dst: aid_local,
                piggyback: p,
            });
        }
        self.start_retx(id, RetxKind::Ccr, now, out);
        self.sync(id, out);
        self.verify_all(id, now, out);
    }

    // ------------------------------------------------------------------ 7.5 CCR received

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_ccr(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        nonce: u64,
        m: Cc,
        piggyback: Option<Piggyback>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(host) = self.responder_host(&m.aid_responder, &dst) else {
            return;
        };
        let existing = self
            .by_aids
            .get(&(host, m.aid_responder, m.aid_initiator))
            .copied();
        // A retransmitted CCR whose CONF was lost gets the same CONF again (7.10: the CCR is
        // retransmitted "until a CONF message with a matching nonce is received").
        if let Some(id) = existing {
            let dup = self.contexts.get(&id).is_some_and(|c| {
                c.ccr_answered == Some((nonce, m.state.initiator_flow_label))
                    && c.accept_peer().contains(&src)
                    && c.lsl_local.contains(&dst)
            });
            if dup {
                self.send_conf_for_ccr(id, src, dst, nonce, now, out);
                return;
            }
        }
        // 7.5: timestamp recent, key known, MAC valid; else silently dropped.
        let policy = CcPolicy {
            lifetime_secs: u32::try_from(self.cfg.cc_lifetime.as_secs()).unwrap_or(u32::MAX),
            ..CcPolicy::default()
        };
        let verified = match cc::check(&self.cc_key, &m.echo(), &src, &dst, cc_clock(now), &policy)
        {
            Ok(v) => v,
            Err(_) => {
                self.stats.dropped += 1;
                return;
            }
        };
        let s = m.state;
        if let Some(id) = existing {
            // Second form of concurrent establishment (4.3.2): we sent an INIT too.
            let Some(ctx) = self.contexts.get_mut(&id) else {
                return;
            };
            if ctx.state != State::InitSent
                || !(ctx.accept_peer().contains(&src) || m.lsl_initiator.contains(&src))
                || !ctx.lsl_local.contains(&dst)
            {
                self.stats.dropped += 1;
                return;
            }
            if ctx.handshake_sets_apply(s.initiator_flow_label, s.initiator_birthday) {
                let mut lsl_peer = LocSet::from_slice(&m.lsl_initiator);
                lsl_peer.insert(ctx.aid_peer);
                ctx.lsl_peer = Some(lsl_peer);
                ctx.lsr_local = Some(LocSet::from_slice(&m.lsr_responder));
            }
            ctx.peer_birthday = Some(s.initiator_birthday);
            // The peer (CCR-SENT) ignores our INIT, so the Lsr(peer) it carried is not
            // known to the peer.
            ctx.lsr_peer_told = None;
            if verified.aid_was_locator {
                ctx.verified.insert(ctx.aid_peer);
            }
            self.set_f_peer(id, s.initiator_flow_label);
            self.ccr_piggyback(id, piggyback, out);
            self.send_conf_for_ccr(id, src, dst, nonce, now, out);
            // We have F(peer) and the peer has a context (it sent the CCR), so the context is
            // established here; our INIT retransmission stops (the peer, in CCR-SENT, ignores
            // it anyway, 4.3.2 step 5).
            self.become_established(id, now, out);
            return;
        }
        if self.shutting_down {
            return;
        }
        // No context: create it from the CCR's state (4.1 step 7).
        let Some(id) = self.new_context(
            host,
            m.aid_responder,
            m.aid_initiator,
            false,
            State::Established,
            now,
            out,
        ) else {
            return;
        };
        let idle = self.cfg.context_idle_time;
        if let Some(ctx) = self.contexts.get_mut(&id) {
            let mut lsl_peer = LocSet::from_slice(&m.lsl_initiator);
            lsl_peer.insert(ctx.aid_peer);
            ctx.lsl_peer = Some(lsl_peer);
            let mut lsl_local = LocSet::from_slice(&m.lsl_responder);
            lsl_local.insert(ctx.aid_local);
            ctx.lsl_local = lsl_local;
            if !ctx.sets_from_ur {
                ctx.lsr_local = Some(LocSet::from_slice(&m.lsr_responder));
            }
            ctx.peer_birthday = Some(s.initiator_birthday);
            // 7.13: "The responder starts off with Lsv(initiator) containing only the AID, if
            // and only if the AID was used as a locator during the context establishment."
            if verified.aid_was_locator {
                ctx.verified.insert(ctx.aid_peer);
            }
        }
        self.set_f_peer(id, s.initiator_flow_label);
        self.ccr_piggyback(id, piggyback, out);
        self.send_conf_for_ccr(id, src, dst, nonce, now, out);
        let t = self.arm_timer(TimerPurpose::Idle(id), now + idle, out);
        let key = match self.contexts.get_mut(&id) {
            Some(ctx) => {
                ctx.idle_timer = Some(t);
                ctx.key()
            }
            None => return,
        };
        self.sync(id, out);
        out.push(Action::Notice(Notice::Established(key)));
        // 7.5 / 4.1 step 7: verify the initiator in the DNS asynchronously.
        self.start_peer_lookup(id, now, out);
    }

    /// 7.5: a ULP packet on a CCR that created or updated a context is passed up whatever
    /// the addresses, since answers go only to verified locators.
    fn ccr_piggyback(&mut self, id: u64, piggyback: Option<Piggyback>, out: &mut Vec<Action>) {
        if let (Some(p), Some(ctx)) = (piggyback, self.contexts.get(&id)) {
            out.push(Action::DeliverUlp {
                host: ctx.host,
                src: ctx.aid_peer,
                dst: ctx.aid_local,
                piggyback: p,
            });
        }
    }

    /// The CONF answering a CCR (7.5): nonce of the CCR, our flow label and birthday, and
    /// Lsr(initiator) when our DNS lookup already produced it.
    fn send_conf_for_ccr(
        &mut self,
        id: u64,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        nonce: u64,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        let Some(f_peer) = ctx.f_peer else { return };
        ctx.ccr_answered = Some((nonce, f_peer));
        ctx.last_rx = now;
        ctx.last_peer_src = src;
        ctx.last_local_dst = dst;
        let lsr = ctx.lsr_peer.clone();
        if let Some(l) = &lsr {
            ctx.peer_may_hold(l.clone());
        }
        let repr = Repr {
            rewrite_ok: false,
            nonce,
            message: Message::Conf(Conf {
                aid_initiator: ctx.aid_peer,
                aid_responder: ctx.aid_local,
                flow_label: ctx.f_local,
                birthday: self.birthday,
                lsr_initiator: lsr.map(|s| s.to_vec()),
                lsl_responder: Some(ctx.lsl_local.to_vec()),
            }),
            piggyback: None,
        };
        let host = ctx.host;
        let repr = Repr {
            rewrite_ok: self.host_rewrite_ok(host),
            ..repr
        };
        self.send(dst, src, repr, out);
    }

    // ------------------------------------------------------------------ 7.6 CONF received

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_conf(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        nonce: u64,
        m: Conf,
        piggyback: Option<Piggyback>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(host) = self.host_of(&m.aid_initiator) else {
            self.stats.dropped += 1;
            return;
        };
        let Some(&id) = self.by_aids.get(&(host, m.aid_initiator, m.aid_responder)) else {
            self.stats.dropped += 1;
            return;
        };
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        // 7.6: INIT-SENT needs the INIT's nonce, CCR-SENT the CCR's (the same here); any
        // other state discards.
        if !matches!(ctx.state, State::InitSent | State::CcrSent) || nonce != ctx.nonce {
            self.stats.dropped += 1;
            return;
        }
        // In INIT-SENT after a crossing INIT we know F(peer) and may already have applied an
        // UR of the peer, sent after this CONF: the CONF's sets are then older.
        let apply = ctx.handshake_sets_apply(m.flow_label, m.birthday);
        ctx.peer_birthday = Some(m.birthday);
        ctx.last_rx = now;
        ctx.last_peer_src = src;
        ctx.last_local_dst = dst;
        if let (Some(lsr), true) = (&m.lsr_initiator, apply) {
            ctx.lsr_local = Some(LocSet::from_slice(lsr));
        }
        if let (Some(lsl), true) = (&m.lsl_responder, apply) {
            let mut s = LocSet::from_slice(lsl);
            s.insert(ctx.aid_peer);
            ctx.lsl_peer = Some(s);
        } else if ctx.lsl_peer.is_none() {
            ctx.lsl_peer = Some(LocSet::single(ctx.aid_peer));
        }
        // A CONF answering our INIT directly (crossing INITs) means the peer also got the
        // INIT's piggyback (7.3 passes it up).
        // The CONF goes to the answered INIT's source (7.3), and only INITs from AID(local)
        // carry the piggyback: an answer to another INIT leaves it held for ResendUlp.
        if ctx.state == State::InitSent && ctx.held_ulp.is_some() {
            if dst == ctx.aid_local {
                ctx.held_ulp = None;
                ctx.ulp_discarded = false;
            } else {
                ctx.ulp_discarded = true;
            }
        }
        let deliver = (src == ctx.aid_peer && dst == ctx.aid_local)
            || (ctx.ls_peer().contains(&src) && ctx.lsl_local.contains(&dst));
        let (aid_local, aid_peer) = (ctx.aid_local, ctx.aid_peer);
        self.set_f_peer(id, m.flow_label);
        if let (Some(p), true) = (piggyback, deliver) {
            out.push(Action::DeliverUlp {
                host,
                src: aid_peer,
                dst: aid_local,
                piggyback: p,
            });
        }
        self.become_established(id, now, out);
        self.verify_all(id, now, out);
    }
}

/// The responder's CC clock: seconds, wrapping (proto::cc compares with serial arithmetic).
fn cc_clock(now: Duration) -> u32 {
    (now.as_secs() & u64::from(u32::MAX)) as u32
}
