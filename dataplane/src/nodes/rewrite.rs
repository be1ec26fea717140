//! The last forwarding step (VPP's ip6-rewrite): hop limit check and decrement, then the
//! new Ethernet header (source = egress port, destination = the next hop's MAC).
//!
//! Forwarded frames leave untagged: the site description has no VLANs yet, and a tag
//! belongs to the link the frame arrived on.

use super::classify::Parsed;
use crate::buf::PacketBuf;
use crate::net::ethernet::{self, ethertype};
use crate::stats::reasons;

reasons! {
    pub enum DropReason {
        /// Hop limit 0 or 1: may not be forwarded (RFC 8200 section 3); answered with
        /// time exceeded.
        HopLimitExceeded = "hop_limit_exceeded",
        /// The next hop's MAC is not known yet; a solicitation is queued.
        NeighborUnresolved = "neighbor_unresolved",
    }
}

/// Whether the packet may be forwarded at all.
#[inline]
pub fn hop_limit_ok(p: &Parsed) -> bool {
    p.hop_limit > 1
}

/// Decrements the hop limit and writes an untagged Ethernet header from `src_mac` to
/// `dst_mac` in front of the IPv6 header (dropping a VLAN tag). False if the buffer does
/// not hold what `p` says (cannot happen after classification).
#[inline]
pub fn apply<B: PacketBuf>(buf: &mut B, p: &Parsed, src_mac: [u8; 6], dst_mac: [u8; 6]) -> bool {
    let l3 = p.l3();
    match buf.data_mut().get_mut(l3 + 7) {
        Some(hl) => *hl = p.hop_limit.saturating_sub(1),
        None => return false,
    }
    if l3 > ethernet::HEADER_LEN && !buf.adj(l3 - ethernet::HEADER_LEN) {
        return false;
    }
    ethernet::emit(buf.data_mut(), dst_mac, src_mac, None, ethertype::IPV6) == ethernet::HEADER_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::nodes::classify::classify;
    use crate::site::SiteTables;
    use crate::testpkt::*;

    #[test]
    fn rewrite_untagged_and_tagged() {
        let t = SiteTables::new(&two_isp_site());
        let f = udp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::1",
            64,
            4,
        );
        for frame in [f.clone(), tagged(&f, 5)] {
            let mut b = VecBuf::new(&frame);
            let (_, _, p) = classify(&mut b, &t, 0);
            assert!(hop_limit_ok(&p));
            assert!(apply(&mut b, &p, ISP1_PORT_MAC, ISP1_MAC));
            let want = udp_frame(
                ISP1_MAC,
                ISP1_PORT_MAC,
                "2001:db8:1:1::10",
                "2001:db8:99::1",
                63,
                4,
            );
            assert_eq!(b.to_vec(), want);
        }
    }

    #[test]
    fn hop_limit() {
        let mut p = Parsed {
            hop_limit: 2,
            ..Parsed::default()
        };
        assert!(hop_limit_ok(&p));
        p.hop_limit = 1;
        assert!(!hop_limit_ok(&p));
        p.hop_limit = 0;
        assert!(!hop_limit_ok(&p));
    }
}
