//! End to end: the signaling engine with the real resolver (`controlplane::dns`) against a
//! real authoritative server (Knot DNS, zones of `lab/dns/site.rs`), on a mock clock.
//!
//! Two engines talk through a lossless 10 ms network: node 0 is our site's proxy for the
//! local host `host.m6.test` (SITE1, SITE2), node 1 plays the peer (an M6 host of the test
//! world). Every [`Action::Dns`] of either engine becomes real queries on the wire, through
//! the tap that counts them; the mock clock stands still while a lookup is on the wire, so
//! every retry time below is exact engine time. Assertions are on the engines' actions: which
//! locators end up verified (Lsv(peer) in [`Action::Install`]), what is never installed as a
//! destination, how many queries went out and when.
//!
//! Needs `knotd`/`knotc` (`make setup` installs them); without them every test fails.

#[path = "../../lab/dns/harness.rs"]
mod harness;
#[path = "../../lab/dns/site.rs"]
mod site;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv6Addr;
use std::time::Duration;

use controlplane::dns::{DnsConfig, DnsService};
use controlplane::engine::{
    Action, AdminCommand, DataPathEvent, DataplaneContext, DestinationStatus, DnsQuery, DnsQueryId,
    DnsResult, Engine, EngineConfig, Event, LocalHost, Repr, TimerId,
};
use harness::{Knot, Tap, Zone};
use proto::cc::{CcKey, CcKeyring};
use site::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

enum Item {
    Msg {
        to: usize,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        repr: Box<Repr>,
    },
    Timer {
        node: usize,
        id: TimerId,
    },
}

/// One lookup an engine asked for, and what came back.
#[derive(Debug, Clone)]
struct Lookup {
    node: usize,
    at: Duration,
    query: DnsQuery,
    result: Option<DnsResult>,
}

/// The test world. Fields drop in order: the resolver first, the tap, then the server.
struct Net {
    svc: DnsService,
    tap: Tap,
    knot: Knot,
    e: Vec<Engine>,
    now: Duration,
    owners: HashMap<Ipv6Addr, usize>,
    queue: BTreeMap<(Duration, u64), Item>,
    seq: u64,
    timers: Vec<HashMap<TimerId, Duration>>,
    /// Service id -> (node, engine id, index in `lookups`).
    pending: HashMap<DnsQueryId, (usize, DnsQueryId, usize)>,
    next_svc_id: u64,
    lookups: Vec<Lookup>,
    installs: Vec<(usize, Duration, DataplaneContext)>,
    dests: Vec<(usize, Duration, Ipv6Addr, DestinationStatus)>,
    sent: Vec<(usize, Duration, Ipv6Addr, Ipv6Addr, Repr)>,
    /// Never a destination in any Install, checked on every action.
    forbidden: Vec<Ipv6Addr>,
}

fn engine_cfg() -> EngineConfig {
    EngineConfig {
        context_idle_time: secs(300),
        ..EngineConfig::default()
    }
}

impl Net {
    fn new(zones: Vec<Zone>, tweak: impl FnOnce(&mut DnsConfig)) -> Net {
        let knot = Knot::start(zones);
        let tap = Tap::start(knot.addr);
        // The mock clock stands still while a lookup is on the wire, so the real per-try
        // timeout costs no engine time; it is generous (1 s, not 100 ms) because the tests
        // assert exact query counts on the wire and a reply later than the timeout (a loaded
        // 2-core CI machine) would show up as a retry. Only tests against a stopped server
        // actually wait for it.
        let mut cfg = DnsConfig {
            servers: vec![tap.addr.to_string()],
            timeout_ms: Some(1000),
            attempts: Some(2),
            ..DnsConfig::default()
        };
        tweak(&mut cfg);
        let svc =
            DnsService::start(cfg.resolver_setup().expect("dns config"), None).expect("resolver");
        Net {
            svc,
            tap,
            knot,
            e: Vec::new(),
            now: secs(1),
            owners: HashMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            timers: Vec::new(),
            pending: HashMap::new(),
            next_svc_id: 0,
            lookups: Vec::new(),
            installs: Vec::new(),
            dests: Vec::new(),
            sent: Vec::new(),
            forbidden: Vec::new(),
        }
    }

    /// Adds an engine with one local host; returns the node index.
    fn node(&mut self, cfg: EngineConfig, locators: &[Ipv6Addr]) -> usize {
        let n = self.e.len();
        let key = CcKeyring::new(CcKey::new(1, &[n as u8 + 1; 32]));
        let mut e = Engine::new(cfg, 1000 * (n as u32 + 1), 7 + n as u64, key);
        e.add_host(LocalHost {
            locators: locators.to_vec(),
            dns_verifiable: true,
        });
        for l in locators {
            self.owners.insert(*l, n);
        }
        self.e.push(e);
        self.timers.push(HashMap::new());
        n
    }

