//! The host-pair context (seed 001 section 3.2) and its states (section 7.1, appendix A).

use std::net::Ipv6Addr;
use std::time::Duration;

use super::locset::LocSet;
use super::{ContextKey, DataplaneContext, FlowLabel, HostId, Piggyback, TimerId};

/// Context states. IDLE is the absence of a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// An INIT has been sent (proto-context with F(local) allocated).
    InitSent,
    /// A CCR has been sent.
    CcrSent,
    /// Established: data can be carried with the flow labels.
    Established,
    /// Established, awaiting an Update Acknowledgement.
    UrSent,
    /// About to go away: no data is sent, the state is kept until CLOSEACK or X+MSL
    /// (appendix A).
    Closing,
}

/// Which message is being retransmitted (section 7.10, appendix A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetxKind {
    Init,
    Ccr,
    Ur,
    Close,
}

/// Retransmission state of the one outstanding request of a context.
#[derive(Debug, Clone)]
pub(crate) struct Retx {
    pub kind: RetxKind,
    /// When the first copy was sent; retransmission stops CONTEXT_IDLE_TIME later.
    pub first: Duration,
    /// Current (un-jittered) interval; doubles each time (binary exponential backoff).
    pub rto: Duration,
    /// Copies sent so far.
    pub attempts: u32,
    pub timer: TimerId,
}

/// Where the peer's FQDN stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerName {
    /// Not looked up yet (responder right after the CCR).
    Unknown,
    /// Reverse lookup of AID(peer) in flight.
    Pending,
    /// FQDN(peer).
    Known(String),
    /// Permanent failure: the peer has no FQDN; Lsr(peer) is only the AID (section 7.13).
    None,
}

/// One host-pair context. Names follow seed 001 section 2.1.
#[derive(Debug, Clone)]
pub struct Context {
    pub host: HostId,
    pub state: State,
    /// True on the side that sent the INIT this context was created for.
    pub initiator: bool,
    pub aid_local: Ipv6Addr,
    pub aid_peer: Ipv6Addr,
    /// F(local): allocated here, unique per host; the receive-path key.
    pub f_local: FlowLabel,
    /// F(peer): allocated by the peer; known after CC-less paths (CONF, INIT from the peer)
    /// or from the CCR's state on the responder.
    pub f_peer: Option<FlowLabel>,
    /// Lsl(local) as announced to the peer for this context.
    pub lsl_local: LocSet,
    /// Locators this context announced in Lsl(local) earlier and withdrew since (4.5):
    /// packets sent from them may still be in flight, so a UC quoting one is still
    /// "consistent with a packet that the host might have sent recently" (7.12).
    pub(crate) lsl_local_withdrawn: LocSet,
    /// Lsr(local): our locators as the peer found them in the DNS (told in INIT/CC/CONF/UR).
    pub lsr_local: Option<LocSet>,
    /// `lsl_peer` and `lsr_local` came from an UR of the current peer context: late
    /// handshake messages of that context (a duplicate INIT, a CONF) carry older sets and
    /// must not replace them (7.8 "the most recent Update Request").
    pub(crate) sets_from_ur: bool,
    /// Nonces of the last URs applied, newest last: a late duplicate of an older UR is
    /// acknowledged but not applied again (it would undo a newer UR).
    pub(crate) ur_applied: Vec<u64>,
    /// Lsl(peer): what the peer announced; `None` until it did.
    pub lsl_peer: Option<LocSet>,
    /// Lsr(peer): the peer's locators from our DNS lookup; `None` until known.
    pub lsr_peer: Option<LocSet>,
    /// Lsr(peer) as the peer is known to hold it: from our INIT once a CONF shows the
    /// peer processed it (or the CCR echoing it), or from an UR once acknowledged; `None`
    /// if not known.
    pub(crate) lsr_peer_told: Option<LocSet>,
    /// Lsr(peer) sets the peer may hold instead of `lsr_peer_told`, because they went out
    /// in a message that may or may not have been applied: a CONF (one for a duplicate INIT
    /// is discarded by an established peer, 7.6) or an UR that was given up without a UA
    /// (its UA may be what was lost, 7.9, 7.10). Cleared by the next UA: the peer then holds
    /// that UR's set and ignores late copies of the others (see `Engine::on_ur`).
    pub(crate) lsr_peer_maybe: Vec<LocSet>,
    /// Peer locators verified by forward + reverse DNS, or the AID by return routability.
    /// Lsv(peer) is this set intersected with Ls(peer).
    pub verified: LocSet,
    /// Lp(peer): preferred destination, always in Lsv(peer).
    pub lp_peer: Option<Ipv6Addr>,
    /// A source locator seen in data that should become Lp(peer) once verified (7.11 3b).
    pub(crate) lp_candidate: Option<Ipv6Addr>,
    pub peer_name: PeerName,
    /// Further PTR names of AID(peer) to try as FQDN(peer), and the first name tried whose
    /// AAAA set holds the AID but that has no M6 marker (section 16.2 "virtual hosting").
    pub(crate) peer_names: std::collections::VecDeque<String>,
    pub(crate) peer_fallback: Option<String>,
    /// When the forward lookup of FQDN(peer) expires (TTL), for the UR-driven refresh.
    pub(crate) forward_expires: Option<Duration>,
    /// The peer's birthday counter (section 7.14).
    pub peer_birthday: Option<u32>,
    /// Nonce of the outstanding INIT/CCR (the CCR reuses the INIT's nonce, section 7.4),
    /// UR or CLOSE.
    pub(crate) nonce: u64,
    pub(crate) retx: Option<Retx>,
    pub(crate) idle_timer: Option<TimerId>,
    /// Last time anything was received on this context (appendix A step 1).
    pub last_rx: Duration,
    /// Source locator of the last control message from the peer (reply address).
    pub(crate) last_peer_src: Ipv6Addr,
    /// Our locator the last control message from the peer arrived on.
    pub(crate) last_local_dst: Ipv6Addr,
    /// A ULP packet piggybacked on our INIT, kept until we know whether it was delivered.
    pub(crate) held_ulp: Option<Piggyback>,
    /// The responder reported the INIT's ULP packet discarded: resend it once established.
    pub(crate) ulp_discarded: bool,
    /// (nonce, F(initiator)) of the CCR this context answered with a CONF, so a
    /// retransmitted CCR (the CONF was lost) gets the CONF again (section 7.10).
    pub(crate) ccr_answered: Option<(u64, FlowLabel)>,
    /// The CCR to retransmit: (source, destination, message).
    pub(crate) last_ccr: Option<(Ipv6Addr, Ipv6Addr, super::Repr)>,
    /// When the CC we answered was received; the CC's MAC ages out after `cc_lifetime`.
    pub(crate) cc_received: Option<Duration>,
    /// Lsl(local) changed and the peer does not know yet: send an UR when possible.
    pub(crate) ur_pending: bool,
    /// What the outstanding UR tells: Lsr(peer) as sent (our DNS view, or the peer's own
    /// Lsl while we have none), whether it carries a new Lsl(local), and that Lsl(local)
    /// (every copy of one nonce carries the same sets); recorded as known to the peer only
    /// when the UA arrives.
    pub(crate) ur_sent: Option<(LocSet, bool, LocSet)>,
    /// Lsl(local) as the peer surely holds it (`None`: as announced in the handshake, not
    /// changed since). Data leaves only from locators in it: the peer drops data from a
    /// source outside its Lsl(peer) (7.11 step 2), so a locator added by an UR is used
    /// once the UA shows the peer has it; a withdrawn one stops at once.
    pub(crate) lsl_local_acked: Option<LocSet>,
    /// The context reached ESTABLISHED at least once (its handshake completed).
    pub(crate) established_once: bool,
    /// When CLOSING started and when the state is discarded at the latest.
    pub(crate) closing_deadline: Option<Duration>,
    /// The last tuple given to the dataplane, to send only changes.
    pub(crate) installed: Option<DataplaneContext>,
    pub created: Duration,
}

