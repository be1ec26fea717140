//! Neighbor Discovery for the router's own addresses (RFC 4861): validates NS and NA
//! (section 7.1), answers an NS for one of its addresses with an NA built in place
//! (section 7.2.4), learns link-layer addresses from NS source options and NA target
//! options, and builds the solicitations the router sends for unresolved next hops
//! (section 7.2.2).

use super::classify::Parsed;
use crate::buf::PacketBuf;
use crate::neighbor::NeighborEvent;
use crate::net::addr::{self, Addr};
use crate::net::ethernet::{self, ethertype};
use crate::net::icmpv6::{self, msg_type};
use crate::net::ipv6::{self, proto};
use crate::net::nd::{self, flags, option};
use crate::site::PortTable;
use crate::stats::{reasons, NdCounters};

reasons! {
    pub enum DropReason {
        /// Hop limit not 255: the message crossed a router (RFC 4861 section 7.1).
        BadHopLimit = "nd_bad_hop_limit",
        BadChecksum = "nd_bad_checksum",
        /// Nonzero code, too short, multicast target, a zero-length or overlong option,
        /// a DAD probe with a source link-layer option or not sent to the solicited-node
        /// group, or a multicast NA with the solicited flag.
        Malformed = "nd_malformed",
        /// An NS for an address that is not the router's on this link.
        NotForRouter = "nd_not_for_router",
        /// No room in the buffer for the NA.
        NoRoom = "nd_no_room",
    }
}

/// What happened to an ND message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The buffer now holds an NA: send it back out the port it came in on.
    Reply,
    /// Processed, nothing to send (an NA).
    Consumed,
}

/// Length of the NS frames [`build_ns_frame`] writes.
pub const NS_FRAME_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + nd::WITH_LLADDR_LEN;

/// Processes an NS or NA received on port `port_index` (described by `port`; the
/// classifier has checked it is one). Returns what to do with the buffer and the evidence
/// for the neighbor owner (an NS's source link-layer address, RFC 4861 section 7.2.3; an
/// NA's target, flags and target link-layer address if present, section 7.2.5).
pub fn input<B: PacketBuf>(
    buf: &mut B,
    p: &Parsed,
    port: &PortTable,
    port_index: usize,
    counters: &mut NdCounters,
) -> Result<(Outcome, Option<NeighborEvent>), DropReason> {
    if p.hop_limit != nd::HOP_LIMIT {
        return Err(DropReason::BadHopLimit);
    }
    let src = addr::to_bytes(p.src);
    let dst = addr::to_bytes(p.dst);
    let data = buf.data();
    let msg = data.get(p.l4()..p.end()).unwrap_or(&[]);
    let m = icmpv6::Message::new_checked(msg).map_err(|_| DropReason::Malformed)?;
    if m.code() != 0 || msg.len() < nd::BASE_LEN {
        return Err(DropReason::Malformed);
    }
    if !m.verify_checksum(&src, &dst) {
        return Err(DropReason::BadChecksum);
    }
    let target_bytes = nd::target(msg).ok_or(DropReason::Malformed)?;
    let target = addr::from_bytes(target_bytes);
    if addr::is_multicast(target) {
        return Err(DropReason::Malformed);
    }
    let options = msg.get(nd::BASE_LEN..).unwrap_or(&[]);
    match m.msg_type() {
        msg_type::NEIGHBOR_SOLICIT => {
            let sll = nd::lladdr_option(options, option::SOURCE_LLADDR)
                .map_err(|_| DropReason::Malformed)?;
            let dad = addr::is_unspecified(p.src);
            if dad && (sll.is_some() || p.dst != addr::solicited_node(target)) {
                return Err(DropReason::Malformed);
            }
            let anycast = port.is_anycast(target);
            if !port.is_own(target) && !anycast {
                return Err(DropReason::NotForRouter);
            }
            counters.ns_received += 1;
            let learn = match sll {
                Some(mac) if !dad => Some(NeighborEvent::Solicitation {
                    port: port_index as u16,
                    src: p.src,
                    mac,
                }),
                _ => None,
            };
            // RFC 4861 7.2.4: to the soliciting node (at the link-layer address it gave, or
            // the frame's source), or to all nodes for a DAD probe; for an anycast target
            // without the Override flag (another router may answer too).
            let override_ = if anycast { 0 } else { flags::OVERRIDE };
            let (na_dst, na_dst_mac, na_flags) = if dad {
                (
                    addr::ALL_NODES,
                    addr::multicast_mac(addr::ALL_NODES),
                    flags::ROUTER | override_,
                )
            } else {
                (
                    p.src,
                    sll.unwrap_or(p.src_mac),
                    flags::ROUTER | flags::SOLICITED | override_,
                )
            };
            write_na(buf, p, port.mac, target, na_dst, na_dst_mac, na_flags)?;
            counters.na_sent += 1;
            Ok((Outcome::Reply, learn))
        }
        msg_type::NEIGHBOR_ADVERT => {
            let tll = nd::lladdr_option(options, option::TARGET_LLADDR)
                .map_err(|_| DropReason::Malformed)?;
            let na_flags = nd::na_flags(msg);
            if addr::is_multicast(p.dst) && na_flags & flags::SOLICITED != 0 {
                return Err(DropReason::Malformed);
            }
            counters.na_received += 1;
            if port.is_own(target) {
                // Somebody else claims one of our addresses; never learn it.
                counters.own_address_conflict += 1;
                return Ok((Outcome::Consumed, None));
            }
            Ok((
                Outcome::Consumed,
                Some(NeighborEvent::Advertisement {
                    port: port_index as u16,
                    target,
                    mac: tll,
                    solicited: na_flags & flags::SOLICITED != 0,
                    override_: na_flags & flags::OVERRIDE != 0,
                }),
            ))
        }
        _ => Err(DropReason::Malformed),
    }
}