    fn push(&mut self, at: Duration, it: Item) {
        self.seq += 1;
        self.queue.insert((at, self.seq), it);
    }

    fn feed(&mut self, node: usize, ev: Event) -> Vec<Action> {
        let actions = self.e[node].handle(ev, self.now);
        for a in actions.clone() {
            self.apply(node, a);
        }
        actions
    }

    fn apply(&mut self, node: usize, a: Action) {
        match a {
            Action::Send { src, dst, repr } => {
                self.sent.push((node, self.now, src, dst, repr.clone()));
                if let Some(&to) = self.owners.get(&dst) {
                    if to != node {
                        let at = self.now + ms(10);
                        self.push(
                            at,
                            Item::Msg {
                                to,
                                src,
                                dst,
                                repr: Box::new(repr),
                            },
                        );
                    }
                }
            }
            Action::Dns { id, query } => {
                self.next_svc_id += 1;
                let sid = DnsQueryId(self.next_svc_id);
                self.pending.insert(sid, (node, id, self.lookups.len()));
                self.lookups.push(Lookup {
                    node,
                    at: self.now,
                    query: query.clone(),
                    result: None,
                });
                self.svc.submit(sid, query);
            }
            Action::ArmTimer { id, at } => {
                self.timers[node].insert(id, at);
                self.push(at.max(self.now), Item::Timer { node, id });
            }
            Action::CancelTimer(id) => {
                self.timers[node].remove(&id);
            }
            Action::Install(dp) => {
                // The safety rule of section 7.13, checked on every action of every test.
                if let Some(lp) = dp.lp_peer {
                    assert!(dp.lsv_peer.contains(&lp), "Lp(peer) not verified: {dp:?}");
                }
                for f in &self.forbidden {
                    assert!(
                        !dp.lsv_peer.contains(f),
                        "{f} installed as a destination: {dp:?}"
                    );
                }
                self.installs.push((node, self.now, dp));
            }
            Action::Destination { aid_peer, status } => {
                self.dests.push((node, self.now, aid_peer, status));
            }
            _ => {}
        }
    }

    /// Waits (real time, mock clock stopped) until every lookup on the wire is answered and
    /// fed back, including lookups those answers start.
    fn settle_dns(&mut self) {
        while !self.pending.is_empty() {
            let c = self
                .svc
                .recv_timeout(secs(20))
                .expect("the resolver answers every lookup within 20 s");
            let (node, id, idx) = self.pending.remove(&c.id).expect("a lookup we submitted");
            self.lookups[idx].result = Some(c.result.clone());
            self.feed(
                node,
                Event::Dns {
                    id,
                    result: c.result,
                },
            );
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.settle_dns();
            let Some((&(at, seq), _)) = self.queue.first_key_value() else {
                break;
            };
            if at > end {
                break;
            }
            let Some(it) = self.queue.remove(&(at, seq)) else {
                break;
            };
            self.now = at;
            match it {
                Item::Msg { to, src, dst, repr } => {
                    self.feed(
                        to,
                        Event::Received {
                            src,
                            dst,
                            repr: *repr,
                        },
                    );
                }
                Item::Timer { node, id } => {
                    if self.timers[node].remove(&id).is_some() {
                        self.feed(node, Event::Timer(id));
                    }
                }
            }
        }
        self.now = end;
    }

    fn first_packet(
        &mut self,
        node: usize,
        aid_local: Ipv6Addr,
        aid_peer: Ipv6Addr,
    ) -> Vec<Action> {
        self.feed(
            node,
            Event::DataPath(DataPathEvent::FirstPacket {
                aid_local,
                aid_peer,
                piggyback: None,
            }),
        )
    }

    /// Engine times at which `q` was asked for.
    fn asked(&self, q: &DnsQuery) -> Vec<Duration> {
        self.lookups
            .iter()
            .filter(|l| &l.query == q)
            .map(|l| l.at)
            .collect()
    }

    fn lookups_by(&self, node: usize) -> usize {
        self.lookups.iter().filter(|l| l.node == node).count()
    }

    /// The last tuple installed by `node` for `aid_peer`.
    fn installed(&self, node: usize, aid_peer: Ipv6Addr) -> Option<&DataplaneContext> {
        self.installs
            .iter()
            .rev()
            .find(|(n, _, dp)| *n == node && dp.aid_peer == aid_peer)
            .map(|(_, _, dp)| dp)
    }

