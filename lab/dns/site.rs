//! The DNS of the test world: which names and addresses exist, and which zones Knot serves
//! for them. One case per way the DNS can be right or wrong for M6 (seed 001 sections 3.1,
//! 4.1, 7.13, 16.2). Included by the DNS tests next to `harness.rs`.
//!
//! All addresses are in the documentation prefix 2001:db8::/32, whose reverse zone
//! `8.b.d.0.1.0.0.2.ip6.arpa.` Knot serves (so an address without a PTR gets an
//! authoritative NXDOMAIN, as from a real parent zone), except 2001:db8:5::/48, whose own
//! reverse zone is configured but unloadable (SERVFAIL), and 2001:db8:d3::/48, whose own
//! reverse zone is served but empty (the site has its reverse zone delegated and never
//! filled it in: NXDOMAIN from that zone's own apex).
//!
//! Knot here is authoritative only. A query for a zone it does not serve at all (an address
//! outside 2001:db8::/32, a name outside the zones below) gets REFUSED, which the resolver
//! treats as transient; a recursive resolver in production would instead follow the
//! delegation to the parent zone and return its NXDOMAIN (permanent). See docs/dns.md,
//! "No reverse zone".

#![allow(dead_code)]

use std::net::Ipv6Addr;

use super::harness::{reverse_zone, Zone};

const fn a(g2: u16, g3: u16, g7: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, g2, g3, 0, 0, 0, g7)
}

/// The forward zone.
pub const FORWARD_ZONE: &str = "m6.test.";

/// Our site's proxied host (the local side): PA1 and PA2 locators, consistent DNS.
pub const SITE: &str = "host.m6.test";
pub const SITE1: Ipv6Addr = a(1, 1, 0x10);
pub const SITE2: Ipv6Addr = a(2, 1, 0x10);

/// A multihomed M6 peer with consistent forward and reverse records. MH3 is in the DNS only
/// after [`with_mh3`] (renumbering: the peer announces it in an Update Request).
pub const MH: &str = "mh.m6.test";
pub const MH1: Ipv6Addr = a(0xb1, 0, 0x10);
pub const MH2: Ipv6Addr = a(0xb2, 0, 0x10);
pub const MH3: Ipv6Addr = a(0xb3, 0, 0x10);

/// A redirection attempt: the forward set of `redir` claims VICTIM, whose reverse record
/// points at the victim's own name.
pub const REDIR: &str = "redir.m6.test";
pub const REDIR1: Ipv6Addr = a(0xc1, 0, 0x10);
pub const VICTIM: Ipv6Addr = a(0x99, 0, 0x99);
pub const VICTIM_NAME: &str = "victim.m6.test";

/// Two FQDNs claiming one AID (section 16.2): `claimer` lists MH1, whose PTR says `mh`.
pub const CLAIMER: &str = "claimer.m6.test";
pub const CLAIMER1: Ipv6Addr = a(0xc2, 0, 0x10);

/// A multihomed M6 host with no reverse records at all: its addresses lie inside the served
/// 2001:db8::/32 reverse zone, which has no PTR for them (NXDOMAIN, permanent).
pub const NOREV: &str = "norev.m6.test";
pub const NOREV1: Ipv6Addr = a(0xd1, 0, 0x10);
pub const NOREV2: Ipv6Addr = a(0xd2, 0, 0x10);

/// An address inside 2001:db8:d3::/48, whose reverse zone is served but holds no PTR:
/// NXDOMAIN from the delegated zone itself (not from the /32 parent).
pub const EMPTYREV1: Ipv6Addr = a(0xd3, 0, 0x10);
pub const EMPTY_REVERSE_ZONE_PREFIX: Ipv6Addr = a(0xd3, 0, 0);

/// An address outside every zone Knot serves (3fff::/20, the other documentation prefix):
/// the authoritative-only test server answers REFUSED.
pub const UNSERVED1: Ipv6Addr = Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0x10);

/// A host without the M6 marker (a legacy IPv6 host).
pub const LEGACY: &str = "legacy.m6.test";
pub const LEGACY1: Ipv6Addr = a(0xe1, 0, 0x10);

/// Virtual hosting (section 16.2): VH1 has two PTR names; `www1` (listed first) is a plain
/// web name without the marker, `www2` is the M6 host and also has VH2.
pub const WWW1: &str = "www1.m6.test";
pub const WWW2: &str = "www2.m6.test";
pub const VH1: Ipv6Addr = a(0xf1, 0, 0x10);
pub const VH2: Ipv6Addr = a(0xf2, 0, 0x10);

