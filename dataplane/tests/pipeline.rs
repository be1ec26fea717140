//! The pipeline through its public API, as the io layer drives it: bursts of buffers in,
//! a `Next` per buffer out, router-originated frames drained, counters read by name.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use std::ops::{Deref, DerefMut};

use dataplane::control::WorkerEvent;
use dataplane::neighbor::{NeighborEvent, Trigger};
use dataplane::net::addr;
use dataplane::net::checksum;
use dataplane::nodes::icmp_error::MAX_INVOKING;
use dataplane::pipeline::MAX_LOCAL_REPORTS;
use dataplane::testpkt::*;
use dataplane::{Control, Next, PacketBuf, Pipeline, Site, VecBuf};
use proptest::prelude::*;

const SEC: u64 = 1_000_000_000;
const LAN: usize = 0;
const ISP1: usize = 1;
const ISP2: usize = 2;

const HOST1: &str = "2001:db8:1:1::10";
const HOST2: &str = "2001:db8:2:1::10";
const PEER: &str = "2001:db8:99::1";

/// One worker's pipeline with the control thread that owns its tables, wired as
/// `m6-dataplane` wires them (the control thread's side runs in [`Rig::step`]).
struct Rig {
    control: Control,
    pl: Pipeline,
}

impl Deref for Rig {
    type Target = Pipeline;
    fn deref(&self) -> &Pipeline {
        &self.pl
    }
}

impl DerefMut for Rig {
    fn deref_mut(&mut self) -> &mut Pipeline {
        &mut self.pl
    }
}

impl Rig {
    fn new(site: Site) -> Rig {
        let mut control = Control::new(&site);
        let pl = Pipeline::new(site, control.worker_tables());
        Rig { control, pl }
    }

    /// A configured neighbor, as the YAML's `neighbors:` installs it.
    fn add_static_neighbor(&mut self, port: usize, ip: Ipv6Addr, mac: [u8; 6]) {
        self.control.add_static_neighbor(port, ip, mac);
        self.pl.sync();
    }

    fn set_isp_admin(&mut self, isp: usize, up: bool) {
        self.control.set_admin(isp, up);
        self.pl.sync();
    }

    fn set_isp_probes(&mut self, isp: usize, up: bool) {
        self.control.isps.set_probes(isp, up, 0);
        self.pl.sync();
    }

    fn set_isp_link(&mut self, isp: usize, up: bool) {
        self.control.set_link(isp, up, 0);
        self.pl.sync();
    }

    /// The control thread's turn at `now`: the worker's events, the owner's timers; returns
    /// the solicitations it sends. Then the worker's turn between bursts.
    fn step(&mut self, now: u64) -> Vec<(usize, Vec<u8>)> {
        let mut events = Vec::new();
        self.pl.drain_events(&mut |e| events.push(e));
        for e in events {
            self.control.handle(e, now);
        }
        self.control.tick(now);
        let mut sent = Vec::new();
        self.control
            .drain_frames(&mut |port, f| sent.push((port, f.to_vec())));
        self.pl.service(now);
        sent
    }

    /// Makes address resolution of `ip` on `port` fail, as three unanswered solicitations
    /// would (the owner's clock runs from 0 to 4 s; the FAILED state lasts a while).
    fn fail(&mut self, port: usize, ip: Ipv6Addr) {
        self.control.handle(
            WorkerEvent::Neighbor(NeighborEvent::Needed {
                port: port as u16,
                ip: addr::from_std(&ip),
                trigger: Trigger::Inside,
            }),
            0,
        );
        let mut t = 0;
        while t <= 4 * SEC {
            self.control.tick(t);
            t += SEC / 20;
        }
        self.control.drain_frames(&mut |_, _| {});
        self.pl.sync();
    }
}

fn pipeline() -> Rig {
    Rig::new(two_isp_site())
}

/// Runs one frame through the pipeline and returns its fate and bytes.
fn run(pl: &mut Pipeline, port: usize, frame: &[u8], now: u64) -> (Next, Vec<u8>) {
    run_buf(pl, port, VecBuf::new(frame), now)
}

fn run_buf(pl: &mut Pipeline, port: usize, buf: VecBuf, now: u64) -> (Next, Vec<u8>) {
    let mut bufs = [buf];
    let mut next = [Next::Tx(99)];
    pl.process_burst(port, &mut bufs, &mut next, now);
    (next[0], bufs[0].to_vec())
}

fn generated(pl: &mut Pipeline) -> Vec<(usize, Vec<u8>)> {
    let mut v = Vec::new();
    pl.drain_generated(&mut |port, f| v.push((port, f.to_vec())));
    v
}

fn c(pl: &Pipeline, name: &str) -> u64 {
    pl.counters()
        .get(name)
        .unwrap_or_else(|| panic!("no counter {name}"))
}

/// ISP1's router and the LAN hosts, known (configured statically).
fn resolved() -> Rig {
    let mut pl = pipeline();
    pl.add_static_neighbor(ISP1, ip("fe80::1"), ISP1_MAC);
    pl.add_static_neighbor(LAN, ip(HOST1), HOST_MAC);
    pl.add_static_neighbor(LAN, ip(HOST2), HOST_MAC);
    pl
}

fn outbound(src: &str, hop_limit: u8, len: usize) -> Vec<u8> {
    udp_frame(LAN_MAC, HOST_MAC, src, PEER, hop_limit, len)
}

fn inbound(port_mac: [u8; 6], from_mac: [u8; 6], dst: &str) -> Vec<u8> {
    udp_frame(port_mac, from_mac, PEER, dst, 64, 32)
}

/// Checks an ICMPv6 error frame: MACs swapped, from `src` to `dst`, type/code, a checksum
/// that verifies when recomputed, and the invoking packet (cut to fit 1280) as payload.
fn assert_icmp_error(out: &[u8], invoking_frame: &[u8], src: &str, dst: &str, t: u8, code: u8) {
    assert_eq!(
        &out[0..6],
        &invoking_frame[6..12],
        "dst MAC = the offender's"
    );
    assert_eq!(
        &out[6..12],
        &invoking_frame[0..6],
        "src MAC = the receiving port's"
    );
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
    let ip6 = &out[14..];
    assert_eq!(ip6[0] >> 4, 6);
    assert_eq!(ip6[6], 58, "next header ICMPv6");
    assert_eq!(&ip6[8..24], &ip(src).octets(), "error source");
    assert_eq!(&ip6[24..40], &ip(dst).octets(), "error destination");
    let plen = usize::from(u16::from_be_bytes([ip6[4], ip6[5]]));
    assert_eq!(plen + 40, ip6.len());
    assert!(ip6.len() <= 1280);
    let icmp = &ip6[40..];
    assert_eq!((icmp[0], icmp[1]), (t, code));
    if t == 1 || t == 3 {
        assert_eq!(&icmp[4..8], &[0, 0, 0, 0], "unused field");
    }
    // Recompute the checksum from scratch over a copy with the field zeroed.
    let mut zeroed = icmp.to_vec();
    zeroed[2..4].copy_from_slice(&[0, 0]);
    let want = checksum::compute(&ip(src).octets(), &ip(dst).octets(), 58, &zeroed);
    assert_eq!(u16::from_be_bytes([icmp[2], icmp[3]]), want, "checksum");
    let invoking = &invoking_frame[14..];
    let carried = invoking.len().min(MAX_INVOKING);
    assert_eq!(
        &icmp[8..],
        &invoking[..carried],
        "payload = the invoking packet"
    );
}

// ---------------------------------------------------------------------------------------
// Outbound: egress by source prefix (seed 000 sections 5.1, 5.2)

#[test]
fn pa1_source_leaves_through_isp1_with_hop_limit_decremented() {
    let mut pl = resolved();
    let f = outbound(HOST1, 64, 100);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    assert_eq!(next, Next::Tx(ISP1));
    assert_eq!(
        out,
        udp_frame(ISP1_MAC, ISP1_PORT_MAC, HOST1, PEER, 63, 100)
    );
    assert_eq!(c(&pl, "isp.isp1.tx_packets"), 1);
    assert_eq!(c(&pl, "tx.isp1.packets"), 1);
    assert_eq!(c(&pl, "class.ipv6"), 1);
}

#[test]
fn pa2_source_leaves_through_isp2_with_static_mac() {
    let mut pl = pipeline();
    let f = outbound(HOST2, 2, 10);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    assert_eq!(next, Next::Tx(ISP2));
    assert_eq!(out, udp_frame(ISP2_MAC, ISP2_PORT_MAC, HOST2, PEER, 1, 10));
    assert_eq!(c(&pl, "isp.isp2.tx_packets"), 1);
    assert_eq!(c(&pl, "isp.isp1.tx_packets"), 0);
}

#[test]
fn vlan_tagged_frames_are_dropped_on_every_port() {
    // No VLAN sub-interfaces: no half state (forwarded untagged, answered tagged).
    let mut pl = resolved();
    for (port, f) in [
        (LAN, tagged(&outbound(HOST2, 64, 10), 100)),
        (
            LAN,
            tagged(
                &echo_request(LAN_MAC, HOST_MAC, HOST1, "2001:db8:1:1::1", b"x"),
                5,
            ),
        ),
        (ISP1, tagged(&inbound(ISP1_PORT_MAC, ISP1_MAC, HOST1), 7)),
    ] {
        assert_eq!(run(&mut pl, port, &f, 0).0, Next::Drop);
    }
    assert_eq!(c(&pl, "drop.vlan_tagged"), 3);
}

#[test]
fn m6_classes_are_counted_and_no_rewrite_goes_by_source_prefix() {
    let mut pl = resolved();
    let f = ip_frame(LAN_MAC, HOST_MAC, HOST2, PEER, 64, 161, &[0; 16]);
    assert!(matches!(run(&mut pl, LAN, &f, 0).0, Next::Tx(ISP1 | ISP2)));
    let f = ip_frame(LAN_MAC, HOST_MAC, HOST2, PEER, 64, 170, &[0; 16]);
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Tx(ISP2));
    let f = icmp_frame(LAN_MAC, HOST_MAC, HOST2, PEER, 64, 200, 1, &[0; 12]);
    assert!(matches!(run(&mut pl, LAN, &f, 0).0, Next::Tx(ISP1 | ISP2)));
    let f = icmp_frame(LAN_MAC, HOST_MAC, HOST2, PEER, 64, 201, 1, &[0; 12]);
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Tx(ISP2));
    assert_eq!(c(&pl, "class.m6_data_rewrite"), 1);
    assert_eq!(c(&pl, "class.m6_data_no_rewrite"), 1);
    assert_eq!(c(&pl, "class.m6_control_rewrite"), 1);
    assert_eq!(c(&pl, "class.m6_control_no_rewrite"), 1);
}

#[test]
fn isp_admin_down_answers_code_5_unreachable() {
    let mut pl = resolved();
    pl.set_isp_admin(0, false);
    let f = outbound(HOST1, 64, 100);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    assert_eq!(next, Next::Tx(LAN));
    // Source: the router's LAN address in the offender's prefix (PA1).
    assert_icmp_error(&out, &f, "2001:db8:1:1::1", HOST1, 1, 5);
    assert_eq!(c(&pl, "drop.isp_admin_down"), 1);
    assert_eq!(c(&pl, "icmp.unreachable_sent"), 1);
    // PA2 traffic is unaffected, and the ISP comes back.
    assert_eq!(
        run(&mut pl, LAN, &outbound(HOST2, 64, 10), 0).0,
        Next::Tx(ISP2)
    );
    pl.set_isp_admin(0, true);
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Tx(ISP1));
}

#[test]
fn isp_link_down_answers_code_5_from_the_address_in_the_same_prefix() {
    let mut pl = pipeline();
    pl.set_isp_link(1, false);
    assert!(!pl.isp_usable(1));
    let f = outbound(HOST2, 64, 40);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    assert_eq!(next, Next::Tx(LAN));
    // PA2 offender: the PA2 LAN address, though it is configured second.
    assert_icmp_error(&out, &f, "2001:db8:2:1::1", HOST2, 1, 5);
    assert_eq!(c(&pl, "drop.isp_link_down"), 1);
    pl.set_isp_link(1, true);
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Tx(ISP2));
}

