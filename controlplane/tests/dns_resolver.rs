//! The resolver service (`controlplane::dns`) against a real authoritative server: Knot DNS
//! on a loopback port serving the zones of `lab/dns/site.rs`, with a wire tap in front that
//! logs every query. Each case checks the [`DnsResult`] the engine would get and the queries
//! that went on the wire (seed 001 sections 3.1, 7.13, 16.2; DESIGN.md section 7).
//!
//! Needs `knotd`/`knotc` (`make setup` installs them); without them every test fails.

#[path = "../../lab/dns/harness.rs"]
mod harness;
#[path = "../../lab/dns/site.rs"]
mod site;

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use controlplane::dns::{Completion, DnsConfig, DnsService};
use controlplane::engine::dns::{DnsAnswer, DnsQuery, DnsQueryId, DnsResult};
use harness::{Knot, Tap, Zone};
use site::*;

/// Resolver, tap and server; dropped in that order.
struct World {
    svc: DnsService,
    tap: Tap,
    knot: Knot,
    next: u64,
}

fn world_with(
    zones: Vec<Zone>,
    tweak: impl FnOnce(&mut DnsConfig),
    waker: Option<Arc<mio::Waker>>,
) -> World {
    let knot = Knot::start(zones);
    let tap = Tap::start(knot.addr);
    let mut cfg = DnsConfig {
        servers: vec![tap.addr.to_string()],
        timeout_ms: Some(250),
        attempts: Some(2),
        ..DnsConfig::default()
    };
    tweak(&mut cfg);
    let svc = DnsService::start(cfg.resolver_setup().expect("dns config"), waker)
        .expect("resolver thread");
    World {
        svc,
        tap,
        knot,
        next: 0,
    }
}

fn world() -> World {
    world_with(zones(), |_| {}, None)
}

impl World {
    fn ask(&mut self, q: DnsQuery) -> Completion {
        self.next += 1;
        let id = DnsQueryId(self.next);
        self.svc.submit(id, q.clone());
        let c = self
            .svc
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no answer to {q:?} within 10 s"));
        assert_eq!(c.id, id);
        assert_eq!(c.query, q);
        c
    }

    fn fwd(&mut self, name: &str) -> DnsResult {
        self.ask(DnsQuery::Forward(name.to_string())).result
    }

    fn rev(&mut self, a: Ipv6Addr) -> DnsResult {
        self.ask(DnsQuery::Reverse(a)).result
    }
}

fn forward(addrs: &[Ipv6Addr], m6: bool, ttl: u32) -> DnsResult {
    DnsResult::Ok {
        answer: DnsAnswer::Forward {
            addrs: addrs.to_vec(),
            m6,
        },
        ttl,
    }
}

fn reverse(names: &[&str], ttl: u32) -> DnsResult {
    DnsResult::Ok {
        answer: DnsAnswer::Reverse {
            names: names.iter().map(|s| s.to_string()).collect(),
        },
        ttl,
    }
}

fn sorted_fwd(r: DnsResult) -> DnsResult {
    match r {
        DnsResult::Ok {
            answer: DnsAnswer::Forward { mut addrs, m6 },
            ttl,
        } => {
            addrs.sort();
            forward(&addrs, m6, ttl)
        }
        other => other,
    }
}

#[test]
fn dns_resolver_consistent_multihomed_host() {
    let mut w = world();
    let before = w.knot.queries_received();
    // AAAA set and marker in one lookup; TTL = the smallest (MH2's AAAA has 120 s).
    assert_eq!(sorted_fwd(w.fwd(MH)), forward(&[MH1, MH2], true, 120));
    assert_eq!(w.rev(MH1), reverse(&[MH], TTL));
    assert_eq!(w.rev(MH2), reverse(&[MH], TTL));
    // On the wire: one AAAA and one marker query, one PTR per locator, nothing else.
    assert_eq!(w.tap.aaaa_count(MH), 1);
    assert_eq!(w.tap.marker_count(MH), 1);
    assert_eq!(w.tap.ptr_count(MH1), 1);
    assert_eq!(w.tap.ptr_count(MH2), 1);
    assert_eq!(w.tap.total(), 4);
    // The server saw the same four queries.
    assert_eq!(w.knot.queries_received() - before, 4);
}

