//! Classification, once per packet (DESIGN section 4): link header, IPv6 header checks,
//! the bounded extension-header walk, the M6 class, and where the packet goes next.
//!
//! Everything later stages need is summarised in [`Parsed`], so no stage parses again.

use crate::buf::PacketBuf;
use crate::net::addr::{self, Addr};
use crate::net::ethernet::{self, ethertype};
use crate::net::ext::{self, ChainError};
use crate::net::icmpv6::msg_type;
use crate::net::ipv6::{self, proto};
use crate::net::Error;
use crate::site::{Role, SiteTables};
use crate::stats::reasons;

/// First M6 data protocol number, rewrite ok: P1..P1+7 (DESIGN section 7, seed 001
/// section 6). Not yet configurable.
pub const P1: u8 = 160;
/// First M6 data protocol number, no rewrite: P2..P2+7.
pub const P2: u8 = 168;

reasons! {
    /// What a packet is (DESIGN section 4); one counter each (`class.<name>`).
    pub enum Class {
        /// Plain IPv6 to forward.
        Ipv6 = "ipv6",
        /// M6 data, next header in P1..P1+7.
        M6DataRewrite = "m6_data_rewrite",
        /// M6 data, next header in P2..P2+7.
        M6DataNoRewrite = "m6_data_no_rewrite",
        /// M6 control, ICMPv6 type 200.
        M6ControlRewrite = "m6_control_rewrite",
        /// M6 control, ICMPv6 type 201.
        M6ControlNoRewrite = "m6_control_no_rewrite",
        /// Neighbor Solicitation or Advertisement for the router.
        Nd = "nd",
        /// Anything else addressed to the router itself.
        Local = "local",
        Ipv4 = "ipv4",
        Arp = "arp",
        OtherEthertype = "other_ethertype",
        /// Truncated or inconsistent headers.
        Malformed = "malformed",
    }
}

reasons! {
    pub enum DropReason {
        /// Received on a port that is neither the LAN nor an ISP uplink.
        UnknownPort = "unknown_port",
        /// Shorter than its Ethernet (+ tag) and IPv6 headers.
        Truncated = "truncated",
        /// Stacked VLAN tags (QinQ).
        VlanUnsupported = "vlan_unsupported",
        /// An 802.1Q-tagged frame: the router has no VLAN sub-interfaces, so a tagged frame
        /// belongs to no configured link (docs/architecture.md, "VLANs").
        VlanTagged = "vlan_tagged",
        Ipv4 = "ipv4",
        Arp = "arp",
        OtherEthertype = "other_ethertype",
        /// A unicast frame for another station (the port is promiscuous).
        NotForOurMac = "not_for_our_mac",
        BadIpVersion = "bad_ip_version",
        /// The payload length runs past the end of the frame.
        PayloadLengthMismatch = "payload_length_mismatch",
        /// An extension header the router reads (Hop-by-Hop for transit, the chain for
        /// itself) runs past the end of the packet.
        ExtHeaderTruncated = "ext_header_truncated",
        MulticastSource = "multicast_source",
        /// Multicast other than Neighbor Discovery (and Router Solicitations on the LAN).
        MulticastNotHandled = "multicast_not_handled",
        /// To be forwarded, but the source is unspecified or loopback.
        BadSource = "bad_source",
        /// To be forwarded, but the source is link-local and the destination is not: answered
        /// with destination unreachable code 2, "beyond scope of source address" (RFC 4443
        /// section 3.1).
        SourceBeyondScope = "source_beyond_scope",
        /// To be forwarded, but the destination is link-local, loopback or unspecified and
        /// not the router.
        BadDestination = "bad_destination",
        /// To be forwarded, but sent to a link-layer multicast or broadcast address: only
        /// frames addressed to the router's MAC are forwarded (as Linux's ip6_forward does).
        LinkMulticastNotForwarded = "link_multicast_not_forwarded",
        /// From an ISP, with a source inside the site's own prefixes (spoofed; DESIGN
        /// section 2, inbound filter). Checked for traffic to the router too; ND is exempt
        /// (its hop limit of 255 already proves it is from the link).
        SpoofedSiteSource = "spoofed_site_source",
    }
}

