//! INITs answered by the workers (seed 001 sections 3.3.2, 4.1 step 5 and 7.3; DESIGN
//! section 5): the Challenge-Context state is stateless, so a worker answers an INIT for a
//! proxied host with a CC itself, made with the CC key the control plane publishes
//! ([`Responder`], from the channel's `CcResponder`). An INIT flood then costs a MAC per
//! answered packet and never reaches the control plane.
//!
//! Rules, in order (the engine's order in `on_init`):
//! 1. no responder published (no control plane connected): punted;
//! 2. not a well-formed INIT with a valid checksum: dropped and counted;
//! 3. AID(responder) and the destination are not locators of one proxied host: dropped and
//!    counted (7.3, as the engine does);
//! 4. anything that needs the control plane's state: punted, namely an INIT with a
//!    piggybacked packet (the ULP data goes to the host, 7.3), an AID pair that has a
//!    context here (crossing INITs 4.3.1, a re-INIT after a peer restart 5.2), or a peer
//!    this router is itself looking up or talking to (a pending or M6 destination-cache
//!    entry);
//! 5. over the rate limits, per source /64 ([`PER_SOURCE_64_PER_SEC`]) and per worker (the
//!    control plane's `cc_per_second`, applied by each worker): dropped and counted;
//! 6. otherwise the CC, sent "to the source locator of the INIT" from its destination
//!    (4.1 step 5), is built in the buffer in place of the INIT.
//!
//! A race the protocol absorbs: if the engine has just created a context for the AID pair
//! and its Install has not reached the worker yet, the worker answers a CC; the engine then
//! drops the CCR (not in INIT-SENT, 7.5) and the initiator's retransmission is handled by the
//! engine once the context is published.

use std::hash::BuildHasher;
use std::net::Ipv6Addr;

use hashbrown::HashMap;
use proto::cc::{self, CcInput, CcKey, CcKeyring};
use proto::channel::CcResponderMsg;
use proto::wire::m6::{Cc, Code, IcmpTypes, Message, Packet, Repr};
use proto::wire::tlv::Locators;

use super::classify::Parsed;
use super::icmp_error::TokenBucket;
use crate::buf::PacketBuf;
use crate::contexts::{ContextTable, Destination};
use crate::net::addr::{self, Addr};
use crate::net::ipv6;
use crate::stats::reasons;

/// CCs per second for one source /64 at most (a single attacker network cannot use up the
/// worker's whole budget; a real initiator sends one INIT per context, 7.10 retransmits).
pub const PER_SOURCE_64_PER_SEC: u32 = 10;
/// Source /64s remembered for their rate limit. The slot is chosen by a hash keyed at
/// random per worker; a /64 that lands in a taken slot takes it over with the tokens left,
/// so alternating two /64s does not refill anyone's budget.
pub const SOURCE_SLOTS: usize = 1024;
/// Hop limit of the CCs (as the control plane's own packets).
pub const HOP_LIMIT: u8 = 64;

reasons! {
    pub enum DropReason {
        /// Over the per-/64 or the per-worker CC rate (7.3: a flood is answered only up to
        /// a rate).
        RateLimited = "cc_rate_limited",
        /// Not a well-formed INIT: length, checksum, TLVs (3.3).
        BadInit = "cc_bad_init",
        /// AID(responder) and the destination are not locators of one proxied host (7.3).
        NotOurHost = "cc_not_our_host",
        /// The ISP that owns the CC's source (the INIT's destination) is down: a CC
        /// through another ISP would fail its ingress filter.
        OwnerIspDown = "cc_owner_isp_down",
    }
}

/// One proxied host as the responder sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Host {
    locators: Vec<Ipv6Addr>,
    dns_verifiable: bool,
    rewrite_ok: bool,
}

