//! The last forwarding step (VPP's ip6-rewrite, "adjacency"): hop limit check and
//! decrement, the egress link's MTU, then the new Ethernet header (source = egress port,
//! destination = the next hop's MAC from the neighbor table). Frames arrive and leave
//! untagged (classification drops tagged ones).
//!
//! Not to be confused with the M6 source-locator rewriting of seed 001 sections 3 and 6.

use super::classify::Parsed;
use crate::net::ethernet::{self, ethertype};
use crate::stats::reasons;

reasons! {
    pub enum DropReason {
        /// Hop limit 0 or 1: may not be forwarded (RFC 8200 section 3); answered with
        /// time exceeded.
        HopLimitExceeded = "hop_limit_exceeded",
        /// The next hop's MAC is not known yet and the hold queue (per neighbor or in all)
        /// is full.
        NeighborUnresolved = "neighbor_unresolved",
        /// Address resolution of the next hop failed: answered with destination
        /// unreachable code 3 (RFC 4861 section 7.2.2).
        NeighborFailed = "neighbor_failed",
        /// Larger than the egress link's MTU: answered with Packet Too Big (RFC 8200
        /// section 5, RFC 4443 section 3.2).
        PacketTooBig = "packet_too_big",
    }
}

/// Whether the packet may be forwarded at all.
#[inline]
pub fn hop_limit_ok(p: &Parsed) -> bool {
    p.hop_limit > 1
}

/// Whether the IPv6 packet fits a link of `mtu` octets.
#[inline]
pub fn fits(p: &Parsed, mtu: u16) -> bool {
    p.ip_len <= u32::from(mtu)
}

/// Decrements the hop limit (unless the router originated the packet) and writes the
/// Ethernet header from `src_mac` to `dst_mac` in `frame` (which starts with a 14-octet
/// Ethernet header). False if the frame does not hold what `p` says (cannot happen after
/// classification).
#[inline]
pub fn apply(
    frame: &mut [u8],
    p: &Parsed,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    originated: bool,
) -> bool {
    if p.l3() != ethernet::HEADER_LEN {
        return false;
    }
    if !originated {
        match frame.get_mut(ethernet::HEADER_LEN + 7) {
            Some(hl) => *hl = p.hop_limit.saturating_sub(1),
            None => return false,
        }
    }
    ethernet::emit(frame, dst_mac, src_mac, None, ethertype::IPV6) == ethernet::HEADER_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{PacketBuf, VecBuf};
    use crate::nodes::classify::classify;
    use crate::site::SiteTables;
    use crate::testpkt::*;

    #[test]
    fn rewrite() {
        let t = SiteTables::new(&two_isp_site());
        let f = udp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::1",
            64,
            4,
        );
        let mut b = VecBuf::new(&f);
        let (_, _, p) = classify(&mut b, &t, 0);
        assert!(hop_limit_ok(&p));
        assert!(fits(&p, 1500) && !fits(&p, 40));
        assert!(apply(b.data_mut(), &p, ISP1_PORT_MAC, ISP1_MAC, false));
        let want = udp_frame(
            ISP1_MAC,
            ISP1_PORT_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::1",
            63,
            4,
        );
        assert_eq!(b.to_vec(), want);
        // Originated: the hop limit stays.
        let mut b = VecBuf::new(&f);
        let (_, _, p) = classify(&mut b, &t, 0);
        assert!(apply(b.data_mut(), &p, ISP1_PORT_MAC, ISP1_MAC, true));
        assert_eq!(b.to_vec()[21], 64);
    }
}