#[test]
fn unreachable_carries_at_most_1280_bytes() {
    let mut pl = pipeline();
    pl.set_isp_admin(1, false);
    let f = outbound(HOST2, 64, 1400);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_eq!(out.len(), 14 + 1280);
    assert_icmp_error(&out, &f, "2001:db8:2:1::1", HOST2, 1, 5);
    // Also when the buffer has no headroom (the tailroom is used instead).
    let (next, out) = run_buf(&mut pl, LAN, VecBuf::with_room(&f, 0, 0), 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_icmp_error(&out, &f, "2001:db8:2:1::1", HOST2, 1, 5);
}

#[test]
fn unreachable_is_rate_limited_per_worker() {
    let mut pl = pipeline(); // 10 errors per second
    pl.set_isp_admin(0, false);
    let f = outbound(HOST1, 64, 10);
    let mut bufs: Vec<VecBuf> = (0..32).map(|_| VecBuf::new(&f)).collect();
    let mut next = vec![Next::Drop; 32];
    pl.process_burst(LAN, &mut bufs, &mut next, 5 * SEC);
    assert_eq!(next.iter().filter(|n| **n == Next::Tx(LAN)).count(), 10);
    assert_eq!(next.iter().filter(|n| **n == Next::Drop).count(), 22);
    assert_eq!(c(&pl, "icmp.unreachable_sent"), 10);
    assert_eq!(c(&pl, "icmp.unreachable_ratelimited"), 22);
    assert_eq!(c(&pl, "drop.isp_admin_down"), 32);
    // A tenth of a second later, one more token.
    assert_eq!(run(&mut pl, LAN, &f, 5 * SEC + SEC / 10).0, Next::Tx(LAN));
    assert_eq!(run(&mut pl, LAN, &f, 5 * SEC + SEC / 10).0, Next::Drop);
    // After a second, the bucket is full again.
    let mut bufs: Vec<VecBuf> = (0..32).map(|_| VecBuf::new(&f)).collect();
    pl.process_burst(LAN, &mut bufs, &mut next, 7 * SEC);
    assert_eq!(next.iter().filter(|n| **n == Next::Tx(LAN)).count(), 10);
}

#[test]
fn no_errors_about_errors_redirects_or_broadcasts() {
    let mut pl = pipeline();
    pl.set_isp_admin(0, false);
    let err = icmp_frame(LAN_MAC, HOST_MAC, HOST1, PEER, 64, 1, 4, &[0; 48]);
    assert_eq!(run(&mut pl, LAN, &err, 0).0, Next::Drop);
    let redirect = icmp_frame(LAN_MAC, HOST_MAC, HOST1, PEER, 64, 137, 0, &[0; 36]);
    assert_eq!(run(&mut pl, LAN, &redirect, 0).0, Next::Drop);
    assert_eq!(c(&pl, "icmp.error_suppressed"), 2);
    // A broadcast frame is not even forwarded (so never answered).
    let mut bc = outbound(HOST1, 64, 10);
    bc[0..6].copy_from_slice(&[0xff; 6]);
    assert_eq!(run(&mut pl, LAN, &bc, 0).0, Next::Drop);
    assert_eq!(c(&pl, "drop.link_multicast_not_forwarded"), 1);
    assert_eq!(c(&pl, "icmp.unreachable_sent"), 0);
}

#[test]
fn source_outside_every_prefix_is_dropped_with_code_5() {
    let mut pl = pipeline();
    let f = outbound("fd00:1::10", 64, 10);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    assert_eq!(next, Next::Tx(LAN));
    // No LAN address shares its prefix: the first LAN address answers.
    assert_icmp_error(&out, &f, "2001:db8:1:1::1", "fd00:1::10", 1, 5);
    assert_eq!(c(&pl, "drop.source_not_in_site_prefix"), 1);
}

#[test]
fn lan_to_site_is_not_hairpinned() {
    let mut pl = resolved();
    let f = udp_frame(LAN_MAC, HOST_MAC, HOST1, "2001:db8:2:5::1", 64, 10);
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Drop);
    assert_eq!(c(&pl, "drop.lan_to_site"), 1);
}

#[test]
fn hop_limit_one_gets_time_exceeded() {
    let mut pl = resolved();
    let f = outbound(HOST1, 1, 10);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_icmp_error(&out, &f, "2001:db8:1:1::1", HOST1, 3, 0);
    assert_eq!(c(&pl, "drop.hop_limit_exceeded"), 1);
    assert_eq!(c(&pl, "icmp.time_exceeded_sent"), 1);
    assert_eq!(
        run(&mut pl, LAN, &outbound(HOST1, 0, 10), 0).0,
        Next::Tx(LAN)
    );
    assert_eq!(c(&pl, "drop.hop_limit_exceeded"), 2);
}

// ---------------------------------------------------------------------------------------
// Inbound

#[test]
fn inbound_to_a_lan_host_is_forwarded() {
    let mut pl = resolved();
    let f = inbound(ISP1_PORT_MAC, ISP1_MAC, HOST1);
    let (next, out) = run(&mut pl, ISP1, &f, 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_eq!(out, udp_frame(HOST_MAC, LAN_MAC, PEER, HOST1, 63, 32));
    assert_eq!(c(&pl, "isp.isp1.rx_packets"), 1);
    // Through ISP2, to a PA2 host.
    let f = inbound(ISP2_PORT_MAC, ISP2_MAC, HOST2);
    assert_eq!(run(&mut pl, ISP2, &f, 0).0, Next::Tx(LAN));
    assert_eq!(c(&pl, "isp.isp2.rx_packets"), 1);
    assert_eq!(c(&pl, "tx.lan.packets"), 2);
}

#[test]
fn spoofed_site_source_from_an_isp_is_dropped() {
    let mut pl = resolved();
    let f = udp_frame(ISP1_PORT_MAC, ISP1_MAC, "2001:db8:2:1::66", HOST1, 64, 8);
    assert_eq!(run(&mut pl, ISP1, &f, 0).0, Next::Drop);
    assert_eq!(c(&pl, "drop.spoofed_site_source"), 1);
}

#[test]
fn inbound_not_for_the_site_is_dropped() {
    let mut pl = resolved();
    let f = inbound(ISP1_PORT_MAC, ISP1_MAC, "2001:db8:77::1");
    assert_eq!(run(&mut pl, ISP1, &f, 0).0, Next::Drop);
    assert_eq!(c(&pl, "drop.inbound_not_for_site"), 1);
}

// ---------------------------------------------------------------------------------------
// Neighbor Discovery and echo

#[test]
fn ns_for_the_router_gets_a_correct_na() {
    let mut pl = pipeline();
    let ns = ns_frame(
        LAN_MAC,
        HOST_MAC,
        HOST1,
        "2001:db8:1:1::1",
        "2001:db8:1:1::1",
        Some(HOST_MAC),
    );
    let (next, out) = run(&mut pl, LAN, &ns, 0);
    assert_eq!(next, Next::Tx(LAN));
    let want = na_frame(
        HOST_MAC,
        LAN_MAC,
        "2001:db8:1:1::1",
        HOST1,
        "2001:db8:1:1::1",
        0xe0,
        Some(LAN_MAC),
    );
    assert_eq!(out, want);
    let icmp = &out[54..];
    assert!(checksum::verify(
        &ip("2001:db8:1:1::1").octets(),
        &ip(HOST1).octets(),
        58,
        icmp
    ));
    assert_eq!(c(&pl, "nd.na_sent"), 1);
    assert_eq!(c(&pl, "nd.ns_received"), 1);
    assert_eq!(c(&pl, "class.nd"), 1);
    // The solicitation taught the owner the host's MAC (STALE, RFC 4861 7.2.3); once
    // published, inbound traffic to it flows.
    pl.step(0);
    assert_eq!(pl.neighbor(LAN, ip(HOST1)), Some(HOST_MAC));
    assert_eq!(
        run(&mut pl, ISP2, &inbound(ISP2_PORT_MAC, ISP2_MAC, HOST1), 0).0,
        Next::Tx(LAN)
    );
}

#[test]
fn ns_for_the_isp_port_link_local_is_answered_there() {
    let mut pl = pipeline();
    let ns = ns_frame(
        [0x33, 0x33, 0xff, 0, 0, 2],
        ISP1_MAC,
        "fe80::1",
        "ff02::1:ff00:2",
        "fe80::ff:fe00:2",
        Some(ISP1_MAC),
    );
    let (next, out) = run(&mut pl, ISP1, &ns, 0);
    assert_eq!(next, Next::Tx(ISP1));
    assert_eq!(
        out,
        na_frame(
            ISP1_MAC,
            ISP1_PORT_MAC,
            "fe80::ff:fe00:2",
            "fe80::1",
            "fe80::ff:fe00:2",
            0xe0,
            Some(ISP1_PORT_MAC)
        )
    );
    pl.step(0);
    assert_eq!(pl.neighbor(ISP1, ip("fe80::1")), Some(ISP1_MAC));
}

#[test]
fn ns_with_a_hop_limit_below_255_teaches_nothing() {
    let mut pl = pipeline();
    let ns = ns_frame(
        LAN_MAC,
        HOST_MAC,
        HOST1,
        "2001:db8:1:1::1",
        "2001:db8:1:1::1",
        Some(HOST_MAC),
    );
    let ns = with(&ns, 21, 254);
    assert_eq!(run(&mut pl, LAN, &ns, 0).0, Next::Drop);
    assert_eq!(pl.neighbor(LAN, ip(HOST1)), None);
    assert_eq!(c(&pl, "drop.nd_bad_hop_limit"), 1);
    let na = na_frame(
        ISP1_PORT_MAC,
        ISP1_MAC,
        "fe80::1",
        "fe80::ff:fe00:2",
        "fe80::1",
        0x60,
        Some(ISP1_MAC),
    );
    assert_eq!(run(&mut pl, ISP1, &with(&na, 21, 64), 0).0, Next::Drop);
    assert_eq!(pl.neighbor(ISP1, ip("fe80::1")), None);
}

#[test]
fn echo_request_to_any_router_address_is_answered() {
    let mut pl = pipeline();
    for (port, port_mac, peer_mac, src, dst) in [
        (LAN, LAN_MAC, HOST_MAC, HOST1, "2001:db8:1:1::1"),
        (LAN, LAN_MAC, HOST_MAC, HOST1, "fe80::ff:fe00:1"),
        (LAN, LAN_MAC, HOST_MAC, HOST1, "2001:db8:ff01::2"),
        // From the Internet, to an address ISP1 owns: back the way it came (the ISP
        // that owns the source; see echo_replies_leave_through_the_isp_that_owns_their_source).
        (ISP1, ISP1_PORT_MAC, ISP1_MAC, PEER, "2001:db8:1:1::1"),
    ] {
        let req = echo_request(port_mac, peer_mac, src, dst, b"0123456789");
        let (next, out) = run(&mut pl, port, &req, 0);
        assert_eq!(next, Next::Tx(port), "{dst}");
        let mut body = vec![0x12, 0x34, 0, 1];
        body.extend_from_slice(b"0123456789");
        assert_eq!(
            out,
            icmp_frame(peer_mac, port_mac, dst, src, 64, 129, 0, &body),
            "{dst}"
        );
    }
    assert_eq!(c(&pl, "icmp.echo_replied"), 4);
    assert_eq!(c(&pl, "class.local"), 4);
}

#[test]
fn other_traffic_to_the_router_is_dropped() {
    let mut pl = pipeline();
    let f = udp_frame(LAN_MAC, HOST_MAC, HOST1, "2001:db8:1:1::1", 64, 10);
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Drop);
    let f = icmp_frame(
        LAN_MAC,
        HOST_MAC,
        HOST1,
        "2001:db8:1:1::1",
        64,
        129,
        0,
        &[0; 4],
    );
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Drop);
    assert_eq!(c(&pl, "drop.to_router_unhandled"), 1);
    assert_eq!(
        c(&pl, "drop.echo_reply_not_ours"),
        1,
        "not a probe's identifier"
    );
}

// ---------------------------------------------------------------------------------------
// Neighbor resolution: one owner (the control thread), workers that read and report

/// A frame from the LAN host to one of the router's addresses, first next header `nh`,
/// carrying `headers` then an echo request with `data`.
fn to_router(nh: u8, headers: &[u8], data: &[u8]) -> Vec<u8> {
    let (s, d) = (ip(HOST1).octets(), ip("2001:db8:1:1::1").octets());
    let mut echo = vec![128, 0, 0, 0, 0x12, 0x34, 0, 1];
    echo.extend_from_slice(data);
    let sum = checksum::compute(&s, &d, 58, &echo);
    echo[2..4].copy_from_slice(&sum.to_be_bytes());
    let payload = [headers, &echo[..]].concat();
    ip_frame(
        LAN_MAC,
        HOST_MAC,
        HOST1,
        "2001:db8:1:1::1",
        64,
        nh,
        &payload,
    )
}

/// `n` 8-octet Destination Options headers with PadN, the last naming `last`.
fn chain(n: usize, last: u8) -> Vec<u8> {
    (0..n)
        .flat_map(|i| [if i + 1 == n { last } else { 60 }, 0, 1, 4, 0, 0, 0, 0])
        .collect()
}

/// One 8-octet options header (next header ICMPv6) holding option type `t` (4 bytes).
fn opt(t: u8) -> Vec<u8> {
    vec![58, 0, t, 4, 0, 0, 0, 1]
}

/// A type 0 routing header with one address and `segments_left`.
fn rh0(segments_left: u8) -> Vec<u8> {
    let mut h = vec![58, 2, 0, segments_left, 0, 0, 0, 0];
    h.extend_from_slice(&ip("2001:db8:99::5").octets());
    h
}

/// A solicited NA from ISP1's router, with its link-layer address option or not.
fn isp1_na(tll: bool) -> Vec<u8> {
    na_frame(
        ISP1_PORT_MAC,
        ISP1_MAC,
        "fe80::1",
        "fe80::ff:fe00:2",
        "fe80::1",
        0xe0,
        tll.then_some(ISP1_MAC),
    )
}

/// The NS the owner sends to resolve ISP1's next hop.
fn isp1_ns() -> Vec<u8> {
    ns_frame(
        [0x33, 0x33, 0xff, 0, 0, 1],
        ISP1_PORT_MAC,
        "fe80::ff:fe00:2",
        "ff02::1:ff00:1",
        "fe80::1",
        Some(ISP1_PORT_MAC),
    )
}

#[test]
fn the_first_packet_to_an_unresolved_next_hop_is_held_and_sent_on_resolution() {
    let mut pl = pipeline();
    let f = outbound(HOST1, 64, 10);
    // RFC 4861 7.2.2: queued, not dropped.
    assert_eq!(run(&mut pl, LAN, &f, SEC).0, Next::Held);
    assert_eq!(pl.held(), 1);
    let sent = pl.step(SEC);
    assert!(
        sent.contains(&(ISP1, isp1_ns())),
        "the owner solicits ISP1's router: {sent:?}"
    );
    assert!(generated(&mut pl).is_empty(), "still waiting");
    // The answer goes to the owner; the worker sees it once the owner publishes.
    assert_eq!(run(&mut pl, ISP1, &isp1_na(true), SEC + 1).0, Next::Drop);
    pl.step(SEC + 2);
    let g = generated(&mut pl);
    let mut want = outbound(HOST1, 63, 10);
    want[0..6].copy_from_slice(&ISP1_MAC);
    want[6..12].copy_from_slice(&ISP1_PORT_MAC);
    assert_eq!(g, vec![(ISP1, want.clone())]);
    assert_eq!(pl.held(), 0);
    assert_eq!(c(&pl, "resolve.released"), 1);
    assert_eq!(c(&pl, "isp.isp1.tx_packets"), 1);
    // The next packets go straight out.
    assert_eq!(run(&mut pl, LAN, &f, SEC + 3), (Next::Tx(ISP1), want));
    assert_eq!(c(&pl, "drop.neighbor_unresolved"), 0);
}