    /// Every locator ever installed as a destination by `node`.
    fn ever_destination(&self, node: usize) -> BTreeSet<Ipv6Addr> {
        self.installs
            .iter()
            .filter(|(n, _, _)| *n == node)
            .flat_map(|(_, _, dp)| dp.lsv_peer.iter().copied().chain(dp.lp_peer))
            .collect()
    }

    fn last_destination(&self, node: usize, aid: Ipv6Addr) -> Option<DestinationStatus> {
        self.dests
            .iter()
            .rev()
            .find(|(n, _, a, _)| *n == node && *a == aid)
            .map(|(_, _, _, s)| *s)
    }
}

fn set(a: &[Ipv6Addr]) -> BTreeSet<Ipv6Addr> {
    a.iter().copied().collect()
}

fn lsv(dp: &DataplaneContext) -> BTreeSet<Ipv6Addr> {
    dp.lsv_peer.iter().copied().collect()
}

/// Checks that consecutive times follow binary exponential backoff from `first` with the
/// engine's jitter (x0.75 .. x1.25, section 7.10/7.13).
fn assert_backoff(times: &[Duration], first: Duration) {
    let mut expect = first;
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        let lo = expect.mul_f64(0.75);
        let hi = expect.mul_f64(1.25);
        assert!(
            gap >= lo && gap <= hi,
            "retry after {gap:?}, expected {expect:?} +-25% (times {times:?})"
        );
        expect *= 2;
    }
}

// ---------------------------------------------------------------------------------- tests

/// The normal case, both directions: our proxy (initiator) verifies the peer's two locators,
/// the peer (responder) verifies ours, each with one forward lookup and one reverse lookup
/// per locator - eight queries on the wire in all, none repeated.
#[test]
fn dns_engine_consistent_multihomed_peer_is_fully_verified() {
    let mut net = Net::new(zones(), |_| {});
    let a = net.node(engine_cfg(), &[SITE1, SITE2]);
    let b = net.node(engine_cfg(), &[MH1, MH2]);
    net.first_packet(a, SITE1, MH1);
    assert_eq!(
        net.last_destination(a, MH1),
        Some(DestinationStatus::Pending)
    );
    net.run_for(secs(5));

    let dp = net.installed(a, MH1).expect("context installed").clone();
    assert!(dp.transmit, "established: {dp:?}");
    assert_eq!(lsv(&dp), set(&[MH1, MH2]));
    assert_eq!(net.last_destination(a, MH1), Some(DestinationStatus::M6));
    let dp = net.installed(b, SITE1).expect("responder context").clone();
    assert_eq!(lsv(&dp), set(&[SITE1, SITE2]));

    // The engine issues the PTR lookups of all locators at once; Lsv grows one answer at a
    // time: MH2 appears in an Install only after the answer to its own PTR lookup.
    let ptr_mh2 = net.asked(&DnsQuery::Reverse(MH2));
    assert_eq!(ptr_mh2.len(), 1);
    let first_mh2 = net
        .installs
        .iter()
        .find(|(n, _, dp)| *n == a && dp.lsv_peer.contains(&MH2))
        .map(|(_, t, _)| *t)
        .unwrap();
    assert!(first_mh2 >= ptr_mh2[0]);
    assert!(net
        .installs
        .iter()
        .any(|(n, _, dp)| *n == a && lsv(dp) == set(&[MH1])));

    // Exactly the queries the protocol needs.
    for (name, addrs) in [(MH, [MH1, MH2]), (SITE, [SITE1, SITE2])] {
        assert_eq!(net.tap.aaaa_count(name), 1, "{name}");
        assert_eq!(net.tap.marker_count(name), 1, "{name}");
        for l in addrs {
            assert_eq!(net.tap.ptr_count(l), 1, "{l}");
        }
    }
    assert_eq!(net.tap.total(), 8);
    assert_eq!(
        net.lookups.len(),
        6,
        "3 lookups per side: PTR(AID), AAAA+marker, PTR(other)"
    );
}

