//! End to end, issue 10: the router on the PMDs users deploy on, beside the af_packet lab.
//! The one-site lab (lab/topology.sh) and configs/lab.yaml with the ports' devices changed:
//!
//! - `virtio_user` against a vhost-user backend: DPDK's `net_vhost` in a second process
//!   (`dpdk-testpmd`, io forwarding), each vhost port paired with a `net_tap` port whose
//!   kernel interface is bridged to the lab's veth in the router's namespace: host ->
//!   veth -> bridge -> tap -> testpmd -> vhost-user -> virtio_user -> m6-dataplane, and
//!   back. This machine has no vhost-net, so the backend is DPDK's own.
//! - `net_tap`: the dataplane's ports are TAP devices it creates, bridged the same way.
//!
//! The assertions are the af_packet lab's: pings from both prefixes answered, a byte-exact
//! 1 MiB TCP transfer from each, each prefix out through its own ISP, no ingress drop, and
//! an iperf3 figure for each.
//!
//! Needs root, hugepages, dpdk-testpmd (Debian's dpdk-dev) and the lab's tools.

mod lab;

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use lab::*;

/// The tap interface each lab veth is bridged to, by lab port.
const PORTS: [&str; 3] = ["lan", "isp1", "isp2"];

/// configs/lab.yaml with the ports' devices replaced and EAL arguments added.
fn config(devices: [&str; 3], extra_eal: &str) -> String {
    let mut cfg = std::fs::read_to_string(CONFIG).expect("read configs/lab.yaml");
    for (i, port) in PORTS.iter().enumerate() {
        let old = format!("\"net_af_packet{i},iface={port}\"");
        assert!(cfg.contains(&old), "configs/lab.yaml changed shape: {old}");
        cfg = cfg.replace(&old, &format!("\"{}\"", devices[i]));
    }
    let eal = "args: [\"--in-memory\", \"--no-pci\", \"-l\", \"0\", \"--log-level=error\"]";
    assert!(cfg.contains(eal), "configs/lab.yaml changed shape: {eal}");
    cfg.replace(
        eal,
        &format!(
            "args: [\"--in-memory\", \"--no-pci\", \"-l\", \"0\", \"--log-level=error\"{extra_eal}]"
        ),
    )
}

