//! NPTv6 fallback (seed 002 section 7, seed 000 section 7.1; RFC 6296): hosts numbered from
//! a ULA prefix reach peers through an ISP with their prefix translated to one under the
//! ISP's, statelessly and checksum-neutrally, and back. Off unless `isps[].nptv6` is
//! configured; several ISPs may map the same internal prefix, and then the policy
//! ([`crate::policy`]) picks one per flow among the eligible ones, so a ULA host survives
//! an ISP failure for new connections (its existing ones break: their external address
//! changes, which is why M6 is the better answer).
//!
//! Checksum neutrality (RFC 6296 section 3.1): the prefix is replaced and one 16-bit word
//! outside it is adjusted by the difference of the two prefixes' one's complement sums, so
//! the address's sum, hence every upper-layer checksum over the pseudo-header, is unchanged
//! and no transport header is touched. The adjusted word is bits 48 to 63 for a prefix of
//! /48 or shorter (section 3.4), else the first word of the interface identifier that is
//! not 0xFFFF (section 3.5); a result of 0xFFFF is written 0x0000, and an address whose
//! word is 0xFFFF cannot be mapped (dropped, counted).

use crate::isp::IspView;
use crate::net::addr::Addr;
use crate::net::checksum;
use crate::nodes::rewrite::flow_hash;
use crate::site::{Masked, Site};
use crate::stats::named_counters;

named_counters! {
    /// NPTv6 (`nptv6.*`).
    pub struct NptCounters("nptv6") {
        /// Packets from a ULA host whose source was translated to an ISP's prefix.
        translated_out,
        /// Packets to a translated address whose destination was translated back.
        translated_in,
    }
}

/// One ISP's mapping.
#[derive(Clone, Copy, Debug)]
pub struct Mapping {
    /// The ISP (index in the configuration).
    pub isp: usize,
    /// The ULA prefix the site's hosts are numbered from.
    pub internal: Masked,
    /// The prefix of the same length under the ISP's that they appear as.
    pub external: Masked,
    /// Added (one's complement) to the adjusted word going out; its complement coming in.
    adjustment: u16,
}

/// Every ISP's mapping, in configuration order.
pub fn mappings(site: &Site) -> Vec<Mapping> {
    site.isps
        .iter()
        .enumerate()
        .filter_map(|(isp, s)| {
            let n = s.nptv6?;
            let internal = Masked::new(&n.internal);
            let external = Masked::new(&n.external);
            let adjustment = add(sum(internal.net), !sum(external.net));
            Some(Mapping {
                isp,
                internal,
                external,
                adjustment,
            })
        })
        .collect()
}

fn add(a: u16, b: u16) -> u16 {
    checksum::fold(u32::from(a) + u32::from(b))
}

/// One's complement sum of an address's eight words.
fn sum(a: Addr) -> u16 {
    checksum::fold(checksum::sum_bytes(0, &crate::net::addr::to_bytes(a)))
}

fn word(a: Addr, k: u32) -> u16 {
    (a >> (112 - 16 * k)) as u16
}

fn set_word(a: Addr, k: u32, w: u16) -> Addr {
    let shift = 112 - 16 * k;
    (a & !(0xffffu128 << shift)) | (u128::from(w) << shift)
}

/// `a` (inside `from`) with `from`'s prefix replaced by `to`'s and the adjustment word
/// moved by `adjustment`; `None` when no word can take it.
pub fn translate(a: Addr, from: &Masked, to: &Masked, adjustment: u16) -> Option<Addr> {
    let swapped = (a & !from.mask) | to.net;
    let k = if from.len <= 48 {
        3
    } else {
        (4..8).find(|&k| word(swapped, k) != 0xffff)?
    };
    let w = word(swapped, k);
    if w == 0xffff {
        return None;
    }
    let mut n = add(w, adjustment);
    if n == 0xffff {
        n = 0;
    }
    Some(set_word(swapped, k, n))
}

/// Outbound: the ISP and translated source for a packet from `src` (if a mapping's
/// internal prefix holds it) to `dst` with `flow` label: the policy's pick among the
/// eligible ISPs mapping it (the usable ones if all are drained). `Some(Err(()))`: a
/// mapping applies but the address cannot be translated.
pub fn outbound(
    maps: &[Mapping],
    isps: &IspView,
    wired: u64,
    src: Addr,
    dst: Addr,
    flow: u32,
) -> Option<Result<(usize, Addr), ()>> {
    let mapped = maps
        .iter()
        .filter(|m| m.internal.contains(src) && m.isp < crate::policy::MAX_ISPS)
        .fold(0u64, |mask, m| mask | 1 << m.isp);
    if mapped == 0 {
        return None;
    }
    let h = flow_hash(src, dst, flow);
    // Drained ISPs too when every mapping ISP is drained: unlike rewritable or proxied
    // traffic, which falls back to its source's owner, a ULA host has no other way out.
    let isp = isps
        .policy
        .choose(isps.eligible & wired & mapped, dst, h)
        .or_else(|| isps.policy.choose(isps.usable & wired & mapped, dst, h))?;
    let m = maps.iter().find(|m| m.isp == isp)?;
    Some(
        translate(src, &m.internal, &m.external, m.adjustment)
            .map(|a| (isp, a))
            .ok_or(()),
    )
}

