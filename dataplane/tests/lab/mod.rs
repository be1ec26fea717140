//! The namespace lab as the end-to-end tests use it: the lab (lab/topology.sh, one session
//! at a time under a lock, always torn down), the router process, and the LAN host's tools.
//! Shared by `lab_e2e.rs` and `lab_conformance.rs`.
#![allow(dead_code)]

pub mod twosite;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub const DATAPLANE: &str = env!("CARGO_BIN_EXE_m6-dataplane");
pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
pub const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/lab.yaml");
pub const LOCK_FILE: &str = "/run/lock/m6-lab.lock";
/// Where lab/lib.sh keeps its run state (removed by `topology.sh down`).
pub const RUN_DIR: &str = "/run/m6-lab";

pub const NS_RTR: &str = "m6-rtr";
pub const NS_LAN: &str = "m6-lan";
pub const NS_INET: &str = "m6-inet";
pub const HOST_PA1: &str = "2001:db8:1:1::10";
pub const HOST_PA2: &str = "2001:db8:2:1::10";
pub const SERVER: &str = "2001:db8:ee::100";
/// The router prints a line starting with this once its ports are started (it may go on, e.g.
/// "m6-dataplane: forwarding on 3 ports (lan, isp1, isp2) with 1 workers").
pub const READY_LINE: &str = "m6-dataplane: forwarding";

pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the router may take to notice a lost or restored carrier.
pub const LINK_REACTION_TIMEOUT: Duration = Duration::from_secs(10);

// -----------------------------------------------------------------------------------------
// Shell plumbing

/// Runs `script` in bash with lab/lib.sh sourced and errexit on.
pub fn lab(script: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -euo pipefail; . '{REPO}/lab/lib.sh'; {script}"
        ))
        .env("M6_LAB_LOCK_HELD", "1")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash: {e}"))
}

/// Like [`lab`], but the script must succeed; returns its stdout.
pub fn lab_ok(script: &str) -> String {
    let out = lab(script);
    if !out.status.success() {
        panic!(
            "lab command failed ({}): {script}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Packets counted by a named nftables counter of an ISP (`lab_isp_counts`).
pub fn isp_counts() -> HashMap<String, u64> {
    lab_ok("lab_isp_counts")
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (isp, counter, value) = (it.next()?, it.next()?, it.next()?);
            Some((format!("{isp}.{counter}"), value.parse().ok()?))
        })
        .collect()
}

// -----------------------------------------------------------------------------------------
// Preconditions: fail, never skip.

pub fn require_environment() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert!(
        euid == "0",
        "lab_e2e must run as root (it creates network namespaces and starts DPDK); effective uid is {euid}"
    );
    let out = lab("lab_require_tools");
    assert!(out.status.success(), "lab_e2e: {}", text(&out).trim());
    let config = std::fs::read_to_string(CONFIG)
        .unwrap_or_else(|e| panic!("lab_e2e: cannot read {CONFIG}: {e}"));
    if !config.contains("--no-huge") {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let free: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("HugePages_Free:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        assert!(
            free > 0,
            "lab_e2e: no free hugepages for DPDK; run scripts/setup.sh"
        );
    }
}

// -----------------------------------------------------------------------------------------
// The lab: one session at a time, always torn down.

pub struct Lab {
    _lock: File,
}

impl Lab {
    pub fn up() -> Lab {
        let mut lock = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(LOCK_FILE)
            .unwrap_or_else(|e| panic!("cannot open the lab lock {LOCK_FILE}: {e}"));
        // Lab tests run one at a time (.config/nextest.toml); a demo may hold the lab.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(250))
                }
                Err(e) => panic!(
                    "another lab session holds {LOCK_FILE} ({}): {e}",
                    std::fs::read_to_string(LOCK_FILE)
                        .unwrap_or_default()
                        .trim()
                ),
            }
        }
        lock.set_len(0).expect("truncate the lock file");
        writeln!(lock, "lab_e2e pid {}", std::process::id()).expect("write the lock file");
        // From here on the guard exists, so a failing `up` is still torn down.
        let lab = Lab { _lock: lock };
        let out = Command::new(format!("{REPO}/lab/topology.sh"))
            .arg("up")
            .env("M6_LAB_LOCK_HELD", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run lab/topology.sh up");
        assert!(
            out.status.success(),
            "lab/topology.sh up failed:\n{}",
            text(&out)
        );
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = Command::new(format!("{REPO}/lab/topology.sh"))
            .arg("down")
            .env("M6_LAB_LOCK_HELD", "1")
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("lab_e2e: lab/topology.sh down failed:\n{}", text(&o)),
            Err(e) => eprintln!("lab_e2e: cannot run lab/topology.sh down: {e}"),
        }
    }
}

