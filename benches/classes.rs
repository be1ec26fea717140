//! Cycles per packet of the pipeline, per class of traffic, beside a baseline measured in
//! the same run: `make bench` (`cargo bench -p dataplane --bench classes`).
//!
//! Every case runs bursts of 32 frames held in memory (`VecBuf`): each round refills the
//! burst from the original frames, as a NIC's RX would, then hands it to
//! `Pipeline::process_burst`. The baseline does the same refill, then the least a forwarder
//! does: swap the MAC addresses and choose the TX port (a "swap MACs and send" loop, as
//! DPDK's macswap forwarding mode). Both are timed with the TSC in interleaved rounds; the
//! figure is the median round. `ours` is the pipeline minus the baseline: the cycles our
//! code adds per packet.
//!
//! Classes: plain IPv6 by source prefix; rewrite-ok M6 data (an ISP per flow, source locator
//! rewritten); proxy outbound (a legacy host's packet translated through its context) and
//! inbound (M6 data restored to the host's AIDs), each with 1,000 contexts (hot: every
//! lookup in cache) and 1,048,576 contexts with random flow labels (cold); and a mix.
//! Table memory per context is the process's resident memory grown by installing the
//! million contexts (the control thread's master copy and one worker's replica), divided by
//! their number.

use std::time::Duration;

use dataplane::contexts::{Context, LocatorSet};
use dataplane::net::addr::{self, Addr};
use dataplane::testpkt::*;
use dataplane::{Control, Next, PacketBuf, Pipeline, Site, VecBuf};

const BURST: usize = 32;
const LAN: usize = 0;
const ISP1: usize = 1;
/// Bursts per timed round, and rounds per case (the median is reported).
const BURSTS_PER_ROUND: usize = 2_000;
const ROUNDS: usize = 15;
const HOT: usize = 1_000;
const COLD: usize = 1 << 20;
/// Local hosts the contexts belong to (F(local) is unique per host, 20 bits).
const HOSTS: usize = 16;

fn a(s: &str) -> Addr {
    addr::from_std(&ip(s))
}

/// The two-ISP site proxying its LAN's two /64s.
fn site() -> Site {
    let mut s = two_isp_site();
    s.proxied = vec![
        "2001:db8:1:1::/64".parse().expect("prefix"),
        "2001:db8:2:1::/64".parse().expect("prefix"),
    ];
    s
}

