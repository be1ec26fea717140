//! Established contexts: Update Request / Acknowledgement (sections 4.5, 7.7-7.9), received
//! data events (7.11), Unknown Context (5.1, 7.12) and the close exchange (appendix A).

use std::net::Ipv6Addr;
use std::time::Duration;

use proto::wire::consts::UC_MAX_INVOKING_LEN;
use proto::wire::m6::{check_birthday, BirthdayCheck, Close, Message, Repr, Ua, Uc, Ur};

use super::context::{Context, RetxKind, State};
use super::locset::LocSet;
use super::{Action, ContextKey, DataPathEvent, Engine, FlowLabel, HostId, Notice, TimerPurpose};

/// Picks (source, destination) for copy `attempt` of a retransmitted request: walk the
/// destinations first, then the sources.
fn rotate(dsts: &[Ipv6Addr], srcs: &[Ipv6Addr], attempt: u32) -> Option<(Ipv6Addr, Ipv6Addr)> {
    if dsts.is_empty() || srcs.is_empty() {
        return None;
    }
    let k = attempt as usize;
    let dst = *dsts.get(k % dsts.len())?;
    let src = *srcs.get((k / dsts.len()) % srcs.len())?;
    Some((src, dst))
}

impl Context {
    /// Destinations for requests after establishment: Lp(peer) first, the other verified
    /// locators, and the address the peer last spoke from (a reply address, like the CC
    /// going to the INIT's source).
    fn request_destinations(&self) -> Vec<Ipv6Addr> {
        let mut v = Vec::new();
        if let Some(lp) = self.lp_peer {
            v.push(lp);
        }
        for l in self.lsv_peer().iter() {
            if !v.contains(l) {
                v.push(*l);
            }
        }
        if !v.contains(&self.last_peer_src) {
            v.push(self.last_peer_src);
        }
        v
    }

    fn request_sources(&self) -> Vec<Ipv6Addr> {
        let mut v = vec![self.aid_local];
        v.extend(self.ls_local().iter().filter(|l| **l != self.aid_local));
        v
    }
}

impl Engine {
    // ------------------------------------------------------------------ 7.7 sending UR

    /// Sends an Update Request if the peer's view differs from ours: our Lsl(local) changed
    /// (`ur_pending`), or the DNS changed Ls(peer) from what the peer was told (7.7, 7.13:
    /// "the locator set with the failed locators removed is signaled ... as Lsr(peer)").
    pub(crate) fn maybe_send_ur(&mut self, id: u64, now: Duration, out: &mut Vec<Action>) {
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        // Without our own DNS view there is nothing to tell about the peer's locators. The
        // peer holds what it was told for sure, or possibly the Lsr of a CONF or of an
        // unacknowledged UR: if any of these differs from our current view, tell it again.
        let differs = ctx.lsr_peer.is_some() && ctx.peer_view_may_differ();
        if !(ctx.ur_pending || differs) || ctx.f_peer.is_none() {
            return;
        }
        match ctx.state {
            State::Established => {}
            // After the UA (or the handshake) this is evaluated again.
            State::UrSent | State::InitSent | State::CcrSent => return,
            State::Closing => return,
        }
        let lsr = ctx.lsr_peer.clone().unwrap_or_else(|| ctx.accept_peer());
        ctx.ur_sent = Some((lsr, ctx.ur_pending, ctx.lsl_local.clone()));
        // From now on the peer may hold this Lsl(local) or the previous one: data leaves
        // only from locators in both until the UA says which.
        if let Some(acked) = ctx.lsl_local_acked.as_mut() {
            let both: Vec<Ipv6Addr> = acked
                .iter()
                .filter(|l| ctx.lsl_local.contains(l))
                .copied()
                .collect();
            *acked = LocSet::from_slice(&both);
        }
        ctx.ur_pending = false;
        ctx.state = State::UrSent;
        ctx.nonce = self.rng.next_u64();
        self.start_retx(id, RetxKind::Ur, now, out);
    }