#[test]
fn dns_resolver_nxdomain_and_nodata_are_permanent_and_sent_once() {
    let mut w = world();
    assert_eq!(w.fwd(NONAME), DnsResult::Permanent, "NXDOMAIN");
    assert_eq!(w.tap.aaaa_count(NONAME), 1);
    assert_eq!(w.tap.marker_count(NONAME), 1);
    // The zone apex exists but has neither AAAA nor marker: NODATA twice.
    assert_eq!(w.fwd("m6.test"), DnsResult::Permanent, "NODATA");
    // An address without PTR inside the served reverse zone: NXDOMAIN.
    assert_eq!(w.rev(NOPTR), DnsResult::Permanent);
    assert_eq!(
        w.tap.ptr_count(NOPTR),
        1,
        "a permanent failure is not retried"
    );
    // The host with no reverse records at all.
    assert_eq!(w.rev(NOREV1), DnsResult::Permanent);
    assert_eq!(w.rev(NOREV2), DnsResult::Permanent);
    assert_eq!(w.tap.total(), 7);
    // A reverse zone that is delegated and served but empty: NXDOMAIN from its own apex.
    assert_eq!(w.rev(EMPTYREV1), DnsResult::Permanent);
    assert_eq!(w.tap.ptr_count(EMPTYREV1), 1);
    assert_eq!(w.tap.total(), 8);
}

/// No reverse zone at all, as the authoritative-only test server sees it: REFUSED, so
/// transient (and not retried by hickory). A recursive resolver would return the parent's
/// NXDOMAIN instead, which is permanent (docs/dns.md, "No reverse zone").
#[test]
fn dns_resolver_unserved_reverse_zone_is_refused_by_the_test_server() {
    let mut w = world();
    assert_eq!(w.rev(UNSERVED1), DnsResult::Transient);
    assert_eq!(w.tap.ptr_count(UNSERVED1), 1);
}

#[test]
fn dns_resolver_marker_absent_or_with_content_is_not_m6() {
    let zones = vec![
        forward_zone_with(&[
            "full.m6.test. 300 IN AAAA 2001:db8:ab::1",
            "full.m6.test. 300 IN TYPE65280 \\# 1 01",
            "alt.m6.test. 300 IN AAAA 2001:db8:ab::2",
            "alt.m6.test. 300 IN TYPE65281 \\# 0",
        ]),
        site::reverse(),
    ];
    let mut w = world_with(zones.clone(), |_| {}, None);
    // No marker: not M6; the TTL is bounded by the marker's negative TTL (SOA minimum).
    assert_eq!(w.fwd(LEGACY), forward(&[LEGACY1], false, NEG_TTL));
    assert_eq!(w.rev(LEGACY1), reverse(&[LEGACY], TTL));
    // A record of the marker type with RDATA is not the marker.
    let full: Ipv6Addr = "2001:db8:ab::1".parse().unwrap();
    assert_eq!(w.fwd("full.m6.test"), forward(&[full], false, TTL));
    // The marker type is configurable.
    let alt: Ipv6Addr = "2001:db8:ab::2".parse().unwrap();
    assert_eq!(w.fwd("alt.m6.test"), forward(&[alt], false, NEG_TTL));
    drop(w);
    let mut w = world_with(zones, |c| c.marker_type = 65281, None);
    assert_eq!(w.fwd("alt.m6.test"), forward(&[alt], true, TTL));
    assert_eq!(w.tap.count("alt.m6.test", 65281), 1);
    assert_eq!(w.tap.count("alt.m6.test", 65280), 0);
}

fn forward_zone_with(lines: &[&str]) -> Zone {
    lines.iter().fold(site::forward(), |z, l| z.line(l))
}

#[test]
fn dns_resolver_multiple_ptr_names_are_all_returned() {
    let mut w = world();
    let DnsResult::Ok {
        answer: DnsAnswer::Reverse { names },
        ttl,
    } = w.rev(VH1)
    else {
        panic!("PTR of VH1")
    };
    let got: BTreeSet<String> = names.into_iter().collect();
    let want: BTreeSet<String> = [WWW1, WWW2].iter().map(|s| s.to_string()).collect();
    assert_eq!(got, want);
    assert_eq!(ttl, TTL);
    assert_eq!(w.tap.ptr_count(VH1), 1);
}