/// The control plane's responder state, as published to the workers: the current CC key,
/// the birthday counter, the CC clock and the hosts (locator -> host).
#[derive(Clone)]
pub struct Responder {
    keys: CcKeyring,
    birthday: u32,
    /// The control plane's clock (ms) at `base_ns` of the dataplane's clock.
    clock_ms: u64,
    base_ns: u64,
    per_second: u32,
    hosts: Vec<Host>,
    host_of: HashMap<Addr, u32>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("key_serial", &self.keys.current().serial())
            .field("birthday", &self.birthday)
            .field("hosts", &self.hosts.len())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Responder {
    fn eq(&self, o: &Responder) -> bool {
        self.keys.current().serial() == o.keys.current().serial()
            && self.keys.current().secret() == o.keys.current().secret()
            && (self.birthday, self.clock_ms, self.base_ns, self.per_second)
                == (o.birthday, o.clock_ms, o.base_ns, o.per_second)
            && self.hosts == o.hosts
    }
}

impl Eq for Responder {}

impl Responder {
    /// From the channel's message, received at `now_ns` of the dataplane's monotonic clock.
    pub fn new(m: &CcResponderMsg, now_ns: u64) -> Responder {
        let hosts: Vec<Host> = m
            .hosts
            .iter()
            .map(|h| Host {
                locators: h.locators.clone(),
                dns_verifiable: h.dns_verifiable,
                rewrite_ok: h.rewrite_ok,
            })
            .collect();
        let mut host_of = HashMap::new();
        for (i, h) in hosts.iter().enumerate() {
            for l in &h.locators {
                // The first host naming a locator owns it, as in the engine.
                host_of.entry(addr::from_std(l)).or_insert(i as u32);
            }
        }
        Responder {
            keys: CcKeyring::new(CcKey::new(m.key_serial, &m.secret)),
            birthday: m.birthday,
            clock_ms: m.clock_ms,
            base_ns: now_ns,
            per_second: m.per_second,
            hosts,
            host_of,
        }
    }