    pub(crate) fn build_ur(
        &self,
        ctx: &Context,
        attempt: u32,
    ) -> Option<(Ipv6Addr, Ipv6Addr, Repr)> {
        let f_peer = ctx.f_peer?;
        let (src, dst) = rotate(&ctx.request_destinations(), &ctx.request_sources(), attempt)?;
        // Lsr(receiver): our DNS view of the peer; before we have one, the peer's own Lsl
        // (no reduction).
        let (lsr, lsl) = match &ctx.ur_sent {
            Some((lsr, _, lsl)) => (lsr.clone(), lsl.clone()),
            None => (
                ctx.lsr_peer.clone().unwrap_or_else(|| ctx.accept_peer()),
                ctx.lsl_local.clone(),
            ),
        };
        Some((
            src,
            dst,
            Repr {
                rewrite_ok: self.host_rewrite_ok(ctx.host),
                nonce: ctx.nonce,
                message: Message::Ur(Ur {
                    aid_sender: ctx.aid_local,
                    aid_receiver: ctx.aid_peer,
                    flow_label_sender: ctx.f_local,
                    flow_label_receiver: f_peer,
                    lsl_sender: lsl.to_vec(),
                    lsr_receiver: lsr.to_vec(),
                }),
                piggyback: None,
            },
        ))
    }

    /// Finds the context a UR/UA/CLOSE/CLOSEACK names: AID pair and flow label pair
    /// (appendix A: these carry both flow labels because several contexts may share AIDs).
    fn find_by_labels(
        &self,
        aid_sender: Ipv6Addr,
        aid_receiver: Ipv6Addr,
        f_sender: FlowLabel,
        f_receiver: FlowLabel,
    ) -> Option<u64> {
        self.find_named(aid_sender, aid_receiver, f_sender, f_receiver, false)
    }

    /// As [`Engine::find_by_labels`], but also a context that has not learned F(peer) yet
    /// (INIT-SENT or CCR-SENT) when the CLOSE names our F(local) and the AIDs: the peer knew
    /// our label from our INIT, and a CONF of that closing peer context still in flight must
    /// not establish us towards discarded state.
    fn find_for_close(
        &self,
        aid_sender: Ipv6Addr,
        aid_receiver: Ipv6Addr,
        f_sender: FlowLabel,
        f_receiver: FlowLabel,
    ) -> Option<u64> {
        self.find_named(aid_sender, aid_receiver, f_sender, f_receiver, true)
    }

    fn find_named(
        &self,
        aid_sender: Ipv6Addr,
        aid_receiver: Ipv6Addr,
        f_sender: FlowLabel,
        f_receiver: FlowLabel,
        f_peer_may_be_unknown: bool,
    ) -> Option<u64> {
        let host = self.host_of(&aid_receiver)?;
        let id = *self.by_flow.get(&ContextKey {
            host,
            f_local: f_receiver,
        })?;
        let ctx = self.contexts.get(&id)?;
        let f_peer_matches = match ctx.f_peer {
            Some(f) => f == f_sender,
            None => f_peer_may_be_unknown,
        };
        (ctx.aid_local == aid_receiver && ctx.aid_peer == aid_sender && f_peer_matches)
            .then_some(id)
    }

    // ------------------------------------------------------------------ 7.8 UR received

