//! The rewriting router (seed 001 sections 3, 6 and 11; DESIGN section 2): an outbound M6
//! packet that says "rewrite ok" (data with a next header in P1..P1+7, control as ICMPv6
//! type 200) may leave through any healthy ISP, its source locator rewritten to that ISP's
//! prefix so that the ISP's ingress filter accepts it ("ingress filtering should be replaced
//! by locator rewriting when the rewrite ok bit is set", section 11) and the peer learns a
//! source locator that works for return traffic (section 4.4).
//!
//! - The ISP is picked by the policy ([`crate::policy`]: rules on the destination, then a
//!   weighted hash of the flow: source, destination, flow label) over the eligible ISPs,
//!   so one flow stays on one ISP while it is eligible and moves only when it fails or is
//!   drained.
//! - The new source keeps everything after the new ISP's prefix length (subnet and
//!   interface id) and takes the ISP's prefix before it.
//! - M6 data needs no checksum change: upper-layer checksums are computed over the AIDs,
//!   not the locators (seed 001 section 10; docs/protocol.md 3.1). M6 control messages are
//!   ICMPv6 over the real addresses: their checksum is updated incrementally (RFC 1624).
//!
//! No-rewrite M6 (P2, type 201) and plain IPv6 keep source-prefix egress (`egress`).

use super::classify::Parsed;
use crate::buf::PacketBuf;
use crate::isp::IspView;
use crate::net::addr::{self, Addr};
use crate::net::checksum;
use crate::net::ipv6::proto;
use crate::site::SiteTables;
use crate::stats::named_counters;

named_counters! {
    /// The rewriting router (`rewrite.*`).
    pub struct RewriteCounters("rewrite") {
        /// Rewrite-ok packets whose source locator was rewritten (the flow hash picked an
        /// ISP other than the owner of the source).
        rewritten,
        /// Rewrite-ok packets sent through the ISP that already owns their source.
        kept,
        /// Rewrite-ok packets with no usable ISP (answered like plain IPv6: code 5).
        no_usable_isp,
    }
}

/// The flow label of the IPv6 packet starting at `ip`.
#[inline]
pub fn flow_label(ip: &[u8]) -> u32 {
    match ip.get(1..4) {
        Some(&[a, b, c]) => (u32::from(a & 0x0f) << 16) | (u32::from(b) << 8) | u32::from(c),
        _ => 0,
    }
}

/// The ISP a rewrite-ok flow leaves through: the policy's choice for (source,
/// destination, flow label) among the eligible ISPs; `None` when it leaves none.
#[inline]
pub fn pick(t: &SiteTables, isps: &IspView, src: Addr, dst: Addr, flow: u32) -> Option<usize> {
    isps.policy
        .choose(isps.eligible & t.wired_isps, dst, flow_hash(src, dst, flow))
}

/// A hash of a flow (source, destination, flow label) that picks its egress ISP: stable
/// per flow, spread across flows (not cryptographic: nothing is hidden by it).
#[inline]
pub fn flow_hash(src: Addr, dst: Addr, flow: u32) -> u64 {
    let x = (src ^ src.rotate_left(64) ^ dst.rotate_left(17)) as u64
        ^ ((src >> 64) as u64).rotate_left(29)
        ^ u64::from(flow).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x.wrapping_mul(0xff51_afd7_ed55_8ccd) >> 32
}

/// Rewrites the source locator of the packet in `buf` to ISP `isp`'s prefix (the part
/// after the prefix length kept), updating the ICMPv6 checksum of an M6 control message;
/// returns the new source. `None` (buffer unchanged) if the headers are not where `p` says.
pub fn apply<B: PacketBuf>(buf: &mut B, p: &Parsed, t: &SiteTables, isp: usize) -> Option<Addr> {
    let prefix = t.isps.get(isp)?.prefix;
    let new = (p.src & !prefix.mask) | prefix.net;
    if new == p.src {
        return Some(new);
    }
    let (old_b, new_b) = (addr::to_bytes(p.src), addr::to_bytes(new));
    let data = buf.data_mut();
    if p.l4_proto == proto::ICMPV6 {
        let c = data.get(p.l4() + 2..p.l4() + 4)?;
        let sum = u16::from_be_bytes([c[0], c[1]]);
        let updated = checksum::update_for_address_octets(sum, &old_b, &new_b);
        data.get_mut(p.l4() + 2..p.l4() + 4)?
            .copy_from_slice(&updated.to_be_bytes());
    }
    data.get_mut(p.l3() + 8..p.l3() + 24)?
        .copy_from_slice(&new_b);
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::nodes::classify::classify;
    use crate::testpkt::*;

    fn live(up: [bool; 2]) -> IspView {
        isp_view(&two_isp_site(), &up)
    }

    #[test]
    fn flows_spread_and_stay_and_move_only_when_their_isp_fails() {
        let t = SiteTables::new(&two_isp_site());
        let src = addr::from_std(&ip("2001:db8:1:1::10"));
        let dst = addr::from_std(&ip("2001:db8:99::1"));
        let both = live([true, true]);
        let picks: Vec<usize> = (0..64)
            .map(|f| pick(&t, &both, src, dst, f).unwrap())
            .collect();
        assert!(
            picks.contains(&0) && picks.contains(&1),
            "spread: {picks:?}"
        );
        for f in 0..64 {
            assert_eq!(pick(&t, &both, src, dst, f), pick(&t, &both, src, dst, f));
            // ISP1 down: every flow on ISP2; flows already there do not move.
            assert_eq!(pick(&t, &live([false, true]), src, dst, f), Some(1));
        }
        assert_eq!(pick(&t, &live([false, false]), src, dst, 1), None);
    }

    #[test]
    fn source_prefix_is_replaced_and_control_checksums_stay_valid() {
        let t = SiteTables::new(&two_isp_site());
        // M6 control (type 200) from a PA1 locator, rewritten to PA2.
        let mut body = vec![0u8; 16];
        body[0] = 59;
        let f = icmp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:5::abcd",
            "2001:db8:99::1",
            64,
            200,
            1,
            &body,
        );
        let mut b = VecBuf::new(&f);
        let (_, _, p) = classify(&mut b, &t, 0);
        let new = apply(&mut b, &p, &t, 1).unwrap();
        assert_eq!(
            addr::to_std(new),
            ip("2001:db8:2:5::abcd"),
            "interface id kept"
        );
        let out = b.to_vec();
        assert_eq!(out[22..38], ip("2001:db8:2:5::abcd").octets());
        assert!(checksum::verify(
            &out[22..38].try_into().unwrap(),
            &out[38..54].try_into().unwrap(),
            58,
            &out[54..]
        ));
        // M6 data (P1 + TCP): only the address changes.
        let f = ip_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:5::abcd",
            "2001:db8:99::1",
            64,
            160,
            &[1, 2, 3, 4, 5, 6, 7, 8],
        );
        let mut b = VecBuf::new(&f);
        let (_, _, p) = classify(&mut b, &t, 0);
        apply(&mut b, &p, &t, 1).unwrap();
        let out = b.to_vec();
        assert_eq!(out[22..38], ip("2001:db8:2:5::abcd").octets());
        assert_eq!(out[54..], f[54..]);
        assert_eq!(out[..22], f[..22]);
    }

    #[test]
    fn flow_label_is_read_from_the_header() {
        assert_eq!(flow_label(&[0x6a, 0xbc, 0xde, 0xf1]), 0xcdef1);
        assert_eq!(flow_label(&[0x60]), 0);
    }
}