#[test]
fn failed_resolution_answers_the_held_packets_with_code_3() {
    let mut pl = pipeline();
    let to_host = inbound(ISP2_PORT_MAC, ISP2_MAC, HOST1);
    assert_eq!(run(&mut pl, ISP2, &to_host, 0).0, Next::Held);
    let mut solicitations = 0;
    let mut t = 0;
    while t <= 4 * SEC {
        solicitations += pl
            .step(t)
            .iter()
            .filter(|(p, f)| *p == LAN && f[0] == 0x33 && f[5] == 0x10)
            .count();
        t += SEC / 10;
    }
    assert_eq!(solicitations, 3, "MAX_MULTICAST_SOLICIT");
    let g = generated(&mut pl);
    assert_eq!(g.len(), 1, "{g:?}");
    let (port, err) = &g[0];
    assert_eq!(*port, ISP2, "back where the packet came from");
    assert_icmp_error(err, &to_host, "2001:db8:2:1::1", PEER, 1, 3);
    assert_eq!(c(&pl, "icmp.address_unreachable_sent"), 1);
    // While the failure is remembered, later packets are answered at once.
    let (next, out) = run(&mut pl, ISP2, &to_host, t);
    assert_eq!(next, Next::Tx(ISP2));
    assert_eq!(out[54..56], [1, 3]);
}

#[test]
fn a_dead_next_hop_takes_its_isp_down_and_an_answer_brings_it_back() {
    let mut pl = pipeline();
    let f = outbound(HOST1, 64, 10);
    run(&mut pl, LAN, &f, 0);
    pl.step(0);
    run(&mut pl, ISP1, &isp1_na(true), 1);
    pl.step(1);
    generated(&mut pl);
    let mut log = Vec::new();
    // Traffic keeps flowing; the ISP router stops answering. RFC 4861 7.3.3: STALE after
    // REACHABLE_TIME, DELAY on use, three unicast probes, then the entry is deleted, and
    // for a next hop the ISP is withdrawn.
    let mut t = 0;
    let mut first_code5 = None;
    while t < 60 * SEC {
        t += SEC / 10;
        let (next, out) = run(&mut pl, LAN, &f, t);
        if next == Next::Tx(LAN) && out[54..56] == [1, 5] && first_code5.is_none() {
            first_code5 = Some(t);
        }
        pl.step(t);
        pl.control.drain_log(&mut |l| log.push(l.to_string()));
        generated(&mut pl);
    }
    let at = first_code5.expect("code 5 once the next hop is dead");
    assert!(
        (38 * SEC..42 * SEC).contains(&at),
        "withdrawn at {at} ns: 30 s reachable + 5 s delay + 3 probes"
    );
    assert!(!pl.isp_usable(0));
    assert!(
        log.iter()
            .any(|l| l == "isp isp1 withdrawn (next hop down)"),
        "{log:?}"
    );
    assert_eq!(c(&pl, "drop.neighbor_unresolved"), 0);
    // The owner keeps soliciting; the first answer restores the ISP.
    run(&mut pl, ISP1, &isp1_na(false), t);
    run(&mut pl, ISP1, &isp1_na(true), t);
    pl.step(t + 1);
    pl.control.drain_log(&mut |l| log.push(l.to_string()));
    assert!(pl.isp_usable(0), "{log:?}");
    assert_eq!(run(&mut pl, LAN, &f, t + 2).0, Next::Tx(ISP1));
}

/// Issue 7, item 1: two workers, one owner. Every answer of ISP1's router arrives on the
/// second worker (RSS keeps that flow there); both workers forward to it for several
/// REACHABLE_TIME periods, and neither ever drops for lack of its MAC.
#[test]
fn two_workers_share_one_owner_across_reachable_time_expiries() {
    let site = two_isp_site();
    let mut control = Control::new(&site);
    let mut w = [
        Pipeline::new(site.clone(), control.worker_tables()),
        Pipeline::new(site, control.worker_tables()),
    ];
    let f = outbound(HOST1, 64, 10);
    let host_na = na_frame(
        LAN_MAC,
        HOST_MAC,
        HOST1,
        "2001:db8:1:1::1",
        HOST1,
        0x60,
        Some(HOST_MAC),
    );
    let mut t = 0;
    let mut held_after_start = [0u64; 2];
    let mut probes = 0;
    while t < 200 * SEC {
        t += SEC / 10;
        for pl in w.iter_mut() {
            run(pl, LAN, &f, t);
        }
        for pl in w.iter_mut() {
            let mut ev = Vec::new();
            pl.drain_events(&mut |e| ev.push(e));
            for e in ev {
                control.handle(e, t);
            }
        }
        control.tick(t);
        let mut sent = Vec::new();
        control.drain_frames(&mut |p, fr| sent.push((p, fr.to_vec())));
        for (port, ns) in sent {
            if port == ISP1 {
                probes += usize::from(ns[0] & 1 == 0); // unicast: a NUD probe
                run(&mut w[1], ISP1, &isp1_na(true), t);
            } else if port == LAN {
                run(&mut w[0], LAN, &host_na, t);
            }
        }
        for pl in w.iter_mut() {
            pl.service(t);
            generated(pl);
        }
        if t == SEC {
            held_after_start = [c(&w[0], "resolve.held"), c(&w[1], "resolve.held")];
        }
    }
    assert!(
        probes >= 5,
        "only {probes} NUD probes: too few REACHABLE_TIME expiries"
    );
    for (i, pl) in w.iter().enumerate() {
        assert_eq!(c(pl, "drop.neighbor_unresolved"), 0, "worker {i}");
        assert_eq!(
            c(pl, "resolve.held"),
            held_after_start[i],
            "worker {i} waited for a next hop after the first resolution"
        );
        assert_eq!(c(pl, "tx.isp1.packets"), 2000, "worker {i}");
    }
    assert_eq!(control.counters().probe_failed, 0);
}

/// RFC 6583: an Internet-side scan of the LAN /64 exhausts only the outside budget; a
/// host that appears during it and talks is resolved at once.
#[test]
fn a_scan_does_not_starve_a_host_that_talks() {
    let mut pl = resolved();
    let base = u128::from(ip("2001:db8:1:1::"));
    let new_host = "2001:db8:1:1::77";
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut reachable_at = None;
    let mut t = 0;
    while t < 3 * SEC {
        t += SEC / 100;
        // 3,200 scan packets per second to random addresses.
        let mut burst: Vec<VecBuf> = (0..32)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let dst = Ipv6Addr::from(base | u128::from(x));
                VecBuf::new(&inbound(ISP1_PORT_MAC, ISP1_MAC, &dst.to_string()))
            })
            .collect();
        let mut next = vec![Next::Drop; burst.len()];
        pl.process_burst(ISP1, &mut burst, &mut next, t);
        if t >= SEC {
            // The new host talks, and the answers to it come back.
            run(&mut pl, LAN, &outbound(new_host, 64, 8), t);
            let back = inbound(ISP1_PORT_MAC, ISP1_MAC, new_host);
            if run(&mut pl, ISP1, &back, t).0 == Next::Tx(LAN) && reachable_at.is_none() {
                reachable_at = Some(t - SEC);
            }
        }
        for (port, ns) in pl.step(t) {
            if port == LAN && ns[62..78] == ip(new_host).octets() {
                let na = na_frame(
                    LAN_MAC,
                    HOST_MAC,
                    new_host,
                    "2001:db8:1:1::1",
                    new_host,
                    0x60,
                    Some(HOST_MAC),
                );
                run(&mut pl, LAN, &na, t);
            }
        }
        generated(&mut pl);
    }
    let at = reachable_at.expect("the new host never became reachable during the scan");
    assert!(at <= SEC / 10, "reachable after {at} ns");
    assert!(
        pl.control.counters().refused_outside_budget > 0,
        "the scan was budgeted"
    );
    assert!(c(&pl, "resolve.outside_ratelimited") > 0);
    // Known hosts kept working throughout.
    assert_eq!(
        run(&mut pl, ISP1, &inbound(ISP1_PORT_MAC, ISP1_MAC, HOST1), t).0,
        Next::Tx(LAN)
    );
}

#[test]
fn options_routing_headers_and_long_chains_to_the_router_get_parameter_problems() {
    let mut pl = resolved();
    for (frame, code, pointer) in [
        (to_router(0, &opt(0x9e), b""), 2, 42),
        (to_router(60, &opt(0xde), b""), 2, 42),
        (to_router(0, &opt(0xc2), b""), 0, 42),
        (to_router(43, &rh0(1), b""), 0, 42),
        (
            to_router(
                60,
                &[&[0, 0, 1, 4, 0, 0, 0, 0][..], &chain(1, 58)].concat(),
                b"",
            ),
            1,
            40,
        ),
        (to_router(60, &chain(9, 58), b""), 8, 40 + 64),
    ] {
        let (next, out) = run(&mut pl, LAN, &frame, 0);
        assert_eq!(next, Next::Tx(LAN));
        assert_icmp_error(&out, &frame, "2001:db8:1:1::1", HOST1, 4, code);
        assert_eq!(
            u32::from_be_bytes([out[58], out[59], out[60], out[61]]),
            pointer,
            "pointer"
        );
    }
    // Skippable options, and a routing header with no segments left, are answered.
    for frame in [
        to_router(0, &opt(0x1e), b"ok"),
        to_router(43, &rh0(0), b"ok"),
        to_router(60, &chain(8, 58), b"ok"),
    ] {
        let (next, out) = run(&mut pl, LAN, &frame, 0);
        assert_eq!(next, Next::Tx(LAN));
        assert_eq!(out[54], 129, "echo reply");
    }
    // Transit packets are not read past Hop-by-Hop: 128 Destination Options headers pass.
    let f = ext_chain_frame(128);
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Tx(ISP1));
}

#[test]
fn packet_too_big_names_the_egress_mtu() {
    let mut site = two_isp_site();
    site.ports[ISP1].mtu = 1400;
    let mut pl = Rig::new(site);
    pl.add_static_neighbor(ISP1, ip("fe80::1"), ISP1_MAC);
    let f = outbound(HOST1, 64, 1400 - 48);
    assert_eq!(
        run(&mut pl, LAN, &f, 0).0,
        Next::Tx(ISP1),
        "exactly the MTU"
    );
    let f = outbound(HOST1, 64, 1400 - 47);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_eq!(out[54..56], [2, 0]);
    assert_eq!(
        u32::from_be_bytes([out[58], out[59], out[60], out[61]]),
        1400
    );
    assert!(out.len() - 14 <= 1280, "RFC 4443 2.4 (c)");
    assert_eq!(c(&pl, "icmp.packet_too_big_sent"), 1);
}