impl Context {
    /// The dataplane key.
    pub fn key(&self) -> ContextKey {
        ContextKey {
            host: self.host,
            f_local: self.f_local,
        }
    }

    /// Ls(local) = Lsl(local) ∩ Lsr(local), AID added; Lsl(local) while Lsr(local) is
    /// unknown.
    pub fn ls_local(&self) -> LocSet {
        match &self.lsr_local {
            Some(lsr) => LocSet::intersect_with_aid(&self.lsl_local, lsr, self.aid_local),
            None => {
                let mut s = self.lsl_local.clone();
                s.insert(self.aid_local);
                s
            }
        }
    }

    /// The sources accepted in received packets: Lsl(peer) (section 7.11 step 3), or before
    /// the peer announced it, Lsr(peer) from the DNS and the AID.
    pub fn accept_peer(&self) -> LocSet {
        let mut s = match (&self.lsl_peer, &self.lsr_peer) {
            (Some(l), _) => l.clone(),
            (None, Some(r)) => r.clone(),
            (None, None) => LocSet::new(),
        };
        s.insert(self.aid_peer);
        s
    }

    /// Ls(peer) = Lsl(peer) ∩ Lsr(peer), AID added (sections 4.1 step 6, 7.4-7.8).
    /// With Lsr(peer) unknown (responder before its DNS lookup) only the AID qualifies.
    pub fn ls_peer(&self) -> LocSet {
        let lsl = self.accept_peer();
        match &self.lsr_peer {
            Some(lsr) => LocSet::intersect_with_aid(&lsl, lsr, self.aid_peer),
            None => LocSet::single(self.aid_peer),
        }
    }