/// A redirection attempt (M6THREATS third-party DoS): `redir` lists VICTIM among its
/// locators and announces it, but VICTIM's PTR names the victim. VICTIM is never installed
/// as a destination, not even when data arrives from it; the lookup that proved it is not
/// repeated within the TTL.
#[test]
fn dns_engine_redirected_locator_is_never_a_destination() {
    let mut net = Net::new(zones(), |_| {});
    net.forbidden = vec![VICTIM];
    let a = net.node(engine_cfg(), &[SITE1, SITE2]);
    let _b = net.node(engine_cfg(), &[REDIR1, VICTIM]);
    net.first_packet(a, SITE1, REDIR1);
    net.run_for(secs(5));
    let dp = net.installed(a, REDIR1).expect("context").clone();
    assert!(dp.transmit);
    assert_eq!(lsv(&dp), set(&[REDIR1]));
    assert!(dp.lsl_peer.contains(&VICTIM), "still accepted as a source");
    assert_eq!(net.tap.ptr_count(VICTIM), 1);

    // The attacker sends from VICTIM, hoping to become Lp(peer) (section 7.11 step 3c).
    for _ in 0..20 {
        net.feed(
            a,
            Event::DataPath(DataPathEvent::NewSourceLocator {
                key: dp.key,
                src: VICTIM,
            }),
        );
        net.run_for(ms(100));
    }
    net.run_for(secs(30));
    assert!(!net.ever_destination(a).contains(&VICTIM));
    assert_eq!(net.installed(a, REDIR1).unwrap().lp_peer, Some(REDIR1));
    assert_eq!(
        net.tap.ptr_count(VICTIM),
        1,
        "the failed check is cached for the TTL"
    );
}

/// Section 16.2: `claimer` lists MH1 in its AAAA set. Traffic to MH1 finds `mh` through
/// MH1's PTR (the initiator's reverse check of AID(peer)), never `claimer`'s set; traffic
/// to CLAIMER1 gets a context whose MH1 never verifies.
#[test]
fn dns_engine_two_names_cannot_claim_one_aid() {
    let mut net = Net::new(zones(), |_| {});
    let a = net.node(engine_cfg(), &[SITE1, SITE2]);
    net.first_packet(a, SITE1, MH1);
    net.first_packet(a, SITE2, CLAIMER1);
    net.run_for(secs(3));
    let to_mh = net.installed(a, MH1).expect("context for MH1").clone();
    assert_eq!(lsv(&to_mh), set(&[MH1, MH2]));
    assert!(
        !to_mh.lsl_peer.contains(&CLAIMER1),
        "claimer's locator not in Lsr(mh)"
    );
    let to_claimer = net
        .installed(a, CLAIMER1)
        .expect("context for CLAIMER1")
        .clone();
    assert_eq!(lsv(&to_claimer), set(&[CLAIMER1]));
    assert!(net
        .installs
        .iter()
        .filter(|(_, _, dp)| dp.aid_peer == CLAIMER1)
        .all(|(_, _, dp)| !dp.lsv_peer.contains(&MH1)));
    assert_eq!(net.tap.aaaa_count(CLAIMER), 1);
    assert_eq!(
        net.tap.ptr_count(MH1),
        1,
        "one PTR(MH1) serves both contexts (cache)"
    );
}

/// No reverse records: as initiator, the destination is not M6 and cached negatively
/// (one PTR query, no forward lookup, nothing more until negative_ttl); as responder, a
/// permanent failure on AID(peer)'s PTR means "no FQDN" and Lsr(peer) = {AID} (7.13).
#[test]
fn dns_engine_peer_without_reverse_records() {
    let mut net = Net::new(zones(), |_| {});
    let a = net.node(engine_cfg(), &[SITE1, SITE2]);
    net.first_packet(a, SITE1, NOREV1);
    net.run_for(secs(1));
    let Some(DestinationStatus::NotM6 { until }) = net.last_destination(a, NOREV1) else {
        panic!("not M6 expected: {:?}", net.dests)
    };
    assert_eq!(until, net.now - secs(1) + secs(300));
    assert_eq!(net.tap.ptr_count(NOREV1), 1);
    assert_eq!(net.tap.aaaa_count(NOREV), 0);
    assert!(net.installed(a, NOREV1).is_none());
    assert!(net.sent.is_empty(), "no INIT to a peer that is not M6");
    // Negative caching: more traffic, no more queries, until the entry expires.
    for i in 0..50 {
        net.first_packet(a, if i % 2 == 0 { SITE1 } else { SITE2 }, NOREV1);
        net.run_for(secs(5));
    }
    assert_eq!(net.tap.ptr_count(NOREV1), 1);
    net.run_for(secs(60));
    net.first_packet(a, SITE1, NOREV1);
    net.run_for(secs(1));
    assert_eq!(
        net.tap.ptr_count(NOREV1),
        2,
        "looked up again after negative_ttl"
    );

    // The norev host initiates towards our site: we are the responder.
    let mut net = Net::new(zones(), |_| {});
    let a = net.node(engine_cfg(), &[SITE1, SITE2]);
    let b = net.node(engine_cfg(), &[NOREV1, NOREV2]);
    net.first_packet(b, NOREV1, SITE1);
    net.run_for(secs(5));
    let dp = net.installed(a, NOREV1).expect("responder context").clone();
    assert!(dp.transmit);
    assert_eq!(lsv(&dp), set(&[NOREV1]), "only the AID");
    assert_eq!(
        set(&dp.lsl_peer),
        set(&[NOREV1, NOREV2]),
        "any announced source accepted"
    );
    net.feed(
        a,
        Event::DataPath(DataPathEvent::NewSourceLocator {
            key: dp.key,
            src: NOREV2,
        }),
    );
    net.run_for(secs(30));
    assert!(!net.ever_destination(a).contains(&NOREV2));
    assert_eq!(net.tap.ptr_count(NOREV1), 1);
    assert_eq!(
        net.tap.ptr_count(NOREV2),
        0,
        "no FQDN: nothing else to verify"
    );
    assert_eq!(net.tap.aaaa_count(NOREV), 0);
}