#[test]
fn dns_resolver_servfail_and_refused_are_transient_and_sent_once() {
    let mut w = world();
    let before = w.knot.stats();
    let servfails = |s: &std::collections::HashMap<String, u64>| {
        s.get("mod-stats.response-code[SERVFAIL]")
            .copied()
            .unwrap_or(0)
    };
    // The reverse zone of 2001:db8:5::/48 is configured but cannot load.
    assert_eq!(w.rev(SF1), DnsResult::Transient);
    assert_eq!(
        w.tap.ptr_count(SF1),
        1,
        "hickory does not retry a SERVFAIL itself"
    );
    // So is the forward zone broken.test.
    assert_eq!(w.fwd(SF_FORWARD), DnsResult::Transient);
    assert_eq!(w.tap.aaaa_count(SF_FORWARD), 1);
    assert_eq!(w.tap.marker_count(SF_FORWARD), 1);
    assert_eq!(servfails(&w.knot.stats()) - servfails(&before), 3);
    // A zone the server does not serve: REFUSED, which says nothing about the name.
    assert_eq!(w.fwd("h.elsewhere.test"), DnsResult::Transient);
    // The forward records of the SERVFAIL host are fine.
    assert_eq!(w.fwd(SF), forward(&[SF1], true, TTL));
}

#[test]
fn dns_resolver_stopped_server_times_out_after_the_configured_attempts() {
    let mut w = world_with(
        zones(),
        |c| {
            c.timeout_ms = Some(200);
            c.attempts = Some(3);
        },
        None,
    );
    w.knot.stop();
    let c = w.ask(DnsQuery::Reverse(MH1));
    assert_eq!(c.result, DnsResult::Transient);
    assert_eq!(w.tap.ptr_count(MH1), 3, "attempts = tries on the wire");
    assert!(
        c.took >= Duration::from_millis(3 * 200),
        "took {:?}",
        c.took
    );
    assert!(c.took < Duration::from_secs(3), "took {:?}", c.took);
    let seen = w.tap.seen();
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(190), "tries {gap:?} apart");
    }
    // Back up: the same lookup succeeds.
    w.knot.restart();
    assert_eq!(w.rev(MH1), reverse(&[MH], TTL));
    assert_eq!(w.tap.ptr_count(MH1), 4);
}

#[test]
fn dns_resolver_has_no_cache_of_its_own_and_reports_zero_ttls() {
    let mut w = world();
    // The engine caches (with its TTL floor, on its clock); the resolver must not.
    assert_eq!(sorted_fwd(w.fwd(MH)), forward(&[MH1, MH2], true, 120));
    assert_eq!(sorted_fwd(w.fwd(MH)), forward(&[MH1, MH2], true, 120));
    assert_eq!(w.tap.aaaa_count(MH), 2);
    assert_eq!(w.tap.marker_count(MH), 2);
    // A zero TTL is reported as is; the engine applies the floor.
    assert_eq!(w.fwd(SHORT), forward(&[SHORT1], true, 0));
    assert_eq!(w.rev(SHORT1), reverse(&[SHORT], 0));
}

#[test]
fn dns_resolver_results_wake_the_mio_loop_which_never_blocks() {
    use mio::{Events, Poll, Token, Waker};
    const WAKE: Token = Token(7);
    let mut poll = Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
    let w = world_with(
        zones(),
        |c| {
            c.timeout_ms = Some(300);
            c.attempts = Some(1);
        },
        Some(waker),
    );
    let mut events = Events::with_capacity(8);
    // Submitting never waits for the DNS, even with the server down.
    let mut w = w;
    w.knot.stop();
    let t = Instant::now();
    for i in 0..50u16 {
        w.svc.submit(
            DnsQueryId(1000 + u64::from(i)),
            DnsQuery::Reverse(Ipv6Addr::new(0x2001, 0xdb8, 0x77, i, 0, 0, 0, 1)),
        );
    }
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "submit blocked for {:?}",
        t.elapsed()
    );
    w.knot.restart();
    w.svc.submit(DnsQueryId(1), DnsQuery::Reverse(MH1));
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 51 && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(events.iter().all(|e| e.token() == WAKE));
        while let Some(c) = w.svc.try_recv() {
            got.push(c);
        }
    }
    assert_eq!(got.len(), 51);
    let mh1 = got.iter().find(|c| c.id == DnsQueryId(1)).unwrap();
    assert_eq!(mh1.result, reverse(&[MH], TTL));
    let s = w.svc.stats();
    assert_eq!(s.submitted, 51);
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn dns_resolver_full_queue_answers_transient_at_once() {
    let mut w = world_with(
        zones(),
        |c| {
            c.timeout_ms = Some(300);
            c.attempts = Some(1);
            c.max_inflight = 1;
            c.queue = 2;
        },
        None,
    );
    w.knot.stop();
    for i in 0..20u16 {
        w.svc.submit(
            DnsQueryId(u64::from(i)),
            DnsQuery::Reverse(Ipv6Addr::new(0x2001, 0xdb8, 0x77, i, 0, 0, 0, 1)),
        );
    }
    // Those that did not fit are answered at once (transient: the engine retries later).
    let mut immediate = 0;
    while let Some(c) = w.svc.recv_timeout(Duration::from_millis(20)) {
        assert_eq!(c.result, DnsResult::Transient);
        if c.took == Duration::ZERO {
            immediate += 1;
        }
    }
    let s = w.svc.stats();
    assert!(s.overflow >= 16, "{s:?}");
    assert_eq!(immediate, s.overflow);
    // At most max_inflight + queue lookups reached the wire.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(w.tap.total() <= 4, "{} queries", w.tap.total());
    w.next = 100;
    w.knot.restart();
    while w.svc.recv_timeout(Duration::from_millis(500)).is_some() {}
    assert_eq!(w.rev(MH1), reverse(&[MH], TTL));
}