/// Bridges each lab veth in the router's namespace to the kernel side of a tap named
/// `prefix<port>` (created by a DPDK process), with the kernel's IPv6 off on both. The tap's
/// kernel side gets a MAC of its own first: net_tap gives it the DPDK port's, which would
/// make the bridge keep the router's frames for itself (a port's MAC is a local address).
fn bridge(prefix: &str) {
    for (n, p) in PORTS.iter().enumerate() {
        let tap = format!("{prefix}{p}");
        // The tap appears once its DPDK process has started.
        let mut tries = 0;
        while !lab(&format!("ip -n {NS_RTR} link show {tap}"))
            .status
            .success()
        {
            tries += 1;
            assert!(tries < 100, "no interface {tap} in {NS_RTR}");
            thread::sleep(Duration::from_millis(100));
        }
        lab_ok(&format!(
            "ip -n {NS_RTR} link set {tap} address 02:00:00:00:ab:0{n} && \
             ip -n {NS_RTR} link add br-{p} type bridge && \
             ip netns exec {NS_RTR} sysctl -qw net.ipv6.conf.br-{p}.disable_ipv6=1 \
                 net.ipv6.conf.{tap}.disable_ipv6=1 && \
             ip -n {NS_RTR} link set {p} master br-{p} && \
             ip -n {NS_RTR} link set {tap} master br-{p} && \
             ip -n {NS_RTR} link set {tap} up && \
             ip -n {NS_RTR} link set br-{p} up"
        ));
    }
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The af_packet lab's assertions on a running router; returns the figures.
fn forwards(dp: &Dataplane) -> String {
    let before = isp_counts();
    let pings_pa1 = assert_ping_all(HOST_PA1);
    let pings_pa2 = assert_ping_all(HOST_PA2);
    let nc_pa1 = nc_transfer(HOST_PA1, 5401);
    let nc_pa2 = nc_transfer(HOST_PA2, 5402);
    let mbps_pa1 = iperf(HOST_PA1);
    let mbps_pa2 = iperf(HOST_PA2);
    let after = isp_counts();
    let d = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert!(
        d("isp1.from_pa1") > 100 && d("isp2.from_pa2") > 100,
        "{after:?}\n{}",
        dp.output()
    );
    assert_eq!(
        d("isp1.from_pa2") + d("isp2.from_pa1"),
        0,
        "a prefix left through the other ISP: {after:?}"
    );
    assert_eq!(
        d("isp1.ingress_drop") + d("isp2.ingress_drop"),
        0,
        "{after:?}"
    );
    format!(
        "pings {pings_pa1}/{pings_pa2} answered, 2 x {} octets intact over TCP, iperf3 {mbps_pa1:.0} Mbit/s from PA1 and {mbps_pa2:.0} Mbit/s from PA2, each prefix through its own ISP, 0 ingress drops",
        nc_pa1.min(nc_pa2)
    )
}

#[test]
fn lab_pmd_virtio_user() {
    require_environment();
    let (ok, out) = (
        lab("command -v dpdk-testpmd").status.success(),
        "dpdk-testpmd is missing (Debian package dpdk-dev): run make setup",
    );
    assert!(ok, "{out}");
    let _lab = Lab::up();
    // The vhost-user backend: one net_vhost + net_tap pair per router port, io forwarding.
    let mut args: Vec<String> = [
        "netns",
        "exec",
        NS_RTR,
        "dpdk-testpmd",
        "-l",
        "0,1",
        "--in-memory",
        "--no-pci",
        "--file-prefix",
        "m6vhost",
        "--log-level=error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (i, p) in PORTS.iter().enumerate() {
        args.push(format!(
            "--vdev=net_vhost{i},iface={RUN_DIR}/vhost-{p}.sock,queues=1"
        ));
        args.push(format!("--vdev=net_tap{i},iface=v{p}"));
    }
    args.extend(
        [
            "--",
            "--forward-mode=io",
            "--auto-start",
            "--total-num-mbufs=8192",
            "--stats-period=60",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let backend = Killed(
        Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dpdk-testpmd"),
    );
    bridge("v");
    let devices = PORTS.map(|p| {
        let i = PORTS.iter().position(|q| *q == p).unwrap_or(0);
        format!("net_virtio_user{i},path={RUN_DIR}/vhost-{p}.sock,queues=1")
    });
    let cfg = config(
        [&devices[0], &devices[1], &devices[2]],
        // virtio-user shares its memory with the backend through file descriptors.
        ", \"--single-file-segments\", \"--file-prefix\", \"m6virtio\"",
    );
    let path = format!("{RUN_DIR}/virtio.yaml");
    std::fs::write(&path, cfg).expect("write the configuration");
    let mut dp = Dataplane::start(&path);
    dp.wait_ready();
    let figures = forwards(&dp);
    let (status, counters) = dp.stop();
    assert!(status.success(), "{status}");
    println!(
        "lab_pmd_virtio_user: virtio_user <-> vhost-user (dpdk-testpmd): {figures}; port.lan.ipackets {}",
        counters.get("port.lan.ipackets").copied().unwrap_or(0)
    );
    drop(backend);
}

#[test]
fn lab_pmd_tap() {
    require_environment();
    let _lab = Lab::up();
    let devices = PORTS.map(|p| {
        let i = PORTS.iter().position(|q| *q == p).unwrap_or(0);
        format!("net_tap{i},iface=d{p}")
    });
    let cfg = config([&devices[0], &devices[1], &devices[2]], "");
    let path = format!("{RUN_DIR}/tap.yaml");
    std::fs::write(&path, cfg).expect("write the configuration");
    let mut dp = Dataplane::start(&path);
    dp.wait_ready();
    bridge("d");
    let figures = forwards(&dp);
    let (status, _) = dp.stop();
    assert!(status.success(), "{status}");
    println!("lab_pmd_tap: net_tap ports bridged to the lab's links: {figures}");
}