// -----------------------------------------------------------------------------------------
// The router process.

pub struct Dataplane {
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    ready: Receiver<()>,
    readers: Vec<JoinHandle<()>>,
}

pub fn spawn_reader(
    pipe: impl std::io::Read + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
    ready: Option<mpsc::Sender<()>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if line.trim_start().starts_with(READY_LINE) {
                if let Some(tx) = &ready {
                    let _ = tx.send(());
                }
            }
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    })
}

impl Dataplane {
    /// Starts the router in its namespace with `config` (a path).
    pub fn start(config: &str) -> Dataplane {
        Dataplane::start_in(NS_RTR, DATAPLANE, config)
    }

    /// Starts `binary --config config` in namespace `ns` (a router of another lab, or
    /// m6-controlplane), its output collected the same way.
    pub fn start_in(ns: &str, binary: &str, config: &str) -> Dataplane {
        // `ip netns exec` execs the binary in place, so the child's pid is the router's.
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, binary, "--config", config])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {DATAPLANE}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, ready) = mpsc::channel();
        let readers = vec![
            spawn_reader(
                child.stdout.take().expect("stdout"),
                stdout.clone(),
                Some(tx),
            ),
            spawn_reader(child.stderr.take().expect("stderr"), stderr.clone(), None),
        ];
        Dataplane {
            child: Some(child),
            stdout,
            stderr,
            ready,
            readers,
        }
    }

    pub fn output(&self) -> String {
        let out = self
            .stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n");
        let err = self
            .stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n");
        format!("--- m6-dataplane stdout\n{out}\n--- m6-dataplane stderr\n{err}")
    }

    pub fn wait_ready(&mut self) -> Duration {
        let start = Instant::now();
        loop {
            match self.ready.recv_timeout(Duration::from_millis(100)) {
                Ok(()) => return start.elapsed(),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
            }
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                thread::sleep(Duration::from_millis(100)); // let the readers drain
                panic!(
                    "m6-dataplane exited ({status}) before printing {READY_LINE:?}\n{}",
                    self.output()
                );
            }
            if start.elapsed() > READY_TIMEOUT {
                panic!(
                    "m6-dataplane did not print {READY_LINE:?} within {READY_TIMEOUT:?}\n{}",
                    self.output()
                );
            }
        }
    }

    /// Waits until a line of its output contains `text`; how long that took.
    pub fn wait_line(&self, text: &str, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let seen = |v: &Arc<Mutex<Vec<String>>>| {
                v.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .any(|l| l.contains(text))
            };
            if seen(&self.stdout) || seen(&self.stderr) {
                return Some(start.elapsed());
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// How many lines of its output contain `text`.
    pub fn count_lines(&self, text: &str) -> usize {
        let n = |v: &Arc<Mutex<Vec<String>>>| {
            v.lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|l| l.contains(text))
                .count()
        };
        n(&self.stdout) + n(&self.stderr)
    }

    /// The process's id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Its resident set (VmRSS), KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.pid().expect("running");
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("no VmRSS for pid {pid}"))
    }

    /// SIGKILL: gone at once, nothing flushed (a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait for a clean exit, return the exit status and the `counter` lines.
    pub fn stop(&mut self) -> (ExitStatus, HashMap<String, u64>) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "m6-dataplane did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(50));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let counters = self
            .stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                if it.next()? != "counter" {
                    return None;
                }
                Some((it.next()?.to_string(), it.next()?.parse().ok()?))
            })
            .collect();
        (status, counters)
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!("{}", self.output());
        }
    }
}