#[test]
fn link_local_sources_get_code_2_and_subnet_router_anycast_is_answered() {
    let mut pl = resolved();
    let f = udp_frame(LAN_MAC, HOST_MAC, "fe80::10", PEER, 64, 8);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_icmp_error(&out, &f, "fe80::ff:fe00:1", "fe80::10", 1, 2);
    // RFC 4291 2.6.1: the subnet-router anycast address of the LAN /64, answered from the
    // router's unicast address there.
    let req = echo_request(LAN_MAC, HOST_MAC, HOST1, "2001:db8:1:1::", b"any");
    let (next, out) = run(&mut pl, LAN, &req, 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_eq!(out[54], 129);
    assert_eq!(out[22..38], ip("2001:db8:1:1::1").octets());
}

#[test]
fn echo_replies_leave_through_the_isp_that_owns_their_source() {
    // ISP2's uplink is numbered from PA2; an echo to that address arriving through ISP1
    // is answered through ISP2, whose ingress filter accepts a PA2 source.
    let mut site = two_isp_site();
    site.ports[ISP2].addresses = vec![ip("2001:db8:2:ffff::2")];
    let mut pl = Rig::new(site);
    pl.add_static_neighbor(ISP1, ip("fe80::1"), ISP1_MAC);
    let req = echo_request(ISP1_PORT_MAC, ISP1_MAC, PEER, "2001:db8:2:ffff::2", b"e");
    let (next, out) = run(&mut pl, ISP1, &req, 0);
    assert_eq!(next, Next::Tx(ISP2));
    assert_eq!(&out[0..6], &ISP2_MAC);
    assert_eq!(out[54], 129);
    assert_eq!(out[22..38], ip("2001:db8:2:ffff::2").octets());
    assert_eq!(
        out[21], 64,
        "an originated packet's hop limit is not decremented"
    );
    // To ISP1's own address: straight back.
    let req = echo_request(ISP1_PORT_MAC, ISP1_MAC, PEER, "2001:db8:ff01::2", b"e");
    assert_eq!(run(&mut pl, ISP1, &req, 0).0, Next::Tx(ISP1));
}

// ---------------------------------------------------------------------------------------
// Every drop reason, each by a packet that shows it

struct Case {
    name: &'static str,
    port: usize,
    frame: Vec<u8>,
    site: Option<Site>,
    room: Option<(usize, usize)>,
    setup: fn(&mut Rig),
}

fn case(name: &'static str, port: usize, frame: Vec<u8>) -> Case {
    Case {
        name,
        port,
        frame,
        site: None,
        room: None,
        setup: |_| {},
    }
}

fn drop_cases() -> Vec<Case> {
    let good = outbound(HOST1, 64, 8);
    let lan_ll = "fe80::ff:fe00:1";
    let ns = ns_frame(
        SN_MAC_LAN,
        HOST_MAC,
        "fe80::10",
        "ff02::1:ff00:1",
        lan_ll,
        Some(HOST_MAC),
    );
    let mut no_lan = two_isp_site();
    no_lan.lan_port = 9;
    vec![
        case("unknown_port", 5, good.clone()),
        case("truncated", LAN, good[..40].to_vec()),
        case("vlan_unsupported", LAN, tagged(&tagged(&good, 1), 2)),
        case("vlan_tagged", LAN, tagged(&good, 7)),
        case("ipv4", LAN, with(&with(&good, 12, 0x08), 13, 0x00)),
        case("arp", LAN, with(&with(&good, 12, 0x08), 13, 0x06)),
        case("other_ethertype", LAN, with(&good, 12, 0x88)),
        case("not_for_our_mac", LAN, with(&good, 5, 0x42)),
        case("bad_ip_version", LAN, with(&good, 14, 0x40)),
        case("payload_length_mismatch", LAN, with(&good, 19, 200)),
        case(
            "ext_header_truncated",
            LAN,
            ip_frame(
                LAN_MAC,
                HOST_MAC,
                HOST1,
                PEER,
                64,
                0,
                &[17, 9, 1, 4, 0, 0, 0, 0],
            ),
        ),
        case("ext_chain_too_long", LAN, to_router(60, &chain(9, 58), b"")),
        case(
            "hbh_not_first",
            LAN,
            to_router(
                60,
                &[&[0, 0, 1, 4, 0, 0, 0, 0][..], &chain(1, 58)].concat(),
                b"",
            ),
        ),
        case("option_discard", LAN, to_router(0, &opt(0x5e), b"")),
        case("option_unrecognized", LAN, to_router(60, &opt(0x9e), b"")),
        case(
            "jumbo_with_payload_length",
            LAN,
            to_router(0, &opt(0xc2), b""),
        ),
        case(
            "option_truncated",
            LAN,
            to_router(0, &[58, 0, 0x1e, 9, 0, 0, 0, 0], b""),
        ),
        case("routing_header", LAN, to_router(43, &rh0(1), b"")),
        case(
            "link_multicast_not_forwarded",
            LAN,
            with(&with(&good, 0, 0x33), 1, 0x33),
        ),
        case(
            "multicast_source",
            LAN,
            udp_frame(LAN_MAC, HOST_MAC, "ff05::1", PEER, 64, 0),
        ),
        case(
            "multicast_not_handled",
            LAN,
            udp_frame(
                [0x33, 0x33, 0, 0, 0, 0xfb],
                HOST_MAC,
                HOST1,
                "ff02::fb",
                64,
                0,
            ),
        ),
        case(
            "bad_source",
            LAN,
            udp_frame(LAN_MAC, HOST_MAC, "::1", PEER, 64, 0),
        ),
        case(
            "source_beyond_scope",
            LAN,
            udp_frame(LAN_MAC, HOST_MAC, "fe80::10", PEER, 64, 0),
        ),
        case(
            "bad_destination",
            LAN,
            udp_frame(LAN_MAC, HOST_MAC, HOST1, "fe80::99", 64, 0),
        ),
        case(
            "to_router_unhandled",
            LAN,
            udp_frame(LAN_MAC, HOST_MAC, HOST1, "2001:db8:1:1::1", 64, 0),
        ),
        case("nd_bad_hop_limit", LAN, with(&ns, 21, 1)),
        case("nd_bad_checksum", LAN, with(&ns, 60, 1)),
        case(
            "nd_malformed",
            LAN,
            icmp_frame(
                SN_MAC_LAN,
                HOST_MAC,
                "fe80::10",
                "ff02::1:ff00:1",
                255,
                135,
                0,
                &[0; 8],
            ),
        ),
        case(
            "nd_not_for_router",
            LAN,
            ns_frame(
                SN_MAC_LAN,
                HOST_MAC,
                "fe80::10",
                "ff02::1:ff00:1",
                "fe80::5:ff00:1",
                None,
            ),
        ),
        Case {
            room: Some((0, 0)),
            ..case(
                "nd_no_room",
                LAN,
                ns_frame(SN_MAC_LAN, HOST_MAC, "::", "ff02::1:ff00:1", lan_ll, None),
            )
        },
        case(
            "echo_truncated",
            LAN,
            icmp_frame(LAN_MAC, HOST_MAC, HOST1, "2001:db8:1:1::1", 64, 128, 0, &[]),
        ),
        case(
            "echo_bad_checksum",
            LAN,
            with(
                &echo_request(LAN_MAC, HOST_MAC, HOST1, "2001:db8:1:1::1", b"x"),
                62,
                0,
            ),
        ),
        case(
            "echo_bad_source",
            LAN,
            echo_request(LAN_MAC, HOST_MAC, "::", "2001:db8:1:1::1", b"x"),
        ),
        case(
            "lan_to_site",
            LAN,
            udp_frame(LAN_MAC, HOST_MAC, HOST1, HOST2, 64, 0),
        ),
        case(
            "source_not_in_site_prefix",
            LAN,
            outbound("2001:db8:3::1", 64, 0),
        ),
        Case {
            setup: |pl| pl.set_isp_admin(0, false),
            ..case("isp_admin_down", LAN, good.clone())
        },
        Case {
            setup: |pl| pl.set_isp_link(0, false),
            ..case("isp_link_down", LAN, good.clone())
        },
        case(
            "spoofed_site_source",
            ISP1,
            udp_frame(ISP1_PORT_MAC, ISP1_MAC, HOST2, HOST1, 64, 0),
        ),
        case(
            "inbound_not_for_site",
            ISP1,
            inbound(ISP1_PORT_MAC, ISP1_MAC, PEER),
        ),
        Case {
            site: Some(no_lan),
            ..case("no_lan_port", ISP1, inbound(ISP1_PORT_MAC, ISP1_MAC, HOST1))
        },
        case("hop_limit_exceeded", LAN, outbound(HOST2, 1, 0)),
        case("packet_too_big", LAN, outbound(HOST2, 64, 1500)),
        Case {
            // The hold queue's share for the neighbor is full.
            setup: |pl| {
                for _ in 0..3 {
                    run(pl, LAN, &outbound(HOST1, 64, 8), 0);
                }
            },
            ..case("neighbor_unresolved", LAN, good.clone())
        },
        Case {
            setup: |pl| pl.fail(LAN, ip(HOST1)),
            ..case(
                "neighbor_failed",
                ISP2,
                inbound(ISP2_PORT_MAC, ISP2_MAC, HOST1),
            )
        },
        Case {
            setup: |pl| pl.fail(ISP1, ip("fe80::1")),
            ..case("isp_next_hop_down", LAN, good.clone())
        },
        Case {
            site: Some(proxy_site()),
            setup: install_proxy_context,
            ..case(
                "proxy_unknown_flow_label",
                ISP1,
                m6_from_peer(PEER_AID, HOST1, 0x777, 160, &[0; 8]),
            )
        },
        Case {
            site: Some(proxy_site()),
            setup: install_proxy_context,
            ..case(
                "proxy_dst_not_in_lsl_local",
                ISP1,
                m6_from_peer(PEER_AID, "2001:db8:1:1::11", 0x4242, 160, &[0; 8]),
            )
        },
        Case {
            site: Some(proxy_site()),
            setup: install_proxy_context,
            ..case(
                "proxy_src_not_in_lsl_peer",
                ISP1,
                m6_from_peer("2001:db8:96::1", HOST1, 0x4242, 160, &[0; 8]),
            )
        },
        Case {
            site: Some(proxy_site()),
            setup: install_proxy_context,
            ..case(
                "proxy_bad_m6_header",
                ISP1,
                m6_from_peer(PEER_AID, HOST1, 0x4242, 165, &[0; 8]),
            )
        },
        Case {
            site: Some(proxy_site()),
            // Past the worker's punt rate for M6 control (2000 per second).
            setup: |pl| {
                let f = icmp_frame(
                    ISP1_PORT_MAC,
                    ISP1_MAC,
                    PEER_AID,
                    HOST1,
                    60,
                    200,
                    1,
                    &[0; 16],
                );
                for _ in 0..2000 {
                    run(pl, ISP1, &f, 0);
                }
            },
            ..case(
                "proxy_punt_ratelimited",
                ISP1,
                icmp_frame(
                    ISP1_PORT_MAC,
                    ISP1_MAC,
                    PEER_AID,
                    HOST1,
                    60,
                    200,
                    1,
                    &[0; 16],
                ),
            )
        },
        Case {
            site: Some(proxy_site()),
            setup: install_proxy_context,
            room: Some((0, 0)),
            ..case(
                "proxy_escape_no_room",
                LAN,
                echo_request(LAN_MAC, HOST_MAC, HOST1, PEER_AID, b"x"),
            )
        },
        Case {
            site: Some(proxy_site()),
            setup: |pl| {
                pl.control
                    .set_responder(Some(Responder::new(&responder_msg(0), 0)));
                pl.sync();
            },
            ..case(
                "cc_rate_limited",
                ISP1,
                init_frame(PEER_AID, HOST1, HOST1, false),
            )
        },
        Case {
            site: Some(proxy_site()),
            setup: publish_responder,
            ..case("cc_bad_init", ISP1, {
                let mut f = init_frame(PEER_AID, HOST1, HOST1, false);
                let n = f.len();
                f[n - 1] ^= 0xff;
                f
            })
        },
        Case {
            site: Some(proxy_site()),
            setup: publish_responder,
            ..case(
                "cc_not_our_host",
                ISP1,
                init_frame(PEER_AID, HOST1, "2001:db8:1:1::99", false),
            )
        },
        Case {
            site: Some(proxy_site()),
            setup: |pl| {
                publish_responder(pl);
                pl.set_isp_admin(0, false);
            },
            ..case(
                "cc_owner_isp_down",
                ISP1,
                init_frame(PEER_AID, HOST1, HOST1, false),
            )
        },
        Case {
            setup: |pl| pl.set_isp_probes(0, false),
            ..case("isp_probes_failing", LAN, good.clone())
        },
        Case {
            setup: |pl| {
                // Three link flaps within a second: held down by dampening.
                for k in 0..3 {
                    pl.control.set_link(0, false, k * SEC / 4);
                    pl.control.set_link(0, true, k * SEC / 4 + SEC / 8);
                }
                pl.pl.sync();
            },
            ..case("isp_dampened", LAN, good.clone())
        },
        Case {
            site: Some(nptv6_site()),
            ..case(
                "nptv6_unmappable_source",
                LAN,
                udp_frame(
                    LAN_MAC,
                    HOST_MAC,
                    "fd00:a:0:1:ffff:ffff:ffff:ffff",
                    PEER,
                    64,
                    8,
                ),
            )
        },
        Case {
            site: Some(nptv6_site()),
            ..case(
                "nptv6_unmappable_destination",
                ISP1,
                inbound(ISP1_PORT_MAC, ISP1_MAC, "2001:db8:1:f1:ffff:ffff:ffff:ffff"),
            )
        },
        Case {
            site: Some(ra_site()),
            ..case("bad_router_solicitation", LAN, {
                let f = router_solicitation(true);
                with(&f, 21, 64) // hop limit 64
            })
        },
        case(
            "echo_reply_not_ours",
            ISP1,
            icmp_frame(
                ISP1_PORT_MAC,
                ISP1_MAC,
                PEER,
                "2001:db8:1:1::1",
                64,
                129,
                0,
                &[0x12, 0x34, 0, 1],
            ),
        ),
        Case {
            // A burst's budget of reports already spent.
            setup: |pl| {
                let f = probe_reply(1);
                let mut bufs: Vec<VecBuf> =
                    (0..MAX_LOCAL_REPORTS).map(|_| VecBuf::new(&f)).collect();
                let mut next = vec![Next::Tx(99); bufs.len()];
                pl.pl.process_burst(ISP1, &mut bufs, &mut next, 0);
                let d = pl.counters().drop.total();
                assert_eq!(d, 0);
            },
            ..case("reports_over_budget", ISP1, probe_reply(1))
        },
        Case {
            // An echo from the Internet to the router's PA2 address arrives through ISP1
            // while ISP2, which owns PA2, is down.
            setup: |pl| pl.set_isp_admin(1, false),
            ..case(
                "echo_owner_isp_down",
                ISP1,
                echo_request(ISP1_PORT_MAC, ISP1_MAC, PEER, "2001:db8:2:1::1", b"e"),
            )
        },
    ]
}

#[test]
fn every_drop_reason_is_reachable_and_counted() {
    let cases = drop_cases();
    for case in &cases {
        let mut pl = Rig::new(case.site.clone().unwrap_or_else(two_isp_site));
        (case.setup)(&mut pl);
        let buf = match case.room {
            Some((head, tail)) => VecBuf::with_room(&case.frame, head, tail),
            None => VecBuf::new(&case.frame),
        };
        let key = format!("drop.{}", case.name);
        let before = c(&pl, &key);
        run_buf(&mut pl, case.port, buf, 0);
        assert_eq!(c(&pl, &key) - before, 1, "{key}");
        assert_eq!(
            pl.counters().drop.total(),
            1,
            "{key}: exactly one drop counted"
        );
    }
    // Every reason the counters know has a case above, except those no frame through
    // `process_burst` can reach:
    // - `internal_error`: a stage failing what classification guaranteed (a buffer shorter
    //   than its parsed headers, a port missing from the tables). Unreachable by
    //   construction; it exists so that such a drop would still be counted.
    // - `multi_segment`: chained mbufs never reach the pipeline; the io layer drops them
    //   and counts them through `Pipeline::count_drop_multi_segment` (checked below).
    const NOT_BY_A_FRAME: [&str; 2] = ["drop.internal_error", "drop.multi_segment"];
    let mut pl = pipeline();
    pl.count_drop_multi_segment(LAN, 2000);
    assert_eq!(c(&pl, "drop.multi_segment"), 1);
    assert_eq!(c(&pl, "rx.lan.packets"), 1);
    assert_eq!(pl.counters().drop.total(), 1);
    let tested: BTreeSet<String> = cases
        .iter()
        .map(|c| format!("drop.{}", c.name))
        .chain(NOT_BY_A_FRAME.iter().map(|n| n.to_string()))
        .collect();
    let all: BTreeSet<String> = pipeline()
        .counters()
        .to_vec()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("drop."))
        .collect();
    assert_eq!(
        all, tested,
        "drop reasons without a test case (or cases without a reason)"
    );
}