#[test]
fn dns_resolver_drop_with_queued_lookups_returns_promptly() {
    // One lookup at a time against a stopped server: before the shutdown flag, dropping
    // the service ran every queued lookup to its timeout (~ queue x timeout, 5.7 s here).
    let w = world_with(
        zones(),
        |c| {
            c.timeout_ms = Some(300);
            c.attempts = Some(1);
            c.max_inflight = 1;
            c.queue = 64;
        },
        None,
    );
    let World {
        svc, tap, mut knot, ..
    } = w;
    knot.stop();
    const N: u16 = 20;
    for i in 0..N {
        svc.submit(
            DnsQueryId(u64::from(i)),
            DnsQuery::Reverse(Ipv6Addr::new(0x2001, 0xdb8, 0x77, i, 0, 0, 0, 1)),
        );
    }
    // Let the first lookup reach the wire so one is really in flight at the drop.
    let deadline = Instant::now() + Duration::from_secs(2);
    while tap.total() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(tap.total() >= 1, "no lookup reached the wire");
    let results = svc.results().clone();
    let t = Instant::now();
    drop(svc);
    let took = t.elapsed();
    eprintln!("measured: drop with {N} lookups queued against a stopped server took {took:?}");
    assert!(took < Duration::from_secs(1), "drop took {took:?}");
    // The queued lookups were answered transient without going to the wire; only the one
    // in flight (cancelled) may be missing.
    let answered: Vec<Completion> = results.try_iter().collect();
    assert!(
        answered.len() >= usize::from(N) - 1,
        "{} of {N} answered",
        answered.len()
    );
    assert!(answered.iter().all(|c| c.result == DnsResult::Transient));
    assert!(tap.total() <= 2, "{} queries on the wire", tap.total());
    drop(tap);
    drop(knot);
}

/// The zone files docs/dns.md shows (lab/dns/example/) load in Knot and give what the
/// document says: `www` is M6 with both locators, each PTR points back, `printer` is not M6.
#[test]
fn dns_resolver_docs_example_zones() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/dns/example");
    let zones: Vec<Zone> = [
        "example.net.",
        "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
        "2.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
    ]
    .iter()
    .map(|o| Zone::from_file(o, &dir.join(format!("{o}zone"))))
    .collect();
    let mut w = world_with(zones, |_| {}, None);
    let www1: Ipv6Addr = "2001:db8:1:1::10".parse().unwrap();
    let www2: Ipv6Addr = "2001:db8:2:1::10".parse().unwrap();
    let printer: Ipv6Addr = "2001:db8:1:1::20".parse().unwrap();
    assert_eq!(
        sorted_fwd(w.fwd("www.example.net")),
        forward(&[www1, www2], true, 3600)
    );
    assert_eq!(w.rev(www1), reverse(&["www.example.net"], 3600));
    assert_eq!(w.rev(www2), reverse(&["www.example.net"], 3600));
    assert_eq!(
        w.fwd("printer.example.net"),
        forward(&[printer], false, 300)
    );
    assert_eq!(w.rev(printer), reverse(&["printer.example.net"], 3600));
}