/// Rewrites the frame in `buf` into an NA from `target` (one of the router's addresses) to
/// `dst`, keeping the VLAN tag of the request.
fn write_na<B: PacketBuf>(
    buf: &mut B,
    p: &Parsed,
    port_mac: [u8; 6],
    target: Addr,
    dst: Addr,
    dst_mac: [u8; 6],
    na_flags: u8,
) -> Result<(), DropReason> {
    let l3 = p.l3();
    let want = l3 + ipv6::HEADER_LEN + nd::WITH_LLADDR_LEN;
    let have = buf.len();
    if have > want {
        buf.truncate(want);
    } else if have < want && buf.append(want - have).is_none() {
        return Err(DropReason::NoRoom);
    }
    let src_b = addr::to_bytes(target);
    let dst_b = addr::to_bytes(dst);
    let data = buf.data_mut();
    ethernet::emit(data, dst_mac, port_mac, p.vlan_tci, ethertype::IPV6);
    let ip = data.get_mut(l3..want).ok_or(DropReason::NoRoom)?;
    let repr = ipv6::Repr {
        src: src_b,
        dst: dst_b,
        next_header: proto::ICMPV6,
        payload_len: nd::WITH_LLADDR_LEN as u16,
        hop_limit: nd::HOP_LIMIT,
    };
    repr.emit(ip);
    let msg = ip.get_mut(ipv6::HEADER_LEN..).ok_or(DropReason::NoRoom)?;
    nd::emit_na(msg, src_b, na_flags, port_mac);
    if let Ok(mut m) = icmpv6::Message::new_checked(msg) {
        m.fill_checksum(&src_b, &dst_b);
    }
    Ok(())
}

