//! The static description of the site (what the io layer builds from the configuration),
//! and the per-worker tables compiled from it.

use std::fmt;
use std::net::Ipv6Addr;

use crate::net::addr::{self, Addr};

/// An IPv6 prefix ("2001:db8:1::/48"): the workspace's one prefix type, from `proto`.
pub use proto::prefix::Ipv6Prefix;

/// One upstream provider: the configuration's type, from `proto`, used as it is.
pub use proto::config::IspConfig as IspInfo;

/// Neighbor Discovery timers: the configuration's type, from `proto`.
pub use proto::config::NdTimers;

pub use proto::config::{HealthConfig, PolicyRule, RaConfig};

/// One DPDK port as the pipeline sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub name: String,
    pub mac: [u8; 6],
    /// The router's own global addresses on this link. Its EUI-64 link-local address
    /// (derived from `mac`) is implied and is also the router's own, and so is the
    /// subnet-router anycast address of each address's /64 (RFC 4291 section 2.6.1).
    pub addresses: Vec<Ipv6Addr>,
    /// The link's MTU in octets (IPv6 packet, without the Ethernet header).
    pub mtu: u16,
}

impl PortInfo {
    /// The implied EUI-64 link-local address of the port.
    pub fn link_local(&self) -> Ipv6Addr {
        addr::to_std(addr::link_local_eui64(self.mac))
    }
}

/// The whole site: ports, which one faces the LAN, the ISPs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub ports: Vec<PortInfo>,
    pub lan_port: usize,
    pub isps: Vec<IspInfo>,
    /// Token-bucket rate (and burst) of the ICMPv6 errors one worker sends.
    pub icmp_errors_per_sec: u32,
    /// Neighbor Discovery timers (RFC 4861 section 10; configurable, as RFC 4861 6.3.2
    /// lets a link's ReachableTime and RetransTimer be).
    pub nd: NdTimers,
    /// Prefixes of the legacy hosts the router proxies (seed 002): their AIDs and locators
    /// (every LAN /64 they have addresses in).
    pub proxied: Vec<Ipv6Prefix>,
    /// Traffic-engineering rules at start (a reload replaces them: [`crate::isp`]).
    pub policy: Vec<PolicyRule>,
    /// Health probes and flap dampening.
    pub health: HealthConfig,
    /// Router Advertisements on the LAN, if sent.
    pub ra: Option<RaConfig>,
    /// Random octets every health probe carries and its answer must return
    /// ([`crate::health`]): a reply forged without seeing the probes is not reported.
    pub probe_cookie: [u8; 8],
}

/// What is wrong with a [`Site`]. The pipeline never panics on a bad site (it drops what a
/// missing port would have carried), but the io layer should refuse to start with one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteError {
    NoPorts,
    LanPortOutOfRange(usize),
    IspPortOutOfRange {
        isp: String,
        port: usize,
    },
    IspOnLanPort {
        isp: String,
    },
    DuplicateIspName(String),
    OverlappingPrefixes {
        a: String,
        b: String,
    },
    /// More ports or ISPs than the pipeline indexes (255).
    TooMany,
}

impl fmt::Display for SiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SiteError::NoPorts => write!(f, "the site has no ports"),
            SiteError::LanPortOutOfRange(p) => write!(f, "lan_port {p} is not a port index"),
            SiteError::IspPortOutOfRange { isp, port } => {
                write!(f, "ISP {isp}: port {port} is not a port index")
            }
            SiteError::IspOnLanPort { isp } => write!(f, "ISP {isp} is on the LAN port"),
            SiteError::DuplicateIspName(n) => write!(f, "ISP name {n} is used twice"),
            SiteError::OverlappingPrefixes { a, b } => {
                write!(f, "the prefixes of ISPs {a} and {b} overlap")
            }
            SiteError::TooMany => write!(f, "more than 255 ports or 64 ISPs"),
        }
    }
}

impl std::error::Error for SiteError {}