    pub(crate) fn on_ur(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        nonce: u64,
        m: Ur,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(id) = self.find_by_labels(
            m.aid_sender,
            m.aid_receiver,
            m.flow_label_sender,
            m.flow_label_receiver,
        ) else {
            self.stats.dropped += 1;
            return;
        };
        let rw = self
            .contexts
            .get(&id)
            .is_some_and(|c| self.host_rewrite_ok(c.host));
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        // A CLOSING context sends nothing but CLOSE, or the UA would keep the peer's idle
        // timer running past our discard (appendix A).
        if ctx.state == State::Closing
            || !ctx.accept_peer().contains(&src)
            || !ctx.lsl_local.contains(&dst)
        {
            self.stats.dropped += 1;
            return;
        }
        // A late duplicate of an older UR (reordered or retransmitted after a newer one
        // was applied): acknowledge it, change nothing.
        if ctx.ur_applied.contains(&nonce) && ctx.ur_applied.last() != Some(&nonce) {
            let ua = Repr {
                rewrite_ok: rw,
                nonce,
                message: Message::Ua(Ua {
                    aid_sender: ctx.aid_local,
                    aid_receiver: ctx.aid_peer,
                    flow_label_sender: ctx.f_local,
                    flow_label_receiver: m.flow_label_sender,
                }),
                piggyback: None,
            };
            self.send(dst, src, ua, out);
            return;
        }
        if ctx.ur_applied.last() != Some(&nonce) {
            if ctx.ur_applied.len() >= 8 {
                ctx.ur_applied.remove(0);
            }
            ctx.ur_applied.push(nonce);
        }
        let mut lsl_peer = LocSet::from_slice(&m.lsl_sender);
        lsl_peer.insert(ctx.aid_peer);
        // Locators the peer announces that our DNS view does not hold (yet).
        let unknown = ctx
            .lsr_peer
            .as_ref()
            .is_some_and(|lsr| !lsl_peer.is_subset(lsr));
        ctx.lsl_peer = Some(lsl_peer);
        ctx.lsr_local = Some(LocSet::from_slice(&m.lsr_receiver));
        ctx.sets_from_ur = true;
        ctx.last_rx = now;
        ctx.last_peer_src = src;
        ctx.last_local_dst = dst;
        if ctx
            .lp_candidate
            .is_some_and(|c| !ctx.accept_peer().contains(&c))
        {
            ctx.lp_candidate = None;
        }
        let ua = Repr {
            rewrite_ok: rw,
            nonce,
            message: Message::Ua(Ua {
                aid_sender: ctx.aid_local,
                aid_receiver: ctx.aid_peer,
                flow_label_sender: ctx.f_local,
                flow_label_receiver: m.flow_label_sender,
            }),
            piggyback: None,
        };
        self.send(dst, src, ua, out);
        // 7.8: a reduced Lsl(sender) stops the removed destinations at once (Lsv shrinks with
        // Ls in sync); an increased one triggers a DNS refresh once the TTL ran out (4.5) -
        // also on a later UR if the first came before the TTL ran out.
        self.sync(id, out);
        if unknown {
            self.refresh_forward_if_expired(id, now, out);
        }
        self.verify_all(id, now, out);
        // Our Ls(peer) may now differ from what the peer was told.
        self.maybe_send_ur(id, now, out);
    }

    // ------------------------------------------------------------------ 7.9 UA received

    pub(crate) fn on_ua(
        &mut self,
        src: Ipv6Addr,
        _dst: Ipv6Addr,
        nonce: u64,
        m: Ua,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(id) = self.find_by_labels(
            m.aid_sender,
            m.aid_receiver,
            m.flow_label_sender,
            m.flow_label_receiver,
        ) else {
            self.stats.dropped += 1;
            return;
        };
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        if ctx.state != State::UrSent || ctx.nonce != nonce || !ctx.accept_peer().contains(&src) {
            self.stats.dropped += 1;
            return;
        }
        ctx.state = State::Established;
        ctx.last_rx = now;
        if let Some((lsr, _, lsl)) = ctx.ur_sent.take() {
            // The peer applied this UR and ignores late copies of earlier URs and CONFs, so
            // the other possibilities are gone.
            ctx.lsr_peer_told = Some(lsr);
            ctx.lsr_peer_maybe.clear();
            // It holds this Lsl(local) now: data may leave from its new locators.
            ctx.lsl_local_acked = Some(lsl);
        }
        let t = ctx.retx.take().map(|r| r.timer);
        self.cancel_timer(t, out);
        self.sync(id, out);
        self.maybe_send_ur(id, now, out);
    }

