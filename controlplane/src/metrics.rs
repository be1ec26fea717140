//! Prometheus metrics of both daemons, served by the control plane on `metrics_address`
//! (`GET /metrics`, the text exposition format), with the `prometheus` crate's registry and
//! `tiny_http` on a thread of its own.
//!
//! The dataplane's counters arrive once a second over the channel (`Message::Counters`,
//! dotted names); [`Metrics::dataplane_counters`] maps each name to a metric with bounded
//! labels (port, queue, ISP, class, drop reason: sets fixed by the configuration and the
//! code, never one per context or per address) and advances the registry's counter by the
//! difference, so that a restarted dataplane (counters back to 0) resets them instead of
//! going backwards. Counters the map does not name go to `m6_dataplane_events_total{name}`,
//! so nothing the dataplane counts is hidden. The engine's and the DNS service's figures
//! are read in the daemon's loop. Names follow Prometheus' conventions: base units
//! (seconds, bytes), `_total` for counters. docs/operations.md has the reference table,
//! which a test compares with a live scrape.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::engine::{EngineStats, CODE_NAMES};

/// One ISP's state as the dataplane reports it (`Message::IspState`).
pub struct IspSample<'a> {
    pub isp: u16,
    pub name: &'a str,
    pub usable: bool,
    pub drained: bool,
    /// Withdrawals for a health cause since the dataplane started.
    pub withdrawals: u64,
    /// Probe rounds answered since the dataplane started.
    pub probe_rounds: u64,
    /// The last answered round's round-trip time, microseconds.
    pub rtt_us: u32,
}

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    counters: HashMap<&'static str, IntCounterVec>,
    gauges: HashMap<&'static str, IntGaugeVec>,
    probe_rtt: HistogramVec,
    handshake_duration: HistogramVec,
    dns_duration: HistogramVec,
    worker_busy: prometheus::GaugeVec,
    birthday: IntGauge,
    /// The last value mirrored into each counter, by metric and labels.
    last: HashMap<(&'static str, Vec<String>), u64>,
    /// Each worker's (busy, idle) polls at the previous snapshot.
    polls: HashMap<String, (u64, u64)>,
    /// Each ISP's answered probe rounds as last seen.
    rounds: HashMap<u16, u64>,
    /// The dataplane's clock at its last counters (`clock.ns`): smaller means it restarted.
    dataplane_clock: u64,
}