fn valid_frames() -> Vec<(usize, Vec<u8>)> {
    vec![
        (LAN, outbound(HOST1, 64, 40)),
        (LAN, outbound(HOST2, 64, 40)),
        (LAN, ext_chain_frame(4)),
        (ISP1, inbound(ISP1_PORT_MAC, ISP1_MAC, HOST1)),
        (
            LAN,
            ns_frame(
                SN_MAC_LAN,
                HOST_MAC,
                "fe80::10",
                "ff02::1:ff00:1",
                "fe80::ff:fe00:1",
                Some(HOST_MAC),
            ),
        ),
        (
            ISP1,
            na_frame(
                ISP1_PORT_MAC,
                ISP1_MAC,
                "fe80::1",
                "fe80::ff:fe00:2",
                "fe80::1",
                0x60,
                Some(ISP1_MAC),
            ),
        ),
        (
            LAN,
            echo_request(LAN_MAC, HOST_MAC, HOST1, "2001:db8:1:1::1", b"payload"),
        ),
        (LAN, outbound("fd00::1", 64, 40)),
    ]
}

#[test]
fn every_truncation_of_valid_packets_is_dropped_without_panic() {
    for (port, f) in valid_frames() {
        let mut pl = resolved();
        pl.set_isp_admin(1, false);
        for n in 0..f.len() {
            let (next, _) = run(&mut pl, port, &f[..n], 0);
            // A cut frame is never forwarded (only an ICMP error could go back).
            assert_ne!(next, Next::Tx(ISP1), "len {n}");
            assert_ne!(next, Next::Tx(ISP2), "len {n}");
        }
        let drops = pl.counters().drop.total();
        assert_eq!(drops, f.len() as u64, "each truncation counted once");
    }
}

#[test]
fn payload_length_bigger_than_the_frame_is_dropped() {
    let mut pl = resolved();
    let f = outbound(HOST1, 64, 40);
    for plen in [49u16, 100, 1500, 65535] {
        let mut bad = f.clone();
        bad[18..20].copy_from_slice(&plen.to_be_bytes());
        assert_eq!(run(&mut pl, LAN, &bad, 0).0, Next::Drop);
    }
    assert_eq!(c(&pl, "drop.payload_length_mismatch"), 4);
    // Shorter than the frame: the rest is Ethernet padding and goes.
    let mut padded = f.clone();
    padded.extend_from_slice(&[0; 6]);
    let (next, out) = run(&mut pl, LAN, &padded, 0);
    assert_eq!(next, Next::Tx(ISP1));
    assert_eq!(out.len(), f.len());
}

#[test]
fn transit_packets_with_many_extension_headers_are_forwarded() {
    // RFC 8200 section 4, RFC 7045: a transit router does not drop for headers it need
    // not read (the Linux kernel forwards these too).
    let mut pl = resolved();
    for n in [8, 9, 20, 128] {
        assert_eq!(
            run(&mut pl, LAN, &ext_chain_frame(n), 0).0,
            Next::Tx(ISP1),
            "{n}"
        );
    }
    assert_eq!(pl.counters().drop.total(), 0);
}

// ---------------------------------------------------------------------------------------
// Bursts and counters

#[test]
fn mixed_burst_accounting_adds_up() {
    let mut pl = resolved();
    pl.set_isp_admin(1, false);
    let frames: Vec<(usize, Vec<u8>)> = valid_frames()
        .into_iter()
        .chain([
            (LAN, outbound(HOST2, 64, 10)),
            (LAN, vec![0; 3]),
            (LAN, outbound(HOST1, 1, 10)),
        ])
        .collect();
    // One burst per port, in order.
    for port in [LAN, ISP1] {
        let mut bufs: Vec<VecBuf> = frames
            .iter()
            .filter(|(p, _)| *p == port)
            .map(|(_, f)| VecBuf::new(f))
            .collect();
        let mut next = vec![Next::Drop; bufs.len()];
        pl.process_burst(port, &mut bufs, &mut next, 0);
        for (b, n) in bufs.iter().zip(&next) {
            if let Next::Tx(p) = n {
                assert!(*p < 3);
                assert!(b.len() >= 14);
            }
        }
    }
    let k = pl.counters();
    let rx: u64 = k.rx.iter().map(|f| f.packets).sum();
    let tx: u64 = k.tx.iter().map(|f| f.packets).sum();
    let errors = k.icmp.unreachable_sent + k.icmp.time_exceeded_sent;
    // Each packet is sent, dropped (an error sent back counts as both) or consumed.
    assert_eq!(rx, frames.len() as u64);
    assert_eq!(rx + errors, tx + k.drop.total() + k.local_consumed);
    // Every counter is printable as `counter <name> <value>`.
    let mut lines = Vec::new();
    k.for_each(|n, v| lines.push(format!("counter {n} {v}")));
    assert!(lines.contains(&format!(
        "counter rx.lan.packets {}",
        frames.iter().filter(|(p, _)| *p == LAN).count()
    )));
    assert!(lines.iter().any(|l| l == "counter drop.truncated 1"));
    assert!(lines.iter().any(|l| l == "counter icmp.unreachable_sent 3"));
}

#[test]
fn counters_of_workers_merge() {
    let mut a = resolved();
    let mut b = resolved();
    run(&mut a, LAN, &outbound(HOST1, 64, 10), 0);
    run(&mut b, LAN, &outbound(HOST1, 64, 10), 0);
    run(&mut b, LAN, &[0u8; 10], 0);
    let mut total = a.counters().clone();
    total.merge(b.counters());
    assert_eq!(total.get("isp.isp1.tx_packets"), Some(2));
    assert_eq!(total.get("rx.lan.packets"), Some(3));
    assert_eq!(total.get("drop.truncated"), Some(1));
}

#[test]
fn bad_site_references_do_not_panic() {
    let mut site = two_isp_site();
    site.isps[0].port = 42;
    site.lan_port = 17;
    assert!(site.validate().is_err());
    let mut pl = Rig::new(site);
    for (port, f) in valid_frames() {
        run(&mut pl, port, &f, 0);
    }
    pl.set_isp_admin(9, false);
    pl.set_isp_link(9, false);
    pl.add_static_neighbor(99, Ipv6Addr::LOCALHOST, [0; 6]);
    pl.step(0);
    let empty: &mut [VecBuf] = &mut [];
    pl.process_burst(0, empty, &mut [], 0);
    let mut next = [Next::Drop; 3];
    pl.process_burst(0, &mut [VecBuf::new(&[]), VecBuf::new(&[])], &mut next, 0);
    assert_eq!(next, [Next::Drop; 3]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..200), port in 0usize..4) {
        let mut pl = resolved();
        let (next, out) = run(&mut pl, port, &frame, 0);
        if let Next::Tx(p) = next {
            prop_assert!(p < 3);
            prop_assert!(out.len() >= 14);
        }
        prop_assert_eq!(pl.counters().rx.iter().map(|f| f.packets).sum::<u64>(), u64::from(port < 3));
    }

    #[test]
    fn random_headers_on_ipv6_frames_never_panic(
        which in 0usize..8,
        edits in proptest::collection::vec((0usize..120, any::<u8>()), 1..8),
        cut in 0usize..200,
    ) {
        let (port, mut f) = valid_frames().swap_remove(which);
        for (i, v) in edits {
            if let Some(b) = f.get_mut(i) {
                *b = v;
            }
        }
        if cut < f.len() {
            f.truncate(cut);
        }
        let mut pl = resolved();
        pl.set_isp_admin(1, false);
        let (next, out) = run(&mut pl, port, &f, 0);
        if let Next::Tx(p) = next {
            prop_assert!(p < 3);
            prop_assert!(out.len() >= 14 && out.len() <= 14 + 4 + 1280.max(f.len()));
        }
        let mut frames = 0;
        pl.drain_generated(&mut |_, g| { frames += 1; assert_eq!(g.len(), 86) });
        prop_assert!(frames <= 1);
    }
}

// ---------------------------------------------------------------------------------------
// Fragments addressed to the router (issue 7, 2c)

/// An echo request of `data_len` octets from HOST1 to the router's LAN address, as an IPv6
/// packet (no link header), with a valid checksum.
fn big_echo(data_len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..data_len).map(|i| (i * 7) as u8).collect();
    to_router(58, &[], &data)[14..].to_vec()
}

/// The packet's fragments for `mtu`, each framed from the LAN host to the router.
fn fragments_of(packet: &[u8], mtu: usize, id: u32) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    dataplane::net::frag::fragment(packet, mtu, id, &mut |f| {
        let mut frame = udp_frame(LAN_MAC, HOST_MAC, HOST1, PEER, 64, 0)[..14].to_vec();
        frame.extend_from_slice(f);
        v.push(frame);
    });
    v
}

#[test]
fn a_fragmented_echo_to_the_router_is_reassembled_and_answered_in_fragments() {
    use dataplane::nodes::reassembly::{Limits, Outcome, Reassembler};
    let mut pl = resolved();
    let request = big_echo(3000);
    let frags = fragments_of(&request, 1500, 77);
    assert_eq!(frags.len(), 3);
    // Out of order: the last first.
    for f in frags.iter().rev() {
        assert_eq!(run(&mut pl, LAN, f, 0).0, Next::Held);
    }
    assert_eq!(c(&pl, "reassembly.reassembled"), 1);
    assert_eq!(c(&pl, "icmp.echo_replied"), 1);
    let g = generated(&mut pl);
    assert_eq!(g.len(), 3, "a 3048-octet reply in three fragments");
    let mut r = Reassembler::new(Limits::default());
    let mut reply = None;
    for (port, f) in &g {
        assert_eq!(*port, LAN);
        assert!(f.len() <= 14 + 1500);
        assert_eq!(&f[0..6], &HOST_MAC);
        if let Outcome::Complete(p) = r.input(&f[14..], 40, 0) {
            reply = Some(p);
        }
    }
    let reply = reply.expect("the reply fragments reassemble");
    assert_eq!(reply.len(), request.len());
    assert_eq!(reply[8..24], request[24..40], "from the address asked");
    assert_eq!(reply[24..40], request[8..24]);
    assert_eq!(reply[40], 129);
    assert_eq!(reply[44..], request[44..], "identifier, sequence and data");
    assert!(checksum::verify(
        &reply[8..24].try_into().unwrap(),
        &reply[24..40].try_into().unwrap(),
        58,
        &reply[40..]
    ));
}

#[test]
fn overlapping_fragments_are_dropped_and_an_incomplete_datagram_times_out() {
    let mut pl = resolved();
    let request = big_echo(3000);
    let frags = fragments_of(&request, 1500, 5);
    // RFC 5722: an overlap discards the datagram.
    run(&mut pl, LAN, &frags[0], 0);
    let mut overlapping = frags[1].clone();
    overlapping[14 + 42..14 + 44].copy_from_slice(&((1000u16 / 8) << 3 | 1).to_be_bytes());
    run(&mut pl, LAN, &overlapping, 0);
    run(&mut pl, LAN, &frags[2], 0);
    assert_eq!(c(&pl, "reassembly.reassembled"), 0);
    assert!(c(&pl, "reassembly.drop.overlap") >= 1);
    assert!(generated(&mut pl).is_empty());
    // RFC 8200 4.5: the first fragment alone, 60 s later: Time Exceeded code 1.
    let frags = fragments_of(&request, 1500, 6);
    run(&mut pl, LAN, &frags[0], SEC);
    pl.service(30 * SEC);
    assert!(generated(&mut pl).is_empty());
    pl.service(62 * SEC);
    let g = generated(&mut pl);
    assert_eq!(g.len(), 1, "{g:?}");
    assert_eq!(g[0].0, LAN);
    assert_eq!(g[0].1[54..56], [3, 1]);
    assert_eq!(c(&pl, "reassembly.timed_out"), 1);
}

#[test]
fn atomic_fragments_are_processed_alone() {
    // RFC 6946: offset 0, M 0.
    let mut pl = resolved();
    let request = big_echo(10);
    let mut atomic = request[..40].to_vec();
    atomic[4..6].copy_from_slice(&((request.len() - 40 + 8) as u16).to_be_bytes());
    atomic[6] = 44;
    atomic.extend_from_slice(&[58, 0, 0, 0, 0, 0, 0, 9]);
    atomic.extend_from_slice(&request[40..]);
    let mut frame = udp_frame(LAN_MAC, HOST_MAC, HOST1, PEER, 64, 0)[..14].to_vec();
    frame.extend_from_slice(&atomic);
    run(&mut pl, LAN, &frame, 0);
    assert_eq!(c(&pl, "reassembly.atomic"), 1);
    let g = generated(&mut pl);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].1[54], 129);
}

#[test]
fn solicitations_for_the_subnet_router_anycast_address_are_answered_without_override() {
    let mut pl = pipeline();
    let ns = ns_frame(
        [0x33, 0x33, 0xff, 0, 0, 0],
        HOST_MAC,
        "fe80::10",
        "ff02::1:ff00:0",
        "2001:db8:1:1::",
        Some(HOST_MAC),
    );
    let (next, out) = run(&mut pl, LAN, &ns, 0);
    assert_eq!(next, Next::Tx(LAN));
    let want = na_frame(
        HOST_MAC,
        LAN_MAC,
        "2001:db8:1:1::",
        "fe80::10",
        "2001:db8:1:1::",
        0xc0, // Router and Solicited, not Override (RFC 4861 7.2.4)
        Some(LAN_MAC),
    );
    assert_eq!(out, want);
    // Uplinks have none (RFC 6164 5: on a /127 it would be the ISP router's address).
    let ns = ns_frame(
        [0x33, 0x33, 0xff, 0, 0, 0],
        ISP1_MAC,
        "fe80::1",
        "ff02::1:ff00:0",
        "2001:db8:ff01::",
        Some(ISP1_MAC),
    );
    assert_eq!(run(&mut pl, ISP1, &ns, 0).0, Next::Drop);
}