/// Writes a complete NS frame asking for `target`: from `src` (the router's address on the
/// port) and `src_mac`, with a source link-layer address option, to the target's
/// solicited-node group (address resolution, RFC 4861 section 7.2.2) or, when `unicast`
/// gives the cached link-layer address, to the target itself (unreachability detection
/// probes, section 7.3.3).
pub fn build_ns_frame(
    out: &mut [u8; NS_FRAME_LEN],
    src_mac: [u8; 6],
    src: Addr,
    target: Addr,
    unicast: Option<[u8; 6]>,
) {
    let (dst, dst_mac) = match unicast {
        Some(mac) => (target, mac),
        None => {
            let group = addr::solicited_node(target);
            (group, addr::multicast_mac(group))
        }
    };
    let (src_b, dst_b) = (addr::to_bytes(src), addr::to_bytes(dst));
    let l2 = ethernet::emit(out, dst_mac, src_mac, None, ethertype::IPV6);
    let Some(ip) = out.get_mut(l2..) else {
        return;
    };
    let repr = ipv6::Repr {
        src: src_b,
        dst: dst_b,
        next_header: proto::ICMPV6,
        payload_len: nd::WITH_LLADDR_LEN as u16,
        hop_limit: nd::HOP_LIMIT,
    };
    repr.emit(ip);
    if let Some(msg) = ip.get_mut(ipv6::HEADER_LEN..) {
        nd::emit_ns(msg, addr::to_bytes(target), src_mac);
        if let Ok(mut m) = icmpv6::Message::new_checked(msg) {
            m.fill_checksum(&src_b, &dst_b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::nodes::classify::{classify, Disposition};
    use crate::site::SiteTables;
    use crate::testpkt::*;

    type Learn = Option<(Addr, [u8; 6])>;

    type Answer = Result<(Outcome, Option<NeighborEvent>), DropReason>;

    fn run_ev(f: &[u8], port: usize) -> (Answer, Vec<u8>, NdCounters) {
        let t = SiteTables::new(&two_isp_site());
        let mut b = VecBuf::new(f);
        let (_, d, p) = classify(&mut b, &t, port);
        assert_eq!(d, Disposition::Local);
        let mut c = NdCounters::default();
        let r = input(&mut b, &p, &t.ports[port], port, &mut c);
        (r, b.to_vec(), c)
    }

    /// What the message teaches, as (address, MAC).
    fn run(f: &[u8], port: usize) -> (Result<(Outcome, Learn), DropReason>, Vec<u8>, NdCounters) {
        let (r, b, c) = run_ev(f, port);
        let r = r.map(|(o, ev)| {
            let learn = match ev {
                Some(NeighborEvent::Solicitation { src, mac, .. }) => Some((src, mac)),
                Some(NeighborEvent::Advertisement {
                    target,
                    mac: Some(mac),
                    ..
                }) => Some((target, mac)),
                _ => None,
            };
            (o, learn)
        });
        (r, b, c)
    }

    const LAN_LL: &str = "fe80::ff:fe00:1";

    #[test]
    fn multicast_ns_gets_na_bytes() {
        let ns = ns_frame(
            SN_MAC_LAN,
            HOST_MAC,
            "fe80::10",
            "ff02::1:ff00:1",
            LAN_LL,
            Some(HOST_MAC),
        );
        let (r, out, c) = run(&ns, 0);
        assert_eq!(
            r,
            Ok((
                Outcome::Reply,
                Some((addr::from_std(&ip("fe80::10")), HOST_MAC))
            ))
        );
        let want = na_frame(
            HOST_MAC,
            LAN_MAC,
            LAN_LL,
            "fe80::10",
            LAN_LL,
            0xe0,
            Some(LAN_MAC),
        );
        assert_eq!(out, want);
        assert_eq!((c.ns_received, c.na_sent), (1, 1));
    }

    #[test]
    fn unicast_ns_for_global_without_option_answers_the_frame_source() {
        let ns = ns_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:1:1::1",
            "2001:db8:1:1::1",
            None,
        );
        let (r, out, _) = run(&ns, 0);
        assert_eq!(r, Ok((Outcome::Reply, None)));
        let want = na_frame(
            HOST_MAC,
            LAN_MAC,
            "2001:db8:1:1::1",
            "2001:db8:1:1::10",
            "2001:db8:1:1::1",
            0xe0,
            Some(LAN_MAC),
        );
        assert_eq!(out, want);
    }

    #[test]
    fn dad_probe_is_answered_to_all_nodes() {
        let ns = ns_frame(SN_MAC_LAN, HOST_MAC, "::", "ff02::1:ff00:1", LAN_LL, None);
        let (r, out, _) = run(&ns, 0);
        assert_eq!(r, Ok((Outcome::Reply, None)));
        let want = na_frame(
            [0x33, 0x33, 0, 0, 0, 1],
            LAN_MAC,
            LAN_LL,
            "ff02::1",
            LAN_LL,
            0xa0,
            Some(LAN_MAC),
        );
        assert_eq!(out, want);
        // With a source link-layer option, or to the wrong group: invalid.
        let ns = ns_frame(
            SN_MAC_LAN,
            HOST_MAC,
            "::",
            "ff02::1:ff00:1",
            LAN_LL,
            Some(HOST_MAC),
        );
        assert_eq!(run(&ns, 0).0, Err(DropReason::Malformed));
        let ns = ns_frame(SN_MAC_LAN, HOST_MAC, "::", "ff02::1:ff00:2", LAN_LL, None);
        assert_eq!(run(&ns, 0).0, Err(DropReason::Malformed));
    }

    #[test]
    fn invalid_ns() {
        let good = ns_frame(
            SN_MAC_LAN,
            HOST_MAC,
            "fe80::10",
            "ff02::1:ff00:1",
            LAN_LL,
            Some(HOST_MAC),
        );
        // Hop limit 64 (checksum does not cover it).
        assert_eq!(run(&with(&good, 21, 64), 0).0, Err(DropReason::BadHopLimit));
        assert_eq!(
            run(&with(&good, 60, 0xff), 0).0,
            Err(DropReason::BadChecksum)
        );
        // Zero-length option (checksum fixed up).
        let ns = ns_frame(
            SN_MAC_LAN,
            HOST_MAC,
            "fe80::10",
            "ff02::1:ff00:1",
            LAN_LL,
            None,
        );
        let mut body = ns[58..].to_vec();
        body.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        let bad = icmp_frame(
            SN_MAC_LAN,
            HOST_MAC,
            "fe80::10",
            "ff02::1:ff00:1",
            255,
            135,
            0,
            &body,
        );
        assert_eq!(run(&bad, 0).0, Err(DropReason::Malformed));
        // Code 1.
        let bad = icmp_frame(
            SN_MAC_LAN,
            HOST_MAC,
            "fe80::10",
            "ff02::1:ff00:1",
            255,
            135,
            1,
            &ns[58..],
        );
        assert_eq!(run(&bad, 0).0, Err(DropReason::Malformed));
        // Too short.
        let bad = icmp_frame(
            SN_MAC_LAN,
            HOST_MAC,
            "fe80::10",
            "ff02::1:ff00:1",
            255,
            135,
            0,
            &ns[58..70],
        );
        assert_eq!(run(&bad, 0).0, Err(DropReason::Malformed));
        // For another host, or for the router's address on another port.
        let other = ns_frame(
            SN_MAC_LAN,
            HOST_MAC,
            "fe80::10",
            "ff02::1:ff00:1",
            "fe80::1:ff00:1",
            None,
        );
        assert_eq!(run(&other, 0).0, Err(DropReason::NotForRouter));
        let other = ns_frame(
            LAN_MAC,
            HOST_MAC,
            "fe80::10",
            "2001:db8:ff01::2",
            "2001:db8:ff01::2",
            None,
        );
        assert_eq!(run(&other, 0).0, Err(DropReason::NotForRouter));
    }

    #[test]
    fn na_teaches_the_target() {
        let na = na_frame(
            ISP1_PORT_MAC,
            ISP1_MAC,
            "fe80::1",
            "fe80::ff:fe00:2",
            "fe80::1",
            0xe0,
            Some(ISP1_MAC),
        );
        let (r, _, c) = run(&na, 1);
        assert_eq!(
            r,
            Ok((
                Outcome::Consumed,
                Some((addr::from_std(&ip("fe80::1")), ISP1_MAC))
            ))
        );
        assert_eq!(c.na_received, 1);
        // Unsolicited, to all nodes.
        let na = na_frame(
            [0x33, 0x33, 0, 0, 0, 1],
            ISP1_MAC,
            "fe80::1",
            "ff02::1",
            "fe80::1",
            0x20,
            Some(ISP1_MAC),
        );
        assert!(matches!(run(&na, 1).0, Ok((Outcome::Consumed, Some(_)))));
        // Solicited flag on a multicast NA: invalid.
        let na = na_frame(
            [0x33, 0x33, 0, 0, 0, 1],
            ISP1_MAC,
            "fe80::1",
            "ff02::1",
            "fe80::1",
            0x60,
            Some(ISP1_MAC),
        );
        assert_eq!(run(&na, 1).0, Err(DropReason::Malformed));
        // For one of our own addresses: consumed, not learned.
        let na = na_frame(
            ISP1_PORT_MAC,
            ISP1_MAC,
            "fe80::1",
            "fe80::ff:fe00:2",
            "fe80::ff:fe00:2",
            0x20,
            Some(ISP1_MAC),
        );
        let (r, _, c) = run(&na, 1);
        assert_eq!(r, Ok((Outcome::Consumed, None)));
        assert_eq!(c.own_address_conflict, 1);
    }

    #[test]
    fn evidence_says_where_it_comes_from() {
        let ns = ns_frame(
            SN_MAC_LAN,
            HOST_MAC,
            "fe80::10",
            "ff02::1:ff00:1",
            LAN_LL,
            Some(HOST_MAC),
        );
        assert_eq!(
            run_ev(&ns, 0).0,
            Ok((
                Outcome::Reply,
                Some(NeighborEvent::Solicitation {
                    port: 0,
                    src: addr::from_std(&ip("fe80::10")),
                    mac: HOST_MAC
                })
            ))
        );
        for (flags, solicited, override_) in [
            (0xe0, true, true),
            (0xc0, true, false),
            (0xa0, false, true),
            (0x80, false, false),
        ] {
            for tll in [Some(ISP1_MAC), None] {
                let na = na_frame(
                    ISP1_PORT_MAC,
                    ISP1_MAC,
                    "fe80::1",
                    "fe80::ff:fe00:2",
                    "fe80::1",
                    flags,
                    tll,
                );
                // RFC 4861 7.2.5: an NA without a target link-layer option still counts.
                assert_eq!(
                    run_ev(&na, 1).0,
                    Ok((
                        Outcome::Consumed,
                        Some(NeighborEvent::Advertisement {
                            port: 1,
                            target: addr::from_std(&ip("fe80::1")),
                            mac: tll,
                            solicited,
                            override_
                        })
                    )),
                    "{flags:#x} {tll:?}"
                );
            }
        }
    }

    #[test]
    fn ns_frame_bytes() {
        let mut out = [0u8; NS_FRAME_LEN];
        let src = addr::from_std(&ip("fe80::ff:fe00:2"));
        build_ns_frame(
            &mut out,
            ISP1_PORT_MAC,
            src,
            addr::from_std(&ip("fe80::1")),
            None,
        );
        let want = ns_frame(
            [0x33, 0x33, 0xff, 0, 0, 1],
            ISP1_PORT_MAC,
            "fe80::ff:fe00:2",
            "ff02::1:ff00:1",
            "fe80::1",
            Some(ISP1_PORT_MAC),
        );
        assert_eq!(out.to_vec(), want);
    }
}
