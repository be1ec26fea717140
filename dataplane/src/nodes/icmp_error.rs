//! ICMPv6 errors the router originates (RFC 4443), built in place in the invoking
//! packet's buffer and sent back out the port it came in on:
//!
//! - destination unreachable, code 5 "source address failed ingress/egress policy", when
//!   the ISP owning the source prefix is down or the source is in no ISP prefix (seed 000
//!   sections 5.1, 5.2); code 3 "address unreachable" when the next hop's address
//!   resolution failed (RFC 4861 section 7.2.2); code 2 "beyond scope of source address"
//!   for a link-local source toward a global destination (RFC 4443 section 3.1);
//! - packet too big, with the egress link's MTU (RFC 4443 section 3.2);
//! - time exceeded, code 0, when the hop limit runs out;
//! - parameter problem with a code and a pointer (RFC 4443 section 3.4, RFC 8200 section 4,
//!   RFC 8883).
//!
//! Rate limited by a per-worker token bucket (RFC 4443 section 2.4 (f)); never sent in
//! answer to an error, a redirect, or a packet sent to a multicast address, link-layer or
//! IPv6, except Packet Too Big and Parameter Problem code 2 (section 2.4 (e)).

use super::classify::Parsed;
use crate::buf::PacketBuf;
use crate::net::addr::{self, Addr};
use crate::net::ethernet::{self, ethertype};
use crate::net::ext;
use crate::net::icmpv6::{self, msg_type, unreachable};
use crate::net::ipv6::{self, proto};

/// Hop limit of the errors.
pub const HOP_LIMIT: u8 = 64;
/// IPv6 + ICMPv6 headers put in front of the invoking packet.
pub const OVERHEAD: usize = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
/// The most of the invoking packet an error carries: the error fits the minimum MTU.
pub const MAX_INVOKING: usize = ipv6::MIN_MTU - OVERHEAD;

/// Which error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Destination unreachable, code 5.
    SourcePolicy,
    /// Destination unreachable, code 3.
    AddressUnreachable,
    /// Destination unreachable, code 2.
    BeyondScope,
    /// Packet too big, with the MTU of the link it did not fit (octets).
    PacketTooBig { mtu: u32 },
    /// Time exceeded in transit, code 0.
    HopLimit,
    /// Time exceeded, code 1: fragment reassembly time exceeded (RFC 8200 section 4.5).
    ReassemblyTimeout,
    /// Parameter problem: `code`, and `pointer` (octets from the start of the invoking
    /// packet's IPv6 header).
    ParamProblem { code: u8, pointer: u32 },
}

impl Kind {
    /// The ICMPv6 type and code.
    pub fn type_code(self) -> (u8, u8) {
        match self {
            Kind::SourcePolicy => (msg_type::DST_UNREACHABLE, unreachable::SOURCE_POLICY),
            Kind::AddressUnreachable => (msg_type::DST_UNREACHABLE, unreachable::ADDRESS),
            Kind::BeyondScope => (msg_type::DST_UNREACHABLE, unreachable::BEYOND_SCOPE),
            Kind::PacketTooBig { .. } => (msg_type::PACKET_TOO_BIG, 0),
            Kind::HopLimit => (msg_type::TIME_EXCEEDED, 0),
            Kind::ReassemblyTimeout => (msg_type::TIME_EXCEEDED, 1),
            Kind::ParamProblem { code, .. } => (msg_type::PARAM_PROBLEM, code),
        }
    }

    /// The 32-bit field after the checksum: MTU, pointer, or unused (zero).
    pub fn param(self) -> u32 {
        match self {
            Kind::PacketTooBig { mtu } => mtu,
            Kind::ParamProblem { pointer, .. } => pointer,
            _ => 0,
        }
    }

    /// RFC 4443 section 2.4 (e.2, e.3): the errors that may answer a packet sent to a
    /// multicast address.
    fn multicast_exception(self) -> bool {
        matches!(
            self,
            Kind::PacketTooBig { .. } | Kind::ParamProblem { code: 2, .. }
        )
    }
}

/// Whether RFC 4443 section 2.4 (e) allows an error of `kind` about this packet.
#[inline]
pub fn allowed(p: &Parsed, kind: Kind) -> bool {
    if (p.l2_multicast || addr::is_multicast(p.dst)) && !kind.multicast_exception() {
        return false;
    }
    if addr::is_unspecified(p.src) || addr::is_multicast(p.src) {
        return false;
    }
    match (p.l4_proto, p.icmp_type) {
        (proto::ICMPV6, Some(t)) => !icmpv6::is_error(t) && t != msg_type::REDIRECT,
        _ => true,
    }
}

