//! End to end, issue 9: ISP health, traffic engineering at one point and Router
//! Advertisements, in the two-site lab (lab/twosite.sh) with site A's router configured by
//! configs/twosite/a.yaml (probes every 2 s to two beacons in the core, 200 ms timeout,
//! 3 misses withdraw, dampening with a 5 s half-life; RAs with RDNSS) and a SLAAC host on
//! site A's LAN. Checks, each with its figures printed:
//!
//! - (a) the upstream of the ISP carrying a TCP transfer B -> A goes dark behind a live
//!   link (its router drops everything it would forward, and still answers ND): the ISP
//!   is withdrawn within one interval plus three timeouts of the failure (published to the
//!   worker in the same control-thread turn), the transfer's longest gap stays below three
//!   probe intervals, plain traffic from that ISP's prefix gets code 5, the SLAAC host
//!   marks its address under that prefix deprecated and a new TCP connection leaves from
//!   the other prefix; recovery brings it all back;
//! - (c) a drain of the ISP carrying a UDP stream A -> B moves the stream with no datagram
//!   lost, and the undrain moves it back;
//! - (d) a reload (SIGHUP) during a UDP stream changes a weight and adds "2001:db8:3::/48
//!   only via" the other ISP: the stream moves, nothing is lost, and a reload that changes
//!   what needs a restart is refused with the reason while traffic goes on;
//! - (b) ISP1's link flaps every second for a minute: no more withdrawals than dampening
//!   allows, no context lost, ISP1 back once the penalty has decayed.
//!
//! Needs root, hugepages, Knot and the lab's tools; fails with the reason otherwise.

mod lab;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use lab::twosite::*;
use lab::*;

/// `health` in configs/twosite/a.yaml.
const INTERVAL_S: f64 = 2.0;
const TIMEOUT_S: f64 = 0.2;
const DOWN_AFTER: f64 = 3.0;
const UP_AFTER: f64 = 3.0;

fn darken(n: u32) {
    let (ok, out) = sh(&format!(
        "ip netns exec m6s-isp{n} nft -f - <<'EOF'\n\
         table ip6 dark {{\n chain transit {{\n type filter hook forward priority 0; policy drop;\n }}\n}}\n\
         EOF"
    ));
    assert!(ok, "{out}");
}

fn light(n: u32) {
    let (ok, out) = sh(&format!(
        "ip netns exec m6s-isp{n} nft delete table ip6 dark"
    ));
    assert!(ok, "{out}");
}

/// The SLAAC host's global addresses as `ip -6 addr` prints them, one per line with its
/// flags.
fn slaac_addresses() -> Vec<String> {
    let (_, out) = sh("ip -n m6s-aslaac -o -6 addr show dev eth0 scope global");
    out.lines().map(|l| l.to_string()).collect()
}

fn slaac_address_in(n: u32) -> Option<String> {
    slaac_addresses()
        .into_iter()
        .find(|l| l.contains(&format!("2001:db8:{n}:1:")))
}

/// A new TCP connection from the SLAAC host to the plain server: its source address.
fn slaac_connect() -> String {
    let (ok, out) = sh(&format!(
        "ip netns exec m6s-aslaac /usr/bin/python3 -c \"import socket; \
         s=socket.create_connection(('{SERVER_CORE}',5201),timeout=3); print(s.getsockname()[0])\""
    ));
    assert!(ok, "the SLAAC host cannot connect to the server: {out}");
    out.trim().to_string()
}