/// A host without the marker is plain IPv6, cached for the answer's TTL (here the SOA
/// minimum, 60 s, which bounds the marker's NODATA), then looked up again.
#[test]
fn dns_engine_host_without_marker_is_negatively_cached() {
    let mut net = Net::new(zones(), |_| {});
    let a = net.node(engine_cfg(), &[SITE1, SITE2]);
    let t0 = net.now;
    net.first_packet(a, SITE1, LEGACY1);
    net.run_for(secs(1));
    assert_eq!(
        net.last_destination(a, LEGACY1),
        Some(DestinationStatus::NotM6 {
            until: t0 + secs(u64::from(NEG_TTL))
        })
    );
    assert_eq!(
        (
            net.tap.ptr_count(LEGACY1),
            net.tap.aaaa_count(LEGACY),
            net.tap.marker_count(LEGACY)
        ),
        (1, 1, 1)
    );
    for _ in 0..100 {
        net.first_packet(a, SITE1, LEGACY1);
        net.run_for(ms(500));
    }
    assert_eq!(net.tap.total(), 3, "nothing while cached");
    net.run_for(secs(10));
    net.first_packet(a, SITE1, LEGACY1);
    net.run_for(secs(1));
    // The forward answer expired (60 s); the PTR (300 s) is still cached.
    assert_eq!(net.tap.total(), 5, "one new forward lookup after the TTL");
    assert_eq!(net.tap.ptr_count(LEGACY1), 1);
    assert!(net.sent.is_empty());
}

/// A zone that answers SERVFAIL: transient, retried with binary exponential backoff from
/// 2 s (7.13), one query on the wire per retry; once the zone is repaired the next retry
/// succeeds and the context starts.
#[test]
fn dns_engine_servfail_is_retried_with_backoff_until_the_zone_is_fixed() {
    let mut net = Net::new(zones(), |_| {});
    let a = net.node(engine_cfg(), &[SITE1, SITE2]);
    let _b = net.node(engine_cfg(), &[SF1]);
    net.first_packet(a, SITE1, SF1);
    net.run_for(secs(40));
    let q = DnsQuery::Reverse(SF1);
    let times = net.asked(&q);
    // 2 + 4 + 8 + 16 = 30 s nominal (22.5 .. 37.5 with jitter): 5 tries, maybe a 6th.
    assert!(times.len() >= 4 && times.len() <= 6, "{times:?}");
    assert_backoff(&times, secs(2));
    assert_eq!(
        net.tap.ptr_count(SF1),
        times.len(),
        "one wire query per try"
    );
    eprintln!("measured: PTR(SF1) asked at {times:?} (SERVFAIL)");
    assert_eq!(
        net.last_destination(a, SF1),
        Some(DestinationStatus::Pending)
    );
    assert!(net.sent.is_empty());

    // The operator fixes the reverse zone.
    let fixed = Zone::new(&harness::reverse_zone(SF_REVERSE_ZONE_PREFIX, 48)).ptr(SF1, SF, TTL);
    net.knot.update(fixed);
    net.run_for(secs(80));
    let times = net.asked(&q);
    assert_backoff(&times, secs(2));
    assert_eq!(net.last_destination(a, SF1), Some(DestinationStatus::M6));
    let dp = net.installed(a, SF1).expect("context").clone();
    assert!(dp.transmit);
    assert_eq!(lsv(&dp), set(&[SF1]));
}

