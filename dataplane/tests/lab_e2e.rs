//! End to end: `m6-dataplane` between a legacy Linux host and two ingress-filtering ISPs, in
//! the network-namespace lab of `lab/topology.sh` (address plan in `lab/lib.sh`).
//!
//! What it checks (DESIGN.md section 2, "source-prefix egress"; seed 000 sections 5.1, 5.2):
//! - ping and a TCP transfer (iperf3, and nc with a byte-for-byte comparison) from the host's
//!   PA1 address and from its PA2 address reach the server behind both ISPs;
//! - PA1-sourced packets are seen only by ISP1 and PA2-sourced ones only by ISP2 (the ISPs'
//!   nftables counters), and neither ISP's ingress filter dropped anything;
//! - with ISP1's link cut, a ping from PA1 gets ICMPv6 destination unreachable code 5 while
//!   PA2 still works, and PA1 works again once the link is back;
//! - on SIGTERM the router prints its counters: both ISPs transmitted, unreachables were sent.
//!
//! Needs root and the tools scripts/setup.sh installs (iproute2, ethtool, nftables, iperf3,
//! netcat-openbsd, iputils-ping) plus hugepages; without them the test FAILS with the reason,
//! it never skips. One lab session at a time: it holds the flock on /run/lock/m6-lab.lock (the
//! demo takes the same lock) and always tears the lab down, also when an assertion fails.
//! Takes about 10 s.

mod lab;

use std::thread;
use std::time::{Duration, Instant};

use lab::*;

// -----------------------------------------------------------------------------------------