/// Every (AID(local), AID(peer), F(local)) at router A, from `m6ctl context list`.
fn contexts_at_a() -> Vec<String> {
    let (ok, out) = m6ctl_a("context list");
    assert!(ok, "{out}");
    out.lines()
        .skip(1)
        .filter(|l| l.starts_with("2001:"))
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Withdrawals flapping every second allows before suppression: penalty 1000 a flap,
/// halving every 5 s, suppressed above 2000 (configs/twosite/a.yaml).
fn withdrawals_dampening_allows() -> usize {
    let (mut p, mut k) = (0.0f64, 0);
    loop {
        p = p * 0.5f64.powf(1.0 / 5.0) + 1000.0;
        k += 1;
        if p > 2000.0 {
            return k;
        }
    }
}

fn hup(d: &Dataplane) {
    let pid = d.pid().expect("router A runs");
    let (ok, out) = sh(&format!("kill -HUP {pid}"));
    assert!(ok, "{out}");
}

#[test]
fn lab_isp_health() {
    let t0 = Instant::now();
    require_environment();
    let _lab = TwoSites::up();
    let mut report = Vec::new();
    let (mut ra, mut rb, ca, cb) = start_with_live_a();
    establish_contexts(&ca, &cb);
    serve_iperf_at_b();

    // The SLAAC host numbers itself from both ISPs' prefixes, and rdisc6 reads the RA.
    let start = Instant::now();
    while (slaac_address_in(1).is_none() || slaac_address_in(2).is_none())
        && start.elapsed() < Duration::from_secs(10)
    {
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        slaac_address_in(1).is_some() && slaac_address_in(2).is_some(),
        "SLAAC: {:?}",
        slaac_addresses()
    );
    let (ok, rdisc) = sh("ip netns exec m6s-aslaac rdisc6 -1 -w 2000 eth0");
    assert!(ok, "{rdisc}");
    for want in [
        "2001:db8:1:1::/64",
        "2001:db8:2:1::/64",
        "Recursive DNS server     : 2001:db8:53::1",
        "Router lifetime           :           90",
    ] {
        assert!(rdisc.contains(want), "rdisc6 lacks {want:?}:\n{rdisc}");
    }
    report.push(format!(
        "SLAAC host numbered from both prefixes; rdisc6 reads 2 prefixes, MTU, RDNSS 2001:db8:53::1 \
         ({:.1} s after the routers started)",
        start.elapsed().as_secs_f64()
    ));
    let (ok, isps) = m6ctl_a("isp list");
    assert!(ok && isps.matches("usable").count() == 2, "{isps}");
    report.push(format!(
        "m6ctl isp list:\n    {}",
        isps.trim().replace('\n', "\n    ")
    ));

    // (a) The upstream of the ISP carrying a transfer goes dark behind a live link.
    let t = transfer(14);
    thread::sleep(Duration::from_secs(3));
    let n = busier_downlink();
    let other = 3 - n;
    let drops_before = ingress_drops();
    darken(n);
    let cut = Instant::now();
    let withdrawn = wait_count(
        &ra,
        &format!("isp isp{n} withdrawn (probes down"),
        1,
        Duration::from_secs(8),
    )
    .map(|_| cut.elapsed())
    .unwrap_or_else(|| panic!("ISP{n} not withdrawn\n{}", ra.output()));
    let bound = INTERVAL_S + DOWN_AFTER * TIMEOUT_S;
    assert!(
        withdrawn.as_secs_f64() < bound + 0.4,
        "ISP{n} withdrawn {withdrawn:?} after its upstream went dark (bound {bound} s)"
    );
    report.push(format!(
        "(a) ISP{n}'s upstream dark behind a live link: withdrawn {:.2} s after (bound: interval + 3 timeouts = {bound} s), published to the workers in the same turn",
        withdrawn.as_secs_f64()
    ));
    // Plain traffic from its prefix gets code 5.
    let (_, out) = sh(&format!(
        "ip netns exec m6s-ahost ping -6 -n -c 1 -W 2 -I 2001:db8:{n}:1::10 {SERVER_CORE}"
    ));
    let code5 = code5_line(&out).unwrap_or_else(|| panic!("no code 5 for PA{n}:\n{out}"));
    report.push(format!(
        "(a) plain ping from PA{n} to the server: {}",
        code5.trim()
    ));
    // The SLAAC host deprecates its address under that prefix.
    let deprecated = {
        let s = Instant::now();
        loop {
            if slaac_address_in(n).is_some_and(|l| l.contains("deprecated")) {
                break Some(s.elapsed());
            }
            if s.elapsed() > Duration::from_secs(5) {
                break None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    };
    let deprecated =
        deprecated.unwrap_or_else(|| panic!("no deprecated address: {:?}", slaac_addresses()));
    let src = slaac_connect();
    assert!(
        src.starts_with(&format!("2001:db8:{other}:1:")),
        "the new connection left from {src}"
    );
    report.push(format!(
        "(a) SLAAC host: PA{n} address deprecated {:.0} ms after the withdrawal was observed, a new TCP connection to the server left from {src}",
        deprecated.as_secs_f64() * 1000.0
    ));
    let (bytes, gap, ok, json) = finish(t);
    assert!(ok, "the transfer failed:\n{json}");
    assert!(
        gap < 3.0 * INTERVAL_S,
        "longest gap {gap:.1} s, three intervals are {} s",
        3.0 * INTERVAL_S
    );
    assert_eq!(ingress_drops() - drops_before, 0, "ingress filters dropped");
    report.push(format!(
        "(a) TCP B->A for 14 s across it: {:.1} MB delivered, longest gap {gap:.1} s (< 3 intervals = {} s), 0 ingress drops",
        bytes as f64 / 1e6,
        3.0 * INTERVAL_S
    ));
    light(n);
    let lit = Instant::now();
    let restored = wait_count(
        &ra,
        &format!("isp isp{n} restored"),
        1,
        Duration::from_secs(8),
    )
    .map(|_| lit.elapsed())
    .unwrap_or_else(|| panic!("ISP{n} not restored\n{}", ra.output()));
    let up_bound = INTERVAL_S + UP_AFTER * TIMEOUT_S;
    assert!(restored.as_secs_f64() < up_bound + 0.4, "{restored:?}");
    let s = Instant::now();
    while slaac_address_in(n).is_some_and(|l| l.contains("deprecated"))
        && s.elapsed() < Duration::from_secs(3)
    {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        slaac_address_in(n).is_some_and(|l| !l.contains("deprecated")),
        "{:?}",
        slaac_addresses()
    );
    report.push(format!(
        "(a) upstream back: ISP{n} restored {:.2} s later (bound {up_bound} s), PA{n} preferred again on the SLAAC host",
        restored.as_secs_f64()
    ));

    // (c) A drain moves the flows of the ISP carrying a UDP stream A -> B, with no loss.
    let u = udp_transfer(7, 20);
    thread::sleep(Duration::from_secs(2));
    let m = busier_uplink();
    let (ok, out) = m6ctl_a(&format!("isp drain isp{m}"));
    assert!(ok && out.contains("drained"), "{out}");
    thread::sleep(Duration::from_millis(500));
    let moved_to = busier_uplink();
    thread::sleep(Duration::from_secs(1));
    let (ok, out) = m6ctl_a(&format!("isp undrain isp{m}"));
    assert!(ok, "{out}");
    let (sent, lost, json) = udp_finish(u);
    assert_eq!(moved_to, 3 - m, "the stream stayed on drained ISP{m}");
    assert!(sent > 1000 && sent != u64::MAX, "{json}");
    if lost != 0 {
        fail_with_drops(
            &mut ra,
            &mut rb,
            &format!("{lost} datagrams lost across the drain:\n{json}"),
        );
    }
    let (ok, out) = m6ctl_a("isp drain isp9");
    assert!(!ok && out.contains("no ISP named"), "{out}");
    report.push(format!(
        "(c) UDP A->B at 20 Mbit/s: ISP{m} drained at 2 s (stream moved to ISP{moved_to}), undrained at 3.5 s: {sent} datagrams, {lost} lost"
    ));

    // (d) A reload during a stream: ISP1's weight and "PB only via the other ISP".
    for k in 1..=2 {
        let (ok, out) = sh(&format!(
            "ip netns exec m6s-isp{k} nft 'add counter ip6 m6_isp to_pb' && \
             ip netns exec m6s-isp{k} nft 'insert rule ip6 m6_isp ingress_filter iifname \"down\" ip6 daddr 2001:db8:3::/48 counter name to_pb'"
        ));
        assert!(ok, "{out}");
    }
    let u = udp_transfer(7, 20);
    thread::sleep(Duration::from_secs(2));
    let m = busier_uplink();
    let target = 3 - m;
    let base = std::fs::read_to_string(format!("{CFG}/a.yaml")).expect("a.yaml");
    let reloaded = base.replace(
        "    prefix: \"2001:db8:1::/48\"\n",
        "    prefix: \"2001:db8:1::/48\"\n    weight: 3\n",
    ) + &format!(
        "policy:\n  - {{ prefix: \"2001:db8:3::/48\", action: only, isps: [isp{target}] }}\n"
    );
    std::fs::write(LIVE_CONFIG, &reloaded).expect("write the new configuration");
    hup(&ra);
    assert!(
        ra.wait_line("configuration reloaded", Duration::from_secs(3))
            .is_some(),
        "{}",
        ra.output()
    );
    thread::sleep(Duration::from_millis(300));
    let before = (isp_counter(m, "to_pb"), isp_counter(target, "to_pb"));
    thread::sleep(Duration::from_secs(1));
    let after = (isp_counter(m, "to_pb"), isp_counter(target, "to_pb"));
    // A change that needs a restart is refused; the running configuration stays.
    std::fs::write(
        LIVE_CONFIG,
        reloaded.replace("max_idle_sleep_us: 200", "max_idle_sleep_us: 100"),
    )
    .expect("write");
    hup(&ra);
    assert!(
        ra.wait_line("reload refused", Duration::from_secs(3))
            .is_some(),
        "{}",
        ra.output()
    );
    let refusal = ra
        .output()
        .lines()
        .find(|l| l.contains("reload refused"))
        .unwrap_or_default()
        .to_string();
    assert!(refusal.contains("polling"), "{refusal}");
    let (sent, lost, json) = udp_finish(u);
    assert_eq!(after.0 - before.0, 0, "traffic to PB still via ISP{m}");
    assert!(
        after.1 - before.1 > 1000,
        "PB traffic via ISP{target}: {after:?}"
    );
    if lost != 0 {
        fail_with_drops(
            &mut ra,
            &mut rb,
            &format!("{lost} datagrams lost across the reload:\n{json}"),
        );
    }
    report.push(format!(
        "(d) SIGHUP during UDP A->B (was via ISP{m}): weight isp1=3 and \"2001:db8:3::/48 only via isp{target}\" applied; next second {} datagrams to PB via ISP{target}, 0 via ISP{m}; {sent} sent, {lost} lost",
        after.1 - before.1
    ));
    report.push(format!(
        "(d) a reload needing a restart: {}",
        refusal.trim()
    ));
    std::fs::write(LIVE_CONFIG, &base).expect("write");
    hup(&ra);

    // (b) ISP1's link flaps every second for a minute.
    let contexts = contexts_at_a();
    assert!(!contexts.is_empty());
    let w0 = ra.count_lines("isp isp1 withdrawn");
    let flap = |up: bool| {
        let cmd = if up {
            "ip -n m6s-isp1 link set dev down up && \
             ip -n m6s-isp1 -6 route replace 2001:db8:1::/48 via 2001:db8:ff01::2 dev down"
        } else {
            "ip -n m6s-isp1 link set dev down down"
        };
        let _ = Command::new("bash").args(["-c", cmd]).output();
    };
    let start = Instant::now();
    for k in 0..60u32 {
        flap(false);
        let half = Duration::from_millis(u64::from(k) * 1000 + 500);
        thread::sleep(half.saturating_sub(start.elapsed()));
        flap(true);
        let next = Duration::from_millis(u64::from(k + 1) * 1000);
        thread::sleep(next.saturating_sub(start.elapsed()));
    }
    let flapped = start.elapsed();
    let withdrawals = ra.count_lines("isp isp1 withdrawn") - w0;
    let allowed = withdrawals_dampening_allows();
    assert!(
        (1..=allowed).contains(&withdrawals),
        "{withdrawals} withdrawals, dampening allows {allowed}\n{}",
        ra.output()
    );
    let released = wait_count(
        &ra,
        "isp isp1 restored (dampening released",
        1,
        Duration::from_secs(25),
    )
    .unwrap_or_else(|| panic!("ISP1 never released\n{}", ra.output()));
    let after = contexts_at_a();
    assert_eq!(after, contexts, "contexts changed across the flapping");
    let (ok, out) = sh(&format!(
        "ip netns exec m6s-ahost ping -6 -n -c 2 -W 2 -I {HOST_A} {HOST_B}"
    ));
    assert!(ok, "A cannot reach B after the flapping:\n{out}");
    report.push(format!(
        "(b) ISP1's link flapped 60 times in {:.0} s: {withdrawals} withdrawals (dampening allows {allowed}), held down until released {:.1} s after the flapping stopped; {} contexts before and after, unchanged",
        flapped.as_secs_f64(),
        released.as_secs_f64(),
        contexts.len()
    ));
    let (_, isps) = m6ctl_a("isp list");
    report.push(format!(
        "m6ctl isp list:\n    {}",
        isps.trim().replace('\n', "\n    ")
    ));

    println!("lab_isp_health ({:.0} s):", t0.elapsed().as_secs_f64());
    for r in &report {
        println!("  {r}");
    }
}
