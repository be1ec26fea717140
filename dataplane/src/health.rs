//! ISP health by active probes (DESIGN section 5; seed 002 section 2): carrier and the next
//! hop's Neighbor Discovery miss the common failure, an ISP whose upstream goes dark while
//! its link to us stays up. Every `interval_ms` the control thread sends one ICMPv6 echo
//! request to each of the ISP's beacons, sourced from the router's address under the ISP's
//! prefix (so the reply comes back through that ISP) and sent to the ISP's next hop. A
//! round is answered when any beacon answers within `timeout_ms` (one dark beacon does not
//! withdraw an ISP). `down_after` missed rounds in a row withdraw the ISP, `up_after`
//! answered ones restore it; while the verdict is in doubt (after a miss, or a success
//! while withdrawn) the next round goes out as soon as the previous one is settled, so
//! detection takes at most one interval plus `down_after` timeouts. The verdict goes to
//! [`crate::isp::IspOwner::set_probes`], which withdraws the ISP from every worker at once
//! and applies flap dampening.
//!
//! Datapath side: [`is_probe_reply`] tells a worker which echo replies to report: an
//! identifier in [`IDENT_BASE`]'s block, the site's random probe cookie as payload (a reply
//! forged without seeing our probes is dropped there and never reaches the control thread),
//! and received on that ISP's port. The control thread matches them to rounds here (beacon
//! as source, the probe's source as destination, the round's sequence number).

use std::net::Ipv6Addr;

use crate::net::addr::{self, Addr};
use crate::net::icmpv6::{self, msg_type};
use crate::site::Site;
use crate::stats::named_counters;
use proto::config::HealthConfig;

/// The echo identifier of ISP i's probes is `IDENT_BASE + i`.
pub const IDENT_BASE: u16 = 0x6d00;
/// Hop limit of a probe.
pub const PROBE_HOP_LIMIT: u8 = 64;