/// The summary to judge an error about `p` by (RFC 4443 2.4 (e.1): never about an ICMPv6
/// error): `p` itself, or, when classification stopped at an extension header (a transit
/// packet is read only to Hop-by-Hop), `p` with the upper layer found by a bounded walk of
/// `packet` (the IPv6 packet). `None` when the upper layer cannot be found: then no error
/// is sent. A non-first fragment carries no upper-layer header, and a packet for the router
/// whose chain is too long is answered about its chain (RFC 8883): both are judged as
/// they are.
pub fn upper_layer(p: &Parsed, packet: &[u8]) -> Option<Parsed> {
    if !ext::is_extension(p.l4_proto) || p.fragment || p.chain_error.is_some() {
        return Some(*p);
    }
    let first = *packet.get(6)?;
    let chain = ext::walk(packet, first).ok()?;
    let mut q = *p;
    q.l4_proto = chain.proto;
    q.icmp_type = if chain.proto == proto::ICMPV6 {
        Some(*packet.get(chain.offset)?)
    } else {
        None
    };
    Some(q)
}

/// The buffer could hold neither the headers in front nor behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoom;

/// Turns the packet in `buf` into an error of `kind` from `src` (a router address) to the
/// packet's source, carrying as much of the packet as fits in 1280 bytes, addressed at the
/// link layer to the frame's sender from `port_mac` (with the request's VLAN tag).
pub fn build<B: PacketBuf>(
    buf: &mut B,
    p: &Parsed,
    kind: Kind,
    src: Addr,
    port_mac: [u8; 6],
) -> Result<(), NoRoom> {
    let l2 = p.l3();
    let invoking = (p.ip_len as usize).min(MAX_INVOKING);
    buf.truncate(l2 + invoking);
    if buf.len() != l2 + invoking {
        return Err(NoRoom);
    }
    // [l2][invoking] -> [l2][ipv6][icmpv6][invoking]: grow at the front if the headroom
    // allows (the usual case: the old link header is overwritten), else at the back and
    // move the invoking packet up.
    if buf.prepend(OVERHEAD).is_none() {
        if buf.append(OVERHEAD).is_none() {
            return Err(NoRoom);
        }
        buf.data_mut().copy_within(l2..l2 + invoking, l2 + OVERHEAD);
    }
    let src_b = addr::to_bytes(src);
    let dst_b = addr::to_bytes(p.src);
    let data = buf.data_mut();
    ethernet::emit(data, p.src_mac, port_mac, p.vlan_tci, ethertype::IPV6);
    let Some(ip) = data.get_mut(l2..) else {
        return Err(NoRoom);
    };
    let repr = ipv6::Repr {
        src: src_b,
        dst: dst_b,
        next_header: proto::ICMPV6,
        payload_len: (icmpv6::HEADER_LEN + invoking) as u16,
        hop_limit: HOP_LIMIT,
    };
    repr.emit(ip);
    let (t, c) = kind.type_code();
    let Some(msg) = ip.get_mut(ipv6::HEADER_LEN..) else {
        return Err(NoRoom);
    };
    if let Some(h) = msg.get_mut(..icmpv6::HEADER_LEN) {
        let param = kind.param().to_be_bytes();
        h.copy_from_slice(&[t, c, 0, 0, param[0], param[1], param[2], param[3]]);
    }
    if let Ok(mut m) = icmpv6::Message::new_checked(msg) {
        m.fill_checksum(&src_b, &dst_b);
    }
    Ok(())
}

const NS_PER_SEC: u64 = 1_000_000_000;

/// A token bucket of `rate` tokens per second holding at most `rate` tokens (one second's
/// burst); starts full. Fixed point: one token is 10^9 units, each nanosecond adds `rate`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: u64,
    units: u64,
    last_ns: Option<u64>,
}

impl TokenBucket {
    pub fn new(per_sec: u32) -> TokenBucket {
        let rate = u64::from(per_sec);
        TokenBucket {
            rate,
            units: rate * NS_PER_SEC,
            last_ns: None,
        }
    }

