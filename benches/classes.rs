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

mod common;

use std::time::Duration;

use common::*;
use dataplane::contexts::Context;
use dataplane::{Control, Next, PacketBuf, Pipeline, VecBuf};

const BURST: usize = 32;
/// Frame length (octets), as `make bench-linux`'s small UDP.
const LEN: usize = 80;
/// Bursts per timed round, and rounds per case (the median is reported).
const BURSTS_PER_ROUND: usize = 2_000;
const ROUNDS: usize = 15;
const HOT: usize = 1_000;
const COLD: usize = 1 << 20;

/// A pipeline with its neighbors resolved and `n` contexts installed; returns it with the
/// contexts and the resident memory they took (KiB).
fn pipeline(n: usize) -> (Pipeline, Control, Vec<Context>, u64) {
    let site = site();
    let mut control = control(&site);
    let mut pl = Pipeline::new(site, control.worker_tables());
    // The contexts first, so that the memory measured below is the tables' alone.
    let contexts = contexts(n);
    let before = rss_kib();
    install(&mut control, &mut [&mut pl], &contexts);
    let grew = rss_kib().saturating_sub(before);
    (pl, control, contexts, grew)
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
    report(
        "plain (source prefix)",
        measure(&mut pl, LAN, &[plain(BURST, LEN)]),
    );
    report(
        "rewrite ok (M6 data)",
        measure(&mut pl, LAN, &[rewrite(BURST, LEN)]),
    );
    let hot_picks = picks(HOT, &mut rng);
    let out_hot: Vec<_> = hot_picks.iter().map(|p| proxy_out(&hot, p, LEN)).collect();
    let in_hot: Vec<_> = hot_picks.iter().map(|p| proxy_in(&hot, p, LEN)).collect();
    report("proxy out, 1k contexts", measure(&mut pl, LAN, &out_hot));
    report("proxy in, 1k contexts", measure(&mut pl, ISP1, &in_hot));
    let mix: Vec<Vec<Vec<u8>>> = out_hot
        .iter()
        .map(|o| {
            let mut v = plain(8, LEN);
            v.extend(rewrite(8, LEN));
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
    let out_cold: Vec<_> = cold_picks
        .iter()
        .map(|p| proxy_out(&cold, p, LEN))
        .collect();
    let in_cold: Vec<_> = cold_picks.iter().map(|p| proxy_in(&cold, p, LEN)).collect();
    report("proxy out, 1M contexts", measure(&mut pl, LAN, &out_cold));
    report("proxy in, 1M contexts", measure(&mut pl, ISP1, &in_cold));
    println!(
        "table memory: {:.0} octets per context (resident memory grown by {} MiB installing {COLD} contexts: the master copy and one replica; {} octets per slab entry)",
        kib as f64 * 1024.0 / COLD as f64,
        kib / 1024,
        dataplane::contexts::CONTEXT_BYTES
    );
}