/// Inbound: the internal address for a packet to `dst` if an external prefix holds it
/// (`Some(Err(()))` if it cannot be translated).
pub fn inbound(maps: &[Mapping], dst: Addr) -> Option<Result<Addr, ()>> {
    let m = maps.iter().find(|m| m.external.contains(dst))?;
    Some(translate(dst, &m.external, &m.internal, !m.adjustment).ok_or(()))
}

/// Writes address `a` at `at` (the source or destination field) of the packet in `buf`;
/// false if the buffer is shorter.
pub fn set_address<B: crate::buf::PacketBuf>(buf: &mut B, at: usize, a: Addr) -> bool {
    match buf.data_mut().get_mut(at..at + 16) {
        Some(f) => {
            f.copy_from_slice(&crate::net::addr::to_bytes(a));
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::addr;
    use crate::testpkt::{ip, isp_view, two_isp_site};

    fn a(s: &str) -> Addr {
        addr::from_std(&ip(s))
    }

    fn site(internal: &str, external: [&str; 2]) -> Site {
        let mut s = two_isp_site();
        for (i, e) in external.iter().enumerate() {
            s.isps[i].nptv6 = Some(proto::config::Nptv6Config {
                internal: internal.parse().unwrap(),
                external: e.parse().unwrap(),
            });
        }
        s
    }

    /// The pseudo-header sum, hence every transport checksum, is unchanged.
    fn neutral(x: Addr, y: Addr) -> bool {
        let fold = |s: u16| if s == 0xffff { 0 } else { s };
        fold(sum(x)) == fold(sum(y))
    }

    #[test]
    fn rfc_6296_example_is_reproduced() {
        // RFC 6296 appendix B: FD01:0203:0405:/48 <-> 2001:0DB8:0001:/48; the host
        // FD01:203:405:1::1234 maps to 2001:DB8:1:D550::1234.
        let s = site(
            "fd01:203:405::/48",
            ["2001:db8:1::/48", "2001:db8:2:ff00::/56"],
        );
        let maps = mappings(&s);
        let v = isp_view(&s, &[true, false]);
        let host = a("fd01:203:405:1::1234");
        let out = outbound(&maps, &v, 0b11, host, a("2001:db8:ee::100"), 7);
        let (isp, ext) = out.unwrap().unwrap();
        assert_eq!(isp, 0);
        assert_eq!(addr::to_std(ext), ip("2001:db8:1:d550::1234"));
        assert!(neutral(host, ext));
        assert_eq!(inbound(&maps, ext), Some(Ok(host)));
    }

    #[test]
    fn longer_prefixes_adjust_the_interface_id_and_round_trip() {
        let s = site(
            "fd00:a:0:1::/64",
            ["2001:db8:1:f1::/64", "2001:db8:2:f2::/64"],
        );
        let maps = mappings(&s);
        let v = isp_view(&s, &[true, true]);
        for (i, h) in [
            "fd00:a:0:1::10",
            "fd00:a:0:1:ffff::5",
            "fd00:a:0:1:1234:5678:9abc:def0",
        ]
        .iter()
        .enumerate()
        {
            let host = a(h);
            let (isp, ext) = outbound(&maps, &v, 0b11, host, a("2001:db8:ee::1"), i as u32)
                .unwrap()
                .unwrap();
            assert!(maps[isp].external.contains(ext), "{h}");
            assert!(neutral(host, ext), "{h}");
            assert_eq!(inbound(&maps, ext), Some(Ok(host)), "{h}");
        }
        // Only 0xFFFF words after the prefix: nothing to adjust.
        let all_ones = a("fd00:a:0:1:ffff:ffff:ffff:ffff");
        assert_eq!(
            outbound(&maps, &v, 0b11, all_ones, a("2001:db8:ee::1"), 0),
            Some(Err(()))
        );
        // Not ours.
        assert_eq!(
            outbound(&maps, &v, 0b11, a("fd99::1"), a("2001:db8:ee::1"), 0),
            None
        );
        assert_eq!(inbound(&maps, a("2001:db8:1:1::10")), None);
    }

    #[test]
    fn the_policy_picks_among_healthy_isps() {
        let s = site("fd00:a::/48", ["2001:db8:1::/48", "2001:db8:2::/48"]);
        let maps = mappings(&s);
        let dst = a("2001:db8:ee::1");
        let both = isp_view(&s, &[true, true]);
        let picks: Vec<usize> = (0..64)
            .map(|f| {
                outbound(&maps, &both, 0b11, a("fd00:a:0:1::10"), dst, f)
                    .unwrap()
                    .unwrap()
                    .0
            })
            .collect();
        assert!(picks.contains(&0) && picks.contains(&1));
        let isp2 = isp_view(&s, &[false, true]);
        for f in 0..64 {
            let (isp, ext) = outbound(&maps, &isp2, 0b11, a("fd00:a:0:1::10"), dst, f)
                .unwrap()
                .unwrap();
            assert_eq!(isp, 1);
            assert!(maps[1].external.contains(ext));
        }
        let none = isp_view(&s, &[false, false]);
        assert_eq!(
            outbound(&maps, &none, 0b11, a("fd00:a:0:1::10"), dst, 1),
            None
        );
    }
}
