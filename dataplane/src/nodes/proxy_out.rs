//! The proxy, outbound (seed 002 sections 4.4 and 6; seed 001 sections 3 and 6): a packet
//! from a proxied legacy host to a peer with an established context leaves as M6 data:
//!
//! - source: the host's locator under the prefix of the ISP picked for the flow (a hash over
//!   the usable ISPs that have a locator in Ls(local));
//! - destination: Lp(peer) (the worker's own newer Lp(peer) if it saw one, seed 001 7.11
//!   step 3c);
//! - flow label: F(peer);
//! - next header: P1 + k (P2 + k without rewrite ok) for TCP, UDP, SCTP, DCCP, ESP; for any
//!   other protocol P + 7 and an 8-octet escape header carrying it (docs/protocol.md 3.2).
//!
//! Upper-layer checksums are left alone: the host computed them over the AIDs, which is what
//! M6 checksums cover (seed 001 section 10). Without a context the packet flows as plain
//! IPv6 (the first packet never waits, seed 001 section 4.1) and the first one to a new peer
//! is reported so that the control plane looks the peer up.

use proto::wire::consts::{P1_DEFAULT, P2_DEFAULT};
use proto::wire::data::{k_for_protocol, ESCAPE_LEN, K_ESCAPE};

use super::classify::Parsed;
use super::rewrite;
use crate::buf::PacketBuf;
use crate::contexts::Context;
use crate::isp::IspView;
use crate::net::addr::{self, Addr};
use crate::net::ipv6;
use crate::site::SiteTables;
use crate::stats::reasons;

reasons! {
    pub enum DropReason {
        /// No room in the buffer for the escape header.
        EscapeNoRoom = "proxy_escape_no_room",
    }
}

/// The translation of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translated {
    pub isp: usize,
    pub src: Addr,
    pub dst: Addr,
}

/// The ISP and source locator for a packet of `ctx` to `dst` (the peer's AID): the
/// policy's choice ([`crate::policy`]) among the eligible ISPs whose prefix holds one of
/// its Ls(local), hashed on the context (AIDs and F(peer)) rather than the host's flow, so
/// a context keeps one source locator while its ISP is eligible (a changing source would
/// make the peer switch Lp(peer) back and forth, 7.11 step 3c); `None` when none is.
pub fn pick(t: &SiteTables, isps: &IspView, ctx: &Context, dst: Addr) -> Option<(usize, Addr)> {
    let owned = ctx
        .ls_local
        .iter()
        .filter_map(|l| t.isp_owning(l))
        .filter(|&i| i < crate::policy::MAX_ISPS)
        .fold(0u64, |m, i| m | 1 << i);
    let h = rewrite::flow_hash(ctx.aid_local(), ctx.aid_peer(), ctx.f_peer);
    let isp = isps
        .policy
        .choose(isps.eligible & t.wired_isps & owned, dst, h)?;
    let l = ctx
        .ls_local
        .iter()
        .find(|&l| t.isp_owning(l) == Some(isp))?;
    Some((isp, l))
}

/// Octets translation adds to a packet whose upper layer (after Hop-by-Hop) is `ulp`: 8
/// for an escape header, 0 for a protocol with its own slot.
pub fn grows(ulp: u8) -> usize {
    if k_for_protocol(ulp).is_some() {
        0
    } else {
        ESCAPE_LEN
    }
}