impl Site {
    /// Checks the references between ports and ISPs.
    pub fn validate(&self) -> Result<(), SiteError> {
        if self.ports.is_empty() {
            return Err(SiteError::NoPorts);
        }
        if self.ports.len() > 255 || self.isps.len() > crate::policy::MAX_ISPS {
            return Err(SiteError::TooMany);
        }
        if self.lan_port >= self.ports.len() {
            return Err(SiteError::LanPortOutOfRange(self.lan_port));
        }
        for (i, isp) in self.isps.iter().enumerate() {
            if isp.port >= self.ports.len() {
                return Err(SiteError::IspPortOutOfRange {
                    isp: isp.name.clone(),
                    port: isp.port,
                });
            }
            if isp.port == self.lan_port {
                return Err(SiteError::IspOnLanPort {
                    isp: isp.name.clone(),
                });
            }
            for other in &self.isps[..i] {
                if other.name == isp.name {
                    return Err(SiteError::DuplicateIspName(isp.name.clone()));
                }
                if other.prefix.overlaps(&isp.prefix) {
                    return Err(SiteError::OverlappingPrefixes {
                        a: other.name.clone(),
                        b: isp.name.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A prefix as the data path tests it: one mask and compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Masked {
    pub net: Addr,
    pub mask: Addr,
    pub len: u8,
}

impl Masked {
    pub fn new(p: &Ipv6Prefix) -> Masked {
        let len = p.len().min(128);
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(len))
        };
        Masked {
            net: addr::from_std(&p.network()) & mask,
            mask,
            len,
        }
    }

    #[inline]
    pub fn contains(&self, a: Addr) -> bool {
        a & self.mask == self.net
    }
}

/// The bit of `a` in [`SiteTables::own_filter`]: the top 6 bits of a multiplicative hash
/// of both halves.
#[inline]
fn own_bit(a: Addr) -> u64 {
    let folded = (a as u64) ^ ((a >> 64) as u64);
    1 << (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58)
}

/// The /64 part of an address.
const SUBNET: u128 = u128::MAX << 64;

/// The subnet-router anycast addresses (RFC 4291 section 2.6.1) of `addresses`' /64s.
fn anycast_of(addresses: &[Ipv6Addr]) -> Vec<Addr> {
    let mut v: Vec<Addr> = addresses
        .iter()
        .map(|a| addr::from_std(a) & SUBNET)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// What a port is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Lan,
    Isp,
    /// Neither: everything received on it is dropped.
    Unused,
}

/// A port, compiled.
#[derive(Clone, Debug)]
pub struct PortTable {
    pub mac: [u8; 6],
    pub link_local: Addr,
    pub addrs: Vec<Addr>,
    pub role: Role,
    /// IPv6 MTU of the link, octets.
    pub mtu: u16,
    /// Subnet-router anycast addresses of the link (LAN only, see [`SiteTables::anycast`]).
    pub anycast: Vec<Addr>,
}

impl PortTable {
    /// Whether `a` is one of the router's unicast addresses on this link (link-local
    /// included).
    #[inline]
    pub fn is_own(&self, a: Addr) -> bool {
        a == self.link_local || self.addrs.contains(&a)
    }

    /// Whether `a` is a subnet-router anycast address of this link.
    #[inline]
    pub fn is_anycast(&self, a: Addr) -> bool {
        self.anycast.contains(&a)
    }
}

/// An ISP, compiled (its changing state is [`crate::isp::IspLive`]).
#[derive(Clone, Debug)]
pub struct IspState {
    /// `None` when the configured port does not exist (the ISP is then never usable).
    pub port: Option<usize>,
    pub prefix: Masked,
    pub next_hop: Addr,
    pub static_mac: Option<[u8; 6]>,
}

/// The per-worker compiled site: everything the stages look up, as plain arrays (a site has
/// a handful of ports, ISPs and addresses, so a linear scan beats any hash).
#[derive(Clone, Debug)]
pub struct SiteTables {
    pub ports: Vec<PortTable>,
    pub isps: Vec<IspState>,
    /// Every global address of the router, on any port.
    pub own_global: Vec<Addr>,
    /// A one-word Bloom filter over `own_global` and `anycast`: [`SiteTables::is_own`]
    /// scans the lists only when the bit of the address is set, so forwarded traffic (the
    /// bulk) stops at one multiply (the scans were 5% of `make bench`'s samples). Private:
    /// only [`SiteTables::new`] builds the lists and the filter together.
    own_filter: u64,
    /// The subnet-router anycast address of every LAN /64 the router has an address in
    /// (RFC 4291 section 2.6.1). Not on uplinks: on a /127 point-to-point link the
    /// "anycast" address is the other router's (RFC 6164 section 5).
    pub anycast: Vec<Addr>,
    pub lan_port: Option<usize>,
    /// The proxied hosts' prefixes.
    pub proxied: Vec<Masked>,
    /// Bit i: ISP i has a port (an ISP without one is never picked).
    pub wired_isps: u64,
}

impl SiteTables {
    pub fn new(site: &Site) -> SiteTables {
        let lan_port = (site.lan_port < site.ports.len()).then_some(site.lan_port);
        let ports = site
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortTable {
                mac: p.mac,
                link_local: addr::link_local_eui64(p.mac),
                addrs: p.addresses.iter().map(addr::from_std).collect(),
                role: if Some(i) == lan_port {
                    Role::Lan
                } else if site.isps.iter().any(|s| s.port == i) {
                    Role::Isp
                } else {
                    Role::Unused
                },
                mtu: p.mtu,
                anycast: if Some(i) == lan_port {
                    anycast_of(&p.addresses)
                } else {
                    Vec::new()
                },
            })
            .collect();
        let isps = site
            .isps
            .iter()
            .map(|s| IspState {
                port: (s.port < site.ports.len() && Some(s.port) != lan_port).then_some(s.port),
                prefix: Masked::new(&s.prefix),
                next_hop: addr::from_std(&s.next_hop),
                static_mac: s.next_hop_mac,
            })
            .collect();
        let own_global: Vec<Addr> = site
            .ports
            .iter()
            .flat_map(|p| p.addresses.iter().map(addr::from_std))
            .collect();
        let anycast = lan_port
            .and_then(|l| site.ports.get(l))
            .map(|p| anycast_of(&p.addresses))
            .unwrap_or_default();
        let own_filter = own_global
            .iter()
            .chain(&anycast)
            .fold(0, |f, &a| f | own_bit(a));
        SiteTables {
            ports,
            isps,
            own_global,
            anycast,
            own_filter,
            lan_port,
            proxied: site.proxied.iter().map(Masked::new).collect(),
            wired_isps: site
                .isps
                .iter()
                .enumerate()
                .take(crate::policy::MAX_ISPS)
                .filter(|(_, s)| s.port < site.ports.len() && Some(s.port) != lan_port)
                .fold(0u64, |m, (i, _)| m | 1 << i),
        }
    }

    /// Whether `a` is inside one of the site's prefixes (the ISPs' delegations).
    #[inline]
    pub fn in_site(&self, a: Addr) -> bool {
        self.isps.iter().any(|s| s.prefix.contains(a))
    }

    /// The ISP whose prefix holds `a` (longest match, should prefixes nest).
    #[inline]
    pub fn isp_owning(&self, a: Addr) -> Option<usize> {
        let mut best: Option<(usize, u8)> = None;
        for (i, s) in self.isps.iter().enumerate() {
            let longer = match best {
                Some((_, len)) => s.prefix.len > len,
                None => true,
            };
            if longer && s.prefix.contains(a) {
                best = Some((i, s.prefix.len));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Whether `a` is the router's own address as seen from `port`: any global address of
    /// the router, a subnet-router anycast address, or the link-local address of that port.
    #[inline]
    pub fn is_own(&self, port: &PortTable, a: Addr) -> bool {
        a == port.link_local
            || (self.own_filter & own_bit(a) != 0
                && (self.own_global.contains(&a) || self.anycast.contains(&a)))
    }

    /// Whether `a` is an address of a proxied host (an AID or a locator, seed 002).
    #[inline]
    pub fn is_proxied(&self, a: Addr) -> bool {
        self.proxied.iter().any(|p| p.contains(a))
    }

    /// Whether `a` can be a neighbor on `port`: a link-local address, an address in the /64
    /// of one of the router's addresses there, or the next hop of an ISP on that port.
    pub fn on_link(&self, port: usize, a: Addr) -> bool {
        if addr::is_link_local(a) {
            return true;
        }
        if addr::is_multicast(a) || addr::is_unspecified(a) || addr::is_loopback(a) {
            return false;
        }
        let Some(p) = self.ports.get(port) else {
            return false;
        };
        p.addrs.iter().any(|x| (x ^ a) & SUBNET == 0)
            || self
                .isps
                .iter()
                .any(|s| s.port == Some(port) && s.next_hop == a)
    }

    /// The unicast address to answer from when a packet was sent to `a`: `a` itself, or for
    /// a subnet-router anycast address the router's address in that /64 (as Linux does by
    /// default: anycast is not used as a source).
    pub fn reply_source(&self, a: Addr) -> Addr {
        if self.anycast.contains(&a) {
            if let Some(u) = self.own_global.iter().find(|u| *u & SUBNET == a) {
                return *u;
            }
        }
        a
    }

    /// The ISP that owns the router's address `a`: the one whose prefix holds it, else the
    /// one whose uplink port has it (an uplink numbered from the ISP's own space). Packets
    /// the router sends from `a` to the Internet leave through that ISP, whose ingress
    /// filter accepts them (seed 000 section 5.1).
    pub fn owner_of(&self, a: Addr) -> Option<usize> {
        self.isp_owning(a).or_else(|| {
            self.isps.iter().position(|s| {
                s.port
                    .and_then(|p| self.ports.get(p))
                    .is_some_and(|p| p.addrs.contains(&a))
            })
        })
    }

    /// The router's address to send from on `port` toward `peer`: for a link-local peer the
    /// port's link-local address; else a global address on that
    /// port in the same /64 as `peer`, then one in the same ISP prefix as `peer`, then (on
    /// an ISP uplink) a router address inside the prefix of that ISP, then the port's first
    /// global address, then the port's link-local address.
    pub fn source_for(&self, port: usize, peer: Addr) -> Option<Addr> {
        let p = self.ports.get(port)?;
        // A link-local peer is answered from the link-local address (same scope, RFC 6724).
        if addr::is_link_local(peer) {
            return Some(p.link_local);
        }
        if let Some(a) = p.addrs.iter().find(|a| (*a ^ peer) & SUBNET == 0) {
            return Some(*a);
        }
        if let Some(isp) = self.isp_owning(peer).and_then(|i| self.isps.get(i)) {
            if let Some(a) = p.addrs.iter().find(|a| isp.prefix.contains(**a)) {
                return Some(*a);
            }
        }
        // Toward an uplink, an address inside that ISP's prefix passes its ingress filter
        // (the uplink's own link address may not).
        for isp in self.isps.iter().filter(|s| s.port == Some(port)) {
            if let Some(a) = self.own_global.iter().find(|a| isp.prefix.contains(**a)) {
                return Some(*a);
            }
        }
        if let Some(a) = p.addrs.first() {
            return Some(*a);
        }
        Some(p.link_local)
    }

    /// The router's address to solicit `target` from on `port`: a global address of that
    /// port in the same /64 as the target, else the port's link-local address.
    pub fn ns_source_for(&self, port: usize, target: Addr) -> Option<Addr> {
        let p = self.ports.get(port)?;
        Some(
            p.addrs
                .iter()
                .find(|a| (*a ^ target) & SUBNET == 0)
                .copied()
                .unwrap_or(p.link_local),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::two_isp_site;

    fn a(s: &str) -> Addr {
        addr::from_std(&s.parse().unwrap())
    }

    #[test]
    fn validate_catches_bad_references() {
        let good = two_isp_site();
        assert_eq!(good.validate(), Ok(()));
        let mut s = good.clone();
        s.lan_port = 3;
        assert_eq!(s.validate(), Err(SiteError::LanPortOutOfRange(3)));
        let mut s = good.clone();
        s.isps[1].port = 9;
        assert!(matches!(
            s.validate(),
            Err(SiteError::IspPortOutOfRange { .. })
        ));
        let mut s = good.clone();
        s.isps[1].port = 0;
        assert!(matches!(s.validate(), Err(SiteError::IspOnLanPort { .. })));
        let mut s = good.clone();
        s.isps[1].prefix = "2001:db8::/32".parse().unwrap();
        assert!(matches!(
            s.validate(),
            Err(SiteError::OverlappingPrefixes { .. })
        ));
        let mut s = good;
        s.isps[1].name = "isp1".into();
        assert!(matches!(s.validate(), Err(SiteError::DuplicateIspName(_))));
    }

    #[test]
    fn the_own_address_filter_never_hides_an_own_address() {
        let t = SiteTables::new(&two_isp_site());
        let port = &t.ports[0];
        for &a in t.own_global.iter().chain(&t.anycast) {
            assert!(t.is_own(port, a), "{a:x}");
        }
        // Neighbors of the router's addresses: the filter may let some through to the
        // scan, but the answer is the scan's.
        let mut passed = 0;
        for &own in &t.own_global {
            for d in 1..2_000u128 {
                let other = own ^ d;
                if t.own_global.contains(&other) || t.anycast.contains(&other) {
                    continue;
                }
                assert!(!t.is_own(port, other), "{other:x}");
                passed += usize::from(t.own_filter & own_bit(other) != 0);
            }
        }
        assert!(
            passed < t.own_global.len() * 2_000 / 4,
            "the filter stops most: {passed}"
        );
    }

    #[test]
    fn tables_roles_and_lookups() {
        let t = SiteTables::new(&two_isp_site());
        assert_eq!(t.ports[0].role, Role::Lan);
        assert_eq!(t.ports[2].role, Role::Isp);
        assert_eq!(t.isp_owning(a("2001:db8:1:5::9")), Some(0));
        assert_eq!(t.isp_owning(a("2001:db8:2::9")), Some(1));
        assert_eq!(t.isp_owning(a("fd00::1")), None);
        assert!(t.in_site(a("2001:db8:2::9")));
        assert!(t.is_own(&t.ports[2], a("2001:db8:1:1::1")));
        assert!(t.is_own(&t.ports[0], a("fe80::ff:fe00:1")));
        assert!(!t.is_own(&t.ports[1], a("fe80::ff:fe00:1")));
    }

    #[test]
    fn error_source_selection() {
        let t = SiteTables::new(&two_isp_site());
        // Same ISP prefix as the host: the PA2 address, though it is second.
        assert_eq!(
            t.source_for(0, a("2001:db8:2:7::5")),
            Some(a("2001:db8:2:1::1"))
        );
        // Same /64.
        assert_eq!(
            t.source_for(0, a("2001:db8:1:1::5")),
            Some(a("2001:db8:1:1::1"))
        );
        // Outside every prefix: the first.
        assert_eq!(t.source_for(0, a("fd00::5")), Some(a("2001:db8:1:1::1")));
        // An uplink without addresses: the router's address in that ISP's prefix.
        assert_eq!(
            t.source_for(2, a("2001:db8:99::1")),
            Some(a("2001:db8:2:1::1"))
        );
        assert_eq!(
            t.ns_source_for(1, a("fe80::1")),
            Some(addr::link_local_eui64([2, 0, 0, 0, 0, 2]))
        );
        assert_eq!(
            t.ns_source_for(1, a("2001:db8:ff01::1")),
            Some(a("2001:db8:ff01::2"))
        );
        assert_eq!(t.source_for(7, 0), None);
    }

    #[test]
    fn link_local_is_eui64() {
        let s = two_isp_site();
        assert_eq!(
            s.ports[0].link_local(),
            "fe80::ff:fe00:1".parse::<Ipv6Addr>().unwrap()
        );
    }
}