// -----------------------------------------------------------------------------------------
// Traffic from the LAN host.

/// Pings the server `count` times from `src` (extra ping arguments after); returns
/// (transmitted, received, output).
pub fn ping(src: &str, count: u32, extra: &str) -> (u32, u32, String) {
    let out = lab(&format!("lab_ping {src} {count} {extra}"));
    let out = text(&out);
    let stat = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("");
    let field = |name: &str| -> u32 {
        stat.split(',')
            .find(|p| p.contains(name))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("transmitted"), field("received"), out)
}

/// Waits until a ping from `src` is answered (the first ones may go to neighbour discovery).
pub fn ping_until_answered(src: &str, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    let out = lab(&format!("lab_ping_wait {src} {}", timeout.as_secs().max(1)));
    out.status.success().then(|| start.elapsed())
}

pub fn assert_ping_all(src: &str) -> u32 {
    assert!(
        ping_until_answered(src, Duration::from_secs(5)).is_some(),
        "no ping reply from {SERVER} to {src} within 5 s"
    );
    let (tx, rx, out) = ping(src, 5, "");
    assert!(
        tx == 5 && rx == 5,
        "ping from {src}: {rx} of {tx} answered\n{out}"
    );
    rx
}

/// iperf3 upload of 10 MB from `src`; returns the receiver's Mbit/s.
pub fn iperf(src: &str) -> f64 {
    let out = lab(&format!("lab_iperf {src} 10M"));
    let report = text(&out);
    assert!(out.status.success(), "iperf3 from {src} failed:\n{report}");
    report
        .lines()
        .find(|l| l.trim_end().ends_with("receiver"))
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let i = words.iter().position(|w| *w == "Mbits/sec")?;
            words.get(i.checked_sub(1)?)?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no receiver line in iperf3's report from {src}:\n{report}"))
}

/// Sends a known 1 MiB payload from `src` to the server over TCP with nc and compares what
/// arrived byte for byte (a broken checksum or a rewritten byte would show here).
pub fn nc_transfer(src: &str, port: u16) -> usize {
    let mut payload = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(port);
    for b in payload.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    let sent_path = format!("{RUN_DIR}/nc-{port}.sent");
    let recv_path = format!("{RUN_DIR}/nc-{port}.recv");
    std::fs::write(&sent_path, &payload).expect("write the payload");
    let recv = File::create(&recv_path).expect("create the receive file");
    let mut server = Command::new("ip")
        .args([
            "netns", "exec", NS_INET, "timeout", "20", "nc", "-6", "-l", SERVER,
        ])
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(recv)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nc -l in m6-inet");
    let listening = lab(&format!("lab_wait_listen {NS_INET} {port} 5"));
    if !listening.status.success() {
        let _ = server.kill();
        let _ = server.wait();
        panic!("nc server did not listen: {}", text(&listening));
    }
    let client = lab(&format!(
        "ip netns exec {NS_LAN} timeout 20 nc -6 -N -w 10 -s {src} {SERVER} {port} < '{sent_path}'"
    ));
    let status = server.wait().expect("wait for nc -l");
    assert!(
        client.status.success(),
        "nc from {src} failed: {}",
        text(&client)
    );
    assert!(status.success(), "nc -l in m6-inet failed ({status})");
    let got = std::fs::read(&recv_path).expect("read what the server received");
    assert!(
        got == payload,
        "TCP payload from {src} corrupted: sent {} bytes, received {} bytes{}",
        payload.len(),
        got.len(),
        got.iter()
            .zip(&payload)
            .position(|(a, b)| a != b)
            .map(|i| format!(", first difference at byte {i}"))
            .unwrap_or_default()
    );
    got.len()
}

/// A ping output line reporting ICMPv6 destination unreachable code 5. iputils-ping
/// 20221126 (Debian 12) has no text for code 5 and prints "Unknown code 5"; newer versions
/// may print the RFC 4443 name.
pub fn code5_line(out: &str) -> Option<&str> {
    out.lines().find(|l| {
        l.contains("Destination unreachable")
            && (l.contains("Unknown code 5")
                || l.to_ascii_lowercase()
                    .contains("source address failed ingress/egress policy"))
    })
}
