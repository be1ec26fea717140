//! What the benchmarks share: the two-ISP site proxying its LAN, contexts drawn from a fixed
//! seed, and frames of each class of traffic at a chosen length.
#![allow(dead_code)]

use dataplane::contexts::{Context, LocatorSet};
use dataplane::net::addr::{self, Addr};
use dataplane::testpkt::*;
use dataplane::{Control, Pipeline, Site};

pub const LAN: usize = 0;
pub const ISP1: usize = 1;
/// Local hosts the contexts belong to (F(local) is unique per host, 20 bits).
pub const HOSTS: usize = 16;

pub fn a(s: &str) -> Addr {
    addr::from_std(&ip(s))
}

/// The two-ISP site proxying its LAN's two /64s.
pub fn site() -> Site {
    let mut s = two_isp_site();
    s.proxied = vec![
        "2001:db8:1:1::/64".parse().expect("prefix"),
        "2001:db8:2:1::/64".parse().expect("prefix"),
    ];
    s
}

/// A cheap deterministic generator (the figures must not depend on the run).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Context `i`: local host `i % HOSTS` (locators under PA1 and PA2), a peer of its own
/// under 2001:db8:99::/48, F(local) random and unique per host, F(peer) random.
pub fn context(i: usize, f_local: u32, f_peer: u32) -> Context {
    let host = 0x100 + (i % HOSTS) as u128;
    let pa1 = a("2001:db8:1:1::") + host;
    let pa2 = a("2001:db8:2:1::") + host;
    let peer = a("2001:db8:99::") + ((i as u128) << 16 | 1);
    Context {
        f_local,
        aid_local: addr::to_bytes(pa1),
        aid_peer: addr::to_bytes(peer),
        f_peer,
        lsl_local: LocatorSet::new(&[pa1, pa2]),
        ls_local: LocatorSet::new(&[pa1, pa2]),
        lsl_peer: LocatorSet::new(&[peer]),
        lsv_peer: LocatorSet::new(&[peer]),
        lp_peer: addr::to_bytes(peer),
        rewrite_ok: true,
        transmit: true,
    }
}

/// `n` contexts with distinct F(local) per host, always the same for the same `n`.
pub fn contexts(n: usize) -> Vec<Context> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut used = vec![std::collections::HashSet::new(); HOSTS];
    (0..n)
        .map(|i| {
            let f_local = loop {
                let f = (rng.next() as u32 & 0xf_ffff).max(1);
                if used[i % HOSTS].insert(f) {
                    break f;
                }
            };
            context(i, f_local, (rng.next() as u32 & 0xf_ffff).max(1))
        })
        .collect()
}

/// The control side of the site with its neighbors resolved (the ISP1 next hop and every
/// proxied host).
pub fn control(site: &Site) -> Control {
    let mut control = Control::new(site);
    control.add_static_neighbor(ISP1, ip("fe80::1"), ISP1_MAC);
    for h in 0..HOSTS as u128 {
        for p in ["2001:db8:1:1::", "2001:db8:2:1::"] {
            let host = addr::to_std(a(p) + 0x100 + h);
            control.add_static_neighbor(LAN, host, HOST_MAC);
        }
    }
    control
}

/// Installs `contexts` and brings every pipeline's replica up to date.
pub fn install(control: &mut Control, pipelines: &mut [&mut Pipeline], contexts: &[Context]) {
    for (i, c) in contexts.iter().enumerate() {
        control.install_context(*c);
        if i % 4096 == 4095 {
            control.tick(0);
            pipelines.iter_mut().for_each(|p| p.sync());
        }
    }
    control.tick(0);
    pipelines.iter_mut().for_each(|p| p.sync());
}

/// Resident memory of the process (KiB).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

/// An M6 data frame of `len` octets (at least 62): IPv6 with next header P1 (161) and its
/// flow label, zeros after it (the router reads no further than P1).
fn m6_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: &str,
    dst: &str,
    label: u32,
    len: usize,
) -> Vec<u8> {
    let mut f = ip_frame(dst_mac, src_mac, src, dst, 64, 161, &vec![0u8; len - 54]);
    f[15] = (f[15] & 0xf0) | ((label >> 16) as u8 & 0x0f);
    f[16] = (label >> 8) as u8;
    f[17] = label as u8;
    f
}

/// Outbound plain UDP of `len` octets from a proxied host's AID to its peer's, for
/// contexts `pick`.
pub fn proxy_out(contexts: &[Context], pick: &[usize], len: usize) -> Vec<Vec<u8>> {
    pick.iter()
        .map(|&i| {
            let c = &contexts[i];
            let src = addr::to_std(c.aid_local()).to_string();
            let dst = addr::to_std(c.aid_peer()).to_string();
            udp_frame(LAN_MAC, HOST_MAC, &src, &dst, 64, len - 62)
        })
        .collect()
}

/// Inbound M6 data of `len` octets from the peer's locator to the host's, label F(local).
pub fn proxy_in(contexts: &[Context], pick: &[usize], len: usize) -> Vec<Vec<u8>> {
    pick.iter()
        .map(|&i| {
            let c = &contexts[i];
            let src = addr::to_std(c.aid_peer()).to_string();
            let dst = addr::to_std(c.aid_local()).to_string();
            m6_frame(ISP1_PORT_MAC, ISP1_MAC, &src, &dst, c.f_local, len)
        })
        .collect()
}

/// `n` plain UDP frames of `len` octets from PA1 and PA2 to `n` destinations
/// (source-prefix egress), from hosts outside the proxied /64s (a proxied host's packet to
/// a peer without a context is the proxy's business, not this class's).
pub fn plain(n: usize, len: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let src = ["2001:db8:1:5::10", "2001:db8:2:5::10"][i % 2];
            let dst = format!("2001:db8:98::{:x}", i + 1);
            udp_frame(LAN_MAC, HOST_MAC, src, &dst, 64, len - 62)
        })
        .collect()
}

/// `n` rewrite-ok M6 data frames of `len` octets from a local host to `n` flows.
pub fn rewrite(n: usize, len: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let dst = format!("2001:db8:98::{:x}", i + 1);
            m6_frame(
                LAN_MAC,
                HOST_MAC,
                "2001:db8:1:1::10",
                &dst,
                i as u32 & 0xff,
                len,
            )
        })
        .collect()
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