/// The ISP whose probe an echo reply (ICMPv6 message `msg`, from its type on) received
/// on port `rx` may answer: its identifier is in the probe block, its payload is the
/// site's `cookie`, and it came in on that ISP's port (`isp_ports[i]`). What a worker
/// reports to the control thread; `None`: not a probe's answer.
#[inline]
pub fn is_probe_reply(
    msg: &[u8],
    rx: usize,
    cookie: &[u8; 8],
    isp_ports: impl Fn(usize) -> Option<usize>,
) -> Option<(u16, u16)> {
    let word = |i: usize| msg.get(i..i + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
    let (ident, seq) = (word(4)?, word(6)?);
    let isp = usize::from(ident.wrapping_sub(IDENT_BASE));
    (msg.get(8..16)? == cookie && isp_ports(isp)? == rx).then_some((ident, seq))
}

named_counters! {
    /// Health probes (`health.*`).
    pub struct HealthCounters("health") {
        /// Echo requests sent to beacons.
        probes_sent,
        /// Rounds answered by at least one beacon in time.
        rounds_answered,
        /// Rounds no beacon answered in time.
        rounds_missed,
        /// Echo replies that matched no round in flight (late, or not ours).
        replies_unmatched,
    }
}

/// One echo request to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Through this ISP (to its next hop, whatever the ISP's state).
    pub isp: usize,
    /// The IPv6 packet, from its fixed header on.
    pub packet: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Round {
    seq: u16,
    sent: u64,
}

#[derive(Clone, Debug)]
struct IspProbe {
    source: Addr,
    beacons: Vec<Addr>,
    /// The current verdict.
    up: bool,
    /// Consecutive rounds that disagree with the verdict.
    streak: u32,
    seq: u16,
    in_flight: Option<Round>,
    next: u64,
    /// Round-trip time of the last answered round (ns).
    last_rtt: Option<u64>,
    /// Rounds answered since the prober started.
    answered: u64,
}

/// The probe state of every ISP: a sans-I/O state machine driven by the control thread's
/// clock (ns) and the echo replies the workers report.
pub struct Prober {
    cfg: HealthConfig,
    cookie: [u8; 8],
    isps: Vec<Option<IspProbe>>,
    counters: HealthCounters,
}

impl Prober {
    /// Probes for every ISP of `site` with beacons, the first round at once.
    pub fn new(site: &Site) -> Prober {
        let mut p = Prober {
            cfg: site.health,
            cookie: site.probe_cookie,
            isps: Vec::new(),
            counters: HealthCounters::default(),
        };
        p.configure(site, &|_| true);
        p
    }

    /// Takes new beacons and timers (a reload). ISPs whose beacons did not change keep
    /// their state; one probed anew starts from `verdict(isp)`, the state the ISP owner
    /// holds, so that a withdrawn ISP is restored by answered rounds as usual.
    pub fn configure(&mut self, site: &Site, verdict: &dyn Fn(usize) -> bool) {
        self.cfg = site.health;
        let own: Vec<Addr> = site
            .ports
            .iter()
            .flat_map(|p| p.addresses.iter().map(addr::from_std))
            .collect();
        let old = std::mem::take(&mut self.isps);
        self.isps = site
            .isps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let beacons: Vec<Addr> = s.beacons.iter().map(addr::from_std).collect();
                let source = own
                    .iter()
                    .copied()
                    .find(|a| s.prefix.contains(&addr::to_std(*a)))?;
                if beacons.is_empty() {
                    return None;
                }
                match old.get(i).cloned().flatten() {
                    Some(p) if p.beacons == beacons && p.source == source => Some(p),
                    _ => Some(IspProbe {
                        source,
                        beacons,
                        up: verdict(i),
                        streak: 0,
                        seq: 0,
                        in_flight: None,
                        next: 0,
                        last_rtt: None,
                        answered: 0,
                    }),
                }
            })
            .collect();
    }

    /// Whether ISP `isp` is probed.
    pub fn probed(&self, isp: usize) -> bool {
        matches!(self.isps.get(isp), Some(Some(_)))
    }

    /// The verdict on ISP `isp` (`None`: not probed).
    pub fn verdict(&self, isp: usize) -> Option<bool> {
        Some(self.isps.get(isp)?.as_ref()?.up)
    }

    /// The round-trip time of ISP `isp`'s last answered round, in ns.
    pub fn last_rtt(&self, isp: usize) -> Option<u64> {
        self.isps.get(isp)?.as_ref()?.last_rtt
    }

    /// Rounds of ISP `isp` answered so far (0 when not probed).
    pub fn answered(&self, isp: usize) -> u64 {
        self.isps
            .get(isp)
            .and_then(|p| p.as_ref())
            .map_or(0, |p| p.answered)
    }

    pub fn counters(&self) -> &HealthCounters {
        &self.counters
    }

    /// Settles rounds that timed out and starts the rounds due at `now` (ns): probes to
    /// send go to `send`, verdict changes `(isp, up)` to `changed`.
    pub fn tick(
        &mut self,
        now: u64,
        send: &mut impl FnMut(Probe),
        changed: &mut impl FnMut(usize, bool),
    ) {
        let timeout = self.cfg.timeout_ms * 1_000_000;
        for i in 0..self.isps.len() {
            let missed = matches!(
                &self.isps[i],
                Some(IspProbe { in_flight: Some(r), .. }) if now >= r.sent + timeout
            );
            if missed {
                self.counters.rounds_missed += 1;
                if let Some(c) = self.settle(i, false, now) {
                    changed(i, c);
                }
            }
            let Some(p) = self.isps[i].as_mut() else {
                continue;
            };
            if p.in_flight.is_some() || now < p.next {
                continue;
            }
            p.seq = p.seq.wrapping_add(1);
            p.in_flight = Some(Round {
                seq: p.seq,
                sent: now,
            });
            let ident = IDENT_BASE.wrapping_add(i as u16);
            for &b in &p.beacons {
                let mut msg = [0u8; 16];
                msg[0] = msg_type::ECHO_REQUEST;
                msg[4..6].copy_from_slice(&ident.to_be_bytes());
                msg[6..8].copy_from_slice(&p.seq.to_be_bytes());
                // The answer must return it (see `is_probe_reply`).
                msg[8..16].copy_from_slice(&self.cookie);
                send(Probe {
                    isp: i,
                    packet: icmpv6::packet(
                        addr::to_bytes(p.source),
                        addr::to_bytes(b),
                        PROBE_HOP_LIMIT,
                        &msg,
                    ),
                });
                self.counters.probes_sent += 1;
            }
        }
    }

    /// An echo reply from `src` to `dst` with `ident` and `seq`, reported by a worker at
    /// `now`; returns a verdict change `(isp, up)`.
    pub fn on_reply(
        &mut self,
        src: Addr,
        dst: Addr,
        ident: u16,
        seq: u16,
        now: u64,
    ) -> Option<(usize, bool)> {
        let i = usize::from(ident.wrapping_sub(IDENT_BASE));
        let ours = match self.isps.get(i) {
            Some(Some(p)) => {
                p.source == dst
                    && p.beacons.contains(&src)
                    && p.in_flight.as_ref().is_some_and(|r| r.seq == seq)
            }
            _ => false,
        };
        if !ours {
            self.counters.replies_unmatched += 1;
            return None;
        }
        self.counters.rounds_answered += 1;
        self.settle(i, true, now).map(|up| (i, up))
    }

    /// Ends ISP `i`'s round in flight as `answered` at `now`; returns the new verdict if it
    /// changed.
    fn settle(&mut self, i: usize, answered: bool, now: u64) -> Option<bool> {
        let cfg = self.cfg;
        let p = self.isps.get_mut(i)?.as_mut()?;
        let round = p.in_flight.take()?;
        if answered {
            p.last_rtt = Some(now.saturating_sub(round.sent));
            p.answered += 1;
        }
        let mut change = None;
        if answered == p.up {
            p.streak = 0;
        } else {
            p.streak += 1;
            let needed = if p.up { cfg.down_after } else { cfg.up_after };
            if p.streak >= needed {
                p.up = answered;
                p.streak = 0;
                change = Some(answered);
            }
        }
        // In doubt: the next round as soon as this one's timeout would have passed.
        let gap = if p.streak > 0 {
            cfg.timeout_ms
        } else {
            cfg.interval_ms
        };
        p.next = round.sent + gap * 1_000_000;
        change
    }
}

