//! `Pipeline::process_burst` on 32-packet bursts of `VecBuf`s, in packets per second.
//!
//! Each iteration first refills the burst's buffers from the original frames (as a NIC
//! would, since the pipeline rewrites them in place), then processes it. The
//! `refill_only` case measures that refill alone so it can be subtracted.
//!
//! Run: `cargo bench -p dataplane --bench pipeline`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dataplane::testpkt::*;
use dataplane::{Control, Next, Pipeline, VecBuf};

const BURST: usize = 32;
const LAN: usize = 0;
const ISP1: usize = 1;

/// A pipeline with every next hop resolved (no resolution in the measurement): the
/// control thread publishes the entries, the worker's replica holds them.
fn pipeline() -> Pipeline {
    let site = two_isp_site();
    let mut control = Control::new(&site);
    let mut pl = Pipeline::new(site, control.worker_tables());
    control.add_static_neighbor(ISP1, ip("fe80::1"), ISP1_MAC);
    for h in 0..16 {
        control.add_static_neighbor(LAN, ip(&format!("2001:db8:1:1::{:x}", 0x100 + h)), HOST_MAC);
        control.add_static_neighbor(LAN, ip(&format!("2001:db8:2:1::{:x}", 0x100 + h)), HOST_MAC);
    }
    pl.sync();
    pl
}

/// 32 outbound UDP packets (100 bytes of payload), alternating PA1 and PA2 sources, so
/// both egress ISPs are used (ISP1 learned, ISP2 static).
fn outbound_burst() -> Vec<Vec<u8>> {
    (0..BURST)
        .map(|i| {
            let src = if i % 2 == 0 {
                "2001:db8:1:1::10"
            } else {
                "2001:db8:2:1::10"
            };
            udp_frame(
                LAN_MAC,
                HOST_MAC,
                src,
                &format!("2001:db8:99::{:x}", i + 1),
                64,
                100,
            )
        })
        .collect()
}

/// 32 inbound UDP packets from ISP1 to 16 LAN hosts.
fn inbound_burst() -> Vec<Vec<u8>> {
    (0..BURST)
        .map(|i| {
            let dst = format!("2001:db8:1:1::{:x}", 0x100 + i % 16);
            udp_frame(ISP1_PORT_MAC, ISP1_MAC, "2001:db8:99::1", &dst, 64, 100)
        })
        .collect()
}

/// A LAN burst as a busy site sees it: mostly forwarding, plus an echo request, a
/// Neighbor Solicitation, a multicast packet, an M6 packet, a packet with extension
/// headers, a ULA source (code 5 unreachable) and a truncated frame.
fn mixed_burst() -> Vec<Vec<u8>> {
    let mut v = Vec::with_capacity(BURST);
    v.push(echo_request(
        LAN_MAC,
        HOST_MAC,
        "2001:db8:1:1::10",
        "2001:db8:1:1::1",
        b"ping",
    ));
    v.push(ns_frame(
        SN_MAC_LAN,
        HOST_MAC,
        "fe80::10",
        "ff02::1:ff00:1",
        "fe80::ff:fe00:1",
        Some(HOST_MAC),
    ));
    v.push(udp_frame(
        [0x33, 0x33, 0, 0, 0, 0xfb],
        HOST_MAC,
        "2001:db8:1:1::10",
        "ff02::fb",
        255,
        40,
    ));
    v.push(ip_frame(
        LAN_MAC,
        HOST_MAC,
        "2001:db8:1:1::10",
        "2001:db8:99::1",
        64,
        161,
        &[0; 64],
    ));
    v.push(ext_chain_frame(3));
    v.push(udp_frame(
        LAN_MAC,
        HOST_MAC,
        "fd00::10",
        "2001:db8:99::1",
        64,
        40,
    ));
    v.push(
        udp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::1",
            64,
            40,
        )[..30]
            .to_vec(),
    );
    let fwd = outbound_burst();
    v.extend(fwd.into_iter().take(BURST - v.len()));
    v
}

fn bench_burst(c: &mut Criterion, name: &str, rx_port: usize, frames: Vec<Vec<u8>>) {
    let mut group = c.benchmark_group("process_burst");
    group.throughput(Throughput::Elements(frames.len() as u64));
    let mut pl = pipeline();
    let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::new(f)).collect();
    let mut next = vec![Next::Drop; frames.len()];
    let mut now = 0u64;
    group.bench_function(name, |b| {
        b.iter(|| {
            for (buf, f) in bufs.iter_mut().zip(&frames) {
                buf.reset(f, 128);
            }
            // Advance the clock (a burst every microsecond) so rate limits behave as
            // in a steady stream.
            now += 1_000;
            pl.process_burst(rx_port, black_box(&mut bufs), &mut next, now);
            pl.drain_generated(&mut |_, f| {
                black_box(f);
            });
            black_box(&next);
        })
    });
    group.finish();
}

fn refill_only(c: &mut Criterion) {
    let frames = outbound_burst();
    let mut group = c.benchmark_group("process_burst");
    group.throughput(Throughput::Elements(frames.len() as u64));
    let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::new(f)).collect();
    group.bench_function("refill_only", |b| {
        b.iter(|| {
            for (buf, f) in bufs.iter_mut().zip(&frames) {
                buf.reset(f, 128);
            }
            black_box(&mut bufs);
        })
    });
    group.finish();
}