#[test]
fn no_error_answers_a_transit_icmpv6_error_behind_extension_headers() {
    // RFC 4443 2.4 (e.1), for a packet the transit walk does not read to its upper layer:
    // a Destination Unreachable behind a Destination Options header, hop limit 1.
    let mut pl = resolved();
    let mut payload = vec![58, 0, 1, 4, 0, 0, 0, 0];
    payload.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0]);
    let f = ip_frame(LAN_MAC, HOST_MAC, HOST1, PEER, 1, 60, &payload);
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Drop);
    assert_eq!(c(&pl, "icmp.error_suppressed"), 1);
    // An echo request in the same place does get its Time Exceeded.
    payload[8] = 128;
    let f = ip_frame(LAN_MAC, HOST_MAC, HOST1, PEER, 1, 60, &payload);
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Tx(LAN));
    assert_eq!(c(&pl, "icmp.time_exceeded_sent"), 1);
}

#[test]
fn spoofed_lan_sources_cost_no_resolution() {
    // Off-link sources from the LAN (not in a LAN /64) never reach the owner's budget.
    let mut pl = resolved();
    for i in 0..100u16 {
        let src = format!("2001:db8:1:{:x}::10", 0x100 + i);
        run(&mut pl, LAN, &outbound(&src, 64, 8), 0);
    }
    let sent = pl.step(0);
    assert!(
        sent.iter().all(|(p, _)| *p != LAN),
        "no solicitation on the LAN: {sent:?}"
    );
    assert_eq!(c(&pl, "resolve.needed_reported"), 0);
}

// ---------------------------------------------------------------------------------------
// The rewriting router (seed 001 sections 6 and 11)

/// M6 data from HOST1 (a PA1 locator) with flow label `flow`, next header `nh`.
fn m6_data(nh: u8, flow: u32) -> Vec<u8> {
    let mut f = ip_frame(LAN_MAC, HOST_MAC, HOST1, PEER, 64, nh, &[0xaa; 20]);
    f[15] = (f[15] & 0xf0) | ((flow >> 16) as u8 & 0x0f);
    f[16] = (flow >> 8) as u8;
    f[17] = flow as u8;
    f
}

#[test]
fn rewrite_ok_flows_use_every_healthy_isp_with_their_source_rewritten() {
    let mut pl = resolved();
    let mut via = [0usize; 3];
    for flow in 0..64 {
        let (next, out) = run(&mut pl, LAN, &m6_data(160, flow), 0);
        let Next::Tx(port) = next else {
            panic!("flow {flow}: {next:?}")
        };
        via[port] += 1;
        let want_src = if port == ISP2 {
            "2001:db8:2:1::10"
        } else {
            HOST1
        };
        assert_eq!(out[22..38], ip(want_src).octets(), "flow {flow} via {port}");
        assert_eq!(out[54..], [0xaa; 20], "M6 data: the payload is untouched");
        // The same flow always takes the same ISP.
        assert_eq!(run(&mut pl, LAN, &m6_data(160, flow), 0).0, next);
    }
    assert!(via[ISP1] > 0 && via[ISP2] > 0, "{via:?}");
    assert_eq!(c(&pl, "rewrite.rewritten") as usize, 2 * via[ISP2]);
    assert_eq!(c(&pl, "isp.isp1.tx_packets") as usize, 2 * via[ISP1]);
}