/// The beacons of an ISP as written in the configuration (for `isp list`).
pub fn beacons(site: &Site, isp: usize) -> Vec<Ipv6Addr> {
    site.isps
        .get(isp)
        .map(|s| s.beacons.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::{ip, two_isp_site};

    const MS: u64 = 1_000_000;
    const BEACON: &str = "2001:db8:ee::100";

    fn site() -> Site {
        let mut s = two_isp_site();
        s.isps[0].beacons = vec![ip(BEACON), ip("2001:db8:53::1")];
        s.health.interval_ms = 1000;
        s.health.timeout_ms = 200;
        s.health.down_after = 3;
        s.health.up_after = 2;
        s
    }

    /// Runs the prober from `from` to `to` ms in 1 ms steps; `answer(t, b)` says whether
    /// beacon `b` answers a probe sent at `t` (after 5 ms). Returns the changes with their
    /// time.
    fn run(
        p: &mut Prober,
        from: u64,
        to: u64,
        answer: impl Fn(u64, usize) -> bool,
    ) -> Vec<(u64, usize, bool)> {
        let mut changes = Vec::new();
        let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
        for t in from..to {
            let now = t * MS;
            let mut sent = Vec::new();
            p.tick(now, &mut |pr| sent.push(pr), &mut |i, up| {
                changes.push((t, i, up))
            });
            for (b, pr) in sent.into_iter().enumerate() {
                assert_eq!(pr.isp, 0, "only ISP 0 has beacons");
                if answer(t, b) {
                    pending.push((now + 5 * MS, pr.packet));
                }
            }
            let due: Vec<_> = pending
                .iter()
                .filter(|(at, _)| *at <= now)
                .cloned()
                .collect();
            pending.retain(|(at, _)| *at > now);
            for (_, pkt) in due {
                // The beacon swaps the addresses and answers with the same id and seq.
                let src = addr::from_bytes(pkt[24..40].try_into().unwrap());
                let dst = addr::from_bytes(pkt[8..24].try_into().unwrap());
                let ident = u16::from_be_bytes([pkt[44], pkt[45]]);
                let seq = u16::from_be_bytes([pkt[46], pkt[47]]);
                if let Some((i, up)) = p.on_reply(src, dst, ident, seq, now) {
                    changes.push((t, i, up));
                }
            }
        }
        changes
    }

    #[test]
    fn probes_are_echo_requests_from_the_isps_prefix() {
        let mut p = Prober::new(&site());
        assert!(p.probed(0) && !p.probed(1));
        let mut sent = Vec::new();
        p.tick(0, &mut |pr| sent.push(pr), &mut |_, _| {});
        assert_eq!(sent.len(), 2, "one per beacon");
        let pkt = &sent[0].packet;
        assert_eq!(pkt[8..24], ip("2001:db8:1:1::1").octets(), "under PA1");
        assert_eq!(pkt[24..40], ip(BEACON).octets());
        assert_eq!(pkt[40], msg_type::ECHO_REQUEST);
        assert!(proto::wire::checksum::verify(
            &pkt[8..24].try_into().unwrap(),
            &pkt[24..40].try_into().unwrap(),
            58,
            &pkt[40..]
        ));
        // What a worker reports: the cookie back, on the ISP's port.
        let ports = |i: usize| [Some(1), Some(2)].get(i).copied().flatten();
        let cookie = *b"m6cookie";
        let mut reply = pkt[40..].to_vec();
        reply[0] = msg_type::ECHO_REPLY;
        assert_eq!(
            is_probe_reply(&reply, 1, &cookie, ports),
            Some((IDENT_BASE, 1))
        );
        assert_eq!(
            is_probe_reply(&reply, 2, &cookie, ports),
            None,
            "another ISP's port"
        );
        assert_eq!(
            is_probe_reply(&reply, 1, b"guessed!", ports),
            None,
            "no cookie"
        );
        reply[4..6].copy_from_slice(&(IDENT_BASE + 2).to_be_bytes());
        assert_eq!(
            is_probe_reply(&reply, 1, &cookie, ports),
            None,
            "not an ISP's block"
        );
    }

    /// A dark upstream is detected within one interval plus down_after timeouts, and a
    /// recovery within one interval plus (up_after - 1) timeouts.
    #[test]
    fn a_dark_upstream_is_detected_and_its_recovery_too() {
        let mut p = Prober::new(&site());
        let dark = 5_300..12_000u64;
        let changes = run(&mut p, 0, 20_000, |t, _| !dark.contains(&t));
        assert_eq!(changes.len(), 2, "{changes:?}");
        let (t_down, i, up) = changes[0];
        assert_eq!((i, up), (0, false));
        assert!(
            t_down > dark.start && t_down - dark.start <= 1000 + 3 * 200,
            "withdrawn {} ms after the failure",
            t_down - dark.start
        );
        let (t_up, _, up) = changes[1];
        assert!(up);
        assert!(
            t_up > dark.end && t_up - dark.end <= 1000 + 200 + 10,
            "restored {} ms after the recovery",
            t_up - dark.end
        );
        assert!(p.last_rtt(0).is_some_and(|r| r == 5 * MS));
    }

    /// One lost round, or one dark beacon of two, withdraws nothing.
    #[test]
    fn single_losses_withdraw_nothing() {
        let mut p = Prober::new(&site());
        let changes = run(&mut p, 0, 10_000, |t, _| !(3_000..3_100).contains(&t));
        assert!(changes.is_empty(), "{changes:?}");
        assert!(p.counters().rounds_missed >= 1);
        // The first beacon dark for good, the second answering: the ISP stays up.
        let mut q = Prober::new(&site());
        let changes = run(&mut q, 0, 10_000, |_, b| b == 1);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(q.counters().rounds_missed, 0);
        assert_eq!(q.verdict(0), Some(true));
        // Replies from elsewhere, or for another round, are not ours.
        let src = addr::from_std(&ip("2001:db8:66::1"));
        let dst = addr::from_std(&ip("2001:db8:1:1::1"));
        assert_eq!(p.on_reply(src, dst, IDENT_BASE, 1, 0), None);
        assert!(p.counters().replies_unmatched >= 1);
    }
}