/// Renumbering with the server stopped mid-test (sections 4.5, 7.8, 7.13): the peer adds MH3
/// to the DNS and announces it in an Update Request. Before the forward TTL (120 s) runs
/// out, the UR triggers no lookup. After it, the peer's next UR (MH2 withdrawn, MH3 still
/// new) triggers the refresh, which times out while the server is down and is retried with
/// backoff; when the server is back the refresh and MH3's PTR succeed and MH3 becomes a
/// destination.
#[test]
fn dns_engine_refresh_after_ttl_with_server_down_then_back() {
    let mut net = Net::new(zones(), |_| {});
    let a = net.node(engine_cfg(), &[SITE1, SITE2]);
    let b = net.node(engine_cfg(), &[MH1, MH2]);
    net.first_packet(a, SITE1, MH1);
    net.run_for(secs(5));
    assert!(net.installed(a, MH1).expect("context").transmit);
    let fwd = DnsQuery::Forward(MH.to_string());
    let t_fwd = net.asked(&fwd)[0];

    // The peer's site adds MH3 (AAAA and PTR), then the peer announces it.
    net.knot.update(with_mh3(site::forward()));
    net.knot.update(reverse_with_mh3());
    net.owners.insert(MH3, b);
    let host_b = net.e[b].host_of(&MH1).unwrap();
    net.feed(
        b,
        Event::Admin(AdminCommand::SetLocators {
            host: host_b,
            locators: vec![MH1, MH2, MH3],
        }),
    );
    net.run_for(secs(5));
    assert!(
        net.installed(a, MH1).unwrap().lsl_peer.contains(&MH3),
        "UR received"
    );
    assert_eq!(net.asked(&fwd).len(), 1, "TTL not expired: no refresh");
    assert!(!net.ever_destination(a).contains(&MH3));

    // Past the TTL, with the server down.
    net.run_for(t_fwd + secs(121) - net.now);
    net.knot.stop();
    let wire_before = net.tap.total();
    net.feed(
        b,
        Event::Admin(AdminCommand::SetLocators {
            host: host_b,
            locators: vec![MH1, MH3],
        }),
    );
    net.run_for(secs(20));
    let down = net.asked(&fwd)[1..].to_vec();
    // 2 + 4 + 8 = 14 s nominal before 20 s: 4 tries, maybe 3 or 5 with jitter.
    assert!(down.len() >= 3 && down.len() <= 5, "{down:?}");
    assert_backoff(&down, secs(2));
    // Each try: AAAA and marker, 2 attempts each (attempts: 2), all unanswered.
    assert_eq!(net.tap.total() - wire_before, down.len() * 4);
    assert!(!net.ever_destination(a).contains(&MH3));
    let dp = net.installed(a, MH1).unwrap().clone();
    assert_eq!(
        lsv(&dp),
        set(&[MH1]),
        "MH2 withdrawn at once by the UR (7.8), MH3 not verified yet"
    );

    net.knot.restart();
    net.run_for(secs(60));
    let all = net.asked(&fwd);
    assert_backoff(&all[1..], secs(2));
    eprintln!(
        "measured: forward refresh of mh asked at {all:?}; {} queries on the wire while down",
        down.len() * 4
    );
    let dp = net.installed(a, MH1).unwrap().clone();
    assert_eq!(lsv(&dp), set(&[MH1, MH3]));
    assert_eq!(net.tap.ptr_count(MH3), 1);
}

/// A zero TTL is raised to the floor (5 s): data from a locator outside Lsr(peer) every
/// 100 ms for 20 s triggers at most one forward refresh per 5 s.
#[test]
fn dns_engine_zero_ttl_is_floored() {
    let mut net = Net::new(zones(), |_| {});
    let a = net.node(engine_cfg(), &[SITE1, SITE2]);
    let stranger: Ipv6Addr = "2001:db8:a1::99".parse().unwrap();
    let _b = net.node(engine_cfg(), &[SHORT1, stranger]);
    net.first_packet(a, SITE1, SHORT1);
    net.run_for(secs(2));
    let dp = net.installed(a, SHORT1).expect("context").clone();
    assert!(dp.transmit);
    assert!(dp.lsl_peer.contains(&stranger));
    let fwd = DnsQuery::Forward(SHORT.to_string());
    let before = net.asked(&fwd).len();
    for _ in 0..200 {
        net.feed(
            a,
            Event::DataPath(DataPathEvent::NewSourceLocator {
                key: dp.key,
                src: stranger,
            }),
        );
        net.run_for(ms(100));
    }
    let refreshes = net.asked(&fwd).len() - before;
    eprintln!(
        "measured: {refreshes} refreshes of a TTL-0 name in 20 s: {:?}",
        net.asked(&fwd)
    );
    assert!(
        refreshes <= 5,
        "{refreshes} refreshes in 20 s with a 5 s floor"
    );
    assert!(refreshes >= 1, "the TTL did expire");
    assert_eq!(net.tap.aaaa_count(SHORT), before + refreshes);
    assert!(!net.ever_destination(a).contains(&stranger));
    assert!(net.lookups_by(a) < 30);
}