/// The summary of a packet later stages work from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// 14, or 18 with an 802.1Q tag.
    pub l2_len: u8,
    pub vlan_tci: Option<u16>,
    /// The Ethernet destination was multicast or broadcast.
    pub l2_multicast: bool,
    pub src_mac: [u8; 6],
    /// IPv6 header + payload length; the frame is exactly `l2_len + ip_len` long once
    /// classified (Ethernet padding is trimmed).
    pub ip_len: u32,
    /// Offset of the upper-layer header from the start of the frame.
    pub l4_off: u32,
    /// The upper-layer protocol after the extension headers.
    pub l4_proto: u8,
    /// The ICMPv6 type, when the upper layer is ICMPv6 and its first byte is present.
    pub icmp_type: Option<u8>,
    /// The packet carries a fragment header (walked for packets to the router only).
    pub fragment: bool,
    /// Offset of that Fragment header from the start of the IPv6 header.
    pub frag_at: u16,
    /// M6 that says "rewrite ok": data in P1..P1+7 or control of ICMPv6 type 200 (seed
    /// 001 section 6).
    pub rewrite_ok: bool,
    /// For a packet to the router: why the walk of its extension headers stopped early (the
    /// `exthdr` stage answers it); `None` when it reached the upper layer.
    pub chain_error: Option<ChainError>,
    pub hop_limit: u8,
    pub src: Addr,
    pub dst: Addr,
}

impl Parsed {
    /// Offset of the IPv6 header.
    #[inline]
    pub fn l3(&self) -> usize {
        usize::from(self.l2_len)
    }

    /// Offset of the upper-layer header.
    #[inline]
    pub fn l4(&self) -> usize {
        self.l4_off as usize
    }

    /// End of the IPv6 packet (= frame length).
    #[inline]
    pub fn end(&self) -> usize {
        self.l3() + self.ip_len as usize
    }

    /// Whether this is a Neighbor Solicitation or Advertisement.
    #[inline]
    pub fn is_nd(&self) -> bool {
        self.l4_proto == proto::ICMPV6
            && matches!(
                self.icmp_type,
                Some(msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT)
            )
    }
}

/// Where a packet goes after classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// To the router itself (ND, echo, anything else): the `local` stage.
    Local,
    /// From the LAN, to be forwarded to an ISP: the `egress` stage.
    Outbound,
    /// From an ISP, to be forwarded to the LAN: the `inbound` stage.
    Inbound,
    Drop(DropReason),
}

/// Classifies one frame received on `rx_port`, trimming Ethernet padding. Returns the class
/// (none for frames refused before their contents matter), where the packet goes, and the
/// summary.
pub fn classify<B: PacketBuf>(
    buf: &mut B,
    t: &SiteTables,
    rx_port: usize,
) -> (Option<Class>, Disposition, Parsed) {
    let mut p = Parsed::default();
    let (class, disp) = classify_into(buf, t, rx_port, &mut p);
    (class, disp, p)
}

/// [`classify`], writing the summary into `p` (the pipeline's per-packet slot) rather than
/// returning it.
#[inline]
pub fn classify_into<B: PacketBuf>(
    buf: &mut B,
    t: &SiteTables,
    rx_port: usize,
    p: &mut Parsed,
) -> (Option<Class>, Disposition) {
    *p = Parsed::default();
    let (class, disp) = inspect(buf.data(), t, rx_port, p);
    if matches!(disp, Disposition::Drop(_)) {
        return (class, disp);
    }
    if p.ip_len > 0 {
        buf.truncate(p.end());
    }
    (class, disp)
}