    /// Our own locator set changed (section 4.5, 7.7): update every context of the host.
    pub(crate) fn set_locators(
        &mut self,
        host: HostId,
        locators: Vec<Ipv6Addr>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        if self.hosts.get(host.0 as usize).is_none() {
            return;
        }
        // A locator of another host is not taken from it.
        let before = locators.len();
        let locators = self.own_locators(host, locators);
        self.stats.locator_conflicts += (before - locators.len()) as u64;
        let Some(h) = self.hosts.get_mut(host.0 as usize) else {
            return;
        };
        h.cfg.locators = locators;
        // Withdrawn locators stop mapping to the host (7.3: an INIT naming one is dropped).
        self.rebuild_loc_host();
        let ids: Vec<u64> = self
            .contexts
            .iter()
            .filter(|(_, c)| c.host == host && c.state != State::Closing)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(aid) = self.contexts.get(&id).map(|c| c.aid_local) else {
                continue;
            };
            let lsl = self.announced_lsl(host, aid);
            if let Some(ctx) = self.contexts.get_mut(&id) {
                if ctx.lsl_local != lsl {
                    // What the peer got in the handshake, until an UR is acknowledged.
                    if ctx.lsl_local_acked.is_none() {
                        ctx.lsl_local_acked = Some(ctx.lsl_local.clone());
                    }
                    for l in ctx.lsl_local.iter().filter(|l| !lsl.contains(l)) {
                        ctx.lsl_local_withdrawn.insert(*l);
                    }
                    for l in &lsl {
                        ctx.lsl_local_withdrawn.remove(l);
                    }
                    ctx.lsl_local = lsl;
                    ctx.ur_pending = true;
                }
            }
            self.sync(id, out);
            self.maybe_send_ur(id, now, out);
        }
    }

    // ------------------------------------------------------------------ 7.11 data path

    pub(crate) fn on_datapath(&mut self, ev: DataPathEvent, now: Duration, out: &mut Vec<Action>) {
        match ev {
            DataPathEvent::FirstPacket {
                aid_local,
                aid_peer,
                piggyback,
            } => self.start_discovery(aid_local, aid_peer, piggyback, true, now, out),
            DataPathEvent::UnknownFlowLabel {
                src,
                dst,
                flow_label,
                packet,
            } => self.send_uc(src, dst, flow_label, packet, now, out),
            DataPathEvent::NewSourceLocator { key, src } => {
                let Some(&id) = self.by_flow.get(&key) else {
                    return;
                };
                let Some(ctx) = self.contexts.get_mut(&id) else {
                    return;
                };
                // 3a: a source outside Lsl(peer) was dropped by the dataplane; ignore.
                if !ctx.accept_peer().contains(&src) {
                    return;
                }
                ctx.last_rx = now;
                // 3c: a verified source becomes Lp(peer); 3b: an unverified one is verified
                // first ("The verification needs to complete before using the locator as a
                // destination", 4.2).
                ctx.lp_candidate = Some(src);
                let verified = ctx.lsv_peer().contains(&src);
                self.sync(id, out);
                if !verified {
                    self.verify_locator(id, src, now, out);
                }
            }
            DataPathEvent::Activity { key } => {
                if let Some(ctx) = self
                    .by_flow
                    .get(&key)
                    .and_then(|id| self.contexts.get_mut(id))
                {
                    ctx.last_rx = now;
                }
            }
        }
    }

    // ------------------------------------------------------------------ 7.12 UC

    /// 7.11 step 1a: M6 data with an unknown flow label is answered with a UC, rate
    /// limited, and (with the close exchange in use) only during the first X after start.
    fn send_uc(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        flow_label: FlowLabel,
        packet: Vec<u8>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(host) = self.host_of(&dst) else {
            return;
        };
        if self.cfg.uc_only_after_start {
            let started = self.started_at.unwrap_or(now);
            if now >= started + self.cfg.context_idle_time {
                return;
            }
        }
        if !self.take_uc_token(now) {
            return;
        }
        let mut packet = packet;
        packet.truncate(UC_MAX_INVOKING_LEN);
        let repr = Repr {
            rewrite_ok: self.host_rewrite_ok(host),
            nonce: 0,
            message: Message::Uc(Uc {
                flow_label,
                birthday: self.birthday,
                invoking_packet: packet,
            }),
            piggyback: None,
        };
        self.stats.uc_sent += 1;
        self.send(dst, src, repr, out);
    }

    pub(crate) fn on_uc(
        &mut self,
        src: Ipv6Addr,
        _dst: Ipv6Addr,
        m: Uc,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        // Contexts with this peer flow label whose Lsl(peer) holds the UC's source (7.12).
        let ids: Vec<u64> = self
            .by_peer_flow
            .get(&m.flow_label)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|id| {
                self.contexts
                    .get(id)
                    .is_some_and(|c| c.accept_peer().contains(&src))
            })
            .collect();
        let mut accepted = false;
        for id in ids {
            let Some(ctx) = self.contexts.get(&id) else {
                continue;
            };
            let Some(peer_bd) = ctx.peer_birthday else {
                continue;
            };
            // Same birthday: the peer garbage collected the context; greater by at most
            // MAX_BIRTHDAY_INCR (serial arithmetic): it rebooted. Anything else is dropped.
            let rebooted = match check_birthday(peer_bd, m.birthday, self.cfg.max_birthday_incr) {
                BirthdayCheck::Same => false,
                BirthdayCheck::Rebooted => true,
                BirthdayCheck::OutOfWindow => continue,
            };
            // RECOMMENDED check (7.12): the included packet must look like one we sent on
            // this context.
            if !invoking_packet_matches(ctx, m.flow_label, &m.invoking_packet) {
                continue;
            }
            accepted = true;
            self.stats.uc_accepted += 1;
            let key = ctx.key();
            let was_closing = ctx.state == State::Closing;
            let restart = (
                ctx.host,
                ctx.aid_local,
                ctx.aid_peer,
                ctx.lsr_peer
                    .clone()
                    .unwrap_or_else(|| LocSet::single(ctx.aid_peer)),
                match &ctx.peer_name {
                    super::context::PeerName::Known(n) => Some(n.clone()),
                    _ => None,
                },
                ctx.forward_expires,
                ctx.verified.contains(&ctx.aid_peer),
            );
            out.push(Action::Notice(Notice::PeerLostState {
                key,
                peer_rebooted: rebooted,
            }));
            // "the context can be discarded and a new context be initiated by sending an
            // INIT message".
            self.discard(id, now, out);
            if !was_closing {
                let (host, aid_local, aid_peer, lsr, fqdn, exp, aid_ok) = restart;
                self.start_initiator(
                    host, aid_local, aid_peer, lsr, fqdn, exp, aid_ok, None, now, out,
                );
            }
        }
        if !accepted {
            self.stats.dropped += 1;
        }
    }

    // ------------------------------------------------------------------ appendix A

    /// Appendix A step 1 (and the handshake giving up): stop sending data, send CLOSE,
    /// keep the state for X+MSL or until the CLOSEACK.
    pub(crate) fn enter_closing(&mut self, id: u64, now: Duration, out: &mut Vec<Action>) {
        let deadline = now + self.cfg.context_idle_time + self.cfg.msl;
        let nonce = self.rng.next_u64();
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        if ctx.state == State::Closing {
            return;
        }
        ctx.state = State::Closing;
        ctx.closing_deadline = Some(deadline);
        ctx.nonce = nonce;
        ctx.held_ulp = None;
        let key = ctx.key();
        let aids = (ctx.host, ctx.aid_local, ctx.aid_peer);
        let idle = ctx.idle_timer.take();
        // CLOSING contexts are invisible to new traffic and new handshakes.
        if self.by_aids.get(&aids) == Some(&id) {
            self.by_aids.remove(&aids);
        }
        self.cancel_timer(idle, out);
        // Data stops before the CLOSE leaves.
        self.sync(id, out);
        out.push(Action::Notice(Notice::Closing(key)));
        self.start_retx(id, RetxKind::Close, now, out);
    }

    pub(crate) fn build_close(
        &self,
        ctx: &Context,
        attempt: u32,
    ) -> Option<(Ipv6Addr, Ipv6Addr, Repr)> {
        // Without F(peer) the peer cannot match a CLOSE; the state just lingers.
        let f_peer = ctx.f_peer?;
        let (src, dst) = rotate(&ctx.request_destinations(), &ctx.request_sources(), attempt)?;
        Some((
            src,
            dst,
            Repr {
                rewrite_ok: self.host_rewrite_ok(ctx.host),
                nonce: ctx.nonce,
                message: Message::Close(Close {
                    aid_sender: ctx.aid_local,
                    aid_receiver: ctx.aid_peer,
                    flow_label_sender: ctx.f_local,
                    flow_label_receiver: f_peer,
                }),
                piggyback: None,
            },
        ))
    }

    pub(crate) fn on_idle_timer(
        &mut self,
        id: u64,
        timer: super::TimerId,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let idle = self.cfg.context_idle_time;
        let Some(ctx) = self.contexts.get_mut(&id) else {
            return;
        };
        if ctx.idle_timer != Some(timer) {
            return;
        }
        ctx.idle_timer = None;
        if !ctx.is_established() {
            return;
        }
        let deadline = ctx.last_rx + idle;
        if now >= deadline {
            self.enter_closing(id, now, out);
        } else {
            let retry_lookup = ctx.peer_name == super::context::PeerName::Unknown && !ctx.initiator;
            let t = self.arm_timer(TimerPurpose::Idle(id), deadline, out);
            if let Some(ctx) = self.contexts.get_mut(&id) {
                ctx.idle_timer = Some(t);
            }
            // A lookup that kept failing transiently, or an UR that was never acknowledged,
            // is tried again from time to time.
            if retry_lookup {
                self.start_peer_lookup(id, now, out);
            }
            self.maybe_send_ur(id, now, out);
        }
    }

    pub(crate) fn on_close(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        nonce: u64,
        m: Close,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(host) = self.host_of(&m.aid_receiver) else {
            self.stats.dropped += 1;
            return;
        };
        let id = self.find_for_close(
            m.aid_sender,
            m.aid_receiver,
            m.flow_label_sender,
            m.flow_label_receiver,
        );
        match id {
            Some(id) => {
                // Step 2: verified like data (flow labels match, locators in the sets), then
                // the state is discarded in any state (crossing CLOSEs). A CLOSE naming our
                // context from a locator outside the sets is dropped without CLOSEACK: an
                // acknowledgement would let the sender discard while we keep sending.
                let ok = self
                    .contexts
                    .get(&id)
                    .is_some_and(|c| c.accept_peer().contains(&src) && c.lsl_local.contains(&dst));
                if !ok {
                    self.stats.dropped += 1;
                    return;
                }
                self.discard(id, now, out);
            }
            None => {
                // Step 3: no state: still answer, to speed up the peer, within the rate
                // limit.
                if !self.take_uc_token(now) {
                    return;
                }
            }
        }
        let repr = Repr {
            rewrite_ok: self.host_rewrite_ok(host),
            nonce,
            message: Message::CloseAck(Close {
                aid_sender: m.aid_receiver,
                aid_receiver: m.aid_sender,
                flow_label_sender: m.flow_label_receiver,
                flow_label_receiver: m.flow_label_sender,
            }),
            piggyback: None,
        };
        self.send(dst, src, repr, out);
    }

    pub(crate) fn on_closeack(
        &mut self,
        src: Ipv6Addr,
        _dst: Ipv6Addr,
        nonce: u64,
        m: Close,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        // Step 5: must be CLOSING and answer our CLOSE (nonce).
        let Some(id) = self.find_by_labels(
            m.aid_sender,
            m.aid_receiver,
            m.flow_label_sender,
            m.flow_label_receiver,
        ) else {
            self.stats.dropped += 1;
            return;
        };
        let ok = self.contexts.get(&id).is_some_and(|c| {
            c.state == State::Closing && c.nonce == nonce && c.accept_peer().contains(&src)
        });
        if ok {
            self.discard(id, now, out);
        } else {
            self.stats.dropped += 1;
        }
    }
}