/// (name, help, label names) of every counter.
const COUNTERS: &[(&str, &str, &[&str])] = &[
    (
        "m6_port_receive_packets_total",
        "Packets the port received (PMD).",
        &["port"],
    ),
    (
        "m6_port_transmit_packets_total",
        "Packets the port sent (PMD).",
        &["port"],
    ),
    (
        "m6_port_receive_bytes_total",
        "Octets the port received (PMD).",
        &["port"],
    ),
    (
        "m6_port_transmit_bytes_total",
        "Octets the port sent (PMD).",
        &["port"],
    ),
    (
        "m6_port_receive_missed_total",
        "Packets the NIC dropped for want of a free RX descriptor (imissed).",
        &["port"],
    ),
    (
        "m6_port_receive_nombuf_total",
        "RX mbuf allocation failures (rx_nombuf).",
        &["port"],
    ),
    (
        "m6_port_receive_errors_total",
        "Erroneous packets received (ierrors).",
        &["port"],
    ),
    (
        "m6_port_transmit_errors_total",
        "Failed transmissions (oerrors).",
        &["port"],
    ),
    (
        "m6_port_transmit_full_drops_total",
        "Packets dropped because the TX ring was full.",
        &["port"],
    ),
    (
        "m6_queue_packets_total",
        "Packets per queue, where the PMD counts them.",
        &["port", "queue", "direction"],
    ),
    (
        "m6_class_packets_total",
        "Packets by class (DESIGN section 4).",
        &["class"],
    ),
    ("m6_drops_total", "Packets dropped, by reason.", &["reason"]),
    (
        "m6_isp_transmit_packets_total",
        "Packets sent through the ISP.",
        &["isp"],
    ),
    (
        "m6_isp_transmit_bytes_total",
        "Octets sent through the ISP.",
        &["isp"],
    ),
    (
        "m6_isp_receive_packets_total",
        "Packets received from the ISP.",
        &["isp"],
    ),
    (
        "m6_isp_receive_bytes_total",
        "Octets received from the ISP.",
        &["isp"],
    ),
    (
        "m6_isp_state_changes_total",
        "Withdrawals of the ISP for a health cause (link, next hop, probes).",
        &["isp"],
    ),
    (
        "m6_rewrites_total",
        "Rewrite-ok M6 packets: source locator rewritten, kept, or no usable ISP.",
        &["result"],
    ),
    (
        "m6_proxy_packets_total",
        "Packets of proxied hosts: translated out or in, or sent plain.",
        &["direction"],
    ),
    (
        "m6_cc_answered_total",
        "INITs the dataplane's workers answered with a CC.",
        &[],
    ),
    (
        "m6_cc_rate_limited_total",
        "INITs not answered: over the CC rate.",
        &[],
    ),
    (
        "m6_health_probes_sent_total",
        "Health probes (ICMPv6 echo) sent to beacons.",
        &[],
    ),
    (
        "m6_health_rounds_total",
        "Probe rounds, by outcome.",
        &["outcome"],
    ),
    (
        "m6_router_advertisements_sent_total",
        "Router Advertisements sent on the LAN.",
        &[],
    ),
    (
        "m6_router_solicitations_total",
        "Router Solicitations received on the LAN.",
        &[],
    ),
    (
        "m6_nptv6_packets_total",
        "Packets translated by NPTv6, by direction.",
        &["direction"],
    ),
    (
        "m6_worker_polls_total",
        "Polling rounds of a worker, busy (received packets) or idle.",
        &["worker", "result"],
    ),
    (
        "m6_dataplane_events_total",
        "Every other dataplane counter, by its dotted name.",
        &["name"],
    ),
    (
        "m6_handshakes_started_total",
        "Contexts created (handshakes started).",
        &[],
    ),
    (
        "m6_handshakes_completed_total",
        "Contexts that reached ESTABLISHED.",
        &[],
    ),
    (
        "m6_handshakes_failed_total",
        "Contexts discarded before ESTABLISHED.",
        &[],
    ),
    (
        "m6_control_messages_sent_total",
        "M6 control messages sent, by type.",
        &["type"],
    ),
    (
        "m6_control_messages_received_total",
        "M6 control messages received, by type.",
        &["type"],
    ),
    (
        "m6_control_messages_rejected_total",
        "M6 control messages received and dropped, by type.",
        &["type"],
    ),
    (
        "m6_retransmissions_total",
        "M6 control messages retransmitted, by type.",
        &["type"],
    ),
    (
        "m6_dns_lookups_total",
        "DNS lookups finished, by outcome.",
        &["outcome"],
    ),
    (
        "m6_dns_cache_hits_total",
        "Lookups answered from the engine's DNS cache.",
        &[],
    ),
    (
        "m6_dns_cache_misses_total",
        "Lookups not in the engine's DNS cache.",
        &[],
    ),
    (
        "m6_channel_connections_total",
        "Connections to the dataplane that said hello.",
        &[],
    ),
];

/// The counters the control plane keeps itself (not reset when the dataplane restarts).
const CONTROL_PLANE_COUNTERS: &[&str] = &[
    "m6_handshakes_started_total",
    "m6_handshakes_completed_total",
    "m6_handshakes_failed_total",
    "m6_control_messages_sent_total",
    "m6_control_messages_received_total",
    "m6_control_messages_rejected_total",
    "m6_retransmissions_total",
    "m6_dns_lookups_total",
    "m6_dns_cache_hits_total",
    "m6_dns_cache_misses_total",
    "m6_channel_connections_total",
];

