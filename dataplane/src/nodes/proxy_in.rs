//! The proxy, inbound (seed 001 section 7.11; seed 002 section 6 step 5B): M6 data for a
//! proxied host is looked up by its flow label, checked against the context's locator sets,
//! and turned back into the plain packet the legacy host expects:
//!
//! 1. context by F(local) (the flow label); none: dropped and reported (the control plane
//!    answers with Unknown Context, rate-limited);
//! 2. destination not in Lsl(local): dropped silently;
//! 3. source not in Lsl(peer): dropped silently; in Lsl(peer) but not Lsv(peer): accepted
//!    and reported for verification; in Lsv(peer) but not Lp(peer): accepted, and becomes
//!    Lp(peer) on this worker at once (reported so the owner publishes it);
//! 4. AIDs restored (source AID(peer), destination AID(local)), the M6 next header mapped
//!    back to its protocol (an escape header removed), the flow label cleared.
//!
//! Slots 5 and 6 are reserved and an escape header naming M6 again is malformed: both are
//! dropped silently (docs/protocol.md 3.1, 3.2).

use proto::wire::data::{protocol_for_k, ESCAPE_LEN, K_ESCAPE};

use super::classify::Parsed;
use crate::buf::PacketBuf;
use crate::contexts::{Context, ContextTable};
use crate::net::addr::{self, Addr};
use crate::net::ipv6;
use crate::stats::reasons;

reasons! {
    pub enum DropReason {
        /// No context has the flow label: reported, answered with UC (7.11 step 1a).
        UnknownFlowLabel = "proxy_unknown_flow_label",
        /// The destination is in no Lsl(local) of the label's contexts (7.11 step 2a).
        DstNotInLslLocal = "proxy_dst_not_in_lsl_local",
        /// The source is not in Lsl(peer) (7.11 step 3a).
        SrcNotInLslPeer = "proxy_src_not_in_lsl_peer",
        /// M6 slot 5 or 6 (reserved), or an escape header naming M6 or running past the end.
        BadM6Header = "proxy_bad_m6_header",
        /// An M6 control message for a proxied host over the worker's punt rate.
        PuntRateLimited = "proxy_punt_ratelimited",
    }
}

/// What the receive checks found about the source, besides accepting the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceNote {
    /// The source is Lp(peer) (or this worker's newer one): nothing to do.
    Preferred,
    /// In Lsv(peer), not Lp(peer): it becomes Lp(peer) (7.11 step 3c).
    NewPreferred,
    /// In Lsl(peer), not verified: the control plane verifies it (7.11 step 3b).
    Unverified,
}

/// The receive checks of seed 001 section 7.11 for M6 data with flow label `label` from
/// `src` to `dst`; `lp_peer` is the Lp(peer) this worker uses now.
pub fn check(
    t: &ContextTable,
    label: u32,
    src: Addr,
    dst: Addr,
    lp_peer: impl Fn(&Context) -> Option<Addr>,
) -> Result<(&Context, SourceNote), DropReason> {
    // Read in place: a copy would touch every cache line of the context.
    let ctx = match t.by_label(label, dst) {
        Ok(c) => c,
        Err(true) => return Err(DropReason::DstNotInLslLocal),
        Err(false) => return Err(DropReason::UnknownFlowLabel),
    };
    if !ctx.lsl_peer.contains(src) {
        return Err(DropReason::SrcNotInLslPeer);
    }
    let note = if lp_peer(ctx) == Some(src) {
        SourceNote::Preferred
    } else if ctx.lsv_peer.contains(src) {
        SourceNote::NewPreferred
    } else {
        SourceNote::Unverified
    };
    Ok((ctx, note))
}