#[inline]
fn inspect(
    data: &[u8],
    t: &SiteTables,
    rx_port: usize,
    p: &mut Parsed,
) -> (Option<Class>, Disposition) {
    use Disposition::Drop;
    let port = match t.ports.get(rx_port) {
        Some(port) if port.role != Role::Unused => port,
        _ => return (None, Drop(DropReason::UnknownPort)),
    };
    let l2 = match ethernet::parse(data) {
        Ok(l2) => l2,
        Err(Error::Unrecognized) => {
            return (
                Some(Class::OtherEthertype),
                Drop(DropReason::VlanUnsupported),
            )
        }
        Err(_) => return (Some(Class::Malformed), Drop(DropReason::Truncated)),
    };
    match l2.ethertype {
        ethertype::IPV6 => {}
        ethertype::IPV4 => return (Some(Class::Ipv4), Drop(DropReason::Ipv4)),
        ethertype::ARP => return (Some(Class::Arp), Drop(DropReason::Arp)),
        _ => {
            return (
                Some(Class::OtherEthertype),
                Drop(DropReason::OtherEthertype),
            )
        }
    }
    if l2.vlan_tci.is_some() {
        return (None, Drop(DropReason::VlanTagged));
    }

    let frame = match ethernet::Frame::new_checked(data) {
        Ok(f) => f,
        Err(_) => return (Some(Class::Malformed), Drop(DropReason::Truncated)),
    };
    let dst_mac = frame.dst_addr();
    p.l2_multicast = addr::is_multicast_mac(&dst_mac);
    if !p.l2_multicast && dst_mac != port.mac {
        return (None, Drop(DropReason::NotForOurMac));
    }
    p.src_mac = frame.src_addr();
    p.vlan_tci = l2.vlan_tci;
    p.l2_len = if l2.vlan_tci.is_some() {
        ethernet::MAX_HEADER_LEN as u8
    } else {
        ethernet::HEADER_LEN as u8
    };

    let l3 = l2.header_len;
    let ip = data.get(l3..).unwrap_or(&[]);
    let Ok(h) = ipv6::Header::new_checked(ip) else {
        return (Some(Class::Malformed), Drop(DropReason::Truncated));
    };
    if h.version() != 6 {
        return (Some(Class::Malformed), Drop(DropReason::BadIpVersion));
    }
    let ip_len = ipv6::HEADER_LEN + usize::from(h.payload_len());
    let Some(packet) = ip.get(..ip_len) else {
        return (
            Some(Class::Malformed),
            Drop(DropReason::PayloadLengthMismatch),
        );
    };
    p.src = addr::from_bytes(h.src_addr());
    p.dst = addr::from_bytes(h.dst_addr());
    p.hop_limit = h.hop_limit();
    p.ip_len = ip_len as u32;
    // How deep to read: the whole chain (bounded) for the router's own packets, the
    // Hop-by-Hop header only for transit ones (RFC 7045).
    let for_router = addr::is_multicast(p.dst) || t.is_own(port, p.dst);
    let chain = if for_router {
        match ext::walk(packet, h.next_header()) {
            Ok(c) => c,
            Err(ChainError::Truncated) => {
                return (Some(Class::Malformed), Drop(DropReason::ExtHeaderTruncated))
            }
            Err(e) => {
                p.chain_error = Some(e);
                ext::Chain {
                    proto: h.next_header(),
                    offset: ipv6::HEADER_LEN,
                    headers: 0,
                    fragment: false,
                    frag_at: 0,
                }
            }
        }
    } else {
        match ext::walk_transit(packet, h.next_header()) {
            Ok(c) => c,
            Err(_) => return (Some(Class::Malformed), Drop(DropReason::ExtHeaderTruncated)),
        }
    };
    p.l4_off = (l3 + chain.offset) as u32;
    p.l4_proto = chain.proto;
    p.fragment = chain.fragment;
    p.frag_at = u16::try_from(chain.frag_at).unwrap_or(0);
    if chain.proto == proto::ICMPV6 && p.chain_error.is_none() {
        p.icmp_type = packet.get(chain.offset).copied();
    }

    let mut class = match (chain.proto, p.icmp_type) {
        (P1..=0xa7, _) => Class::M6DataRewrite,
        (P2..=0xaf, _) => Class::M6DataNoRewrite,
        (proto::ICMPV6, Some(msg_type::M6_CONTROL_REWRITE)) => Class::M6ControlRewrite,
        (proto::ICMPV6, Some(msg_type::M6_CONTROL_NO_REWRITE)) => Class::M6ControlNoRewrite,
        _ => Class::Ipv6,
    };
    p.rewrite_ok = matches!(class, Class::M6DataRewrite | Class::M6ControlRewrite);

    if addr::is_multicast(p.src) {
        return (Some(class), Drop(DropReason::MulticastSource));
    }
    if addr::is_multicast(p.dst) {
        // The only multicast the router answers: ND (to a solicited-node group for an NS,
        // all-nodes for an unsolicited NA). The `nd` stage checks the rest.
        if p.is_nd() && p.chain_error.is_none() {
            return (Some(Class::Nd), Disposition::Local);
        }
        // And Router Solicitations on the LAN (to all-routers; the `ra` module checks them).
        if p.icmp_type == Some(msg_type::ROUTER_SOLICIT)
            && p.l4_proto == proto::ICMPV6
            && p.chain_error.is_none()
            && port.role == Role::Lan
        {
            return (Some(Class::Nd), Disposition::Local);
        }
        return (Some(class), Drop(DropReason::MulticastNotHandled));
    }
    // From an ISP, a source inside the site is spoofed (ND to the router excepted: an
    // uplink may be numbered from a delegated prefix, and hop limit 255 proves ND local).
    let spoofed = port.role == Role::Isp && t.in_site(p.src);
    if t.is_own(port, p.dst) {
        if spoofed && !p.is_nd() {
            return (Some(class), Drop(DropReason::SpoofedSiteSource));
        }
        class = if p.is_nd() { Class::Nd } else { Class::Local };
        return (Some(class), Disposition::Local);
    }
    if spoofed {
        return (Some(class), Drop(DropReason::SpoofedSiteSource));
    }
    if addr::is_unspecified(p.src) || addr::is_loopback(p.src) {
        return (Some(class), Drop(DropReason::BadSource));
    }
    if addr::is_unspecified(p.dst) || addr::is_loopback(p.dst) || addr::is_link_local(p.dst) {
        return (Some(class), Drop(DropReason::BadDestination));
    }
    if p.l2_multicast {
        return (Some(class), Drop(DropReason::LinkMulticastNotForwarded));
    }
    if addr::is_link_local(p.src) {
        return (Some(class), Drop(DropReason::SourceBeyondScope));
    }
    match port.role {
        Role::Lan => (Some(class), Disposition::Outbound),
        Role::Isp => (Some(class), Disposition::Inbound),
        Role::Unused => (Some(class), Drop(DropReason::UnknownPort)),
    }
}