/// (name, help, label names) of every gauge.
const GAUGES: &[(&str, &str, &[&str])] = &[
    ("m6_isp_up", "1 while the ISP may carry traffic.", &["isp"]),
    (
        "m6_isp_drained",
        "1 while the operator drains the ISP.",
        &["isp"],
    ),
    ("m6_contexts", "Host-pair contexts, by state.", &["state"]),
    (
        "m6_dataplane_connected",
        "1 while the dataplane's channel is up.",
        &[],
    ),
    (
        "m6_build_info",
        "Always 1; the version as a label.",
        &["version"],
    ),
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let mut counters = HashMap::new();
        for (name, help, labels) in COUNTERS {
            let c = IntCounterVec::new(Opts::new(*name, *help), labels).expect("valid counter");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            counters.insert(*name, c);
        }
        let mut gauges = HashMap::new();
        for (name, help, labels) in GAUGES {
            let g = IntGaugeVec::new(Opts::new(*name, *help), labels).expect("valid gauge");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            gauges.insert(*name, g);
        }
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid histogram");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        let probe_rtt = histogram(
            "m6_isp_probe_rtt_seconds",
            "Round-trip time of answered health probe rounds.",
            &["isp"],
            prometheus::exponential_buckets(0.0005, 2.0, 12).expect("buckets"),
        );
        let handshake_duration = histogram(
            "m6_handshake_duration_seconds",
            "From a context's creation to ESTABLISHED.",
            &[],
            prometheus::exponential_buckets(0.001, 2.0, 14).expect("buckets"),
        );
        let dns_duration = histogram(
            "m6_dns_lookup_duration_seconds",
            "From a lookup's submission to its answer.",
            &["outcome"],
            prometheus::exponential_buckets(0.0005, 2.0, 14).expect("buckets"),
        );
        let worker_busy = prometheus::GaugeVec::new(
            Opts::new(
                "m6_worker_busy_ratio",
                "Share of a worker's polling rounds that received packets, over the last second.",
            ),
            &["worker"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(worker_busy.clone()))
            .expect("registered once");
        let birthday = IntGauge::new(
            "m6_birthday",
            "The birthday counter (seed 001 section 7.14): increments at every start.",
        )
        .expect("valid gauge");
        registry
            .register(Box::new(birthday.clone()))
            .expect("registered once");
        gauges["m6_build_info"]
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            registry,
            counters,
            gauges,
            probe_rtt,
            handshake_duration,
            dns_duration,
            worker_busy,
            birthday,
            last: HashMap::new(),
            polls: HashMap::new(),
            rounds: HashMap::new(),
            dataplane_clock: 0,
        }
    }

    /// The registry (for the HTTP thread).
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// The exposition text of every metric now.
    pub fn render(&self) -> String {
        render(&self.registry)
    }

    /// Moves counter `name{labels}` to `value` (the source's running total).
    fn mirror(&mut self, name: &'static str, labels: &[&str], value: u64) {
        let Some(vec) = self.counters.get(name) else {
            return;
        };
        let c: IntCounter = vec.with_label_values(labels);
        let key = (
            name,
            labels.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
        );
        let last = self.last.get(&key).copied().unwrap_or(0);
        if value < last {
            // The source restarted: start over from its value.
            c.reset();
            c.inc_by(value);
        } else {
            c.inc_by(value - last);
        }
        self.last.insert(key, value);
    }

    fn gauge(&self, name: &'static str, labels: &[&str], value: i64) {
        if let Some(g) = self.gauges.get(name) {
            g.with_label_values(labels).set(value);
        }
    }

    /// Takes the dataplane's counters (dotted names, running totals).
    pub fn dataplane_counters(&mut self, values: &[(String, u64)]) {
        let clock = values
            .iter()
            .find(|(n, _)| n == "clock.ns")
            .map_or(0, |(_, v)| *v);
        if clock < self.dataplane_clock {
            // The dataplane restarted: its counters start over, even those that are already
            // back above their last value, and so do the probe rounds.
            self.dataplane_restarted();
        }
        self.dataplane_clock = clock;
        let mut polls: HashMap<String, (u64, u64)> = HashMap::new();
        for (name, value) in values {
            let v = *value;
            let parts: Vec<&str> = name.split('.').collect();
            match parts.as_slice() {
                ["clock", "ns"] => {}
                ["port", port, stat] => {
                    let metric = match *stat {
                        "ipackets" => Some("m6_port_receive_packets_total"),
                        "opackets" => Some("m6_port_transmit_packets_total"),
                        "ibytes" => Some("m6_port_receive_bytes_total"),
                        "obytes" => Some("m6_port_transmit_bytes_total"),
                        "imissed" => Some("m6_port_receive_missed_total"),
                        "rx_nombuf" => Some("m6_port_receive_nombuf_total"),
                        "ierrors" => Some("m6_port_receive_errors_total"),
                        "oerrors" => Some("m6_port_transmit_errors_total"),
                        "tx_full_drops" => Some("m6_port_transmit_full_drops_total"),
                        _ => None,
                    };
                    if let Some(m) = metric {
                        self.mirror(m, &[port], v);
                    } else if let Some((dir, q)) = queue_stat(stat) {
                        self.mirror("m6_queue_packets_total", &[port, &q, dir], v);
                    } else {
                        self.mirror("m6_dataplane_events_total", &[name], v);
                    }
                }
                ["class", class] => self.mirror("m6_class_packets_total", &[class], v),
                ["drop", reason] => {
                    self.mirror("m6_drops_total", &[reason], v);
                    if *reason == "cc_rate_limited" {
                        self.mirror("m6_cc_rate_limited_total", &[], v);
                    }
                }
                ["isp", isp, stat] => {
                    let metric = match *stat {
                        "tx_packets" => "m6_isp_transmit_packets_total",
                        "tx_bytes" => "m6_isp_transmit_bytes_total",
                        "rx_packets" => "m6_isp_receive_packets_total",
                        "rx_bytes" => "m6_isp_receive_bytes_total",
                        _ => "m6_dataplane_events_total",
                    };
                    if metric == "m6_dataplane_events_total" {
                        self.mirror(metric, &[name], v);
                    } else {
                        self.mirror(metric, &[isp], v);
                    }
                }
                ["rewrite", result] => self.mirror("m6_rewrites_total", &[result], v),
                ["proxy", "translated_out"] => self.mirror("m6_proxy_packets_total", &["out"], v),
                ["proxy", "translated_in"] => self.mirror("m6_proxy_packets_total", &["in"], v),
                ["proxy", "plain_out"] => self.mirror("m6_proxy_packets_total", &["plain_out"], v),
                ["proxy", "cc_answered"] => self.mirror("m6_cc_answered_total", &[], v),
                ["health", "probes_sent"] => self.mirror("m6_health_probes_sent_total", &[], v),
                ["health", "rounds_answered"] => {
                    self.mirror("m6_health_rounds_total", &["answered"], v)
                }
                ["health", "rounds_missed"] => {
                    self.mirror("m6_health_rounds_total", &["missed"], v)
                }
                ["ra", "sent"] => self.mirror("m6_router_advertisements_sent_total", &[], v),
                ["ra", "solicitations"] => self.mirror("m6_router_solicitations_total", &[], v),
                ["nptv6", "translated_out"] => self.mirror("m6_nptv6_packets_total", &["out"], v),
                ["nptv6", "translated_in"] => self.mirror("m6_nptv6_packets_total", &["in"], v),
                ["worker", w, "polls_busy"] => {
                    self.mirror("m6_worker_polls_total", &[w, "busy"], v);
                    polls.entry(w.to_string()).or_default().0 = v;
                }
                ["worker", w, "polls_idle"] => {
                    self.mirror("m6_worker_polls_total", &[w, "idle"], v);
                    polls.entry(w.to_string()).or_default().1 = v;
                }
                // The pipeline's own per-port view duplicates the PMD's.
                ["rx" | "tx", _, _] => {}
                _ => self.mirror("m6_dataplane_events_total", &[name], v),
            }
        }
        for (w, (busy, idle)) in polls {
            let (b0, i0) = self.polls.get(&w).copied().unwrap_or((0, 0));
            let (db, di) = (busy.saturating_sub(b0), idle.saturating_sub(i0));
            if db + di > 0 {
                self.worker_busy
                    .with_label_values(&[&w])
                    .set(db as f64 / (db + di) as f64);
            }
            self.polls.insert(w, (busy, idle));
        }
    }

    /// Forgets what was mirrored from the dataplane: the next values count from zero.
    fn dataplane_restarted(&mut self) {
        let ours: Vec<_> = self
            .last
            .keys()
            .filter(|(name, _)| !CONTROL_PLANE_COUNTERS.contains(name))
            .cloned()
            .collect();
        for (name, labels) in ours {
            self.last.remove(&(name, labels.clone()));
            if let Some(vec) = self.counters.get(name) {
                let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
                vec.with_label_values(&labels).reset();
            }
        }
        self.rounds.clear();
        self.polls.clear();
    }

    /// Takes one ISP's state from the dataplane.
    pub fn isp_state(&mut self, s: &IspSample) {
        let name = s.name;
        self.gauge("m6_isp_up", &[name], i64::from(s.usable));
        self.gauge("m6_isp_drained", &[name], i64::from(s.drained));
        self.mirror("m6_isp_state_changes_total", &[name], s.withdrawals);
        // One observation per answered round: the message comes with each new one.
        let seen = self.rounds.insert(s.isp, s.probe_rounds).unwrap_or(0);
        if s.probe_rounds > seen && s.rtt_us > 0 {
            self.probe_rtt
                .with_label_values(&[name])
                .observe(f64::from(s.rtt_us) / 1e6);
        }
    }

    /// Takes the engine's figures.
    pub fn engine(&mut self, s: &EngineStats, by_state: &[(&'static str, u64)]) {
        self.mirror("m6_handshakes_started_total", &[], s.contexts_created);
        self.mirror("m6_handshakes_completed_total", &[], s.handshakes_completed);
        self.mirror("m6_handshakes_failed_total", &[], s.handshakes_failed);
        for (i, t) in CODE_NAMES.iter().enumerate() {
            self.mirror("m6_control_messages_sent_total", &[t], s.sent_by_code[i]);
            self.mirror(
                "m6_control_messages_received_total",
                &[t],
                s.received_by_code[i],
            );
            self.mirror(
                "m6_control_messages_rejected_total",
                &[t],
                s.dropped_by_code[i],
            );
            self.mirror(
                "m6_retransmissions_total",
                &[t],
                s.retransmissions_by_code[i],
            );
        }
        self.mirror("m6_dns_cache_hits_total", &[], s.dns_cache_hits);
        self.mirror("m6_dns_cache_misses_total", &[], s.dns_cache_misses);
        for (state, n) in by_state {
            self.gauge(
                "m6_contexts",
                &[state],
                i64::try_from(*n).unwrap_or(i64::MAX),
            );
        }
    }

    /// A finished handshake.
    pub fn handshake(&self, took: Duration) {
        self.handshake_duration
            .with_label_values(&[] as &[&str])
            .observe(took.as_secs_f64());
    }

    /// A finished DNS lookup with its outcome (`ok`, `permanent`, `transient`).
    pub fn dns_lookup(&self, outcome: &str, took: Duration) {
        if let Some(c) = self.counters.get("m6_dns_lookups_total") {
            c.with_label_values(&[outcome]).inc();
        }
        self.dns_duration
            .with_label_values(&[outcome])
            .observe(took.as_secs_f64());
    }

    /// The channel's connections so far and whether it is up now.
    pub fn channel(&mut self, connections: u64, connected: bool) {
        self.mirror("m6_channel_connections_total", &[], connections);
        self.gauge("m6_dataplane_connected", &[], i64::from(connected));
    }

    pub fn birthday(&self, b: u64) {
        self.birthday.set(i64::try_from(b).unwrap_or(i64::MAX));
    }
}

/// `rx_q3_packets` -> ("receive", "3").
fn queue_stat(stat: &str) -> Option<(&'static str, String)> {
    let (dir, rest) = if let Some(r) = stat.strip_prefix("rx_q") {
        ("receive", r)
    } else {
        ("transmit", stat.strip_prefix("tx_q")?)
    };
    let q = rest.strip_suffix("_packets")?;
    q.parse::<u16>().ok().map(|q| (dir, q.to_string()))
}

fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    if TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .is_err()
    {
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Serves `GET /metrics` on `addr` from a thread of its own until the process ends.
pub fn serve(addr: SocketAddr, registry: Registry) -> Result<(), String> {
    let server =
        tiny_http::Server::http(addr).map_err(|e| format!("metrics_address {addr}: {e}"))?;
    std::thread::Builder::new()
        .name("m6-metrics".into())
        .spawn(move || {
            for req in server.incoming_requests() {
                let response = if req.url() == "/metrics" {
                    let header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"text/plain; version=0.0.4; charset=utf-8"[..],
                    )
                    .expect("a valid header");
                    tiny_http::Response::from_string(render(&registry)).with_header(header)
                } else {
                    tiny_http::Response::from_string("m6-controlplane: see /metrics\n")
                        .with_status_code(404)
                };
                let _ = req.respond(response);
            }
        })
        .map_err(|e| format!("metrics thread: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    #[test]
    fn dataplane_counters_are_mirrored_and_a_restart_resets_them() {
        let mut m = Metrics::new();
        let snap = |n: u64| {
            vec![
                ("port.lan.ipackets".to_string(), n),
                ("port.lan.rx_q0_packets".to_string(), n),
                ("drop.cc_rate_limited".to_string(), 2),
                ("isp.isp1.tx_bytes".to_string(), 10 * n),
                ("neighbor.ns_multicast_sent".to_string(), 1),
                ("worker.0.polls_busy".to_string(), n),
                ("worker.0.polls_idle".to_string(), 3 * n),
            ]
        };
        m.dataplane_counters(&snap(100));
        m.dataplane_counters(&snap(150));
        let t = m.render();
        assert_eq!(
            value(&t, "m6_port_receive_packets_total{port=\"lan\"}"),
            Some(150.0)
        );
        assert_eq!(
            value(
                &t,
                "m6_queue_packets_total{direction=\"receive\",port=\"lan\",queue=\"0\"}"
            ),
            Some(150.0)
        );
        assert_eq!(
            value(&t, "m6_drops_total{reason=\"cc_rate_limited\"}"),
            Some(2.0)
        );
        assert_eq!(value(&t, "m6_cc_rate_limited_total"), Some(2.0));
        assert_eq!(
            value(&t, "m6_isp_transmit_bytes_total{isp=\"isp1\"}"),
            Some(1500.0)
        );
        assert_eq!(
            value(
                &t,
                "m6_dataplane_events_total{name=\"neighbor.ns_multicast_sent\"}"
            ),
            Some(1.0)
        );
        assert_eq!(value(&t, "m6_worker_busy_ratio{worker=\"0\"}"), Some(0.25));
        // The dataplane restarted (its clock went back): counters start over rather than go
        // backwards, even one already past its last value.
        let mut restarted = snap(7);
        restarted.push(("clock.ns".to_string(), 1));
        restarted.push(("drop.cc_rate_limited".to_string(), 5));
        m.dataplane_counters(&[("clock.ns".to_string(), 9_000_000_000)]);
        m.dataplane_counters(&restarted);
        assert_eq!(
            value(&m.render(), "m6_drops_total{reason=\"cc_rate_limited\"}"),
            Some(5.0)
        );
        assert_eq!(
            value(&m.render(), "m6_port_receive_packets_total{port=\"lan\"}"),
            Some(7.0)
        );
    }

    #[test]
    fn probe_rtts_are_observed_once_per_round() {
        let m = &mut Metrics::new();
        let sample = |usable, drained, withdrawals, probe_rounds, rtt_us| IspSample {
            isp: 0,
            name: "isp1",
            usable,
            drained,
            withdrawals,
            probe_rounds,
            rtt_us,
        };
        m.isp_state(&sample(true, false, 0, 1, 1200));
        m.isp_state(&sample(true, false, 0, 1, 1200));
        m.isp_state(&sample(false, true, 1, 2, 900));
        let t = m.render();
        assert_eq!(
            value(&t, "m6_isp_probe_rtt_seconds_count{isp=\"isp1\"}"),
            Some(2.0)
        );
        assert_eq!(value(&t, "m6_isp_up{isp=\"isp1\"}"), Some(0.0));
        assert_eq!(value(&t, "m6_isp_drained{isp=\"isp1\"}"), Some(1.0));
        assert_eq!(
            value(&t, "m6_isp_state_changes_total{isp=\"isp1\"}"),
            Some(1.0)
        );
        assert!(t.contains("m6_build_info{version="));
    }
}