/// Whether a UC's invoking packet is consistent with a packet this context sent: an IPv6
/// header with the flow label, a source among our locators and a destination among the
/// peer's (7.12, RECOMMENDED). Reads only what is there; never panics.
fn invoking_packet_matches(ctx: &Context, flow: FlowLabel, pkt: &[u8]) -> bool {
    let Some(hdr) = pkt.get(..40) else {
        return false;
    };
    let Some(&b0) = hdr.first() else { return false };
    if b0 >> 4 != 6 {
        return false;
    }
    let fl = u32::from_be_bytes([
        0,
        hdr.get(1).copied().unwrap_or(0) & 0x0f,
        hdr.get(2).copied().unwrap_or(0),
        hdr.get(3).copied().unwrap_or(0),
    ]);
    let addr = |r: std::ops::Range<usize>| -> Option<Ipv6Addr> {
        let b: [u8; 16] = hdr.get(r)?.try_into().ok()?;
        Some(Ipv6Addr::from(b))
    };
    let (Some(s), Some(d)) = (addr(8..24), addr(24..40)) else {
        return false;
    };
    // The source may be a locator withdrawn after the packet left (renumbering, 4.5).
    fl == flow.value()
        && (ctx.lsl_local.contains(&s)
            || s == ctx.aid_local
            || ctx.lsl_local_withdrawn.contains(&s))
        && ctx.accept_peer().contains(&d)
}