/// Restores the plain packet in `buf` for `ctx`: AIDs, the protocol the M6 value stands
/// for (`m6` is the next-header value, `p.l4()` where the upper layer or escape header
/// starts), no escape header, flow label 0. `p` is updated.
pub fn restore<B: PacketBuf>(
    buf: &mut B,
    p: &mut Parsed,
    ctx: &Context,
    m6_base: u8,
) -> Result<(), DropReason> {
    let k = p.l4_proto.wrapping_sub(m6_base);
    let nh_field = if p.l4() == p.l3() + ipv6::HEADER_LEN {
        p.l3() + 6
    } else {
        p.l3() + ipv6::HEADER_LEN
    };
    let ulp = match protocol_for_k(k) {
        Some(proto) => proto,
        None if k == K_ESCAPE => {
            let data = buf.data();
            let (Some(&next), Some(&len)) = (data.get(p.l4()), data.get(p.l4() + 1)) else {
                return Err(DropReason::BadM6Header);
            };
            let esc = (usize::from(len) + 1) * ESCAPE_LEN;
            let in_m6 = (proto::wire::consts::P1_DEFAULT..proto::wire::consts::P1_DEFAULT + 8)
                .contains(&next)
                || (proto::wire::consts::P2_DEFAULT..proto::wire::consts::P2_DEFAULT + 8)
                    .contains(&next);
            if in_m6 || p.l4() + esc > p.end() {
                return Err(DropReason::BadM6Header);
            }
            // Remove the escape header: the headers before it move toward the back.
            let at = p.l4();
            let data = buf.data_mut();
            data.copy_within(0..at, esc);
            if !buf.adj(esc) {
                return Err(DropReason::BadM6Header);
            }
            p.ip_len -= esc as u32;
            let plen = (p.ip_len as usize - ipv6::HEADER_LEN) as u16;
            if let Some(f) = buf.data_mut().get_mut(p.l3() + 4..p.l3() + 6) {
                f.copy_from_slice(&plen.to_be_bytes());
            }
            next
        }
        None => return Err(DropReason::BadM6Header),
    };
    let data = buf.data_mut();
    if let Some(b) = data.get_mut(nh_field) {
        *b = ulp;
    }
    let l3 = p.l3();
    if let Some(h) = data.get_mut(l3 + 1..l3 + 4) {
        h[0] &= 0xf0;
        h[1] = 0;
        h[2] = 0;
    }
    if let Some(s) = data.get_mut(l3 + 8..l3 + 24) {
        s.copy_from_slice(&ctx.aid_peer);
    }
    if let Some(d) = data.get_mut(l3 + 24..l3 + 40) {
        d.copy_from_slice(&ctx.aid_local);
    }
    p.src = addr::from_bytes(ctx.aid_peer);
    p.dst = addr::from_bytes(ctx.aid_local);
    p.l4_proto = ulp;
    // What later stages judge errors by (RFC 4443 2.4 (e.1)).
    p.icmp_type = if ulp == crate::net::ipv6::proto::ICMPV6 {
        buf.data().get(p.l4()).copied()
    } else {
        None
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::contexts::{ContextOp, LocatorSet};
    use crate::nodes::classify::classify;
    use crate::site::SiteTables;
    use crate::tables::Table;
    use crate::testpkt::*;

    fn a(s: &str) -> Addr {
        addr::from_std(&ip(s))
    }

    fn table() -> (ContextTable, Context) {
        let c = Context {
            f_local: 0x111,
            aid_local: addr::to_bytes(a("2001:db8:1:1::10")),
            aid_peer: addr::to_bytes(a("2001:db8:99::20")),
            f_peer: 0xabcde,
            lsl_local: LocatorSet::new(&[a("2001:db8:1:1::10"), a("2001:db8:2:1::10")]),
            ls_local: LocatorSet::new(&[a("2001:db8:1:1::10"), a("2001:db8:2:1::10")]),
            lsl_peer: LocatorSet::new(&[
                a("2001:db8:99::20"),
                a("2001:db8:98::20"),
                a("2001:db8:97::20"),
            ]),
            lsv_peer: LocatorSet::new(&[a("2001:db8:99::20"), a("2001:db8:98::20")]),
            lp_peer: addr::to_bytes(a("2001:db8:99::20")),
            rewrite_ok: true,
            transmit: true,
        };
        let mut t = ContextTable::new(1);
        t.apply(&ContextOp::Install(Box::new(c)));
        (t, c)
    }

    #[test]
    fn each_rule_of_section_7_11() {
        let (t, c) = table();
        let lp = |c: &Context| c.lp_peer();
        let local = a("2001:db8:2:1::10");
        assert_eq!(
            check(&t, 0x111, a("2001:db8:99::20"), local, lp),
            Ok((&c, SourceNote::Preferred))
        );
        assert_eq!(
            check(&t, 0x111, a("2001:db8:98::20"), local, lp),
            Ok((&c, SourceNote::NewPreferred)),
            "3c"
        );
        assert_eq!(
            check(&t, 0x111, a("2001:db8:97::20"), local, lp),
            Ok((&c, SourceNote::Unverified)),
            "3b"
        );
        assert_eq!(
            check(&t, 0x111, a("2001:db8:96::20"), local, lp),
            Err(DropReason::SrcNotInLslPeer),
            "3a"
        );
        assert_eq!(
            check(&t, 0x111, a("2001:db8:99::20"), a("2001:db8:2:1::11"), lp),
            Err(DropReason::DstNotInLslLocal),
            "2a"
        );
        assert_eq!(
            check(&t, 0x112, a("2001:db8:99::20"), local, lp),
            Err(DropReason::UnknownFlowLabel),
            "1a"
        );
    }

    /// An M6 data frame from the peer's locator `src` to `dst` with flow label 0x111.
    fn m6_in(nh: u8, src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
        let mut f = ip_frame(ISP1_PORT_MAC, ISP1_MAC, src, dst, 60, nh, payload);
        f[15] |= 0x00;
        f[16] = 0x01;
        f[17] = 0x11;
        f
    }

    #[test]
    fn restore_tcp_and_escape() {
        let t = SiteTables::new(&two_isp_site());
        let (_, c) = table();
        let payload = [7u8; 20];
        let f = m6_in(160, "2001:db8:98::20", "2001:db8:2:1::10", &payload);
        let mut b = VecBuf::new(&f);
        let (_, _, mut p) = classify(&mut b, &t, 1);
        restore(&mut b, &mut p, &c, 160).unwrap();
        let out = b.to_vec();
        assert_eq!(out[20], 6, "TCP");
        assert_eq!(out[22..38], ip("2001:db8:99::20").octets());
        assert_eq!(out[38..54], ip("2001:db8:1:1::10").octets());
        assert_eq!(out[15] & 0x0f, 0);
        assert_eq!(out[16..18], [0, 0], "flow label cleared");
        assert_eq!(out[54..], payload);
        // Escape carrying ICMPv6 (P2 + 7).
        let mut esc = vec![58, 0, 0, 0, 0, 0, 0, 0];
        esc.extend_from_slice(&[129, 0, 1, 2, 3, 4, 5, 6]);
        let f = m6_in(175, "2001:db8:99::20", "2001:db8:1:1::10", &esc);
        let mut b = VecBuf::new(&f);
        let (_, _, mut p) = classify(&mut b, &t, 1);
        restore(&mut b, &mut p, &c, 168).unwrap();
        let out = b.to_vec();
        assert_eq!(out.len(), f.len() - 8);
        assert_eq!(out[0..14], f[0..14]);
        assert_eq!(out[20], 58);
        assert_eq!(u16::from_be_bytes([out[18], out[19]]), 8);
        assert_eq!(out[54..], esc[8..]);
        // Reserved slot 5, and an escape naming M6: dropped.
        for (nh, body) in [(165u8, vec![0u8; 8]), (167, vec![161, 0, 0, 0, 0, 0, 0, 0])] {
            let f = m6_in(nh, "2001:db8:99::20", "2001:db8:1:1::10", &body);
            let mut b = VecBuf::new(&f);
            let (_, _, mut p) = classify(&mut b, &t, 1);
            assert_eq!(
                restore(&mut b, &mut p, &c, 160),
                Err(DropReason::BadM6Header)
            );
        }
    }
}
