//! The two-site lab (lab/twosite.sh) as tests use it: bringing it up and down, the two
//! routers and their control planes, transfers between the sites' hosts, and the ISPs'
//! counters. Shared by `lab_two_sites.rs` and `lab_isp_health.rs`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use super::*;

pub const TS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../lab/twosite.sh");
pub const CFG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/twosite");
pub const HOST_A: &str = "2001:db8:1:1::10";
pub const HOST_B: &str = "2001:db8:3:1::20";
pub const SERVER_CORE: &str = "2001:db8:ee::100";

pub struct TwoSites;

impl TwoSites {
    pub fn up() -> TwoSites {
        let out = Command::new("bash")
            .args([TS, "up"])
            .stdin(Stdio::null())
            .output()
            .expect("run lab/twosite.sh up");
        let lab = TwoSites;
        assert!(
            out.status.success(),
            "lab/twosite.sh up failed:\n{}",
            text(&out)
        );
        lab
    }
}

impl Drop for TwoSites {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args([TS, "down"])
            .stdin(Stdio::null())
            .output();
    }
}

pub fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    (out.status.success(), text(&out))
}

pub fn controlplane() -> String {
    let p = Path::new(DATAPLANE).with_file_name("m6-controlplane");
    assert!(
        p.exists(),
        "{} is not built: run the workspace's tests (make test) or cargo build -p controlplane",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

pub fn router(site: &str) -> Dataplane {
    router_with(site, &format!("{CFG}/{site}.yaml"))
}

/// Router `site` started from the configuration at `config`.
pub fn router_with(site: &str, config: &str) -> Dataplane {
    let d = Dataplane::start_in(&format!("m6s-{site}rtr"), DATAPLANE, config);
    assert!(
        d.wait_line("m6-dataplane: forwarding", Duration::from_secs(20))
            .is_some(),
        "router {site} did not start\n{}",
        d.output()
    );
    d
}

/// Where tests that reload router A keep its configuration: a copy of a.yaml they edit.
pub const LIVE_CONFIG: &str = "/run/m6-twosite/a-live.yaml";

/// Routers A (from a fresh copy of a.yaml at [`LIVE_CONFIG`]) and B, then both control
/// planes: (router A, router B, control plane A, control plane B).
pub fn start_with_live_a() -> (Dataplane, Dataplane, Dataplane, Dataplane) {
    std::fs::copy(format!("{CFG}/a.yaml"), LIVE_CONFIG).expect("copy a.yaml");
    let ra = router_with("a", LIVE_CONFIG);
    let rb = router("b");
    (ra, rb, control("a"), control("b"))
}

pub fn control(site: &str) -> Dataplane {
    let d = Dataplane::start_in(
        "m6s-core",
        &controlplane(),
        &format!("{CFG}/{site}-controlplane.yaml"),
    );
    assert!(
        d.wait_line("m6-controlplane: running", Duration::from_secs(10))
            .is_some(),
        "control plane {site} did not start\n{}",
        d.output()
    );
    d
}

/// An iperf3 transfer B -> A (`-R`: host A receives, so its 0.1 s intervals count bytes
/// delivered) for `secs` seconds at 50 Mbit/s, started now. B sends to Lp(A), A's PA1
/// locator at first: cutting ISP1 forces the switch to PA2 that seed 001 section 7.11
/// step 3c describes.
pub fn transfer(secs: u32) -> std::process::Child {
    iperf3_from_host_a(&["-R", "-b", "50M", "-i", "0.1", "-t", &secs.to_string()])
}

/// iperf3 (JSON output, at most 60 s) from host A to B's server with `args`, started now.
fn iperf3_from_host_a(args: &[&str]) -> std::process::Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            "m6s-ahost",
            "timeout",
            "60",
            "iperf3",
            "-6",
            "-J",
        ])
        .args(["-c", HOST_B, "-p", "5201", "-B", HOST_A])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start iperf3")
}

/// (bytes received, longest run of intervals with nothing delivered in seconds, exit ok).
pub fn finish(child: std::process::Child) -> (u64, f64, bool, String) {
    let out = child.wait_with_output().expect("wait for iperf3");
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    // Interval records: "bytes": N per "sum" of each interval; count consecutive zeros.
    let mut longest: f64 = 0.0;
    let mut run: f64 = 0.0;
    let mut total: u64 = 0;
    for chunk in json.split("\"sum\":").skip(1) {
        let field = |name: &str| -> Option<f64> {
            let i = chunk.find(&format!("\"{name}\":"))?;
            let rest = &chunk[i + name.len() + 3..];
            let end = rest.find([',', '}', '\n']).unwrap_or(rest.len());
            rest[..end].trim().parse().ok()
        };
        let (Some(bytes), Some(secs)) = (field("bytes"), field("seconds")) else {
            continue;
        };
        if secs > 1.0 {
            // The end-of-test summary, not an interval.
            continue;
        }
        total += bytes as u64;
        if bytes == 0.0 {
            run += secs;
            longest = longest.max(run);
        } else {
            run = 0.0;
        }
    }
    (total, longest, out.status.success(), json)
}

