//! Frame builders and a two-ISP example site, for unit tests, the integration tests in
//! `dataplane/tests/` and the benches. Not used by the data path.
//!
//! Addresses are written as text for readability; text that does not parse becomes `::`
//! (a test built on a typo fails on its own assertions).

use std::net::Ipv6Addr;

use crate::net::checksum;
use crate::net::ethernet::{self, ethertype};
use crate::net::icmpv6;
use crate::net::ipv6::{self, proto};
use crate::site::{IspInfo, PortInfo, Site};

/// The router's LAN port.
pub const LAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The router's port toward ISP1.
pub const ISP1_PORT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// The router's port toward ISP2.
pub const ISP2_PORT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];
/// A host on the LAN.
pub const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x10, 0x10];
/// ISP1's router (learned by ND).
pub const ISP1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
/// ISP2's router (configured statically).
pub const ISP2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];
/// The solicited-node group MAC of the router's LAN link-local (fe80::ff:fe00:1).
pub const SN_MAC_LAN: [u8; 6] = [0x33, 0x33, 0xff, 0x00, 0x00, 0x01];

/// Parses an address; `::` if it does not parse.
pub fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
}

/// A LAN on port 0 (2001:db8:1:1::1 and 2001:db8:2:1::1), ISP1 on port 1 with PA1
/// 2001:db8:1::/48 and next hop fe80::1 (resolved by ND), ISP2 on port 2 with PA2
/// 2001:db8:2::/48 and a static next-hop MAC; 10 ICMPv6 errors per second.
pub fn two_isp_site() -> Site {
    Site {
        ports: vec![
            PortInfo {
                name: "lan".into(),
                mac: LAN_MAC,
                addresses: vec![ip("2001:db8:1:1::1"), ip("2001:db8:2:1::1")],
                mtu: 1500,
            },
            PortInfo {
                name: "isp1".into(),
                mac: ISP1_PORT_MAC,
                addresses: vec![ip("2001:db8:ff01::2")],
                mtu: 1500,
            },
            PortInfo {
                name: "isp2".into(),
                mac: ISP2_PORT_MAC,
                addresses: vec![],
                mtu: 1500,
            },
        ],
        lan_port: 0,
        isps: vec![
            IspInfo {
                name: "isp1".into(),
                port: 1,
                prefix: prefix("2001:db8:1::/48"),
                next_hop: ip("fe80::1"),
                next_hop_mac: None,
                admin_up: true,
                weight: 1,
                beacons: Vec::new(),
                nptv6: None,
            },
            IspInfo {
                name: "isp2".into(),
                port: 2,
                prefix: prefix("2001:db8:2::/48"),
                next_hop: ip("2001:db8:ff02::1"),
                next_hop_mac: Some(ISP2_MAC),
                admin_up: true,
                weight: 1,
                beacons: Vec::new(),
                nptv6: None,
            },
        ],
        icmp_errors_per_sec: 10,
        nd: crate::site::NdTimers::default(),
        proxied: Vec::new(),
        policy: Vec::new(),
        health: crate::site::HealthConfig::default(),
        ra: None,
        probe_cookie: *b"m6cookie",
    }
}

/// [`two_isp_site`] with Router Advertisements on: every 30 s, router lifetime 90 s,
/// PIO lifetimes 1 day / 4 h, one RDNSS (RFC 8106) with a 90 s lifetime.
pub fn ra_site() -> Site {
    let mut s = two_isp_site();
    s.ra = Some(crate::site::RaConfig {
        interval_s: 30,
        router_lifetime_s: 90,
        valid_lifetime_s: 86_400,
        preferred_lifetime_s: 14_400,
        rdnss: vec![ip("2001:db8:53::1")],
        rdnss_lifetime_s: 90,
    });
    s
}

/// The ISP state the workers would read for `site` with ISP i usable when `up[i]`
/// (withdrawn by its administrative state otherwise).
pub fn isp_view(site: &Site, up: &[bool]) -> crate::isp::IspView {
    let mut o = crate::isp::IspOwner::new(site);
    let mut r = o.reader();
    for (i, &u) in up.iter().enumerate() {
        o.set_admin(i, u);
    }
    r.sync();
    r.get().0.clone()
}

/// Parses a prefix written in the source.
#[allow(clippy::expect_used)] // only ever called on literals above
fn prefix(s: &str) -> crate::Ipv6Prefix {
    s.parse().expect("literal prefix")
}

/// An Ethernet + IPv6 frame carrying `payload` as protocol `nh` (no checksum filled).
pub fn ip_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: &str,
    dst: &str,
    hop_limit: u8,
    nh: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv6::HEADER_LEN];
    ethernet::emit(&mut f, dst_mac, src_mac, None, ethertype::IPV6);
    let repr = ipv6::Repr {
        src: ip(src).octets(),
        dst: ip(dst).octets(),
        next_header: nh,
        payload_len: u16::try_from(payload.len()).unwrap_or(u16::MAX),
        hop_limit,
    };
    if let Some(h) = f.get_mut(ethernet::HEADER_LEN..) {
        repr.emit(h);
    }
    f.extend_from_slice(payload);
    f
}