#[test]
fn when_an_isp_fails_rewrite_ok_traffic_moves_and_no_rewrite_traffic_gets_code_5() {
    let mut pl = resolved();
    pl.set_isp_link(0, false);
    for flow in 0..16 {
        let (next, out) = run(&mut pl, LAN, &m6_data(160, flow), 0);
        assert_eq!(next, Next::Tx(ISP2), "flow {flow}");
        assert_eq!(out[22..38], ip("2001:db8:2:1::10").octets());
    }
    // P2 (no rewrite) and plain IPv6 stay bound to the owner of their source.
    let (next, out) = run(&mut pl, LAN, &m6_data(168, 1), 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_eq!(out[54..56], [1, 5]);
    // Every ISP down: rewrite ok gets code 5 too.
    pl.set_isp_link(1, false);
    let (next, out) = run(&mut pl, LAN, &m6_data(160, 1), 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_eq!(out[54..56], [1, 5]);
    assert_eq!(c(&pl, "rewrite.no_usable_isp"), 1);
}

#[test]
fn rewritten_m6_control_messages_keep_a_valid_checksum() {
    let mut pl = resolved();
    pl.set_isp_link(0, false);
    let mut body = vec![0u8; 24];
    body[0] = 59;
    let f = icmp_frame(LAN_MAC, HOST_MAC, HOST1, PEER, 64, 200, 1, &body);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    assert_eq!(next, Next::Tx(ISP2));
    assert_eq!(out[22..38], ip("2001:db8:2:1::10").octets());
    assert!(checksum::verify(
        &out[22..38].try_into().unwrap(),
        &out[38..54].try_into().unwrap(),
        58,
        &out[54..]
    ));
    // Type 201 (no rewrite) is not moved.
    let f = icmp_frame(LAN_MAC, HOST_MAC, HOST1, PEER, 64, 201, 1, &body);
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Tx(LAN), "code 5");
}

// ---------------------------------------------------------------------------------------
// The proxy for legacy hosts (seed 002; seed 001 section 7.11)

use dataplane::contexts::datapath::M6Event;
use dataplane::contexts::{Context, Destination, LocatorSet};

const PEER_AID: &str = "2001:db8:99::20";
const PEER_L2: &str = "2001:db8:98::20";
const PEER_UNVERIFIED: &str = "2001:db8:97::20";

fn a(s: &str) -> u128 {
    u128::from(ip(s))
}

fn install_proxy_context(pl: &mut Rig) {
    pl.control.install_context(proxy_context());
    pl.sync();
}

/// The two-ISP site proxying the LAN's two /64s.
fn proxy_site() -> Site {
    let mut s = two_isp_site();
    s.proxied = vec![
        "2001:db8:1:1::/64".parse().unwrap(),
        "2001:db8:2:1::/64".parse().unwrap(),
    ];
    s
}

/// HOST1 (AID 2001:db8:1:1::10, locators under PA1 and PA2) with the peer.
fn proxy_context() -> Context {
    Context {
        f_local: 0x4242,
        aid_local: ip(HOST1).octets(),
        aid_peer: ip(PEER_AID).octets(),
        f_peer: 0xabcde,
        lsl_local: LocatorSet::new(&[a(HOST1), a("2001:db8:2:1::10")]),
        ls_local: LocatorSet::new(&[a(HOST1), a("2001:db8:2:1::10")]),
        lsl_peer: LocatorSet::new(&[a(PEER_AID), a(PEER_L2), a(PEER_UNVERIFIED)]),
        lsv_peer: LocatorSet::new(&[a(PEER_AID), a(PEER_L2)]),
        lp_peer: ip(PEER_AID).octets(),
        rewrite_ok: true,
        transmit: true,
    }
}

fn proxy_rig(with_context: bool) -> Rig {
    let mut pl = Rig::new(proxy_site());
    pl.add_static_neighbor(ISP1, ip("fe80::1"), ISP1_MAC);
    pl.add_static_neighbor(LAN, ip(HOST1), HOST_MAC);
    if with_context {
        pl.control.install_context(proxy_context());
        pl.sync();
    }
    pl
}

fn m6_events(pl: &mut Pipeline) -> Vec<M6Event> {
    let mut v = Vec::new();
    pl.drain_m6_events(&mut |e| v.push(e));
    v
}

/// M6 data from the peer's `src` locator to `dst` with flow label `label`, next header `nh`.
fn m6_from_peer(src: &str, dst: &str, label: u32, nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = ip_frame(ISP1_PORT_MAC, ISP1_MAC, src, dst, 60, nh, payload);
    f[15] = (f[15] & 0xf0) | ((label >> 16) as u8 & 0x0f);
    f[16] = (label >> 8) as u8;
    f[17] = label as u8;
    f
}

#[test]
fn without_a_context_a_proxied_host_flows_as_plain_ipv6_and_the_first_packet_is_reported() {
    let mut pl = proxy_rig(false);
    let f = udp_frame(LAN_MAC, HOST_MAC, HOST1, PEER_AID, 64, 8);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    assert_eq!(next, Next::Tx(ISP1), "the first packet never waits");
    assert_eq!(out[20], 17, "plain UDP");
    assert_eq!(
        m6_events(&mut pl),
        vec![M6Event::FirstPacket {
            aid_local: a(HOST1),
            aid_peer: a(PEER_AID)
        }]
    );
    run(&mut pl, LAN, &f, SEC / 2);
    assert!(m6_events(&mut pl).is_empty(), "once per peer");
    // The destination cache answers for the control plane.
    pl.control.set_destination(
        ip(PEER_AID).octets(),
        Some(Destination::NotM6 { until_ns: 10 * SEC }),
    );
    pl.sync();
    run(&mut pl, LAN, &f, 5 * SEC);
    assert!(m6_events(&mut pl).is_empty(), "not M6 until 10 s");
    run(&mut pl, LAN, &f, 11 * SEC);
    assert_eq!(m6_events(&mut pl).len(), 1, "the negative entry expired");
    assert_eq!(c(&pl, "proxy.plain_out"), 4);
}

#[test]
fn with_a_context_a_proxied_host_sends_m6_and_moves_isp_on_failure() {
    let mut pl = proxy_rig(true);
    let f = udp_frame(LAN_MAC, HOST_MAC, HOST1, PEER_AID, 64, 8);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    let Next::Tx(port) = next else {
        panic!("{next:?}")
    };
    assert_eq!(out[20], 161, "P1 + UDP");
    assert_eq!(out[38..54], ip(PEER_AID).octets(), "Lp(peer)");
    assert_eq!(
        out[15] & 0x0f,
        0x0a,
        "flow label F(peer) = 0xabcde (high nibble)"
    );
    assert_eq!(out[16..18], [0xbc, 0xde]);
    let want_src = if port == ISP1 {
        HOST1
    } else {
        "2001:db8:2:1::10"
    };
    assert_eq!(out[22..38], ip(want_src).octets());
    assert_eq!(
        out[54..],
        f[54..],
        "UDP untouched: its checksum covers the AIDs"
    );
    assert!(m6_events(&mut pl).is_empty());
    // ISP1 fails: the host's packets leave through ISP2 with its PA2 locator, no code 5.
    pl.set_isp_link(0, false);
    for flow in 0..8u8 {
        let mut g = f.clone();
        g[17] = flow;
        let (next, out) = run(&mut pl, LAN, &g, 1);
        assert_eq!(next, Next::Tx(ISP2));
        assert_eq!(out[22..38], ip("2001:db8:2:1::10").octets());
    }
    assert_eq!(c(&pl, "proxy.translated_out"), 9);
}

#[test]
fn inbound_m6_for_a_proxied_host_is_checked_and_restored() {
    let mut pl = proxy_rig(true);
    let payload = [9u8; 24];
    // From Lp(peer) to the host's PA2 locator: the AIDs come back.
    let f = m6_from_peer(PEER_AID, "2001:db8:2:1::10", 0x4242, 160, &payload);
    let (next, out) = run(&mut pl, ISP1, &f, 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_eq!(&out[0..6], &HOST_MAC);
    assert_eq!(out[20], 6, "TCP");
    assert_eq!(out[22..38], ip(PEER_AID).octets());
    assert_eq!(out[38..54], ip(HOST1).octets());
    assert_eq!(out[54..], payload);
    assert!(m6_events(&mut pl).is_empty());
    // Silent drops: destination not in Lsl(local), source not in Lsl(peer).
    for (src, dst, reason) in [
        (
            PEER_AID,
            "2001:db8:1:1::11",
            "drop.proxy_dst_not_in_lsl_local",
        ),
        ("2001:db8:96::20", HOST1, "drop.proxy_src_not_in_lsl_peer"),
    ] {
        let f = m6_from_peer(src, dst, 0x4242, 160, &payload);
        assert_eq!(run(&mut pl, ISP1, &f, 0).0, Next::Drop);
        assert_eq!(c(&pl, reason), 1);
    }
    assert!(m6_events(&mut pl).is_empty(), "silently");
    // Unknown label: dropped and reported (UC).
    let f = m6_from_peer(PEER_AID, HOST1, 0x777, 160, &payload);
    assert_eq!(run(&mut pl, ISP1, &f, 0).0, Next::Drop);
    assert_eq!(
        m6_events(&mut pl),
        vec![M6Event::UnknownFlowLabel {
            src: a(PEER_AID),
            dst: a(HOST1),
            flow_label: 0x777
        }]
    );
    // An unverified source: accepted and reported for verification.
    let f = m6_from_peer(PEER_UNVERIFIED, HOST1, 0x4242, 160, &payload);
    assert_eq!(run(&mut pl, ISP1, &f, 0).0, Next::Tx(LAN));
    assert_eq!(
        m6_events(&mut pl),
        vec![M6Event::NewSourceLocator {
            aid_local: a(HOST1),
            f_local: 0x4242,
            src: a(PEER_UNVERIFIED)
        }]
    );
    // A verified source other than Lp(peer): accepted, and it becomes Lp(peer) on this
    // worker at once (7.11 step 3c) and is reported.
    let f = m6_from_peer(PEER_L2, HOST1, 0x4242, 160, &payload);
    assert_eq!(run(&mut pl, ISP1, &f, 0).0, Next::Tx(LAN));
    assert_eq!(m6_events(&mut pl).len(), 1);
    let out_f = udp_frame(LAN_MAC, HOST_MAC, HOST1, PEER_AID, 64, 8);
    let (_, out) = run(&mut pl, LAN, &out_f, 0);
    assert_eq!(out[38..54], ip(PEER_L2).octets(), "the new Lp(peer)");
    assert_eq!(c(&pl, "proxy.lp_switched"), 1);
    assert_eq!(c(&pl, "proxy.translated_in"), 3);
}

#[test]
fn an_echo_from_a_proxied_host_goes_out_escaped_and_comes_back_restored() {
    let mut pl = proxy_rig(true);
    let req = echo_request(LAN_MAC, HOST_MAC, HOST1, PEER_AID, b"abc");
    let (next, out) = run(&mut pl, LAN, &req, 0);
    assert!(matches!(next, Next::Tx(ISP1 | ISP2)));
    assert_eq!(out[20], 167, "P1 + escape");
    assert_eq!(out[54], 58, "escape carrying ICMPv6");
    // The peer's answer, escaped the same way, to our PA1 locator.
    let mut body = vec![58, 0, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&req[54..]);
    body[8] = 129;
    let f = m6_from_peer(PEER_AID, HOST1, 0x4242, 167, &body);
    let (next, back) = run(&mut pl, ISP1, &f, 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_eq!(back[20], 58);
    assert_eq!(back.len(), req.len());
    assert_eq!(back[54], 129);
}

#[test]
fn m6_control_for_a_proxied_host_or_the_router_is_punted() {
    let mut pl = proxy_rig(true);
    let f = icmp_frame(
        ISP1_PORT_MAC,
        ISP1_MAC,
        PEER_AID,
        "2001:db8:2:1::10",
        60,
        200,
        1,
        &[7; 16],
    );
    assert_eq!(
        run(&mut pl, ISP1, &f, 0).0,
        Next::Drop,
        "not forwarded to the legacy host"
    );
    assert_eq!(
        m6_events(&mut pl),
        vec![M6Event::Punt {
            port: ISP1 as u16,
            packet: f[14..].to_vec()
        }]
    );
    // To the router itself.
    let f = icmp_frame(
        ISP1_PORT_MAC,
        ISP1_MAC,
        PEER_AID,
        "2001:db8:ff01::2",
        60,
        201,
        2,
        &[7; 16],
    );
    run(&mut pl, ISP1, &f, 0);
    assert_eq!(m6_events(&mut pl).len(), 1);
    assert_eq!(c(&pl, "proxy.punted"), 2);
    assert_eq!(pl.counters().drop.total(), 0);
}

#[test]
fn a_proxied_packet_that_the_escape_header_would_push_over_the_mtu_gets_packet_too_big() {
    let mut pl = proxy_rig(true);
    // 1496 octets of IPv6: fits the 1500 MTU plain, not with the 8-octet escape header.
    let req = echo_request(LAN_MAC, HOST_MAC, HOST1, PEER_AID, &[0x55; 1496 - 48]);
    let (next, out) = run(&mut pl, LAN, &req, 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_eq!(out[54..56], [2, 0], "Packet Too Big");
    assert_eq!(
        u32::from_be_bytes([out[58], out[59], out[60], out[61]]),
        1492
    );
    // It quotes the packet as the host sent it, so the host can match it.
    assert_eq!(out[62 + 24..62 + 40], ip(PEER_AID).octets());
    assert_eq!(out[62 + 6], 58);
    // A UDP packet of the same size needs no escape header and goes.
    let f = udp_frame(LAN_MAC, HOST_MAC, HOST1, PEER_AID, 64, 1496 - 48);
    assert!(matches!(run(&mut pl, LAN, &f, 0).0, Next::Tx(ISP1 | ISP2)));
}

#[test]
fn rewrite_ok_m6_to_a_site_address_is_not_sent_to_an_isp() {
    let mut pl = resolved();
    let f = ip_frame(
        LAN_MAC,
        HOST_MAC,
        HOST1,
        "2001:db8:2:1::99",
        64,
        160,
        &[0; 8],
    );
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Drop);
    assert_eq!(c(&pl, "drop.lan_to_site"), 1);
}

#[test]
fn contexts_in_use_are_reported_active() {
    let mut pl = proxy_rig(true);
    let f = udp_frame(LAN_MAC, HOST_MAC, HOST1, PEER_AID, 64, 8);
    for _ in 0..64 {
        run(&mut pl, LAN, &f, 0);
    }
    let active: Vec<_> = m6_events(&mut pl)
        .into_iter()
        .filter(|e| matches!(e, M6Event::Activity { .. }))
        .collect();
    assert_eq!(
        active,
        vec![M6Event::Activity {
            aid_local: a(HOST1),
            f_local: 0x4242
        }],
        "once per interval, not per packet"
    );
}

// ---------------------------------------------------------------- INIT answered by a worker

use dataplane::nodes::cc_answer::{Responder, PER_SOURCE_64_PER_SEC};
use proto::cc::{CcEcho, CcKey, CcKeyring, CcPolicy};
use proto::channel::{CcResponderMsg, ResponderHost};
use proto::wire::m6::{self, IcmpTypes};

const HOST1_PA2: &str = "2001:db8:2:1::10";

fn responder_msg(per_second: u32) -> CcResponderMsg {
    CcResponderMsg {
        key_serial: 7,
        secret: [5; 32],
        birthday: 11,
        clock_ms: 1_000_000,
        per_second,
        hosts: vec![ResponderHost {
            locators: vec![ip(HOST1_PA2), ip(HOST1)],
            dns_verifiable: true,
            rewrite_ok: true,
        }],
    }
}

fn publish_responder(pl: &mut Rig) {
    pl.control
        .set_responder(Some(Responder::new(&responder_msg(1000), 0)));
    pl.sync();
}

/// The proxy rig with the control plane's responder state published at time 0.
fn responder_rig(per_second: u32) -> Rig {
    let mut pl = proxy_rig(false);
    pl.control
        .set_responder(Some(Responder::new(&responder_msg(per_second), 0)));
    pl.sync();
    pl
}

/// An INIT from the peer's `src` to `dst` naming HOST1 as AID(responder), on ISP1.
fn init_frame(src: &str, dst: &str, aid_responder: &str, piggyback: bool) -> Vec<u8> {
    let repr = m6::Repr {
        rewrite_ok: true,
        nonce: 0x1122_3344_5566_7788,
        message: m6::Message::Init(m6::Init {
            aid_initiator: ip(PEER_AID),
            aid_responder: ip(aid_responder),
            lsl_initiator: vec![ip(PEER_L2), ip(PEER_AID)],
            lsr_responder: vec![ip(HOST1)],
            flow_label: m6::FlowLabel::new(0x5555).unwrap(),
            birthday: 3,
        }),
        piggyback: piggyback.then(|| m6::Piggyback {
            next_header: 17,
            data: vec![1; 8],
        }),
    };
    let mut msg = vec![0; repr.buffer_len()];
    repr.emit(
        &mut m6::Packet::new_unchecked(&mut msg[..]),
        &ip(src),
        &ip(dst),
        &IcmpTypes::default(),
    )
    .unwrap();
    ip_frame(ISP1_PORT_MAC, ISP1_MAC, src, dst, 60, 58, &msg)
}

#[test]
fn an_init_for_a_proxied_host_is_answered_by_the_worker_with_a_cc_the_responder_accepts() {
    let mut pl = responder_rig(1000);
    let (next, out) = run(
        &mut pl,
        ISP1,
        &init_frame(PEER_AID, HOST1, HOST1, false),
        5 * SEC,
    );
    assert_eq!(next, Next::Tx(ISP1), "back through ISP1, which owns HOST1");
    assert_eq!(&out[0..6], &ISP1_MAC, "to ISP1's router");
    assert_eq!(c(&pl, "proxy.cc_answered"), 1);
    assert!(
        m6_events(&mut pl).is_empty(),
        "nothing reaches the control plane"
    );
    // "The CC message is sent to the source locator of the INIT" from its destination.
    let l3 = &out[14..];
    assert_eq!(&l3[8..24], &ip(HOST1).octets());
    assert_eq!(&l3[24..40], &ip(PEER_AID).octets());
    assert_eq!(
        usize::from(u16::from_be_bytes([l3[4], l3[5]])) + 40,
        l3.len()
    );
    let msg = &l3[40..];
    let packet = m6::Packet::new_checked(msg).unwrap();
    let repr = m6::Repr::parse(&packet, &ip(HOST1), &ip(PEER_AID), &IcmpTypes::default())
        .expect("a well-formed CC with a valid checksum");
    assert!(repr.rewrite_ok);
    assert_eq!(repr.nonce, 0x1122_3344_5566_7788, "the INIT's nonce");
    let m6::Message::Cc(cc) = repr.message else {
        panic!("not a CC: {:?}", repr.message)
    };
    assert_eq!(
        cc.lsl_responder,
        vec![ip(HOST1), ip(HOST1_PA2)],
        "sorted, AID included"
    );
    assert_eq!(cc.lsl_initiator, vec![ip(PEER_L2), ip(PEER_AID)], "sorted");
    assert_eq!(cc.state.key_serial, 7);
    assert_eq!(
        cc.state.timestamp, 1005,
        "the control plane's clock, 5 s on"
    );
    assert_eq!(cc.state.responder_birthday, 11);
    assert_eq!(cc.state.initiator_flow_label.value(), 0x5555);
    // The responder's check of the echoed state (7.5) accepts it with the same key...
    let keys = CcKeyring::new(CcKey::new(7, &[5; 32]));
    let echo = CcEcho::from_packet(&packet).unwrap();
    let ok = proto::cc::check(
        &keys,
        &echo,
        &ip(PEER_L2),
        &ip(HOST1_PA2),
        1010,
        &CcPolicy::default(),
    );
    assert!(ok.is_ok(), "{ok:?}");
    // ...and not with another secret.
    let other = CcKeyring::new(CcKey::new(7, &[6; 32]));
    assert!(matches!(
        proto::cc::check(
            &other,
            &echo,
            &ip(PEER_L2),
            &ip(HOST1),
            1010,
            &CcPolicy::default()
        ),
        Err(proto::cc::CcError::BadMac)
    ));
}

#[test]
fn inits_are_answered_up_to_the_per_source_64_rate_and_the_worker_rate() {
    let mut pl = responder_rig(1000);
    let f = init_frame(PEER_AID, HOST1, HOST1, false);
    for _ in 0..PER_SOURCE_64_PER_SEC + 5 {
        run(&mut pl, ISP1, &f, SEC);
    }
    assert_eq!(
        c(&pl, "proxy.cc_answered"),
        u64::from(PER_SOURCE_64_PER_SEC)
    );
    assert_eq!(c(&pl, "drop.cc_rate_limited"), 5);
    // Other /64s have their own budget, within the worker's.
    let mut pl = responder_rig(30);
    for n in 0..100u32 {
        let src = format!("2001:db8:{:x}::1", 0x100 + n);
        run(&mut pl, ISP1, &init_frame(&src, HOST1, HOST1, false), SEC);
    }
    assert_eq!(c(&pl, "proxy.cc_answered"), 30, "the worker's rate");
    assert_eq!(c(&pl, "drop.cc_rate_limited"), 70);
}

#[test]
fn inits_that_need_the_control_plane_are_punted() {
    // No responder published yet.
    let mut pl = proxy_rig(false);
    let f = init_frame(PEER_AID, HOST1, HOST1, false);
    run(&mut pl, ISP1, &f, 0);
    assert!(matches!(m6_events(&mut pl)[..], [M6Event::Punt { .. }]));
    // A piggybacked packet goes to the host through the control plane.
    let mut pl = responder_rig(1000);
    run(&mut pl, ISP1, &init_frame(PEER_AID, HOST1, HOST1, true), 0);
    assert!(matches!(m6_events(&mut pl)[..], [M6Event::Punt { .. }]));
    // A context for the AID pair (crossing INITs, a peer that restarted).
    pl.control.install_context(proxy_context());
    pl.sync();
    run(&mut pl, ISP1, &f, 0);
    assert!(matches!(m6_events(&mut pl)[..], [M6Event::Punt { .. }]));
    // A peer this router is looking up itself.
    let mut pl = responder_rig(1000);
    pl.control
        .set_destination(ip(PEER_AID).octets(), Some(Destination::Pending));
    pl.sync();
    run(&mut pl, ISP1, &f, 0);
    assert!(matches!(m6_events(&mut pl)[..], [M6Event::Punt { .. }]));
    assert_eq!(c(&pl, "proxy.cc_answered"), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    /// Hostile INITs at a worker that answers them: random edits anywhere in a valid INIT
    /// (addresses, next header, lengths, TLVs, checksum) and random cuts never panic, a CC
    /// leaves only through an ISP port, and each frame is sent, dropped with a counted
    /// reason, held for its next hop, or handed to the control plane: nothing vanishes.
    #[test]
    fn mangled_inits_are_answered_dropped_or_punted_never_lost(
        edits in proptest::collection::vec((14usize..200, any::<u8>()), 0..6),
        cut in 14usize..260,
        piggyback in any::<bool>(),
    ) {
        let mut f = init_frame(PEER_AID, HOST1, HOST1, piggyback);
        for (i, v) in edits {
            if let Some(b) = f.get_mut(i) {
                *b = v;
            }
        }
        if cut < f.len() {
            f.truncate(cut);
        }
        let mut pl = responder_rig(1000);
        let k = |pl: &Rig| {
            let c = pl.counters();
            c.tx.iter().map(|f| f.packets).sum::<u64>()
                + c.drop.total()
                + c.local_consumed
                + c.proxy.punted
                + c.resolve.held
                - c.icmp.unreachable_sent
                - c.icmp.time_exceeded_sent
                - c.icmp.address_unreachable_sent
                - c.icmp.beyond_scope_sent
                - c.icmp.packet_too_big_sent
                - c.icmp.param_problem_sent
        };
        let before = k(&pl);
        let (next, out) = run(&mut pl, ISP1, &f, SEC);
        if let Next::Tx(p) = next {
            prop_assert!(p < 3);
            prop_assert!(out.len() >= 14 + 40);
        }
        if pl.counters().proxy.cc_answered == 1 {
            prop_assert_eq!(next, Next::Tx(ISP1), "a CC leaves through ISP1, which owns HOST1");
        }
        prop_assert_eq!(k(&pl) - before, 1, "each frame sent, dropped, consumed, held or punted");
    }
}

// ---------------------------------------------------------------------------------------
// ISP health, traffic engineering, Router Advertisements, NPTv6 (the health issue)

const BEACON: &str = "2001:db8:ee::100";

/// The two-ISP site with a ULA LAN prefix mapped through both ISPs (RFC 6296).
fn nptv6_site() -> Site {
    let mut s = two_isp_site();
    s.ports[0].addresses.push(ip("fd00:a:0:1::1"));
    for (i, e) in ["2001:db8:1:f1::/64", "2001:db8:2:f2::/64"]
        .iter()
        .enumerate()
    {
        s.isps[i].nptv6 = Some(proto::config::Nptv6Config {
            internal: "fd00:a:0:1::/64".parse().unwrap(),
            external: e.parse().unwrap(),
        });
    }
    s
}

/// A Router Solicitation from the host's link-local address to all routers.
fn router_solicitation(sll: bool) -> Vec<u8> {
    let mut body = vec![0u8; 4];
    if sll {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&HOST_MAC);
    }
    icmp_frame(
        [0x33, 0x33, 0, 0, 0, 2],
        HOST_MAC,
        "fe80::10",
        "ff02::2",
        255,
        133,
        0,
        &body,
    )
}

/// The beacon's echo reply to a probe of ISP `isp` (identifier 0x6d00 + isp) with `seq`,
/// arriving through that ISP.
fn probe_reply_to(isp: usize, dst: &str, seq: u16) -> Vec<u8> {
    let ident = dataplane::health::IDENT_BASE + isp as u16;
    let mut body = ident.to_be_bytes().to_vec();
    body.extend_from_slice(&seq.to_be_bytes());
    body.extend_from_slice(b"m6cookie");
    let (port_mac, from) = if isp == 0 {
        (ISP1_PORT_MAC, ISP1_MAC)
    } else {
        (ISP2_PORT_MAC, ISP2_MAC)
    };
    icmp_frame(port_mac, from, BEACON, dst, 60, 129, 0, &body)
}

fn probe_reply(seq: u16) -> Vec<u8> {
    probe_reply_to(0, "2001:db8:1:1::1", seq)
}

#[test]
fn router_solicitations_are_reported_and_answered_with_one_prefix_per_isp() {
    let mut pl = Rig::new(ra_site());
    // The first unsolicited RA goes out at once.
    let on_lan = |sent: Vec<(usize, Vec<u8>)>| -> Vec<(usize, Vec<u8>)> {
        sent.into_iter().filter(|(p, _)| *p == LAN).collect()
    };
    let sent = on_lan(pl.step(0));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, LAN);
    assert_eq!(sent[0].1[14 + 40], 134, "a Router Advertisement");
    let (next, _) = run(&mut pl, LAN, &router_solicitation(true), SEC);
    assert_eq!(next, Next::Drop);
    assert_eq!(c(&pl, "local.consumed"), 1);
    let mut events = Vec::new();
    pl.pl.drain_events(&mut |e| events.push(e));
    assert!(
        events.contains(&WorkerEvent::RouterSolicitation),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            WorkerEvent::Neighbor(NeighborEvent::Solicitation { mac: HOST_MAC, .. })
        )),
        "the solicitor's link-layer address is learned: {events:?}"
    );
    for e in events {
        pl.control.handle(e, SEC);
    }
    // Answered within MAX_RA_DELAY_TIME, or 3 s after the previous multicast RA.
    let mut answered = None;
    for ms in 1000..4000u64 {
        let sent = on_lan(pl.step(ms * 1_000_000));
        if let Some((_, f)) = sent.first() {
            assert_eq!((f[14 + 40], f[14 + 41]), (134, 0), "a Router Advertisement");
            answered = Some(ms);
            break;
        }
    }
    assert!(answered.is_some_and(|ms| ms <= 3500), "{answered:?}");
    // Without RAs configured (a reload may turn them on), the solicitation is reported and
    // the control thread sends nothing.
    let mut plain = pipeline();
    run(&mut plain, LAN, &router_solicitation(false), 0);
    assert_eq!(c(&plain, "local.consumed"), 1);
    for ms in 0..4000u64 {
        assert!(
            on_lan(plain.step(ms * 1_000_000)).is_empty(),
            "no RA at {ms} ms"
        );
    }
}