/// Virtual hosting (section 16.2): VH1's PTR names `www1` (no marker) and `www2` (the M6
/// host, also at VH2). As initiator the proxy tries the names in turn and finds `www2`; as
/// responder the same rule picks `www2` for a peer whose AID is VH1, so VH2 verifies too.
#[test]
fn dns_engine_virtual_hosting_tries_each_ptr_name() {
    let mut net = Net::new(zones(), |_| {});
    let a = net.node(engine_cfg(), &[SITE1, SITE2]);
    let b = net.node(engine_cfg(), &[VH1, VH2]);
    net.first_packet(a, SITE1, VH1);
    net.run_for(secs(5));
    assert_eq!(net.last_destination(a, VH1), Some(DestinationStatus::M6));
    let dp = net.installed(a, VH1).expect("context").clone();
    assert!(dp.transmit);
    assert_eq!(lsv(&dp), set(&[VH1, VH2]));
    assert_eq!(net.tap.ptr_count(VH1), 1);
    assert_eq!(net.tap.aaaa_count(WWW2), 1);
    assert!(net.tap.aaaa_count(WWW1) <= 1);

    // The www2 host opens a context to our site from VH1: we are the responder.
    let mut net = Net::new(zones(), |_| {});
    let a = net.node(engine_cfg(), &[SITE1, SITE2]);
    let b2 = net.node(engine_cfg(), &[VH1, VH2]);
    net.first_packet(b2, VH1, SITE1);
    net.run_for(secs(5));
    let dp = net.installed(a, VH1).expect("responder context").clone();
    assert_eq!(lsv(&dp), set(&[VH1, VH2]), "FQDN(peer) = www2, not www1");
    let _ = b;
}

/// The acceptance bound: 10,000 packets to distinct random unknown destinations within one
/// second start at most `lookup_burst + lookups_per_sec` lookups, each one PTR query on the
/// wire; the rest flow as plain IPv6 without any state.
#[test]
fn dns_engine_scan_of_random_destinations_is_rate_limited() {
    let dns = DnsConfig {
        lookups_per_sec: 20,
        lookup_burst: 30,
        ..DnsConfig::default()
    };
    let mut net = Net::new(zones(), |c| {
        c.lookups_per_sec = dns.lookups_per_sec;
        c.lookup_burst = dns.lookup_burst;
    });
    let mut cfg = engine_cfg();
    dns.apply_to(&mut cfg);
    let a = net.node(cfg, &[SITE1, SITE2]);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut seen = BTreeSet::new();
    let start = net.now;
    for i in 0..10_000u32 {
        // xorshift64: random destinations in 2001:db8:77::/48 (no PTR: NXDOMAIN).
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let dst = Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x77,
            (x >> 48) as u16,
            (x >> 32) as u16,
            (x >> 16) as u16,
            x as u16,
            i as u16,
        );
        assert!(seen.insert(dst));
        net.now = start + Duration::from_micros(u64::from(i) * 100);
        net.first_packet(a, SITE1, dst);
    }
    assert!(net.now - start < secs(1));
    net.settle_dns();
    let lookups = net.lookups.len();
    let limit = (dns.lookup_burst + dns.lookups_per_sec) as usize;
    eprintln!("measured: 10000 destinations in 1 s -> {lookups} lookups (limit {limit}), {} queries on the wire", net.tap.total());
    assert!(lookups <= limit, "{lookups} lookups");
    assert!(
        lookups >= dns.lookup_burst as usize,
        "the burst is usable: {lookups}"
    );
    assert_eq!(net.tap.total(), lookups, "one PTR query per lookup");
    let pending = net
        .dests
        .iter()
        .filter(|d| d.3 == DestinationStatus::Pending)
        .count();
    assert_eq!(pending, lookups, "no state for destinations not looked up");
    assert!(net.e[a].destination_cache_len() <= lookups);
}