// P1..=0xa7 and P2..=0xaf above spell P1 + 7 and P2 + 7 (patterns cannot add).
const _: () = assert!(P1 + 7 == 0xa7 && P2 + 7 == 0xaf);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::testpkt::*;

    fn run(frame: &[u8], port: usize) -> (Option<Class>, Disposition, Parsed, Vec<u8>) {
        let t = SiteTables::new(&two_isp_site());
        let mut b = VecBuf::new(frame);
        let (c, d, p) = classify(&mut b, &t, port);
        (c, d, p, b.to_vec())
    }

    #[test]
    fn outbound_udp() {
        let f = udp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::1",
            64,
            20,
        );
        let (c, d, p, _) = run(&f, 0);
        assert_eq!((c, d), (Some(Class::Ipv6), Disposition::Outbound));
        assert_eq!(
            (p.l2_len, p.l4_off, p.l4_proto, p.ip_len),
            (14, 54, 17, 48 + 20)
        );
        assert_eq!(p.hop_limit, 64);
        assert_eq!(p.src_mac, HOST_MAC);
    }

    #[test]
    fn inbound_from_isp_port() {
        let f = udp_frame(
            ISP1_PORT_MAC,
            ISP1_MAC,
            "2001:db8:99::1",
            "2001:db8:1:1::10",
            64,
            0,
        );
        assert_eq!(run(&f, 1).1, Disposition::Inbound);
        assert_eq!(run(&f, 7).1, Disposition::Drop(DropReason::UnknownPort));
    }

    #[test]
    fn vlan_tagged_frames_are_dropped() {
        let f = tagged(
            &udp_frame(
                LAN_MAC,
                HOST_MAC,
                "2001:db8:1:1::10",
                "2001:db8:99::1",
                64,
                0,
            ),
            42,
        );
        // No VLAN sub-interfaces: a tag names no configured link, so no half state
        // (forwarded untagged, answered tagged) is possible.
        assert_eq!(run(&f, 0).1, Disposition::Drop(DropReason::VlanTagged));
        assert_eq!(run(&f, 1).1, Disposition::Drop(DropReason::VlanTagged));
    }

    #[test]
    fn padding_is_trimmed() {
        let mut f = udp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::1",
            64,
            0,
        );
        let n = f.len();
        f.extend_from_slice(&[0xee; 10]);
        let (_, d, _, out) = run(&f, 0);
        assert_eq!(d, Disposition::Outbound);
        assert_eq!(out.len(), n);
    }

    #[test]
    fn m6_classes() {
        for (nh, class) in [
            (160, Class::M6DataRewrite),
            (167, Class::M6DataRewrite),
            (168, Class::M6DataNoRewrite),
            (175, Class::M6DataNoRewrite),
            (176, Class::Ipv6),
            (159, Class::Ipv6),
        ] {
            let f = ip_frame(
                LAN_MAC,
                HOST_MAC,
                "2001:db8:1:1::10",
                "2001:db8:99::1",
                64,
                nh,
                &[0; 8],
            );
            assert_eq!(run(&f, 0).0, Some(class), "{nh}");
        }
        for (t, class) in [
            (200, Class::M6ControlRewrite),
            (201, Class::M6ControlNoRewrite),
        ] {
            let f = icmp_frame(
                LAN_MAC,
                HOST_MAC,
                "2001:db8:1:1::10",
                "2001:db8:99::1",
                64,
                t,
                0,
                &[0; 8],
            );
            let (c, d, ..) = run(&f, 0);
            assert_eq!((c, d), (Some(class), Disposition::Outbound));
        }
    }

    #[test]
    fn local_and_nd_classes() {
        let f = icmp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:1:1::1",
            64,
            128,
            0,
            &[0; 4],
        );
        assert_eq!(run(&f, 0).0, Some(Class::Local));
        assert_eq!(run(&f, 0).1, Disposition::Local);
        // A global address of another port is the router's too.
        let f = icmp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:ff01::2",
            64,
            128,
            0,
            &[0; 4],
        );
        assert_eq!(run(&f, 0).1, Disposition::Local);
        let f = icmp_frame(
            SN_MAC_LAN,
            HOST_MAC,
            "2001:db8:1:1::10",
            "ff02::1:ff00:1",
            255,
            135,
            0,
            &[0; 20],
        );
        assert_eq!(run(&f, 0).0, Some(Class::Nd));
        assert_eq!(run(&f, 0).1, Disposition::Local);
    }

    #[test]
    fn drops() {
        let good = udp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::1",
            64,
            8,
        );
        let cases: Vec<(Vec<u8>, DropReason)> = vec![
            (good[..13].to_vec(), DropReason::Truncated),
            (good[..53].to_vec(), DropReason::Truncated),
            (
                good[..good.len() - 1].to_vec(),
                DropReason::PayloadLengthMismatch,
            ),
            (with(&good, 14, 0x40), DropReason::BadIpVersion),
            (with(&with(&good, 12, 0x08), 13, 0x00), DropReason::Ipv4),
            (with(&with(&good, 12, 0x08), 13, 0x06), DropReason::Arp),
            (with(&good, 12, 0x88), DropReason::OtherEthertype),
            (with(&good, 5, 0x99), DropReason::NotForOurMac),
            (
                udp_frame(LAN_MAC, HOST_MAC, "ff02::5", "2001:db8:99::1", 64, 0),
                DropReason::MulticastSource,
            ),
            (
                udp_frame(LAN_MAC, HOST_MAC, "2001:db8:1:1::10", "ff02::5", 64, 0),
                DropReason::MulticastNotHandled,
            ),
            (
                udp_frame(LAN_MAC, HOST_MAC, "fe80::10", "2001:db8:99::1", 64, 0),
                DropReason::SourceBeyondScope,
            ),
            (tagged(&good, 42), DropReason::VlanTagged),
            (
                udp_frame(LAN_MAC, HOST_MAC, "::", "2001:db8:99::1", 64, 0),
                DropReason::BadSource,
            ),
            (
                udp_frame(LAN_MAC, HOST_MAC, "2001:db8:1:1::10", "fe80::99", 64, 0),
                DropReason::BadDestination,
            ),
            (
                udp_frame(LAN_MAC, HOST_MAC, "2001:db8:1:1::10", "::1", 64, 0),
                DropReason::BadDestination,
            ),
        ];
        for (i, (f, want)) in cases.iter().enumerate() {
            assert_eq!(run(f, 0).1, Disposition::Drop(*want), "case {i}");
        }
        // Broadcast frame with a unicast destination elsewhere.
        let bc = with(
            &with(
                &with(
                    &with(&with(&with(&good, 0, 0xff), 1, 0xff), 2, 0xff),
                    3,
                    0xff,
                ),
                4,
                0xff,
            ),
            5,
            0xff,
        );
        assert_eq!(
            run(&bc, 0).1,
            Disposition::Drop(DropReason::LinkMulticastNotForwarded)
        );
        // A site source from an ISP, forwarded or to the router.
        let f = udp_frame(
            ISP1_PORT_MAC,
            ISP1_MAC,
            "2001:db8:2::5",
            "2001:db8:1:1::10",
            64,
            0,
        );
        assert_eq!(
            run(&f, 1).1,
            Disposition::Drop(DropReason::SpoofedSiteSource)
        );
        let f = echo_request(
            ISP1_PORT_MAC,
            ISP1_MAC,
            "2001:db8:2::5",
            "2001:db8:ff01::2",
            b"",
        );
        assert_eq!(
            run(&f, 1).1,
            Disposition::Drop(DropReason::SpoofedSiteSource)
        );
        // Double tag.
        let f = tagged(&tagged(&good, 1), 2);
        assert_eq!(run(&f, 0).1, Disposition::Drop(DropReason::VlanUnsupported));
        // A transit packet is not walked past Hop-by-Hop (RFC 7045): a misplaced or
        // broken header after it, or 128 of them, are not the router's business.
        let mut f = ext_chain_frame(2);
        f[54] = 0; // the first (dest opts) header's next header -> hop-by-hop
        assert_eq!(run(&f, 0).1, Disposition::Outbound);
        assert_eq!(run(&ext_chain_frame(128), 0).1, Disposition::Outbound);
        let mut f = ext_chain_frame(1);
        f[55] = 9;
        assert_eq!(run(&f, 0).1, Disposition::Outbound);
    }

    #[test]
    fn every_truncation_of_a_valid_packet_is_dropped() {
        let f = ext_chain_frame(3);
        assert_eq!(run(&f, 0).1, Disposition::Outbound);
        for n in 0..f.len() {
            assert!(matches!(run(&f[..n], 0).1, Disposition::Drop(_)), "len {n}");
        }
    }
}