    /// CCs per second per worker at most.
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// The control plane's CC clock at `now_ns`: its clock in whole seconds, wrapping at
    /// 32 bits like the engine's `cc_clock`.
    fn clock(&self, now_ns: u64) -> u32 {
        let elapsed_ms = now_ns.saturating_sub(self.base_ns) / 1_000_000;
        (self.clock_ms.saturating_add(elapsed_ms) / 1000) as u32
    }
}

/// A worker's CC rate limits: per source /64 and for the worker.
pub struct CcLimiter {
    worker: TokenBucket,
    worker_rate: u32,
    sources: Vec<(u64, TokenBucket)>,
    /// SipHash with a random key: an attacker cannot aim two /64s at one slot.
    hasher: std::collections::hash_map::RandomState,
}

impl Default for CcLimiter {
    fn default() -> CcLimiter {
        CcLimiter::new()
    }
}

impl CcLimiter {
    pub fn new() -> CcLimiter {
        CcLimiter {
            worker: TokenBucket::new(0),
            worker_rate: 0,
            sources: Vec::new(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Takes a token for one CC to `src` at `now_ns` with the worker rate `per_second`.
    fn take(&mut self, src: Addr, per_second: u32, now_ns: u64) -> bool {
        if self.worker_rate != per_second {
            self.worker = TokenBucket::new(per_second);
            self.worker_rate = per_second;
        }
        if self.sources.is_empty() {
            self.sources = (0..SOURCE_SLOTS)
                .map(|_| (u64::MAX, TokenBucket::new(PER_SOURCE_64_PER_SEC)))
                .collect();
        }
        let net = (src >> 64) as u64;
        let i = (self.hasher.hash_one(net) % SOURCE_SLOTS as u64) as usize;
        let Some(slot) = self.sources.get_mut(i) else {
            return false;
        };
        // A new /64 in the slot inherits what is left of the bucket (see SOURCE_SLOTS).
        slot.0 = net;
        slot.1.take(now_ns) && self.worker.take(now_ns)
    }
}

/// What to do with an M6 control packet for a proxied host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The buffer now holds the CC (IPv6 from `reply_src` to the INIT's source, "rewrite
    /// ok" as `rewrite_ok` says) at the same L3 offset; the caller adds the link layer and
    /// routes it.
    Answered { reply_src: Addr, rewrite_ok: bool },
    /// Hand it to the control plane.
    Punt,
}

/// The summary of the CC that [`answer`] left in a `frame_len`-octet frame in place of
/// the INIT summarised by `init` (later stages, and a hold queue, read it).
pub fn reply_parsed(init: &Parsed, frame_len: usize, rewrite_ok: bool) -> Parsed {
    Parsed {
        ip_len: frame_len.saturating_sub(init.l3()) as u32,
        l4_off: (init.l3() + ipv6::HEADER_LEN) as u32,
        l4_proto: ipv6::proto::ICMPV6,
        icmp_type: Some(IcmpTypes::default().type_for(rewrite_ok)),
        fragment: false,
        frag_at: 0,
        rewrite_ok,
        chain_error: None,
        hop_limit: HOP_LIMIT,
        src: init.dst,
        dst: init.src,
        ..*init
    }
}

/// Answers the INIT in `buf` (parsed as `p`, ICMPv6 type 200/201, to a proxied host) with
/// a CC in place, or says to punt it, or drops it with a reason. See the module doc for
/// the rules.
pub fn answer<B: PacketBuf>(
    buf: &mut B,
    p: &Parsed,
    responder: Option<&Responder>,
    table: &ContextTable,
    limiter: &mut CcLimiter,
    now_ns: u64,
) -> Result<Outcome, DropReason> {
    let Some(r) = responder else {
        return Ok(Outcome::Punt);
    };
    let (l4, end) = (p.l4(), p.end());
    let types = IcmpTypes::default();
    let code = buf
        .data()
        .get(l4..end)
        .and_then(|m| Packet::new_checked(m).ok())
        .and_then(|m| m.code());
    if code != Some(Code::Init) {
        return Ok(Outcome::Punt);
    }
    let (src, dst) = (addr::to_std(p.src), addr::to_std(p.dst));
    let repr = buf
        .data()
        .get(l4..end)
        .and_then(|m| Repr::parse(&Packet::new_unchecked(m), &src, &dst, &types).ok())
        .ok_or(DropReason::BadInit)?;
    let Message::Init(init) = &repr.message else {
        return Err(DropReason::BadInit);
    };
    let host_idx = r
        .host_of
        .get(&addr::from_std(&init.aid_responder))
        .copied()
        .filter(|h| r.host_of.get(&p.dst) == Some(h))
        .ok_or(DropReason::NotOurHost)?;
    let host = r
        .hosts
        .get(host_idx as usize)
        .ok_or(DropReason::NotOurHost)?;
    let (aid_i, aid_r) = (
        addr::from_std(&init.aid_initiator),
        addr::from_std(&init.aid_responder),
    );
    if repr.piggyback.is_some()
        || table.by_aids(aid_r, aid_i).is_some()
        || matches!(
            table.destination(aid_i),
            Some(Destination::Pending | Destination::M6)
        )
    {
        return Ok(Outcome::Punt);
    }
    // Each CC costs a MAC and a packet: only up to the rates (7.3).
    if !limiter.take(p.src, r.per_second, now_ns) {
        return Err(DropReason::RateLimited);
    }
    // The sets as the engine keeps them: sorted, without duplicates.
    let set = |v: &[Ipv6Addr]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.dedup();
        v
    };
    let lsl_i = set(&init.lsl_initiator);
    let lsr_r = set(&init.lsr_responder);
    // Lsl(responder) as announced: every locator when the host's DNS verifies, else the
    // AID alone (7.13).
    let lsl_r = if host.dns_verifiable {
        let mut v = host.locators.clone();
        v.push(init.aid_responder);
        set(&v)
    } else {
        vec![init.aid_responder]
    };
    let state = cc::generate(
        &r.keys,
        &CcInput {
            init_src: src,
            init_dst: dst,
            aid_initiator: init.aid_initiator,
            aid_responder: init.aid_responder,
            initiator_nonce: repr.nonce,
            initiator_flow_label: init.flow_label,
            initiator_birthday: init.birthday,
            responder_birthday: r.birthday,
            ulp_discarded: false,
            lsl_initiator: Locators::from_addrs(&lsl_i),
            lsr_responder: Locators::from_addrs(&lsr_r),
            lsl_responder: Locators::from_addrs(&lsl_r),
        },
        r.clock(now_ns),
    );
    let cc = Repr {
        rewrite_ok: host.rewrite_ok,
        nonce: repr.nonce,
        message: Message::Cc(Cc {
            aid_initiator: init.aid_initiator,
            aid_responder: init.aid_responder,
            lsl_initiator: lsl_i,
            lsr_responder: lsr_r,
            lsl_responder: lsl_r,
            state,
        }),
        piggyback: None,
    };
    let msg_len = cc.buffer_len();
    let l3 = p.l3();
    let new_end = l3 + ipv6::HEADER_LEN + msg_len;
    if new_end > buf.len() && buf.append(new_end - buf.len()).is_none() {
        // No tailroom for the larger CC: the control plane can still answer.
        return Ok(Outcome::Punt);
    }
    buf.truncate(new_end);
    let data = buf.data_mut();
    let header = ipv6::Repr {
        src: dst.octets(),
        dst: src.octets(),
        next_header: ipv6::proto::ICMPV6,
        payload_len: u16::try_from(msg_len).map_err(|_| DropReason::BadInit)?,
        hop_limit: HOP_LIMIT,
    };
    let Some(ip) = data.get_mut(l3..new_end) else {
        return Err(DropReason::BadInit);
    };
    let (h, m) = ip.split_at_mut(ipv6::HEADER_LEN);
    if !header.emit(h) {
        return Err(DropReason::BadInit);
    }
    cc.emit(&mut Packet::new_unchecked(m), &dst, &src, &types)
        .map_err(|_| DropReason::BadInit)?;
    Ok(Outcome::Answered {
        reply_src: p.dst,
        rewrite_ok: host.rewrite_ok,
    })
}