/// 32 rewrite-ok M6 data packets (P1 + UDP) from PA1 with distinct flow labels: about half
/// leave through ISP2 with their source locator rewritten.
fn rewrite_burst() -> Vec<Vec<u8>> {
    (0..BURST as u32)
        .map(|i| {
            let mut f = ip_frame(
                LAN_MAC,
                HOST_MAC,
                "2001:db8:1:1::10",
                "2001:db8:99::1",
                64,
                161,
                &[0u8; 108],
            );
            let label = i.wrapping_mul(0x9e37_79b9) & 0xf_ffff;
            f[15] = (f[15] & 0xf0) | (label >> 16) as u8;
            f[16] = (label >> 8) as u8;
            f[17] = label as u8;
            f
        })
        .collect()
}

/// A proxying pipeline holding `n` contexts, host i (2001:db8:1:1::/64, interface id i+16)
/// with peer i (2001:db8:99::/64); the burst frames for 32 of them picked at random, outbound
/// (plain UDP from the host) and inbound (M6 data from the peer with the context's F(local)).
fn proxy_setup(n: u32) -> (Pipeline, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    use dataplane::contexts::{Context, LocatorSet};
    let mut site = two_isp_site();
    site.proxied = vec![
        "2001:db8:1:1::/64".parse().unwrap(),
        "2001:db8:2:1::/64".parse().unwrap(),
    ];
    let mut control = Control::new(&site);
    let host = |i: u32| u128::from(ip("2001:db8:1:1::")) | u128::from(i + 16);
    let host2 = |i: u32| u128::from(ip("2001:db8:2:1::")) | u128::from(i + 16);
    let peer = |i: u32| u128::from(ip("2001:db8:99::")) | u128::from(i + 16);
    let label = |i: u32| i.wrapping_mul(0x9e37_79b9) & 0xf_ffff;
    for i in 0..n {
        control.install_context(Context {
            f_local: label(i),
            aid_local: host(i).to_be_bytes(),
            aid_peer: peer(i).to_be_bytes(),
            f_peer: 0x12345,
            lsl_local: LocatorSet::new(&[host(i), host2(i)]),
            ls_local: LocatorSet::new(&[host(i), host2(i)]),
            lsl_peer: LocatorSet::new(&[peer(i)]),
            lsv_peer: LocatorSet::new(&[peer(i)]),
            lp_peer: peer(i).to_be_bytes(),
            rewrite_ok: true,
            transmit: true,
        });
    }
    for i in 0..BURST as u32 {
        let h = std::net::Ipv6Addr::from(host(i * (n / BURST as u32).max(1)));
        control.add_static_neighbor(LAN, h, HOST_MAC);
    }
    control.add_static_neighbor(ISP1, ip("fe80::1"), ISP1_MAC);
    let mut pl = Pipeline::new(site, control.worker_tables());
    pl.sync();
    let mut x: u32 = 0x1234_5678;
    let mut out = Vec::new();
    let mut inb = Vec::new();
    for k in 0..BURST as u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let i = k * (n / BURST as u32).max(1);
        let (h, p) = (
            std::net::Ipv6Addr::from(host(i)),
            std::net::Ipv6Addr::from(peer(i)),
        );
        out.push(udp_frame(
            LAN_MAC,
            HOST_MAC,
            &h.to_string(),
            &p.to_string(),
            64,
            100,
        ));
        let mut f = ip_frame(
            ISP1_PORT_MAC,
            ISP1_MAC,
            &p.to_string(),
            &h.to_string(),
            64,
            161,
            &[0u8; 108],
        );
        let l = label(i);
        f[15] = (f[15] & 0xf0) | (l >> 16) as u8;
        f[16] = (l >> 8) as u8;
        f[17] = l as u8;
        inb.push(f);
    }
    let _ = x;
    // Keep the owner alive beside the pipeline for the whole run.
    std::mem::forget(control);
    (pl, out, inb)
}

fn bench_with(
    c: &mut Criterion,
    name: &str,
    mut pl: Pipeline,
    rx_port: usize,
    frames: Vec<Vec<u8>>,
) {
    let mut group = c.benchmark_group("process_burst");
    group.throughput(Throughput::Elements(frames.len() as u64));
    let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::new(f)).collect();
    let mut next = vec![Next::Drop; frames.len()];
    let mut now = 0u64;
    group.bench_function(name, |b| {
        b.iter(|| {
            for (buf, f) in bufs.iter_mut().zip(&frames) {
                buf.reset(f, 128);
            }
            now += 1_000;
            pl.process_burst(rx_port, black_box(&mut bufs), &mut next, now);
            pl.drain_generated(&mut |_, f| {
                black_box(f);
            });
            pl.drain_m6_events(&mut |e| {
                black_box(e);
            });
            black_box(&next);
        })
    });
    group.finish();
}

fn pipeline_benches(c: &mut Criterion) {
    bench_burst(c, "outbound_forward", LAN, outbound_burst());
    bench_burst(c, "inbound_forward", ISP1, inbound_burst());
    bench_burst(c, "mixed_lan", LAN, mixed_burst());
    bench_burst(c, "rewrite_ok_m6", LAN, rewrite_burst());
    for (n, tag) in [(1_000u32, "1k"), (1_000_000, "1m")] {
        let (pl, out, _) = proxy_setup(n);
        bench_with(c, &format!("proxy_out_{tag}"), pl, LAN, out);
        let (pl, _, inb) = proxy_setup(n);
        bench_with(c, &format!("proxy_in_{tag}"), pl, ISP1, inb);
    }
    refill_only(c);
    // Building a pipeline (per worker, at start): not per packet, shown for scale.
    c.bench_function("pipeline_new", |b| {
        b.iter_batched(
            || {
                let site = two_isp_site();
                let tables = Control::new(&site).worker_tables();
                (site, tables)
            },
            |(s, t)| black_box(Pipeline::new(s, t)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, pipeline_benches);
criterion_main!(benches);