/// Runs the control thread from `from` to `to` ms; ISP `isp`'s beacon answers every probe
/// at once when `answer`. Returns the probes sent.
fn run_probes(pl: &mut Rig, isp: usize, from: u64, to: u64, answer: bool) -> usize {
    let mut probes = 0;
    let src = if isp == 0 {
        "2001:db8:1:1::1"
    } else {
        "2001:db8:2:1::1"
    };
    let port = if isp == 0 { ISP1 } else { ISP2 };
    for ms in from..to {
        let now = ms * 1_000_000;
        for (p, f) in pl.step(now) {
            let ip6 = &f[14..];
            if p == port && ip6[6] == 58 && ip6[40] == 128 {
                probes += 1;
                assert_eq!(
                    ip6[8..24],
                    ip(src).octets(),
                    "sourced from the ISP's prefix"
                );
                if answer {
                    let seq = u16::from_be_bytes([ip6[46], ip6[47]]);
                    run(pl, port, &probe_reply_to(isp, src, seq), now);
                }
            }
        }
    }
    probes
}

#[test]
fn an_isp_whose_beacon_goes_dark_is_withdrawn_and_restored_by_probes() {
    let mut site = two_isp_site();
    site.isps[1].beacons = vec![ip(BEACON)];
    site.health.interval_ms = 1000;
    site.health.timeout_ms = 200;
    site.health.down_after = 3;
    site.health.up_after = 2;
    let mut pl = Rig::new(site);
    pl.add_static_neighbor(LAN, ip(HOST2), HOST_MAC);
    pl.add_static_neighbor(ISP1, ip("fe80::1"), ISP1_MAC);
    assert!(run_probes(&mut pl, 1, 0, 3000, true) >= 3);
    assert!(pl.control.isps.get(1).unwrap().usable());
    assert!(pl.control.health_counters().rounds_answered >= 3);
    // The beacon goes dark: withdrawn within one interval plus three timeouts.
    let mut withdrawn_at = None;
    for ms in 3000..6000u64 {
        run_probes(&mut pl, 1, ms, ms + 1, false);
        if !pl.control.isps.get(1).unwrap().usable() {
            withdrawn_at = Some(ms);
            break;
        }
    }
    let t = withdrawn_at.expect("withdrawn");
    assert!(
        t - 3000 <= 1000 + 3 * 200,
        "withdrawn after {} ms",
        t - 3000
    );
    // Plain traffic from PA2 gets code 5; rewrite-ok traffic moves to ISP1.
    let f = outbound(HOST2, 64, 8);
    let (next, out) = run(&mut pl, LAN, &f, 0);
    assert_eq!(next, Next::Tx(LAN));
    assert_eq!(out[54..56], [1, 5]);
    assert_eq!(c(&pl, "drop.isp_probes_failing"), 1);
    for flow in 0..16 {
        let mut m = m6_data(160, flow);
        m[22..38].copy_from_slice(&ip(HOST2).octets());
        let (next, out) = run(&mut pl, LAN, &m, 0);
        assert_eq!(next, Next::Tx(ISP1), "flow {flow}");
        assert_eq!(out[22..38], ip(HOST1).octets(), "rewritten to PA1");
    }
    // Answers again: restored after two answered rounds.
    run_probes(&mut pl, 1, 6000, 9000, true);
    assert!(pl.control.isps.get(1).unwrap().usable());
    assert_eq!(run(&mut pl, LAN, &f, 0).0, Next::Tx(ISP2));
}

#[test]
fn a_drain_moves_rewritable_flows_and_keeps_plain_traffic() {
    let mut pl = resolved();
    let mut on_isp1 = Vec::new();
    for flow in 0..64 {
        if run(&mut pl, LAN, &m6_data(160, flow), 0).0 == Next::Tx(ISP1) {
            on_isp1.push(flow);
        }
    }
    assert!(!on_isp1.is_empty());
    pl.control.set_drained("isp1", true).unwrap();
    assert!(pl.control.set_drained("isp9", true).is_err());
    pl.pl.sync();
    for flow in 0..64 {
        assert_eq!(
            run(&mut pl, LAN, &m6_data(160, flow), 0).0,
            Next::Tx(ISP2),
            "flow {flow}"
        );
    }
    // PA1's plain traffic has only ISP1: it still goes there, nothing is dropped.
    assert_eq!(
        run(&mut pl, LAN, &outbound(HOST1, 64, 8), 0).0,
        Next::Tx(ISP1)
    );
    assert_eq!(pl.counters().drop.total(), 0);
    pl.control.set_drained("isp1", false).unwrap();
    pl.pl.sync();
    for &flow in &on_isp1 {
        assert_eq!(
            run(&mut pl, LAN, &m6_data(160, flow), 0).0,
            Next::Tx(ISP1),
            "back"
        );
    }
}

#[test]
fn a_policy_rule_holds_under_a_weighted_hash_and_reloads_live() {
    let mut pl = resolved();
    let mut site = two_isp_site();
    site.isps[0].weight = 3;
    site.isps[1].weight = 1;
    pl.control.reconfigure(&site, 0);
    pl.pl.sync();
    let to = |dst: &str, flow: u32| {
        let mut m = m6_data(160, flow);
        m[38..54].copy_from_slice(&ip(dst).octets());
        m
    };
    let count = |pl: &mut Rig, dst: &str| {
        let mut via = [0u32; 3];
        for flow in 0..2000 {
            if let (Next::Tx(p), _) = run(pl, LAN, &to(dst, flow), 0) {
                via[p] += 1;
            }
        }
        via
    };
    let via = count(&mut pl, "2001:db8:3::20");
    let share = f64::from(via[ISP1]) / 2000.0;
    assert!((share - 0.75).abs() < 0.05, "3:1 weights gave {via:?}");
    // "2001:db8:3::/48 only via isp2", loaded live.
    site.policy = vec![proto::config::PolicyRule {
        prefix: "2001:db8:3::/48".parse().unwrap(),
        action: proto::config::PolicyAction::Only,
        isps: vec![1],
    }];
    pl.control.reconfigure(&site, 0);
    pl.pl.sync();
    assert_eq!(count(&mut pl, "2001:db8:3::20"), [0, 0, 2000]);
    let other = count(&mut pl, "2001:db8:99::1");
    assert!(
        other[ISP1] > 1200,
        "other destinations keep the weights: {other:?}"
    );
    // Only ISP2, and ISP2 down: no rewritable path; the source's owner (ISP1) takes it.
    pl.set_isp_link(1, false);
    assert_eq!(
        run(&mut pl, LAN, &to("2001:db8:3::20", 5), 0).0,
        Next::Tx(ISP1)
    );
}

#[test]
fn nptv6_translates_a_ula_host_both_ways_checksum_neutral() {
    let mut pl = Rig::new(nptv6_site());
    pl.add_static_neighbor(ISP1, ip("fe80::1"), ISP1_MAC);
    pl.add_static_neighbor(LAN, ip("fd00:a:0:1::10"), HOST_MAC);
    let f = udp_frame(LAN_MAC, HOST_MAC, "fd00:a:0:1::10", PEER, 64, 40);
    let mut seen = BTreeSet::new();
    for flow in 0..32u32 {
        let mut g = f.clone();
        g[16] = (flow >> 8) as u8;
        g[17] = flow as u8;
        let (next, out) = run(&mut pl, LAN, &g, 0);
        let Next::Tx(port) = next else {
            panic!("{next:?}")
        };
        seen.insert(port);
        let src: [u8; 16] = out[22..38].try_into().unwrap();
        let ext = if port == ISP1 {
            "2001:db8:1:f1::"
        } else {
            "2001:db8:2:f2::"
        };
        assert_eq!(
            src[..8],
            ip(ext).octets()[..8],
            "under the ISP's external prefix"
        );
        // The UDP checksum, computed over the original source, still verifies.
        assert!(checksum::verify(
            &src,
            &out[38..54].try_into().unwrap(),
            17,
            &out[54..]
        ));
        // The reply comes back to the ULA host.
        if port == ISP1 {
            let back = udp_frame(
                ISP1_PORT_MAC,
                ISP1_MAC,
                PEER,
                &Ipv6Addr::from(src).to_string(),
                64,
                8,
            );
            let (next, out) = run(&mut pl, ISP1, &back, 0);
            assert_eq!(next, Next::Tx(LAN));
            assert_eq!(out[38..54], ip("fd00:a:0:1::10").octets());
            assert!(checksum::verify(
                &out[22..38].try_into().unwrap(),
                &out[38..54].try_into().unwrap(),
                17,
                &out[54..]
            ));
        }
    }
    assert!(seen.contains(&ISP1) && seen.contains(&ISP2), "{seen:?}");
    assert!(c(&pl, "nptv6.translated_out") == 32 && c(&pl, "nptv6.translated_in") >= 1);
}

/// A reload renumbers ISP1 (a new delegated prefix and the router's LAN address under it):
/// the worker compiles the new site at its next sync, packets from the new prefix leave
/// through ISP1 and the old prefix is no longer the site's (code 5).
#[test]
fn a_reload_renumbers_an_isp_without_a_restart() {
    let mut pl = resolved();
    let mut site = two_isp_site();
    site.isps[0].prefix = "2001:db8:11::/48".parse().unwrap();
    site.ports[0].addresses = vec![ip("2001:db8:11:1::1"), ip("2001:db8:2:1::1")];
    pl.add_static_neighbor(LAN, ip("2001:db8:11:1::10"), HOST_MAC);
    assert_eq!(
        run(&mut pl, LAN, &outbound(HOST1, 64, 8), 0).0,
        Next::Tx(ISP1)
    );
    pl.control.reconfigure(&site, 0);
    pl.pl.sync();
    assert_eq!(
        run(&mut pl, LAN, &outbound("2001:db8:11:1::10", 64, 8), 0).0,
        Next::Tx(ISP1),
        "the new prefix leaves through ISP1"
    );
    let (next, out) = run(&mut pl, LAN, &outbound(HOST1, 64, 8), 0);
    assert_eq!(
        (next, out[54], out[55]),
        (Next::Tx(LAN), 1, 5),
        "the old prefix is gone"
    );
    assert_eq!(c(&pl, "drop.source_not_in_site_prefix"), 1);
    // The router answers on its new address.
    let echo = echo_request(
        LAN_MAC,
        HOST_MAC,
        "2001:db8:11:1::10",
        "2001:db8:11:1::1",
        b"x",
    );
    assert_eq!(run(&mut pl, LAN, &echo, 0).0, Next::Tx(LAN));
}
