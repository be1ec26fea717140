//! Inbound (ISP -> LAN): the inbound filter of DESIGN section 2 (seed 001 section 11).
//! Only packets for the site's own prefixes come in. (None claiming to come from them
//! either: that check is in `classify`, as it covers traffic to the router too.)

use crate::net::addr::Addr;
use crate::site::SiteTables;
use crate::stats::reasons;

reasons! {
    pub enum DropReason {
        /// From an ISP, to an address outside the site's prefixes (the router is no
        /// transit).
        NotForSite = "inbound_not_for_site",
        /// The site has no usable LAN port.
        NoLanPort = "no_lan_port",
        /// To an NPTv6 external address with no word RFC 6296 can adjust.
        Nptv6Unmappable = "nptv6_unmappable_destination",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Forward { lan_port: usize },
    Refuse(DropReason),
}

/// The ISP a packet received on `rx_port` came from: the one on that port owning the
/// destination prefix, else the first one on that port.
#[inline]
pub fn isp_of(t: &SiteTables, rx_port: usize, dst: Addr) -> Option<usize> {
    let mut first = None;
    for (i, s) in t.isps.iter().enumerate() {
        if s.port == Some(rx_port) {
            if s.prefix.contains(dst) {
                return Some(i);
            }
            first = first.or(Some(i));
        }
    }
    first
}

/// Filters an inbound packet to `dst` (its source has passed `classify`'s spoofing check).
#[inline]
pub fn select(t: &SiteTables, dst: Addr) -> Decision {
    if !t.in_site(dst) {
        return Decision::Refuse(DropReason::NotForSite);
    }
    match t.lan_port {
        Some(lan_port) => Decision::Forward { lan_port },
        None => Decision::Refuse(DropReason::NoLanPort),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::addr;
    use crate::testpkt::{ip, two_isp_site};

    fn a(s: &str) -> Addr {
        addr::from_std(&ip(s))
    }

    #[test]
    fn filter() {
        let t = SiteTables::new(&two_isp_site());
        assert_eq!(
            select(&t, a("2001:db8:1:1::10")),
            Decision::Forward { lan_port: 0 }
        );
        assert_eq!(
            select(&t, a("2001:db8:2:1::10")),
            Decision::Forward { lan_port: 0 }
        );
        assert_eq!(
            select(&t, a("2001:db8:98::1")),
            Decision::Refuse(DropReason::NotForSite)
        );
        assert_eq!(isp_of(&t, 1, a("2001:db8:2::1")), Some(0));
        assert_eq!(isp_of(&t, 2, a("2001:db8:2::1")), Some(1));
        assert_eq!(isp_of(&t, 0, a("2001:db8:2::1")), None);
    }
}