    /// Takes a token at time `now_ns` if there is one.
    pub fn take(&mut self, now_ns: u64) -> bool {
        if self.rate == 0 {
            return false;
        }
        let cap = self.rate * NS_PER_SEC;
        if let Some(last) = self.last_ns {
            let elapsed = now_ns.saturating_sub(last);
            self.units = self
                .units
                .saturating_add(elapsed.saturating_mul(self.rate))
                .min(cap);
        }
        self.last_ns = Some(self.last_ns.map_or(now_ns, |l| l.max(now_ns)));
        if self.units >= NS_PER_SEC {
            self.units -= NS_PER_SEC;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::net::checksum;
    use crate::nodes::classify::classify;
    use crate::site::SiteTables;
    use crate::testpkt::*;

    fn parsed(f: &[u8], b: &mut VecBuf) -> Parsed {
        let t = SiteTables::new(&two_isp_site());
        *b = VecBuf::new(f);
        classify(b, &t, 0).2
    }

    #[test]
    fn unreachable_code_5_layout() {
        let f = udp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::1",
            64,
            16,
        );
        let mut b = VecBuf::new(&[]);
        let p = parsed(&f, &mut b);
        let src = addr::from_std(&ip("2001:db8:1:1::1"));
        build(&mut b, &p, Kind::SourcePolicy, src, LAN_MAC).unwrap();
        let out = b.to_vec();
        let mut body = vec![0, 0, 0, 0];
        body.extend_from_slice(&f[14..]);
        let want = icmp_frame(
            HOST_MAC,
            LAN_MAC,
            "2001:db8:1:1::1",
            "2001:db8:1:1::10",
            64,
            1,
            5,
            &body,
        );
        assert_eq!(out, want);
    }

    #[test]
    fn big_packet_is_cut_to_1280_and_tailroom_fallback_works() {
        let f = udp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::1",
            64,
            1400,
        );
        for headroom in [128, 0] {
            let t = SiteTables::new(&two_isp_site());
            let mut b = VecBuf::with_room(&f, headroom, 64);
            let p = classify(&mut b, &t, 0).2;
            let src = addr::from_std(&ip("2001:db8:1:1::1"));
            build(&mut b, &p, Kind::HopLimit, src, LAN_MAC).unwrap();
            let out = b.to_vec();
            assert_eq!(out.len(), 14 + 1280);
            assert_eq!(&out[54..56], &[3, 0]);
            assert_eq!(&out[62..62 + 1232], &f[14..14 + 1232]);
            let (s, d) = (
                ip("2001:db8:1:1::1").octets(),
                ip("2001:db8:1:1::10").octets(),
            );
            assert!(checksum::verify(&s, &d, 58, &out[54..]));
        }
        // No room anywhere.
        let t = SiteTables::new(&two_isp_site());
        let small = udp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::1",
            64,
            10,
        );
        let mut b = VecBuf::with_room(&small, 0, 0);
        let p = classify(&mut b, &t, 0).2;
        assert_eq!(build(&mut b, &p, Kind::HopLimit, 1, LAN_MAC), Err(NoRoom));
    }

    #[test]
    fn never_about_errors_or_multicast() {
        let mut p = Parsed {
            src: 1 << 100,
            dst: 1 << 101,
            l4_proto: 17,
            ..Parsed::default()
        };
        let k = Kind::HopLimit;
        assert!(allowed(&p, k));
        p.l4_proto = 58;
        p.icmp_type = Some(1);
        assert!(!allowed(&p, k));
        p.icmp_type = Some(137);
        assert!(!allowed(&p, k));
        p.icmp_type = Some(128);
        assert!(allowed(&p, k));
        p.l2_multicast = true;
        assert!(!allowed(&p, k));
        // RFC 4443 2.4 (e.2/e.3): Packet Too Big and Parameter Problem code 2 may answer
        // multicast.
        assert!(allowed(&p, Kind::PacketTooBig { mtu: 1280 }));
        assert!(allowed(
            &p,
            Kind::ParamProblem {
                code: 2,
                pointer: 42
            }
        ));
        assert!(!allowed(
            &p,
            Kind::ParamProblem {
                code: 0,
                pointer: 42
            }
        ));
    }

    #[test]
    fn bucket() {
        let mut tb = TokenBucket::new(3);
        assert!(tb.take(0) && tb.take(0) && tb.take(0));
        assert!(!tb.take(1));
        assert!(tb.take(NS_PER_SEC / 3 + 1));
        assert!(!tb.take(NS_PER_SEC / 3 + 2));
        // Refills to at most one second's worth.
        assert!(
            tb.take(100 * NS_PER_SEC) && tb.take(100 * NS_PER_SEC) && tb.take(100 * NS_PER_SEC)
        );
        assert!(!tb.take(100 * NS_PER_SEC));
        assert!(!TokenBucket::new(0).take(0));
        // Time going backwards neither panics nor refills.
        assert!(!tb.take(5));
    }
}