/// Packets an ISP's named nftables counter has seen.
pub fn isp_counter(n: u32, name: &str) -> u64 {
    let (_, out) = sh(&format!(
        "ip netns exec m6s-isp{n} nft list counter ip6 m6_isp {name}"
    ));
    out.split("packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(u64::MAX)
}

pub fn ingress_drops() -> u64 {
    (1..=3).map(|n| isp_counter(n, "ingress_drop")).sum()
}

/// Which of site A's ISPs (1 or 2) carries most of what goes down to router A now.
pub fn busier_downlink() -> u32 {
    let before = (isp_counter(1, "to_customer"), isp_counter(2, "to_customer"));
    thread::sleep(Duration::from_millis(500));
    let after = (isp_counter(1, "to_customer"), isp_counter(2, "to_customer"));
    if after.0 - before.0 >= after.1 - before.1 {
        1
    } else {
        2
    }
}

/// Which of site A's ISPs (1 or 2) carries most of what router A sends up now.
pub fn busier_uplink() -> u32 {
    let before = (
        isp_counter(1, "from_customer"),
        isp_counter(2, "from_customer"),
    );
    thread::sleep(Duration::from_millis(500));
    let after = (
        isp_counter(1, "from_customer"),
        isp_counter(2, "from_customer"),
    );
    if after.0 - before.0 >= after.1 - before.1 {
        1
    } else {
        2
    }
}

/// Waits until `text` appears in `n` lines of `d`'s output; how long that took.
pub fn wait_count(d: &Dataplane, text: &str, n: usize, timeout: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if d.count_lines(text) >= n {
            return Some(start.elapsed());
        }
        thread::sleep(Duration::from_millis(10));
    }
    None
}

/// `m6ctl --socket <router A's admin socket> ARGS`: (success, output).
pub fn m6ctl_a(args: &str) -> (bool, String) {
    let m6ctl = Path::new(DATAPLANE).with_file_name("m6ctl");
    sh(&format!(
        "{} --socket /run/m6-twosite/a-admin.sock {args}",
        m6ctl.display()
    ))
}

/// A UDP transfer host A -> host B at `mbit` Mbit/s for `secs` s, started now (B's
/// iperf3 server must run).
pub fn udp_transfer(secs: u32, mbit: u32) -> std::process::Child {
    let (rate, secs) = (format!("{mbit}M"), secs.to_string());
    iperf3_from_host_a(&["-u", "-l", "1200", "-b", &rate, "-t", &secs])
}

/// (datagrams sent, datagrams lost, the JSON) of a finished [`udp_transfer`], from the
/// receiver's count in iperf3's summary.
pub fn udp_finish(child: std::process::Child) -> (u64, u64, String) {
    let out = child.wait_with_output().expect("wait for iperf3");
    let json = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = |name: &str| -> u64 {
        json.rfind(&format!("\"{name}\":"))
            .and_then(|i| {
                let rest = &json[i + name.len() + 3..];
                let end = rest.find([',', '}', '\n']).unwrap_or(rest.len());
                rest[..end].trim().parse().ok()
            })
            .unwrap_or(u64::MAX)
    };
    (last("packets"), last("lost_packets"), json)
}

/// Stops both routers and panics with `why` and every drop counter that moved.
pub fn fail_with_drops(ra: &mut Dataplane, rb: &mut Dataplane, why: &str) -> ! {
    let mut moved = Vec::new();
    for (name, d) in [("A", ra), ("B", rb)] {
        let (_, counters) = d.stop();
        let mut v: Vec<_> = counters
            .into_iter()
            .filter(|(k, v)| *v > 0 && (k.starts_with("drop.") || k.contains("dropped")))
            .collect();
        v.sort();
        moved.push(format!("router {name}: {v:?}"));
    }
    panic!("{why}\n{}", moved.join("\n"));
}

/// Host A pings host B, and both control planes establish a context within 20 s.
pub fn establish_contexts(ca: &Dataplane, cb: &Dataplane) {
    let (ok, out) = sh(&format!(
        "ip netns exec m6s-ahost ping -6 -n -c 1 -W 2 -I {HOST_A} {HOST_B}"
    ));
    assert!(ok, "A cannot reach B at all:\n{out}");
    assert!(
        ca.wait_line("Established", Duration::from_secs(20))
            .is_some()
            && cb
                .wait_line("Established", Duration::from_secs(5))
                .is_some(),
        "no context\n{}\n{}",
        ca.output(),
        cb.output()
    );
}

/// An iperf3 server at host B (port 5201), as a daemon.
pub fn serve_iperf_at_b() {
    let (ok, out) = sh(&format!(
        "ip netns exec m6s-bhost iperf3 -s -B {HOST_B} -p 5201 -D -I /run/m6-twosite/b-iperf.pid"
    ));
    assert!(ok, "{out}");
}
