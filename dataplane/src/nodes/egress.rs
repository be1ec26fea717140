//! Outbound (LAN -> ISP) egress selection by source prefix (seed 000 sections 5.1, 5.2;
//! DESIGN section 5 "non-rewritable traffic goes to the owner of its source prefix").
//!
//! Every ISP filters sources outside the prefix it delegated, so a packet can only leave
//! through the ISP that owns its source. When that ISP is down the router does not try
//! another one: it drops the packet and tells the host with an ICMPv6 destination
//! unreachable, code 5 (source address failed ingress/egress policy), so the host's source
//! address selection moves to a prefix that works.
//!
//! Plain IPv6 and M6 no-rewrite traffic take this path; rewrite-ok M6 and proxied traffic
//! go by policy (`rewrite`, `proxy_out`, [`crate::policy`]) and fall back to it.

use crate::isp::IspLive;
use crate::net::addr::Addr;
use crate::site::SiteTables;
use crate::stats::reasons;

reasons! {
    pub enum DropReason {
        /// From the LAN to an address inside the site's own prefixes: the router does not
        /// hairpin.
        LanToSite = "lan_to_site",
        /// The source is in no ISP's prefix (a ULA, another site's address).
        SourceNotInSitePrefix = "source_not_in_site_prefix",
        /// The owning ISP is administratively down.
        IspAdminDown = "isp_admin_down",
        /// The owning ISP's link is down (or its port is missing).
        IspLinkDown = "isp_link_down",
        /// The owning ISP's next hop stopped answering Neighbor Discovery.
        IspNextHopDown = "isp_next_hop_down",
        /// The owning ISP's health probes are not answered (its upstream is dark).
        IspProbesFailing = "isp_probes_failing",
        /// The owning ISP flapped and is held withdrawn by dampening.
        IspDampened = "isp_dampened",
        /// From a ULA host behind NPTv6, with no word RFC 6296 can adjust.
        Nptv6Unmappable = "nptv6_unmappable_source",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send through ISP `isp`, out `port`.
    Forward { isp: usize, port: usize },
    /// Drop; when `unreachable` is set, answer with destination unreachable code 5.
    Refuse {
        reason: DropReason,
        unreachable: bool,
    },
}

/// Chooses the egress ISP of an outbound packet from `src` to `dst`.
#[inline]
pub fn select(t: &SiteTables, live: &[IspLive], src: Addr, dst: Addr) -> Decision {
    if t.in_site(dst) {
        return Decision::Refuse {
            reason: DropReason::LanToSite,
            unreachable: false,
        };
    }
    let Some(isp) = t.isp_owning(src) else {
        return Decision::Refuse {
            reason: DropReason::SourceNotInSitePrefix,
            unreachable: true,
        };
    };
    let Some(s) = t.isps.get(isp) else {
        return Decision::Refuse {
            reason: DropReason::SourceNotInSitePrefix,
            unreachable: true,
        };
    };
    let state = live.get(isp).copied().unwrap_or(IspLive {
        admin_up: false,
        ..IspLive::UP
    });
    let reason = if !state.admin_up {
        DropReason::IspAdminDown
    } else if !state.link_up {
        DropReason::IspLinkDown
    } else if !state.next_hop_up {
        DropReason::IspNextHopDown
    } else if !state.probes_up {
        DropReason::IspProbesFailing
    } else if state.suppressed {
        DropReason::IspDampened
    } else {
        match s.port {
            Some(port) => return Decision::Forward { isp, port },
            None => DropReason::IspLinkDown,
        }
    };
    Decision::Refuse {
        reason,
        unreachable: true,
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
    fn by_source_prefix() {
        let t = SiteTables::new(&two_isp_site());
        let up = IspLive::UP;
        let mut live = vec![up; 2];
        let dst = a("2001:db8:99::1");
        assert_eq!(
            select(&t, &live, a("2001:db8:1:1::10"), dst),
            Decision::Forward { isp: 0, port: 1 }
        );
        assert_eq!(
            select(&t, &live, a("2001:db8:2:1::10"), dst),
            Decision::Forward { isp: 1, port: 2 }
        );
        assert_eq!(
            select(&t, &live, a("fd00::10"), dst),
            Decision::Refuse {
                reason: DropReason::SourceNotInSitePrefix,
                unreachable: true
            }
        );
        assert_eq!(
            select(&t, &live, a("2001:db8:1:1::10"), a("2001:db8:2:1::10")),
            Decision::Refuse {
                reason: DropReason::LanToSite,
                unreachable: false
            }
        );
        live[0].admin_up = false;
        assert_eq!(
            select(&t, &live, a("2001:db8:1:1::10"), dst),
            Decision::Refuse {
                reason: DropReason::IspAdminDown,
                unreachable: true
            }
        );
        live[1].link_up = false;
        assert_eq!(
            select(&t, &live, a("2001:db8:2:1::10"), dst),
            Decision::Refuse {
                reason: DropReason::IspLinkDown,
                unreachable: true
            }
        );
        live[1] = IspLive {
            next_hop_up: false,
            ..up
        };
        assert_eq!(
            select(&t, &live, a("2001:db8:2:1::10"), dst),
            Decision::Refuse {
                reason: DropReason::IspNextHopDown,
                unreachable: true
            }
        );
    }
}
