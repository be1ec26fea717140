//! IPv6 and MAC address forms the router derives (RFC 4291, RFC 2464).

use std::net::Ipv6Addr;

/// An IPv6 address as the pipeline compares it: one machine word pair.
pub type Addr = u128;

/// `ff02::1`, all nodes (RFC 4291 section 2.7.1).
pub const ALL_NODES: Addr = 0xff02_0000_0000_0000_0000_0000_0000_0001;
/// `ff02::2`, all routers.
pub const ALL_ROUTERS: Addr = 0xff02_0000_0000_0000_0000_0000_0000_0002;

#[inline]
pub fn from_bytes(b: [u8; 16]) -> Addr {
    u128::from_be_bytes(b)
}

#[inline]
pub fn to_bytes(a: Addr) -> [u8; 16] {
    a.to_be_bytes()
}

#[inline]
pub fn is_multicast(a: Addr) -> bool {
    (a >> 120) == 0xff
}

/// fe80::/10.
#[inline]
pub fn is_link_local(a: Addr) -> bool {
    (a >> 118) == (0xfe80 >> 6)
}

#[inline]
pub fn is_unspecified(a: Addr) -> bool {
    a == 0
}

#[inline]
pub fn is_loopback(a: Addr) -> bool {
    a == 1
}

/// The solicited-node multicast address of `a`: ff02::1:ffXX:XXXX (RFC 4291 2.7.1).
#[inline]
pub fn solicited_node(a: Addr) -> Addr {
    0xff02_0000_0000_0000_0000_0001_ff00_0000 | (a & 0x00ff_ffff)
}

/// Whether `a` is a solicited-node multicast address (of anybody).
#[inline]
pub fn is_solicited_node(a: Addr) -> bool {
    a & !0x00ff_ffff == 0xff02_0000_0000_0000_0000_0001_ff00_0000
}

/// The Ethernet address an IPv6 multicast address maps to: 33:33 + its low 32 bits
/// (RFC 2464 section 7).
#[inline]
pub fn multicast_mac(a: Addr) -> [u8; 6] {
    let b = a.to_be_bytes();
    [0x33, 0x33, b[12], b[13], b[14], b[15]]
}

/// The EUI-64 link-local address of a MAC: `fe80::(mac[0]^2):mac[1]:mac[2]ff:fe...` (RFC 4291
/// appendix A, RFC 2464 section 4).
pub fn link_local_eui64(mac: [u8; 6]) -> Addr {
    let b = [
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ];
    u128::from_be_bytes(b)
}

/// Group bit of an Ethernet destination (multicast or broadcast).
#[inline]
pub fn is_multicast_mac(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 1
}

/// Converts to the standard type (for the public API).
#[inline]
pub fn to_std(a: Addr) -> Ipv6Addr {
    Ipv6Addr::from(a)
}

#[inline]
pub fn from_std(a: &Ipv6Addr) -> Addr {
    u128::from(*a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Addr {
        from_std(&s.parse().unwrap())
    }

    #[test]
    fn eui64_link_local() {
        let ll = link_local_eui64([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
        assert_eq!(to_std(ll), "fe80::ff:fe00:1".parse::<Ipv6Addr>().unwrap());
        let ll = link_local_eui64([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(
            to_std(ll),
            "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn solicited_node_and_mac() {
        let sn = solicited_node(a("2001:db8::abcd:1234:5678"));
        assert_eq!(sn, a("ff02::1:ff34:5678"));
        assert!(is_solicited_node(sn));
        assert!(!is_solicited_node(ALL_NODES));
        assert_eq!(multicast_mac(sn), [0x33, 0x33, 0xff, 0x34, 0x56, 0x78]);
    }

    #[test]
    fn scopes() {
        assert!(is_link_local(a("fe80::1")));
        assert!(is_link_local(a("febf::1")));
        assert!(!is_link_local(a("fec0::1")));
        assert!(is_multicast(a("ff02::1")));
        assert!(!is_multicast(a("2001:db8::1")));
        assert!(is_loopback(a("::1")));
        assert!(is_unspecified(a("::")));
        assert!(is_multicast_mac(&[0x33, 0x33, 0, 0, 0, 1]));
        assert!(!is_multicast_mac(&[0x02, 0, 0, 0, 0, 1]));
    }
}