/// The destination cache is bounded: with room for 50 peers, 500 destinations looked up
/// one after another keep at most 50 entries, the oldest "not M6" entries making room; with
/// the server down, 50 pending lookups fill it and further destinations are not looked up.
#[test]
fn dns_engine_destination_cache_is_bounded() {
    let mut cfg = engine_cfg();
    cfg.destination_cache_size = 50;
    cfg.discovery_per_second = 10_000;
    cfg.discovery_burst = 10_000;
    let mut net = Net::new(zones(), |_| {});
    let a = net.node(cfg.clone(), &[SITE1, SITE2]);
    let dst = |i: u16| Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, 1, i);
    for i in 0..500u16 {
        net.first_packet(a, SITE1, dst(i));
        net.run_for(ms(2));
        assert!(net.e[a].destination_cache_len() <= 50);
    }
    assert_eq!(net.tap.total(), 500);
    // The newest are still cached; the oldest were dropped and are discovered again (from
    // the engine's answer cache: the PTR's negative TTL has not run out).
    net.first_packet(a, SITE1, dst(499));
    net.first_packet(a, SITE1, dst(0));
    net.run_for(ms(2));
    let discoveries = |d: Ipv6Addr| {
        net.dests
            .iter()
            .filter(|x| x.2 == d && x.3 == DestinationStatus::Pending)
            .count()
    };
    assert_eq!(discoveries(dst(499)), 1);
    assert_eq!(discoveries(dst(0)), 2);
    assert_eq!(net.tap.total(), 500);

    let mut net = Net::new(zones(), |c| c.timeout_ms = Some(50));
    let a = net.node(cfg, &[SITE1, SITE2]);
    net.knot.stop();
    for i in 0..100u16 {
        net.first_packet(a, SITE1, dst(i));
    }
    assert_eq!(net.e[a].destination_cache_len(), 50);
    assert_eq!(
        net.lookups.len(),
        50,
        "no lookup without room to remember it"
    );
    net.settle_dns();
}

/// De-duplication: two local hosts' first packets to the same peer AID at the same moment
/// share one PTR lookup and one forward lookup (the second joins the one in flight).
#[test]
fn dns_engine_concurrent_lookups_for_one_name_are_merged() {
    let mut net = Net::new(zones(), |_| {});
    let a = net.node(engine_cfg(), &[SITE1, SITE2]);
    let _b = net.node(engine_cfg(), &[MH1, MH2]);
    let first = net.first_packet(a, SITE1, MH1);
    let second = net.first_packet(a, SITE2, MH1);
    let dns = |acts: &[Action]| {
        acts.iter()
            .filter(|x| matches!(x, Action::Dns { .. }))
            .count()
    };
    assert_eq!(
        (dns(&first), dns(&second)),
        (1, 0),
        "the second waits for the first"
    );
    net.run_for(secs(5));
    assert_eq!(net.asked(&DnsQuery::Reverse(MH1)).len(), 1);
    assert_eq!(net.asked(&DnsQuery::Forward(MH.to_string())).len(), 1);
    assert_eq!(net.tap.ptr_count(MH1), 1);
    assert_eq!(net.tap.aaaa_count(MH), 1);
    // Both AID pairs got their context, both fully verified.
    let pairs: BTreeSet<(Ipv6Addr, Ipv6Addr)> = net
        .installs
        .iter()
        .filter(|(n, _, dp)| *n == a && lsv(dp) == set(&[MH1, MH2]))
        .map(|(_, _, dp)| (dp.aid_local, dp.aid_peer))
        .collect();
    assert_eq!(pairs, [(SITE1, MH1), (SITE2, MH1)].into_iter().collect());
}

/// A PTR answer whose names are all empty (a hostile `IN PTR .`) is "no FQDN", not a crash.
/// (The resolver already drops such names; the engine does not rely on it.)
#[test]
fn dns_engine_empty_ptr_names_mean_no_fqdn() {
    let key = CcKeyring::new(CcKey::new(1, &[9; 32]));
    let mut e = Engine::new(engine_cfg(), 1, 1, key);
    e.add_host(LocalHost {
        locators: vec![SITE1],
        dns_verifiable: true,
    });
    let acts = e.handle(
        Event::DataPath(DataPathEvent::FirstPacket {
            aid_local: SITE1,
            aid_peer: MH1,
            piggyback: None,
        }),
        secs(1),
    );
    let Some(id) = acts.iter().find_map(|a| match a {
        Action::Dns { id, .. } => Some(*id),
        _ => None,
    }) else {
        panic!("no lookup: {acts:?}")
    };
    let acts = e.handle(
        Event::Dns {
            id,
            result: DnsResult::Ok {
                answer: controlplane::engine::DnsAnswer::Reverse {
                    names: vec![".".into(), String::new()],
                },
                ttl: 60,
            },
        },
        secs(1),
    );
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::Destination {
            status: DestinationStatus::NotM6 { .. },
            ..
        }
    )));
    assert!(!acts.iter().any(|a| matches!(a, Action::Dns { .. })));
}