/// A UDP datagram (ports 1000 -> 2000) with `payload_len` bytes of payload and a correct
/// checksum.
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: &str,
    dst: &str,
    hop_limit: u8,
    payload_len: usize,
) -> Vec<u8> {
    let len = 8 + payload_len;
    let mut udp = vec![0u8; len];
    udp[0..2].copy_from_slice(&1000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&2000u16.to_be_bytes());
    udp[4..6].copy_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    for (i, b) in udp.iter_mut().enumerate().skip(8) {
        *b = i as u8;
    }
    let c = checksum::compute(&ip(src).octets(), &ip(dst).octets(), proto::UDP, &udp);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    ip_frame(dst_mac, src_mac, src, dst, hop_limit, proto::UDP, &udp)
}

/// An ICMPv6 message of `msg_type`/`code` whose body (after the checksum) is `body`,
/// with a correct checksum.
#[allow(clippy::too_many_arguments)]
pub fn icmp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: &str,
    dst: &str,
    hop_limit: u8,
    msg_type: u8,
    code: u8,
    body: &[u8],
) -> Vec<u8> {
    let mut m = vec![msg_type, code, 0, 0];
    m.extend_from_slice(body);
    if let Ok(mut v) = icmpv6::Message::new_checked(&mut m[..]) {
        v.fill_checksum(&ip(src).octets(), &ip(dst).octets());
    }
    ip_frame(dst_mac, src_mac, src, dst, hop_limit, proto::ICMPV6, &m)
}

/// An echo request (id 0x1234, seq 1) with `data`.
pub fn echo_request(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: &str,
    dst: &str,
    data: &[u8],
) -> Vec<u8> {
    let mut body = vec![0x12, 0x34, 0x00, 0x01];
    body.extend_from_slice(data);
    icmp_frame(
        dst_mac,
        src_mac,
        src,
        dst,
        64,
        icmpv6::msg_type::ECHO_REQUEST,
        0,
        &body,
    )
}

/// A Neighbor Solicitation for `target`, with a source link-layer option when
/// `sll` is given.
pub fn ns_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: &str,
    dst: &str,
    target: &str,
    sll: Option<[u8; 6]>,
) -> Vec<u8> {
    let mut body = vec![0u8; 4];
    body.extend_from_slice(&ip(target).octets());
    if let Some(mac) = sll {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&mac);
    }
    icmp_frame(
        dst_mac,
        src_mac,
        src,
        dst,
        255,
        icmpv6::msg_type::NEIGHBOR_SOLICIT,
        0,
        &body,
    )
}

/// A Neighbor Advertisement for `target` with `flags` and a target link-layer option when
/// `tll` is given.
#[allow(clippy::too_many_arguments)]
pub fn na_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: &str,
    dst: &str,
    target: &str,
    flags: u8,
    tll: Option<[u8; 6]>,
) -> Vec<u8> {
    let mut body = vec![flags, 0, 0, 0];
    body.extend_from_slice(&ip(target).octets());
    if let Some(mac) = tll {
        body.extend_from_slice(&[2, 1]);
        body.extend_from_slice(&mac);
    }
    icmp_frame(
        dst_mac,
        src_mac,
        src,
        dst,
        255,
        icmpv6::msg_type::NEIGHBOR_ADVERT,
        0,
        &body,
    )
}

/// An outbound UDP packet from a PA1 host behind `n` destination-options headers.
pub fn ext_chain_frame(n: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    for i in 0..n {
        let next = if i + 1 == n {
            proto::UDP
        } else {
            proto::DEST_OPTS
        };
        // 8 bytes: next header, length 0, a PadN option filling the rest.
        payload.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    payload.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0, 8, 0, 0]);
    let first = if n == 0 { proto::UDP } else { proto::DEST_OPTS };
    ip_frame(
        LAN_MAC,
        HOST_MAC,
        "2001:db8:1:1::10",
        "2001:db8:99::1",
        64,
        first,
        &payload,
    )
}

/// The frame with one 802.1Q tag (VLAN `vid`) inserted after the MAC addresses.
pub fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut f = frame.get(..12).unwrap_or(frame).to_vec();
    f.extend_from_slice(&ethertype::VLAN.to_be_bytes());
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(frame.get(12..).unwrap_or(&[]));
    f
}

/// The frame with byte `i` replaced by `v`.
pub fn with(frame: &[u8], i: usize, v: u8) -> Vec<u8> {
    let mut f = frame.to_vec();
    if let Some(b) = f.get_mut(i) {
        *b = v;
    }
    f
}