/// Translates the packet in `buf` (summary `p`, a plain packet from AID(local) to
/// AID(peer)) for `ctx`: source `src`, destination `dst`, flow label F(peer), the M6 next
/// header, an escape header if needed. `p` is updated (addresses, length, upper layer).
pub fn translate<B: PacketBuf>(
    buf: &mut B,
    p: &mut Parsed,
    ctx: &Context,
    src: Addr,
    dst: Addr,
) -> Result<(), DropReason> {
    let base = if ctx.rewrite_ok {
        P1_DEFAULT
    } else {
        P2_DEFAULT
    };
    // The M6 value replaces the next-header value that names the upper layer, right after
    // the IPv6 header and any Hop-by-Hop options (docs/protocol.md 3.1).
    let nh_field = if p.l4() == p.l3() + ipv6::HEADER_LEN {
        p.l3() + 6
    } else {
        // After Hop-by-Hop: its first octet.
        p.l3() + ipv6::HEADER_LEN
    };
    let ulp = p.l4_proto;
    match k_for_protocol(ulp) {
        Some(k) => {
            if let Some(b) = buf.data_mut().get_mut(nh_field) {
                *b = base + k;
            }
        }
        None => {
            // Insert the escape header where the upper layer (or the next extension header)
            // starts: the headers before it move 8 octets toward the front.
            let at = p.l4();
            if buf.prepend(ESCAPE_LEN).is_none() {
                return Err(DropReason::EscapeNoRoom);
            }
            let data = buf.data_mut();
            data.copy_within(ESCAPE_LEN..ESCAPE_LEN + at, 0);
            if let Some(e) = data.get_mut(at..at + ESCAPE_LEN) {
                e.copy_from_slice(&[ulp, 0, 0, 0, 0, 0, 0, 0]);
            }
            if let Some(b) = data.get_mut(nh_field) {
                *b = base + K_ESCAPE;
            }
            p.ip_len += ESCAPE_LEN as u32;
            p.l4_off += ESCAPE_LEN as u32;
            let plen = (p.ip_len as usize - ipv6::HEADER_LEN) as u16;
            if let Some(f) = data.get_mut(p.l3() + 4..p.l3() + 6) {
                f.copy_from_slice(&plen.to_be_bytes());
            }
        }
    }
    let data = buf.data_mut();
    let l3 = p.l3();
    if let Some(h) = data.get_mut(l3 + 1..l3 + 4) {
        let f = ctx.f_peer & 0xf_ffff;
        h[0] = (h[0] & 0xf0) | (f >> 16) as u8;
        h[1] = (f >> 8) as u8;
        h[2] = f as u8;
    }
    if let Some(s) = data.get_mut(l3 + 8..l3 + 24) {
        s.copy_from_slice(&addr::to_bytes(src));
    }
    if let Some(d) = data.get_mut(l3 + 24..l3 + 40) {
        d.copy_from_slice(&addr::to_bytes(dst));
    }
    p.src = src;
    p.dst = dst;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::contexts::LocatorSet;
    use crate::nodes::classify::classify;
    use crate::testpkt::*;

    fn a(s: &str) -> Addr {
        addr::from_std(&ip(s))
    }

    fn ctx() -> Context {
        Context {
            f_local: 0x111,
            aid_local: addr::to_bytes(a("2001:db8:1:1::10")),
            aid_peer: addr::to_bytes(a("2001:db8:99::20")),
            f_peer: 0xabcde,
            lsl_local: LocatorSet::new(&[a("2001:db8:1:1::10"), a("2001:db8:2:1::10")]),
            ls_local: LocatorSet::new(&[a("2001:db8:1:1::10"), a("2001:db8:2:1::10")]),
            lsl_peer: LocatorSet::new(&[a("2001:db8:99::20"), a("2001:db8:98::20")]),
            lsv_peer: LocatorSet::new(&[a("2001:db8:99::20"), a("2001:db8:98::20")]),
            lp_peer: addr::to_bytes(a("2001:db8:98::20")),
            rewrite_ok: true,
            transmit: true,
        }
    }

    #[test]
    fn udp_becomes_p1_plus_1_with_the_peer_locator_and_label() {
        let t = SiteTables::new(&two_isp_site());
        let f = udp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::20",
            64,
            8,
        );
        let mut b = VecBuf::new(&f);
        let (_, _, mut p) = classify(&mut b, &t, 0);
        let c = ctx();
        translate(
            &mut b,
            &mut p,
            &c,
            a("2001:db8:2:1::10"),
            c.lp_peer().unwrap(),
        )
        .unwrap();
        let out = b.to_vec();
        assert_eq!(out[20], 161, "P1 + k(UDP)");
        assert_eq!(out[22..38], ip("2001:db8:2:1::10").octets());
        assert_eq!(out[38..54], ip("2001:db8:98::20").octets());
        assert_eq!(rewrite::flow_label(&out[14..]), 0xabcde);
        assert_eq!(
            out[54..],
            f[54..],
            "the UDP header and checksum are untouched"
        );
        let mut c2 = c;
        c2.rewrite_ok = false;
        let mut b = VecBuf::new(&f);
        let (_, _, mut p) = classify(&mut b, &t, 0);
        translate(&mut b, &mut p, &c2, a("2001:db8:1:1::10"), c.aid_peer()).unwrap();
        assert_eq!(b.to_vec()[20], 169, "P2 + k(UDP)");
    }

    #[test]
    fn icmpv6_gets_an_escape_header() {
        let t = SiteTables::new(&two_isp_site());
        let f = echo_request(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::20",
            b"ping",
        );
        let mut b = VecBuf::new(&f);
        let (_, _, mut p) = classify(&mut b, &t, 0);
        let c = ctx();
        translate(&mut b, &mut p, &c, a("2001:db8:1:1::10"), c.aid_peer()).unwrap();
        let out = b.to_vec();
        assert_eq!(out.len(), f.len() + 8);
        assert_eq!(out[0..14], f[0..14], "link header moved along");
        assert_eq!(out[20], 167, "P1 + 7");
        assert_eq!(
            u16::from_be_bytes([out[18], out[19]]) as usize,
            out.len() - 54
        );
        assert_eq!(
            out[54..62],
            [58, 0, 0, 0, 0, 0, 0, 0],
            "escape carrying ICMPv6"
        );
        assert_eq!(out[62..], f[54..]);
        assert_eq!(p.ip_len as usize, out.len() - 14);
    }

    #[test]
    fn pick_follows_usable_isps() {
        let t = SiteTables::new(&two_isp_site());
        let c = ctx();
        let v = |up: [bool; 2]| -> IspView { isp_view(&two_isp_site(), &up) };
        // One context keeps one locator (7.11 step 3c at the peer).
        let (isp, src) = pick(&t, &v([true, true]), &c, c.aid_peer()).unwrap();
        assert_eq!(t.isp_owning(src), Some(isp));
        assert_eq!(
            pick(&t, &v([false, true]), &c, c.aid_peer()),
            Some((1, a("2001:db8:2:1::10")))
        );
        assert_eq!(pick(&t, &v([false, false]), &c, c.aid_peer()), None);
    }
}