/// A cheap deterministic generator (the figures must not depend on the run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Context `i`: local host `i % HOSTS` (locators under PA1 and PA2), a peer of its own
/// under 2001:db8:99::/48, F(local) random and unique per host, F(peer) random.
fn context(i: usize, f_local: u32, f_peer: u32) -> Context {
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

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

/// A pipeline with its neighbors resolved and `n` contexts installed; returns it with the
/// contexts and the resident memory they took (KiB).
fn pipeline(n: usize) -> (Pipeline, Control, Vec<Context>, u64) {
    let site = site();
    let mut control = Control::new(&site);
    let mut pl = Pipeline::new(site, control.worker_tables());
    control.add_static_neighbor(ISP1, ip("fe80::1"), ISP1_MAC);
    for h in 0..HOSTS as u128 {
        for p in ["2001:db8:1:1::", "2001:db8:2:1::"] {
            let host = addr::to_std(a(p) + 0x100 + h);
            control.add_static_neighbor(LAN, host, HOST_MAC);
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // The contexts first, so that the memory measured below is the tables' alone.
    let mut used = vec![std::collections::HashSet::new(); HOSTS];
    let mut contexts = Vec::with_capacity(n);
    for i in 0..n {
        let f_local = loop {
            let f = (rng.next() as u32 & 0xf_ffff).max(1);
            if used[i % HOSTS].insert(f) {
                break f;
            }
        };
        contexts.push(context(i, f_local, (rng.next() as u32 & 0xf_ffff).max(1)));
    }
    drop(used);
    let before = rss_kib();
    for (i, c) in contexts.iter().enumerate() {
        control.install_context(*c);
        if i % 4096 == 4095 {
            control.tick(0);
            pl.sync();
        }
    }
    control.tick(0);
    pl.sync();
    let grew = rss_kib().saturating_sub(before);
    (pl, control, contexts, grew)
}

/// Outbound plain UDP from a proxied host's AID to its peer's, for contexts `pick`.
fn proxy_out(contexts: &[Context], pick: &[usize]) -> Vec<Vec<u8>> {
    pick.iter()
        .map(|&i| {
            let c = &contexts[i];
            let src = addr::to_std(c.aid_local()).to_string();
            let dst = addr::to_std(c.aid_peer()).to_string();
            udp_frame(LAN_MAC, HOST_MAC, &src, &dst, 64, 18)
        })
        .collect()
}

/// Inbound M6 data (P1 + UDP) from the peer's locator to the host's, label F(local).
fn proxy_in(contexts: &[Context], pick: &[usize]) -> Vec<Vec<u8>> {
    pick.iter()
        .map(|&i| {
            let c = &contexts[i];
            let src = addr::to_std(c.aid_peer()).to_string();
            let dst = addr::to_std(c.aid_local()).to_string();
            let mut f = ip_frame(ISP1_PORT_MAC, ISP1_MAC, &src, &dst, 64, 161, &[0u8; 18]);
            f[15] = (f[15] & 0xf0) | ((c.f_local >> 16) as u8 & 0x0f);
            f[16] = (c.f_local >> 8) as u8;
            f[17] = c.f_local as u8;
            f
        })
        .collect()
}

/// Plain UDP from PA1 and PA2 to 32 destinations (source-prefix egress), from hosts
/// outside the proxied /64s (a proxied host's packet to a peer without a context is the
/// proxy's business, not this class's).
fn plain() -> Vec<Vec<u8>> {
    (0..BURST)
        .map(|i| {
            let src = ["2001:db8:1:5::10", "2001:db8:2:5::10"][i % 2];
            let dst = format!("2001:db8:98::{:x}", i + 1);
            udp_frame(LAN_MAC, HOST_MAC, src, &dst, 64, 18)
        })
        .collect()
}

/// Rewrite-ok M6 data (P1 + UDP) from a local host to 32 flows.
fn rewrite() -> Vec<Vec<u8>> {
    (0..BURST)
        .map(|i| {
            let dst = format!("2001:db8:98::{:x}", i + 1);
            let mut f = ip_frame(
                LAN_MAC,
                HOST_MAC,
                "2001:db8:1:1::10",
                &dst,
                64,
                161,
                &[0u8; 18],
            );
            f[17] = i as u8;
            f
        })
        .collect()
}

/// Cycles per packet of one round of `bursts` through `step`, which refills and handles
/// one burst.
fn round(bursts: &[Vec<Vec<u8>>], bufs: &mut [VecBuf], step: &mut dyn FnMut(&mut [VecBuf])) -> f64 {
    let t0 = dpdk_bindings::tsc();
    for k in 0..BURSTS_PER_ROUND {
        let frames = &bursts[k % bursts.len()];
        for (b, f) in bufs.iter_mut().zip(frames) {
            b.reset(f, 128);
        }
        step(bufs);
    }
    let cycles = dpdk_bindings::tsc().wrapping_sub(t0);
    cycles as f64 / (BURSTS_PER_ROUND * BURST) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (pipeline, baseline) cycles per packet, rounds interleaved.
fn measure(pl: &mut Pipeline, rx: usize, bursts: &[Vec<Vec<u8>>]) -> (f64, f64) {
    let mut bufs: Vec<VecBuf> = bursts[0].iter().map(|f| VecBuf::new(f)).collect();
    let mut next = vec![Next::Drop; BURST];
    let mut now = 0u64;
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for r in 0..ROUNDS + 2 {
        let p = round(bursts, &mut bufs, &mut |bufs| {
            now += 1_000;
            pl.process_burst(rx, bufs, &mut next, now);
            pl.drain_generated(&mut |_, _| {});
            pl.drain_events(&mut |_| {});
            pl.drain_m6_events(&mut |_| {});
            std::hint::black_box(&next);
        });
        let b = round(bursts, &mut bufs, &mut |bufs| {
            for (b, n) in bufs.iter_mut().zip(next.iter_mut()) {
                let d = b.data_mut();
                for i in 0..6 {
                    d.swap(i, i + 6);
                }
                *n = Next::Tx(ISP1);
            }
            std::hint::black_box(&next);
        });
        // Two warm-up rounds.
        if r >= 2 {
            ours.push(p);
            base.push(b);
        }
    }
    (median(ours), median(base))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it once, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let hz = dpdk_bindings::tsc_hz(Duration::from_millis(200));
    println!(
        "classes: bursts of {BURST}, {BURSTS_PER_ROUND} bursts per round, median of {ROUNDS} rounds; TSC {:.2} GHz",
        hz as f64 / 1e9
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "class", "cycles/pkt", "baseline", "ours", "ns/pkt", "ratio"
    );
    let report = |name: &str, (p, b): (f64, f64)| {
        println!(
            "{name:<28} {p:>10.1} {b:>10.1} {:>10.1} {:>10.1} {:>11.2}x",
            p - b,
            p / (hz as f64 / 1e9),
            p / b.max(0.001)
        );
    };
    let mut rng = Rng(7);
    // As many distinct bursts as a round has: in the cold cases every packet of a round
    // meets a context drawn at random from the million (no working set that fits a cache).
    let picks = |n: usize, rng: &mut Rng| -> Vec<Vec<usize>> {
        (0..BURSTS_PER_ROUND)
            .map(|_| (0..BURST).map(|_| (rng.next() as usize) % n).collect())
            .collect()
    };
    let (mut pl, _c, hot, _) = pipeline(HOT);
    report("plain (source prefix)", measure(&mut pl, LAN, &[plain()]));
    report("rewrite ok (M6 data)", measure(&mut pl, LAN, &[rewrite()]));
    let hot_picks = picks(HOT, &mut rng);
    let out_hot: Vec<_> = hot_picks.iter().map(|p| proxy_out(&hot, p)).collect();
    let in_hot: Vec<_> = hot_picks.iter().map(|p| proxy_in(&hot, p)).collect();
    report("proxy out, 1k contexts", measure(&mut pl, LAN, &out_hot));
    report("proxy in, 1k contexts", measure(&mut pl, ISP1, &in_hot));
    let mix: Vec<Vec<Vec<u8>>> = out_hot
        .iter()
        .map(|o| {
            let mut v = plain()[..8].to_vec();
            v.extend_from_slice(&rewrite()[..8]);
            v.extend_from_slice(&o[..16]);
            v
        })
        .collect();
    report("mix (plain, rewrite, proxy)", measure(&mut pl, LAN, &mix));
    drop(pl);
    if quick {
        println!("(quick run: `make bench` adds the 1M-context cases)");
        return;
    }
    let (mut pl, _c, cold, kib) = pipeline(COLD);
    let cold_picks = picks(COLD, &mut rng);
    let out_cold: Vec<_> = cold_picks.iter().map(|p| proxy_out(&cold, p)).collect();
    let in_cold: Vec<_> = cold_picks.iter().map(|p| proxy_in(&cold, p)).collect();
    report("proxy out, 1M contexts", measure(&mut pl, LAN, &out_cold));
    report("proxy in, 1M contexts", measure(&mut pl, ISP1, &in_cold));
    println!(
        "table memory: {:.0} octets per context (resident memory grown by {} MiB installing {COLD} contexts: the master copy and one replica; {} octets per slab entry)",
        kib as f64 * 1024.0 / COLD as f64,
        kib / 1024,
        dataplane::contexts::CONTEXT_BYTES
    );
}
