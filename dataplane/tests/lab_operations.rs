//! End to end, issue 10: operating the routers of the two-site lab (lab/twosite.sh).
//!
//! - Live counters and Prometheus: control plane A's `/metrics` is scraped twice during a
//!   UDP stream from host A to host B; `promtool check metrics` accepts the scrape; the
//!   counters moved with the traffic (ports, ISPs, the proxy, handshakes, DNS); every metric
//!   in docs/operations.md's reference table is in the scrape and every metric in the
//!   scrape is in the table.
//! - Every `m6ctl` command against the running control plane: status, isp list / drain /
//!   undrain, neighbor list, context list / show, dns cache, stats (once and --watch),
//!   reload (applied, and refused with its reason), config check (valid and invalid files),
//!   completions; and its errors when the daemon is not running or the socket not permitted.
//! - `m6ctl reload` changes a weight and a policy rule during the stream: no datagram lost.
//!
//! Needs root, hugepages, Knot, promtool and the lab's tools; fails with the reason
//! otherwise.

mod lab;

use std::collections::BTreeSet;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use lab::twosite::*;
use lab::*;

const OPERATIONS_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md");

fn m6ctl() -> String {
    Path::new(DATAPLANE)
        .with_file_name("m6ctl")
        .to_string_lossy()
        .into_owned()
}

/// `m6ctl ARGS` against router A's control plane: (exit code, stdout and stderr).
fn ctl(args: &str) -> (i32, String) {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} --socket /run/m6-twosite/a-admin.sock {args}",
            m6ctl()
        ))
        .output()
        .expect("run m6ctl");
    (out.status.code().unwrap_or(-1), text(&out))
}

fn scrape() -> String {
    let (ok, out) = sh("ip netns exec m6s-core curl -sf 'http://[::1]:9106/metrics'");
    assert!(ok, "scrape failed: {out}");
    out
}

/// The value of the sample `series` (name with labels, exactly as exposed) in `text`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Sum of every sample of metric `name` (any labels).
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The metric names of a scrape (its `# TYPE` lines).
fn scraped_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(String::from)
        .collect()
}

/// The metric names of docs/operations.md's reference table (rows starting "| `m6_").
fn documented_names() -> BTreeSet<String> {
    std::fs::read_to_string(OPERATIONS_DOC)
        .expect("read docs/operations.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `m6_"))
        .filter_map(|l| l.split('`').next())
        .map(|n| format!("m6_{n}"))
        .collect()
}