/// A host in 2001:db8:5::/48, whose reverse zone answers SERVFAIL.
pub const SF: &str = "sf.m6.test";
pub const SF1: Ipv6Addr = a(5, 0, 0x10);
pub const SF_REVERSE_ZONE_PREFIX: Ipv6Addr = a(5, 0, 0);
/// A name in a forward zone that answers SERVFAIL.
pub const SF_FORWARD: &str = "h.broken.test";

/// A host whose records all have TTL 0.
pub const SHORT: &str = "short.m6.test";
pub const SHORT1: Ipv6Addr = a(0xa1, 0, 0x10);

/// A name that does not exist.
pub const NONAME: &str = "nonexistent.m6.test";
/// An address with no PTR (inside the served reverse zone).
pub const NOPTR: Ipv6Addr = a(0x77, 0, 0x77);

/// TTL of the ordinary records.
pub const TTL: u32 = 300;
/// SOA minimum of the zones (negative TTL).
pub const NEG_TTL: u32 = 60;

/// The forward zone m6.test.
pub fn forward() -> Zone {
    Zone::new(FORWARD_ZONE)
        .negative_ttl(NEG_TTL)
        .aaaa(SITE, SITE1, TTL)
        .aaaa(SITE, SITE2, TTL)
        .marker(SITE, TTL)
        .aaaa(MH, MH1, TTL)
        .aaaa(MH, MH2, 120)
        .marker(MH, TTL)
        .aaaa(REDIR, REDIR1, TTL)
        .aaaa(REDIR, VICTIM, TTL)
        .marker(REDIR, TTL)
        .aaaa(VICTIM_NAME, VICTIM, TTL)
        .aaaa(CLAIMER, MH1, TTL)
        .aaaa(CLAIMER, CLAIMER1, TTL)
        .marker(CLAIMER, TTL)
        .aaaa(NOREV, NOREV1, TTL)
        .aaaa(NOREV, NOREV2, TTL)
        .marker(NOREV, TTL)
        .aaaa(LEGACY, LEGACY1, TTL)
        .aaaa(WWW1, VH1, TTL)
        .aaaa(WWW2, VH1, TTL)
        .aaaa(WWW2, VH2, TTL)
        .marker(WWW2, TTL)
        .aaaa(SF, SF1, TTL)
        .marker(SF, TTL)
        .aaaa(SHORT, SHORT1, 0)
        .marker(SHORT, 0)
}

/// The reverse zone of 2001:db8::/32.
pub fn reverse() -> Zone {
    Zone::new(&reverse_zone(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
    ))
    .negative_ttl(NEG_TTL)
    .ptr(SITE1, SITE, TTL)
    .ptr(SITE2, SITE, TTL)
    .ptr(MH1, MH, TTL)
    .ptr(MH2, MH, TTL)
    .ptr(REDIR1, REDIR, TTL)
    .ptr(VICTIM, VICTIM_NAME, TTL)
    .ptr(CLAIMER1, CLAIMER, TTL)
    .ptr(LEGACY1, LEGACY, TTL)
    .ptr(VH1, WWW1, TTL)
    .ptr(VH1, WWW2, TTL)
    .ptr(VH2, WWW2, TTL)
    .ptr(SHORT1, SHORT, 0)
}

/// The forward zone after MH3 was added to `mh` (renumbering, section 4.5).
pub fn with_mh3(z: Zone) -> Zone {
    z.aaaa(MH, MH3, TTL)
}

/// The reverse zone with MH3's PTR.
pub fn reverse_with_mh3() -> Zone {
    reverse().ptr(MH3, MH, TTL)
}

/// The served but empty reverse zone of 2001:db8:d3::/48 (SOA and NS only).
pub fn empty_reverse() -> Zone {
    Zone::new(&reverse_zone(EMPTY_REVERSE_ZONE_PREFIX, 48)).negative_ttl(NEG_TTL)
}

/// Every zone of the test world, the SERVFAIL ones included.
pub fn zones() -> Vec<Zone> {
    vec![
        forward(),
        reverse(),
        empty_reverse(),
        Zone::servfail(&reverse_zone(SF_REVERSE_ZONE_PREFIX, 48)),
        Zone::servfail("broken.test."),
    ]
}