    /// Ls(peer) as the peer computes it (its Ls(local)) when it holds `lsr` as its
    /// Lsr(local), or none (then its Lsl alone).
    fn ls_peer_if_told(&self, lsr: Option<&LocSet>) -> LocSet {
        let lsl = self.accept_peer();
        match lsr {
            Some(lsr) => LocSet::intersect_with_aid(&lsl, lsr, self.aid_peer),
            None => lsl,
        }
    }

    /// Whether the peer's Ls(local) may differ from our Ls(peer): what it was told for sure,
    /// or any set it may have applied (`lsr_peer_maybe`), gives another set (for the UR
    /// decision, 7.7, 7.13).
    pub(crate) fn peer_view_may_differ(&self) -> bool {
        let ours = self.ls_peer();
        self.ls_peer_if_told(self.lsr_peer_told.as_ref()) != ours
            || self
                .lsr_peer_maybe
                .iter()
                .any(|lsr| self.ls_peer_if_told(Some(lsr)) != ours)
    }

    /// A handshake message (INIT, CCR, CONF) from the peer context with label `f` and
    /// birthday `birthday` arrived. If we knew another peer context (the peer lost its state
    /// and started again, 5.2), what the old one told us in URs, and what we told it, no
    /// longer holds. Returns whether the message's locator sets may be applied: not when
    /// they come from the peer context whose UR we applied, since the peer sends handshake
    /// messages before its URs and a late copy carries older sets than the UR's (7.8 "the
    /// most recent Update Request").
    pub(crate) fn handshake_sets_apply(&mut self, f: FlowLabel, birthday: u32) -> bool {
        let new_peer_context = self
            .f_peer
            .is_some_and(|known| known != f || self.peer_birthday != Some(birthday));
        if new_peer_context {
            self.ur_applied.clear();
            self.sets_from_ur = false;
            self.lsr_peer_maybe.clear();
            // Our INIT copies still carry `lsr_peer_told`, and the new peer context applies
            // the one it answers; after establishment it has been told nothing yet.
            if self.state != State::InitSent {
                self.lsr_peer_told = None;
            }
        }
        !self.sets_from_ur
    }

    /// Records that a message carrying `lsr` as the peer's Lsr may or may not have been
    /// applied by the peer.
    pub(crate) fn peer_may_hold(&mut self, lsr: LocSet) {
        if self.lsr_peer_told.as_ref() == Some(&lsr) || self.lsr_peer_maybe.contains(&lsr) {
            return;
        }
        // Bounded: the oldest possibility goes (a UA settles them all anyway).
        if self.lsr_peer_maybe.len() >= 4 {
            self.lsr_peer_maybe.remove(0);
        }
        self.lsr_peer_maybe.push(lsr);
    }

    /// Lsv(peer): the verified subset of Ls(peer) (section 2.1) — the only destinations.
    pub fn lsv_peer(&self) -> LocSet {
        self.ls_peer().intersection(&self.verified)
    }

    /// Whether the context can carry data now.
    pub fn can_transmit(&self) -> bool {
        matches!(self.state, State::Established | State::UrSent)
            && self.f_peer.is_some()
            && self.lp_peer.is_some()
    }

    /// Whether the state is one where data may flow (ESTABLISHED or UR-SENT).
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established | State::UrSent)
    }

    /// Picks Lp(peer): keep the current one if still verified, else the AID if verified,
    /// else any verified locator (section 7.11 step 3c keeps the last verified source).
    pub(crate) fn refresh_lp(&mut self) {
        let lsv = self.lsv_peer();
        if let Some(c) = self.lp_candidate {
            if lsv.contains(&c) {
                self.lp_peer = Some(c);
                self.lp_candidate = None;
                return;
            }
        }
        if let Some(lp) = self.lp_peer {
            if lsv.contains(&lp) {
                return;
            }
        }
        self.lp_peer = if lsv.contains(&self.aid_peer) {
            Some(self.aid_peer)
        } else {
            lsv.iter().next().copied()
        };
    }

    /// The tuple for the dataplane.
    pub(crate) fn dataplane(&self, host_rewrite_ok: bool) -> DataplaneContext {
        let mut ls_local = self.ls_local();
        if let Some(acked) = &self.lsl_local_acked {
            let usable: Vec<Ipv6Addr> = ls_local
                .iter()
                .filter(|l| **l == self.aid_local || acked.contains(l))
                .copied()
                .collect();
            ls_local = LocSet::from_slice(&usable);
        }
        DataplaneContext {
            key: self.key(),
            aid_local: self.aid_local,
            aid_peer: self.aid_peer,
            f_peer: self.f_peer,
            lsl_local: self.lsl_local.to_vec(),
            ls_local: ls_local.to_vec(),
            lp_local: self.aid_local,
            lsl_peer: self.accept_peer().to_vec(),
            lsv_peer: self.lsv_peer().to_vec(),
            lp_peer: self.lp_peer,
            rewrite_ok: host_rewrite_ok && ls_local.len() > 1,
            transmit: self.can_transmit(),
        }
    }
}