#[test]
fn lab_operations() {
    let t0 = Instant::now();
    require_environment();
    let (ok, out) = sh("command -v promtool");
    assert!(
        ok,
        "promtool is missing (Debian package prometheus): run make setup\n{out}"
    );
    let _lab = TwoSites::up();
    let mut report = Vec::new();
    let (mut ra, mut rb, ca, cb) = start_with_live_a();

    // Errors before the daemon answers anything: no daemon, socket not permitted.
    let out = std::process::Command::new(m6ctl())
        .args(["--socket", "/run/m6-twosite/nobody-here.sock", "status"])
        .output()
        .expect("run m6ctl");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("is it running?"), "{}", text(&out));
    let (ok, out) = sh(&format!(
        "cp {} /tmp/m6ctl-nobody && chmod 755 /tmp/m6ctl-nobody && \
         setpriv --reuid=65534 --regid=65534 --clear-groups \
         /tmp/m6ctl-nobody --socket /run/m6-twosite/a-admin.sock status; echo \"exit=$?\"",
        m6ctl()
    ));
    assert!(
        ok && out.contains("not permitted") && out.contains("exit=2"),
        "{out}"
    );
    report.push(format!(
        "m6ctl as nobody: {}",
        out.lines().next().unwrap_or_default()
    ));

    establish_contexts(&ca, &cb);
    serve_iperf_at_b();
    thread::sleep(Duration::from_millis(300));

    let u = udp_transfer(9, 20);
    thread::sleep(Duration::from_millis(2500));
    let first = scrape();

    // Every m6ctl command, during the stream.
    let (code, out) = ctl("status");
    assert!(code == 0 && out.contains("connected ("), "{out}");
    let (code, out) = ctl("isp list");
    assert!(code == 0 && out.matches("usable").count() == 2, "{out}");
    let (code, out) = ctl("neighbor list");
    assert!(
        code == 0 && out.contains("2001:db8:ff01::1") && out.contains(HOST_A),
        "{out}"
    );
    report.push(format!(
        "m6ctl neighbor list:\n    {}",
        out.trim().replace('\n', "\n    ")
    ));
    let (code, out) = ctl("context list");
    assert!(code == 0 && out.contains("1 contexts"), "{out}");
    let f_local = out
        .lines()
        .find(|l| l.starts_with(HOST_A))
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("a context row")
        .to_string();
    let (code, out) = ctl(&format!("context show {f_local}"));
    assert!(
        code == 0 && out.contains("Established") && out.contains("lsv_peer"),
        "{out}"
    );
    let (code, out) = ctl("context show 1048577");
    assert!(code == 1 && out.contains("no context"), "{out}");
    let (code, out) = ctl("dns cache");
    assert!(
        code == 0 && out.contains("b.example.net") && out.contains("(M6 marker)"),
        "{out}"
    );
    let (code, out) = ctl("--json stats");
    assert_eq!(code, 0, "{out}");
    let rates: serde_like::Rates = serde_like::parse(&out);
    assert!(rates.tx_pps > 1000.0, "stats: {out}");
    let (code, out) = ctl("stats --watch --count 2");
    assert!(code == 0 && out.lines().count() == 3, "{out}");
    report.push(format!(
        "m6ctl stats --watch --count 2:\n    {}",
        out.trim().replace('\n', "\n    ")
    ));
    let (code, out) = ctl("isp drain isp9");
    assert!(code == 1 && out.contains("no ISP named"), "{out}");
    let (code, out) = ctl("isp drain isp2");
    assert!(code == 0 && out.contains("isp isp2 drained"), "{out}");
    let (code, out) = ctl("isp undrain isp2");
    assert!(code == 0 && out.contains("isp isp2 undrained"), "{out}");

    // Reload during the stream: a weight and a rule, then a change that needs a restart.
    let base = std::fs::read_to_string(LIVE_CONFIG).expect("read");
    let changed = base.replace(
        "    prefix: \"2001:db8:2::/48\"\n",
        "    prefix: \"2001:db8:2::/48\"\n    weight: 5\n",
    )
        + "policy:\n  - { prefix: \"2001:db8:3::/48\", action: prefer, isps: [isp2] }\n";
    std::fs::write(LIVE_CONFIG, &changed).expect("write");
    let (code, out) = ctl("reload");
    assert!(
        code == 0 && out.contains("weights isp1=1 isp2=5") && out.contains("1 policy rules"),
        "{out}"
    );
    report.push(format!("m6ctl reload: {}", out.trim()));
    std::fs::write(LIVE_CONFIG, changed.replace("mbufs: 8191", "mbufs: 16383")).expect("write");
    let (code, out) = ctl("reload");
    assert!(
        code == 1 && out.contains("mempool changed, which needs a restart"),
        "{out}"
    );
    report.push(format!("m6ctl reload (mempool changed): {}", out.trim()));
    std::fs::write(LIVE_CONFIG, &base).expect("write");

    // config check and completions run locally.
    let (code, out) = ctl(&format!("config check {CFG}/a.yaml"));
    assert!(
        code == 0 && out.contains("an m6-dataplane configuration"),
        "{out}"
    );
    let (code, out) = ctl(&format!("config check {CFG}/a-controlplane.yaml"));
    assert!(
        code == 0 && out.contains("an m6-controlplane configuration"),
        "{out}"
    );
    let bad = "/run/m6-twosite/bad.yaml";
    std::fs::write(bad, base.replace("timeout_ms: 200", "timeout_ms: 5000")).expect("write");
    let (code, out) = ctl(&format!("config check {bad}"));
    assert!(
        code == 2 && out.contains("health.timeout_ms: expected less than"),
        "{out}"
    );
    report.push(format!("m6ctl config check (bad): {}", out.trim()));
    let (code, out) = ctl("completions bash");
    assert!(code == 0 && out.contains("_m6ctl()"), "{out}");

    thread::sleep(Duration::from_millis(1500));
    let second = scrape();
    let (sent, lost, json) = udp_finish(u);
    assert!(sent > 1000 && sent != u64::MAX, "{json}");
    if lost != 0 {
        fail_with_drops(
            &mut ra,
            &mut rb,
            &format!("{lost} datagrams lost across drain, undrain and reload:\n{json}"),
        );
    }
    report.push(format!(
        "UDP A->B at 20 Mbit/s across isp drain/undrain and m6ctl reload: {sent} datagrams, {lost} lost"
    ));

    // The counters moved with the traffic.
    let moved = |series: &str| sample(&second, series) - sample(&first, series);
    let lan_rx = moved("m6_port_receive_packets_total{port=\"lan\"}");
    assert!(
        lan_rx > 1000.0,
        "LAN port received {lan_rx} packets between the scrapes"
    );
    let proxied = moved("m6_proxy_packets_total{direction=\"out\"}");
    assert!(proxied > 1000.0, "{proxied} packets translated out");
    let isp_tx = total(&second, "m6_isp_transmit_packets_total")
        - total(&first, "m6_isp_transmit_packets_total");
    assert!(isp_tx > 1000.0, "ISPs carried {isp_tx}");
    for (series, at_least) in [
        ("m6_handshakes_completed_total", 1.0),
        ("m6_control_messages_sent_total{type=\"init\"}", 1.0),
        ("m6_dns_lookups_total{outcome=\"ok\"}", 1.0),
        ("m6_isp_up{isp=\"isp1\"}", 1.0),
        ("m6_dataplane_connected", 1.0),
        ("m6_birthday", 1.0),
        ("m6_health_probes_sent_total", 1.0),
        ("m6_router_advertisements_sent_total", 1.0),
    ] {
        let v = sample(&second, series);
        assert!(v >= at_least, "{series} = {v}\n{second}");
    }
    report.push(format!(
        "between two scrapes 4 s apart: {lan_rx} packets in on the LAN port, {proxied} translated out, {isp_tx} through the ISPs"
    ));

    // promtool accepts the scrape.
    std::fs::write("/run/m6-twosite/scrape.txt", &second).expect("write the scrape");
    let (ok, out) = sh("promtool check metrics < /run/m6-twosite/scrape.txt");
    assert!(ok, "promtool check metrics:\n{out}");
    // The reference table and the scrape name the same metrics.
    let scraped = scraped_names(&second);
    let documented = documented_names();
    let undocumented: Vec<_> = scraped.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&scraped).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "metrics not in docs/operations.md: {undocumented:?}; documented but not scraped: {missing:?}"
    );
    report.push(format!(
        "promtool check metrics: ok; {} metrics scraped, the same {} documented",
        scraped.len(),
        documented.len()
    ));

    println!("lab_operations ({:.0} s):", t0.elapsed().as_secs_f64());
    for r in &report {
        println!("  {r}");
    }
}

/// The rates `m6ctl --json stats` prints, read without a JSON library in this test crate.
mod serde_like {
    pub struct Rates {
        /// Packets per second through every ISP.
        pub tx_pps: f64,
    }

    pub fn parse(text: &str) -> Rates {
        let mut tx_pps = 0.0;
        for part in text.split("\"tx_pps\":").skip(1) {
            let end = part.find([',', '}']).unwrap_or(part.len());
            tx_pps += part[..end].trim().parse::<f64>().unwrap_or(0.0);
        }
        Rates { tx_pps }
    }
}