#[test]
fn lab_end_to_end() {
    let t0 = Instant::now();
    require_environment();
    let lab_guard = Lab::up();
    let t_lab = t0.elapsed();

    let mut dp = Dataplane::start(CONFIG);
    let t_ready = dp.wait_ready();

    // 1. Ping from each source prefix.
    let pings_pa1 = assert_ping_all(HOST_PA1);
    let pings_pa2 = assert_ping_all(HOST_PA2);

    // 2. TCP from each source prefix: throughput, then a byte-exact transfer.
    let mbps_pa1 = iperf(HOST_PA1);
    let mbps_pa2 = iperf(HOST_PA2);
    let nc_pa1 = nc_transfer(HOST_PA1, 5301);
    let nc_pa2 = nc_transfer(HOST_PA2, 5302);

    // 3. Each prefix went out through its own ISP, and no ISP had to drop anything.
    let healthy = isp_counts();
    let c = |k: &str| {
        healthy
            .get(k)
            .copied()
            .unwrap_or_else(|| panic!("no ISP counter {k}"))
    };
    assert!(
        c("isp1.from_pa1") > 0,
        "ISP1 saw no PA1-sourced packets: {healthy:?}"
    );
    assert!(
        c("isp2.from_pa2") > 0,
        "ISP2 saw no PA2-sourced packets: {healthy:?}"
    );
    assert_eq!(
        c("isp2.from_pa1"),
        0,
        "PA1-sourced packets left through ISP2: {healthy:?}"
    );
    assert_eq!(
        c("isp1.from_pa2"),
        0,
        "PA2-sourced packets left through ISP1: {healthy:?}"
    );
    assert_eq!(
        c("isp1.ingress_drop"),
        0,
        "ISP1's ingress filter dropped packets: {healthy:?}"
    );
    assert_eq!(
        c("isp2.ingress_drop"),
        0,
        "ISP2's ingress filter dropped packets: {healthy:?}"
    );

    // 4. Cut ISP1's link: PA1 gets "source address failed ingress/egress policy", PA2 works.
    lab_ok("lab_isp_link isp1 down");
    let cut = Instant::now();
    let unreachable = loop {
        // A short wait per probe, so the time measured is the router's reaction (it polls
        // the carrier), not ping's timeout; an ICMPv6 error comes back within a millisecond.
        let (_, rx, out) = ping(HOST_PA1, 1, "-W 0.3");
        if let Some(line) = code5_line(&out) {
            break line.trim().to_string();
        }
        assert!(
            cut.elapsed() < LINK_REACTION_TIMEOUT,
            "with ISP1's link down, a ping from PA1 got no ICMPv6 destination unreachable code 5 \
             within {LINK_REACTION_TIMEOUT:?} (last ping: {rx} replies)\n{out}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    let t_unreach = cut.elapsed();
    let pings_pa2_cut = assert_ping_all(HOST_PA2);
    let mbps_pa2_cut = iperf(HOST_PA2);

    // 5. Restore it: PA1 works again.
    lab_ok("lab_isp_link isp1 up");
    let t_recover = ping_until_answered(HOST_PA1, LINK_REACTION_TIMEOUT).unwrap_or_else(|| {
        panic!("PA1 did not work again within {LINK_REACTION_TIMEOUT:?} of restoring ISP1's link")
    });
    let pings_pa1_back = assert_ping_all(HOST_PA1);

    // Still nothing through the wrong ISP (no "failover" of PA1 into ISP2's filter).
    let fin = isp_counts();
    let f = |k: &str| {
        fin.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no ISP counter {k}"))
    };
    assert_eq!(
        f("isp2.from_pa1"),
        0,
        "PA1-sourced packets reached ISP2: {fin:?}"
    );
    assert_eq!(
        f("isp1.from_pa2"),
        0,
        "PA2-sourced packets reached ISP1: {fin:?}"
    );
    assert_eq!(
        f("isp1.ingress_drop"),
        0,
        "ISP1's ingress filter dropped packets: {fin:?}"
    );
    assert_eq!(
        f("isp2.ingress_drop"),
        0,
        "ISP2's ingress filter dropped packets: {fin:?}"
    );

    // 6. Stop the router; check what it says it did.
    let (status, counters) = dp.stop();
    let out = dp.output();
    assert!(
        status.success(),
        "m6-dataplane exited with {status} on SIGTERM\n{out}"
    );
    let k = |name: &str| -> u64 {
        *counters
            .get(name)
            .unwrap_or_else(|| panic!("m6-dataplane printed no `counter {name} N` line\n{out}"))
    };
    let (tx1, tx2, unreach_sent) = (
        k("isp.isp1.tx_packets"),
        k("isp.isp2.tx_packets"),
        k("icmp.unreachable_sent"),
    );
    assert!(tx1 > 0, "counter isp.isp1.tx_packets is 0");
    assert!(tx2 > 0, "counter isp.isp2.tx_packets is 0");
    assert!(unreach_sent > 0, "counter icmp.unreachable_sent is 0");
    // The ISPs cannot have received more from the router than it says it sent.
    assert!(
        tx1 >= f("isp1.from_pa1"),
        "isp.isp1.tx_packets {tx1} < {} PA1 packets ISP1 received",
        f("isp1.from_pa1")
    );
    assert!(
        tx2 >= f("isp2.from_pa2"),
        "isp.isp2.tx_packets {tx2} < {} PA2 packets ISP2 received",
        f("isp2.from_pa2")
    );

    let t_total = t0.elapsed();
    drop(lab_guard);
    eprintln!(
        "lab_e2e summary:\n\
         \x20 lab up {t_lab:.1?}, router ready {t_ready:.1?}, whole test {t_total:.1?}\n\
         \x20 ping  PA1 {pings_pa1}/5, PA2 {pings_pa2}/5; with ISP1 cut PA2 {pings_pa2_cut}/5; after restore PA1 {pings_pa1_back}/5\n\
         \x20 iperf3 10 MB: PA1 {mbps_pa1:.0} Mbit/s, PA2 {mbps_pa2:.0} Mbit/s, PA2 with ISP1 cut {mbps_pa2_cut:.0} Mbit/s\n\
         \x20 nc 1 MiB byte-exact: PA1 {nc_pa1} B, PA2 {nc_pa2} B\n\
         \x20 ISP1 saw from the router: PA1 {} PA2 {} link/ND {} dropped {}; sent down: PA1 {} PA2 {}\n\
         \x20 ISP2 saw from the router: PA1 {} PA2 {} link/ND {} dropped {}; sent down: PA1 {} PA2 {}\n\
         \x20 ISP1 cut: code 5 after {t_unreach:.1?} ({unreachable:?}); PA1 back {t_recover:.1?} after restore\n\
         \x20 router counters: isp.isp1.tx_packets {tx1}, isp.isp2.tx_packets {tx2}, icmp.unreachable_sent {unreach_sent}; {} counters printed",
        f("isp1.from_pa1"), f("isp1.from_pa2"), f("isp1.from_link"), f("isp1.ingress_drop"),
        f("isp1.to_pa1"), f("isp1.to_pa2"),
        f("isp2.from_pa1"), f("isp2.from_pa2"), f("isp2.from_link"), f("isp2.ingress_drop"),
        f("isp2.to_pa1"), f("isp2.to_pa2"),
        counters.len(),
    );
}
