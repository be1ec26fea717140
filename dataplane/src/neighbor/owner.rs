//! The single owner of neighbor state: the RFC 4861 section 7.3.2 state machine, run on the
//! dataplane's control thread from the workers' [`NeighborEvent`]s and a clock.
//!
//! States: INCOMPLETE (multicast solicitations every RetransTimer, at most
//! [`MAX_MULTICAST_SOLICIT`], then FAILED), REACHABLE (for REACHABLE_TIME after a
//! confirmation), STALE, DELAY (DELAY_FIRST_PROBE_TIME after a STALE entry is used), PROBE
//! (unicast solicitations, at most [`MAX_UNICAST_SOLICIT`], then the entry is deleted), and
//! STATIC for configured neighbors. FAILED is this router's negative cache: the address is
//! remembered as unreachable for [`Timers::failed_hold_ns`], so the packets held for it are answered
//! with Destination Unreachable code 3 and a scan re-hitting it costs nothing.
//!
//! RFC 6583 (scans of a /64 from outside): the number of INCOMPLETE entries is bounded per
//! port and per [`Trigger`], with separate budgets for resolutions asked for from inside
//! (ISP next hops, LAN hosts that talked) and from outside (packets from an ISP toward an
//! unknown LAN address), so a scan exhausts only the outside budget; entries created by
//! solicitations may fill only part of the table; a full table evicts its least recently
//! used entry, never an INCOMPLETE or STATIC one.
//!
//! ISP next hops: the owner keeps every dynamic next hop resolved (it solicits one that has
//! no entry on every tick) and reports through [`NeighborOwner::drain_next_hop_changes`]
//! when one stops answering (resolution or unreachability detection failed) and when it
//! answers again, so the ISP is withdrawn and restored like a lost and regained carrier.

use hashbrown::HashMap;

use super::{
    Neighbor, NeighborEvent, NeighborOp, NeighborTable, Reach, Timers, Trigger, EXPIRE_UNUSED_NS,
    MAX_MULTICAST_SOLICIT, MAX_UNICAST_SOLICIT,
};
use crate::net::addr::{self, Addr};
use crate::nodes::nd::{build_ns_frame, NS_FRAME_LEN};
use crate::site::{Site, SiteTables};
use crate::stats::named_counters;
use crate::tables::{Reader, Writer};

/// Entries per port at most (all states).
pub const MAX_ENTRIES_PER_PORT: usize = 4096;
/// Solicitations create entries only while the port has fewer than this many.
pub const MAX_NS_CREATED_FILL: usize = MAX_ENTRIES_PER_PORT * 3 / 4;
/// INCOMPLETE entries per port asked for from inside at most.
pub const MAX_INCOMPLETE_INSIDE: usize = 256;
/// INCOMPLETE entries per port asked for from outside at most (RFC 6583 section 7.1): with
/// [`MAX_MULTICAST_SOLICIT`] solicitations each, at most about 43 solicitations per second
/// per port on behalf of the Internet.
pub const MAX_INCOMPLETE_OUTSIDE: usize = 128;
/// How often [`NeighborOwner::tick`] walks the entries for timers.
pub const SCAN_INTERVAL_NS: u64 = 50_000_000;
/// Depth of each worker's queue of table changes.
pub const PUBLISH_DEPTH: usize = 8192;

named_counters! {
    /// The owner's counters (`neighbor.*`).
    pub struct OwnerCounters("neighbor") {
        /// Multicast solicitations sent (address resolution).
        ns_multicast_sent,
        /// Unicast solicitations sent (unreachability detection probes).
        ns_unicast_sent,
        /// INCOMPLETE entries that got a link-layer address.
        resolved,
        /// Resolutions that failed (no answer to MAX_MULTICAST_SOLICIT solicitations).
        resolution_failed,
        /// Entries deleted because unreachability detection got no answer.
        probe_failed,
        /// Resolutions refused because the port's inside budget of INCOMPLETE entries was used up.
        refused_inside_budget,
        /// Resolutions refused because the port's outside budget was used up (a scan).
        refused_outside_budget,
        /// Solicitations that did not create an entry (the table is filled past its share).
        ns_create_refused,
        /// Advertisements for an address with no entry (RFC 4861 7.2.5: discarded).
        unsolicited_na,
        /// Advertisements without a target link-layer address for an INCOMPLETE entry (discarded).
        na_without_lladdr_ignored,
        /// Entries evicted (least recently used first) from a full table.
        evicted,
        /// Entries deleted because unused for EXPIRE_UNUSED.
        expired,
        /// Resolutions refused: no entry could be made (the table holds only static and
        /// INCOMPLETE entries), or the target is not a unicast address on the port's link
        /// (link-local, in one of the port's /64s, or an ISP next hop on it).
        refused_other,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Incomplete {
        sent: u8,
        next: u64,
        trigger: Trigger,
    },
    Reachable {
        until: u64,
    },
    Stale,
    Delay {
        until: u64,
    },
    Probe {
        sent: u8,
        next: u64,
    },
    Failed {
        until: u64,
    },
    Static,
}

impl State {
    /// What the workers see, if anything.
    fn published(self) -> Option<Reach> {
        match self {
            State::Incomplete { .. } => None,
            State::Reachable { .. } | State::Static => Some(Reach::Reachable),
            State::Stale | State::Delay { .. } | State::Probe { .. } => Some(Reach::Stale),
            State::Failed { .. } => Some(Reach::Failed),
        }
    }

    fn name(self) -> &'static str {
        match self {
            State::Incomplete { .. } => "INCOMPLETE",
            State::Reachable { .. } => "REACHABLE",
            State::Stale => "STALE",
            State::Delay { .. } => "DELAY",
            State::Probe { .. } => "PROBE",
            State::Failed { .. } => "FAILED",
            State::Static => "STATIC",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: [u8; 6],
    state: State,
    /// Last use reported by a worker, or last confirmation: the LRU and expiry clock.
    used: u64,
}

/// One neighbor-cache entry as shown to operators: (port, address, link-layer address if
/// known, RFC 4861 state name).
pub type EntryView = (usize, Addr, Option<[u8; 6]>, &'static str);

#[derive(Clone, Debug, Default)]
struct PortState {
    entries: HashMap<Addr, Entry>,
    incomplete_inside: usize,
    incomplete_outside: usize,
}

impl PortState {
    fn incomplete(&mut self, trigger: Trigger) -> &mut usize {
        match trigger {
            Trigger::Inside => &mut self.incomplete_inside,
            Trigger::Outside => &mut self.incomplete_outside,
        }
    }
}

/// Takes one INCOMPLETE entry off the count of its trigger.
fn dec_incomplete(inside: &mut usize, outside: &mut usize, trigger: Trigger) {
    let n = match trigger {
        Trigger::Inside => inside,
        Trigger::Outside => outside,
    };
    *n = n.saturating_sub(1);
}

/// One ISP's next hop, watched for reachability.
#[derive(Clone, Copy, Debug)]
struct NextHop {
    port: usize,
    ip: Addr,
    /// Whether it answers (an unresolved next hop counts as answering until resolution
    /// fails, so the first packets wait for it rather than get code 5).
    up: bool,
}

/// The single writer of the [`NeighborTable`].
pub struct NeighborOwner {
    site: SiteTables,
    timers: Timers,
    ports: Vec<PortState>,
    writer: Writer<NeighborTable>,
    /// Solicitations to transmit: (port, frame).
    frames: Vec<(usize, [u8; NS_FRAME_LEN])>,
    /// Per ISP: `None` for a static next-hop MAC (nothing to watch).
    next_hops: Vec<Option<NextHop>>,
    /// (ISP index, answers) for every change since the last drain.
    changes: Vec<(usize, bool)>,
    counters: OwnerCounters,
    next_scan: u64,
}

impl NeighborOwner {
    /// Takes a reloaded site (the router's addresses, prefixes, ND timers; ports and next
    /// hops unchanged): new solicitations use them, entries stay.
    pub fn set_site(&mut self, site: &Site) {
        self.site = SiteTables::new(site);
        self.timers = Timers::new(&site.nd);
    }

    /// An owner for `site`'s ports, with an empty table.
    pub fn new(site: &Site) -> NeighborOwner {
        let tables = SiteTables::new(site);
        let n = site.ports.len();
        let next_hops = tables
            .isps
            .iter()
            .map(|s| match (s.port, s.static_mac) {
                (Some(port), None) => Some(NextHop {
                    port,
                    ip: s.next_hop,
                    up: true,
                }),
                _ => None,
            })
            .collect();
        NeighborOwner {
            ports: vec![PortState::default(); n],
            writer: Writer::new(NeighborTable::new(n, MAX_ENTRIES_PER_PORT), PUBLISH_DEPTH),
            frames: Vec::with_capacity(256),
            next_hops,
            changes: Vec::new(),
            counters: OwnerCounters::default(),
            next_scan: 0,
            timers: Timers::new(&site.nd),
            site: tables,
        }
    }

    /// A reader for one more worker.
    pub fn reader(&mut self) -> Reader<NeighborTable> {
        self.writer.reader()
    }

    /// Up to `limit` entries as (port, address, link-layer address if known, RFC 4861
    /// state name), ports in order, and how many there are in all.
    pub fn entries(&self, limit: usize) -> (Vec<EntryView>, usize) {
        let total = self.ports.iter().map(|p| p.entries.len()).sum();
        let mut v = Vec::with_capacity(limit.min(total));
        for (port, p) in self.ports.iter().enumerate() {
            let mut addrs: Vec<&Addr> = p.entries.keys().collect();
            addrs.sort_unstable();
            for a in addrs {
                if v.len() >= limit {
                    return (v, total);
                }
                if let Some(e) = p.entries.get(a) {
                    let known = !matches!(e.state, State::Incomplete { .. } | State::Failed { .. });
                    v.push((port, *a, known.then_some(e.mac), e.state.name()));
                }
            }
        }
        (v, total)
    }

    /// The published table as the workers will see it.
    pub fn table(&self) -> &NeighborTable {
        self.writer.get()
    }

    /// The owner's counters.
    pub fn counters(&self) -> &OwnerCounters {
        &self.counters
    }

    /// The RFC 4861 state of `ip` on `port` ("REACHABLE", "STALE", ...), for tools and tests.
    pub fn state(&self, port: usize, ip: Addr) -> Option<&'static str> {
        self.ports
            .get(port)?
            .entries
            .get(&ip)
            .map(|e| e.state.name())
    }

    /// Installs a configured neighbor: never aged, never replaced by what the wire says.
    pub fn add_static(&mut self, port: usize, ip: Addr, mac: [u8; 6]) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        if let Some(old) = p.entries.get(&ip) {
            if let State::Incomplete { trigger, .. } = old.state {
                dec_incomplete(&mut p.incomplete_inside, &mut p.incomplete_outside, trigger);
            }
        }
        p.entries.insert(
            ip,
            Entry {
                mac,
                state: State::Static,
                used: 0,
            },
        );
        self.publish(port, ip);
    }

    /// Takes one worker report at `now` (ns, the workers' clock).
    pub fn handle(&mut self, ev: NeighborEvent, now: u64) {
        match ev {
            NeighborEvent::Needed { port, ip, trigger } => {
                self.needed(usize::from(port), ip, trigger, now)
            }
            NeighborEvent::Used { port, ip } => self.used(usize::from(port), ip, now),
            NeighborEvent::Solicitation { port, src, mac } => {
                self.solicitation(usize::from(port), src, mac, now)
            }
            NeighborEvent::Advertisement {
                port,
                target,
                mac,
                solicited,
                override_,
            } => self.advertisement(usize::from(port), target, mac, solicited, override_, now),
        }
    }

    /// Runs the timers due at `now` (retransmissions, REACHABLE -> STALE, DELAY -> PROBE,
    /// failures, garbage collection) and keeps the ISP next hops resolved. Call it often
    /// (every few milliseconds); it walks the entries at most every [`SCAN_INTERVAL_NS`].
    pub fn tick(&mut self, now: u64) {
        if now < self.next_scan {
            return;
        }
        self.next_scan = now.saturating_add(SCAN_INTERVAL_NS);
        for port in 0..self.ports.len() {
            self.scan_port(port, now);
        }
        for i in 0..self.next_hops.len() {
            let Some(h) = self.next_hops.get(i).copied().flatten() else {
                continue;
            };
            let known = self
                .ports
                .get(h.port)
                .is_some_and(|p| p.entries.contains_key(&h.ip));
            if !known {
                self.needed(h.port, h.ip, Trigger::Inside, now);
            }
        }
    }

    /// Hands every solicitation to send to `out` as (port, frame), and forgets them.
    pub fn drain_frames(&mut self, out: &mut impl FnMut(usize, &[u8])) {
        for (port, f) in &self.frames {
            out(*port, f);
        }
        self.frames.clear();
    }

    /// Hands every change of an ISP next hop's reachability since the last call to `out`
    /// as (ISP index, answers).
    pub fn drain_next_hop_changes(&mut self, out: &mut impl FnMut(usize, bool)) {
        for &(isp, up) in &self.changes {
            out(isp, up);
        }
        self.changes.clear();
    }

    /// Sends a snapshot to workers whose change queue overflowed; see
    /// [`Writer::flush`].
    pub fn flush(&mut self) -> usize {
        self.writer.flush()
    }

    // -- events ----------------------------------------------------------------------------

    fn needed(&mut self, port: usize, ip: Addr, trigger: Trigger, now: u64) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        match p.entries.get_mut(&ip) {
            None => self.start_resolution(port, ip, trigger, now),
            Some(e) => match e.state {
                State::Incomplete {
                    sent,
                    next,
                    trigger: Trigger::Outside,
                } if trigger == Trigger::Inside && p.incomplete_inside < MAX_INCOMPLETE_INSIDE => {
                    // A host that talked: its resolution moves to the inside budget.
                    e.state = State::Incomplete {
                        sent,
                        next,
                        trigger: Trigger::Inside,
                    };
                    p.incomplete_outside = p.incomplete_outside.saturating_sub(1);
                    p.incomplete_inside += 1;
                }
                State::Failed { until } if now >= until => {
                    p.entries.remove(&ip);
                    self.start_resolution(port, ip, trigger, now);
                }
                State::Stale => self.used(port, ip, now),
                _ => {}
            },
        }
    }

    fn start_resolution(&mut self, port: usize, ip: Addr, trigger: Trigger, now: u64) {
        // Only addresses that can be on this link: a spoofed or off-link address must not
        // cost a solicitation or a place in the budget.
        if addr::is_multicast(ip) || !self.site.on_link(port, ip) {
            self.counters.refused_other += 1;
            return;
        }
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        let (count, cap) = match trigger {
            Trigger::Inside => (p.incomplete_inside, MAX_INCOMPLETE_INSIDE),
            Trigger::Outside => (p.incomplete_outside, MAX_INCOMPLETE_OUTSIDE),
        };
        if count >= cap {
            match trigger {
                Trigger::Inside => self.counters.refused_inside_budget += 1,
                Trigger::Outside => self.counters.refused_outside_budget += 1,
            }
            return;
        }
        if !self.make_room(port, now) {
            self.counters.refused_other += 1;
            return;
        }
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        p.entries.insert(
            ip,
            Entry {
                mac: [0; 6],
                state: State::Incomplete {
                    sent: 1,
                    next: now.saturating_add(self.timers.retrans_ns),
                    trigger,
                },
                used: now,
            },
        );
        *p.incomplete(trigger) += 1;
        self.solicit(port, ip, None);
    }

    fn used(&mut self, port: usize, ip: Addr, now: u64) {
        let Some(e) = self
            .ports
            .get_mut(port)
            .and_then(|p| p.entries.get_mut(&ip))
        else {
            return;
        };
        e.used = e.used.max(now);
        if e.state == State::Stale {
            // RFC 4861 7.3.3: a packet sent through a STALE entry starts DELAY.
            e.state = State::Delay {
                until: now.saturating_add(self.timers.delay_first_probe_ns),
            };
        }
    }

    /// RFC 4861 section 7.2.3: a solicitation's source link-layer address option.
    fn solicitation(&mut self, port: usize, src: Addr, mac: [u8; 6], now: u64) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        match p.entries.get_mut(&src) {
            Some(e) => match e.state {
                State::Static => {}
                State::Incomplete { trigger, .. } => {
                    dec_incomplete(&mut p.incomplete_inside, &mut p.incomplete_outside, trigger);
                    e.mac = mac;
                    e.state = State::Stale;
                    e.used = now;
                    self.counters.resolved += 1;
                    self.publish(port, src);
                    self.note_answer(port, src);
                }
                State::Failed { .. } => {
                    e.mac = mac;
                    e.state = State::Stale;
                    e.used = now;
                    self.publish(port, src);
                    self.note_answer(port, src);
                }
                _ if e.mac != mac => {
                    e.mac = mac;
                    e.state = State::Stale;
                    self.publish(port, src);
                }
                _ => {}
            },
            None => {
                if p.entries.len() >= MAX_NS_CREATED_FILL {
                    self.counters.ns_create_refused += 1;
                    return;
                }
                p.entries.insert(
                    src,
                    Entry {
                        mac,
                        state: State::Stale,
                        used: now,
                    },
                );
                self.publish(port, src);
                self.note_answer(port, src);
            }
        }
    }

    /// RFC 4861 section 7.2.5: an advertisement.
    fn advertisement(
        &mut self,
        port: usize,
        target: Addr,
        mac: Option<[u8; 6]>,
        solicited: bool,
        override_: bool,
        now: u64,
    ) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        let Some(e) = p.entries.get_mut(&target) else {
            self.counters.unsolicited_na += 1;
            return;
        };
        let reachable = State::Reachable {
            until: now.saturating_add(self.timers.reachable_ns),
        };
        match e.state {
            State::Static => return,
            State::Incomplete { trigger, .. } => {
                let Some(mac) = mac else {
                    self.counters.na_without_lladdr_ignored += 1;
                    return;
                };
                dec_incomplete(&mut p.incomplete_inside, &mut p.incomplete_outside, trigger);
                e.mac = mac;
                e.state = if solicited { reachable } else { State::Stale };
                e.used = now;
                self.counters.resolved += 1;
            }
            State::Failed { .. } => {
                // A late answer to our solicitations: as good as one in time.
                let Some(mac) = mac else {
                    return;
                };
                e.mac = mac;
                e.state = if solicited { reachable } else { State::Stale };
                e.used = now;
            }
            _ => {
                // No option means "the address I already have" (7.2.5: a solicited NA
                // without a target link-layer address still confirms the entry).
                let same = mac.is_none_or(|m| m == e.mac);
                if !override_ && !same {
                    // Keep the address we know, but doubt it.
                    if matches!(e.state, State::Reachable { .. }) {
                        e.state = State::Stale;
                    } else {
                        return;
                    }
                } else {
                    if let Some(m) = mac {
                        e.mac = m;
                    }
                    if solicited {
                        e.state = reachable;
                        e.used = e.used.max(now);
                    } else if !same {
                        e.state = State::Stale;
                    } else {
                        return;
                    }
                }
            }
        }
        self.publish(port, target);
        self.note_answer(port, target);
    }

    // -- timers ----------------------------------------------------------------------------

    fn scan_port(&mut self, port: usize, now: u64) {
        // Collect first: the solicitations and publications below need `&mut self`.
        let mut due: Vec<(Addr, State)> = Vec::new();
        let Some(p) = self.ports.get(port) else {
            return;
        };
        for (ip, e) in &p.entries {
            let fire = match e.state {
                State::Incomplete { next, .. } | State::Probe { next, .. } => now >= next,
                State::Reachable { until } | State::Delay { until } | State::Failed { until } => {
                    now >= until
                }
                State::Stale => now.saturating_sub(e.used) >= EXPIRE_UNUSED_NS,
                State::Static => false,
            };
            if fire {
                due.push((*ip, e.state));
            }
        }
        for (ip, state) in due {
            self.fire(port, ip, state, now);
        }
    }

    fn fire(&mut self, port: usize, ip: Addr, state: State, now: u64) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        let Some(e) = p.entries.get_mut(&ip) else {
            return;
        };
        match state {
            State::Incomplete {
                sent,
                next,
                trigger,
            } => {
                if sent >= MAX_MULTICAST_SOLICIT {
                    dec_incomplete(&mut p.incomplete_inside, &mut p.incomplete_outside, trigger);
                    // A watched next hop is solicited again right away (its ISP is down
                    // until it answers); anything else is remembered as failed.
                    let hold = if self.is_next_hop(port, ip) {
                        0
                    } else {
                        self.timers.failed_hold_ns()
                    };
                    if let Some(e) = self
                        .ports
                        .get_mut(port)
                        .and_then(|p| p.entries.get_mut(&ip))
                    {
                        e.state = State::Failed {
                            until: now.saturating_add(hold),
                        };
                    }
                    self.counters.resolution_failed += 1;
                    self.publish(port, ip);
                    self.note_failure(port, ip);
                } else {
                    e.state = State::Incomplete {
                        sent: sent + 1,
                        next: next.max(now).saturating_add(self.timers.retrans_ns),
                        trigger,
                    };
                    self.solicit(port, ip, None);
                }
            }
            State::Reachable { .. } => {
                e.state = State::Stale;
                self.publish(port, ip);
            }
            State::Delay { .. } => {
                e.state = State::Probe {
                    sent: 1,
                    next: now.saturating_add(self.timers.retrans_ns),
                };
                let mac = e.mac;
                self.solicit(port, ip, Some(mac));
            }
            State::Probe { sent, next } => {
                if sent >= MAX_UNICAST_SOLICIT {
                    p.entries.remove(&ip);
                    self.counters.probe_failed += 1;
                    self.writer.publish(NeighborOp::Remove {
                        port: port as u16,
                        ip,
                    });
                    self.note_failure(port, ip);
                } else {
                    e.state = State::Probe {
                        sent: sent + 1,
                        next: next.max(now).saturating_add(self.timers.retrans_ns),
                    };
                    let mac = e.mac;
                    self.solicit(port, ip, Some(mac));
                }
            }
            State::Failed { .. } | State::Stale => {
                if state == State::Stale {
                    self.counters.expired += 1;
                }
                p.entries.remove(&ip);
                self.writer.publish(NeighborOp::Remove {
                    port: port as u16,
                    ip,
                });
            }
            State::Static => {}
        }
    }

    // -- helpers ---------------------------------------------------------------------------

    /// Makes room for one more entry on `port`: if full, evicts the least recently used
    /// entry that is neither INCOMPLETE nor STATIC. O(entries), only when full.
    fn make_room(&mut self, port: usize, _now: u64) -> bool {
        let Some(p) = self.ports.get_mut(port) else {
            return false;
        };
        if p.entries.len() < MAX_ENTRIES_PER_PORT {
            return true;
        }
        let victim = p
            .entries
            .iter()
            .filter(|(_, e)| !matches!(e.state, State::Static | State::Incomplete { .. }))
            .min_by_key(|(_, e)| e.used)
            .map(|(ip, _)| *ip);
        let Some(ip) = victim else {
            return false;
        };
        p.entries.remove(&ip);
        self.counters.evicted += 1;
        self.writer.publish(NeighborOp::Remove {
            port: port as u16,
            ip,
        });
        true
    }

    /// Publishes the current state of `ip` on `port` (or its absence).
    fn publish(&mut self, port: usize, ip: Addr) {
        let e = self
            .ports
            .get(port)
            .and_then(|p| p.entries.get(&ip))
            .copied();
        let op = match e.and_then(|e| e.state.published().map(|r| (e.mac, r))) {
            Some((mac, reach)) => NeighborOp::Set {
                port: port as u16,
                ip,
                neighbor: Neighbor { mac, reach },
            },
            None => NeighborOp::Remove {
                port: port as u16,
                ip,
            },
        };
        self.writer.publish(op);
    }

    /// Queues a solicitation for `ip` on `port`: multicast to its solicited-node group, or
    /// unicast to `mac` (a probe).
    fn solicit(&mut self, port: usize, ip: Addr, unicast: Option<[u8; 6]>) {
        let (Some(p), Some(src)) = (self.site.ports.get(port), self.site.ns_source_for(port, ip))
        else {
            return;
        };
        let mut frame = [0u8; NS_FRAME_LEN];
        build_ns_frame(&mut frame, p.mac, src, ip, unicast);
        self.frames.push((port, frame));
        match unicast {
            Some(_) => self.counters.ns_unicast_sent += 1,
            None => self.counters.ns_multicast_sent += 1,
        }
    }

    fn is_next_hop(&self, port: usize, ip: Addr) -> bool {
        self.next_hops
            .iter()
            .flatten()
            .any(|h| h.port == port && h.ip == ip)
    }

    fn note_failure(&mut self, port: usize, ip: Addr) {
        self.note_next_hop(port, ip, false);
    }

    fn note_answer(&mut self, port: usize, ip: Addr) {
        self.note_next_hop(port, ip, true);
    }

    fn note_next_hop(&mut self, port: usize, ip: Addr, up: bool) {
        for (i, h) in self.next_hops.iter_mut().enumerate() {
            if let Some(h) = h {
                if h.port == port && h.ip == ip && h.up != up {
                    h.up = up;
                    self.changes.push((i, up));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::{ip, two_isp_site, HOST_MAC, ISP1_MAC};

    const S: u64 = 1_000_000_000;
    const LAN: usize = 0;
    const REACHABLE_TIME_NS: u64 = 30 * S;
    const DELAY_FIRST_PROBE_TIME_NS: u64 = 5 * S;
    const FAILED_HOLD_NS: u64 = 3 * S;
    const ISP1: usize = 1;

    fn a(s: &str) -> Addr {
        addr::from_std(&ip(s))
    }

    fn frames(o: &mut NeighborOwner) -> Vec<(usize, Vec<u8>)> {
        let mut v = Vec::new();
        o.drain_frames(&mut |p, f| v.push((p, f.to_vec())));
        v
    }

    fn na(target: Addr, mac: Option<[u8; 6]>, solicited: bool) -> NeighborEvent {
        NeighborEvent::Advertisement {
            port: LAN as u16,
            target,
            mac,
            solicited,
            override_: true,
        }
    }

    fn needed(ip: Addr, trigger: Trigger) -> NeighborEvent {
        NeighborEvent::Needed {
            port: LAN as u16,
            ip,
            trigger,
        }
    }

    #[test]
    fn resolution_solicits_three_times_then_fails_then_forgets() {
        let mut o = NeighborOwner::new(&two_isp_site());
        let h = a("2001:db8:1:1::10");
        o.handle(needed(h, Trigger::Outside), 0);
        assert_eq!(o.state(LAN, h), Some("INCOMPLETE"));
        let f = frames(&mut o);
        assert_eq!(f.len(), 1);
        // Multicast to the solicited-node group.
        assert_eq!(&f[0].1[0..6], &[0x33, 0x33, 0xff, 0, 0, 0x10]);
        o.tick(S / 2);
        assert!(frames(&mut o).iter().all(|(p, _)| *p != LAN));
        o.tick(S);
        o.tick(2 * S);
        let lan: Vec<_> = frames(&mut o)
            .into_iter()
            .filter(|(p, _)| *p == LAN)
            .collect();
        assert_eq!(lan.len(), 2, "two retransmissions");
        o.tick(3 * S);
        assert_eq!(o.state(LAN, h), Some("FAILED"));
        assert_eq!(o.table().get(LAN, h).map(|n| n.reach), Some(Reach::Failed));
        assert_eq!(o.counters().resolution_failed, 1);
        // Needed again while FAILED: nothing is sent.
        o.handle(needed(h, Trigger::Outside), 3 * S + 1);
        assert!(frames(&mut o).iter().all(|(p, _)| *p != LAN));
        o.tick(3 * S + FAILED_HOLD_NS);
        assert_eq!(o.state(LAN, h), None);
        assert_eq!(o.table().get(LAN, h), None);
    }

    #[test]
    fn solicited_na_resolves_then_ages_and_nud_confirms_without_an_option() {
        let mut o = NeighborOwner::new(&two_isp_site());
        let h = a("2001:db8:1:1::10");
        o.handle(needed(h, Trigger::Inside), 0);
        o.handle(na(h, Some(HOST_MAC), true), S / 10);
        assert_eq!(o.state(LAN, h), Some("REACHABLE"));
        assert_eq!(
            o.table().get(LAN, h),
            Some(Neighbor {
                mac: HOST_MAC,
                reach: Reach::Reachable
            })
        );
        o.tick(REACHABLE_TIME_NS + S);
        assert_eq!(o.state(LAN, h), Some("STALE"));
        assert_eq!(o.table().get(LAN, h).map(|n| n.reach), Some(Reach::Stale));
        // Used while STALE: DELAY, then a unicast probe to the cached MAC.
        let t = REACHABLE_TIME_NS + 2 * S;
        o.handle(
            NeighborEvent::Used {
                port: LAN as u16,
                ip: h,
            },
            t,
        );
        assert_eq!(o.state(LAN, h), Some("DELAY"));
        frames(&mut o);
        o.tick(t + DELAY_FIRST_PROBE_TIME_NS);
        assert_eq!(o.state(LAN, h), Some("PROBE"));
        let f = frames(&mut o);
        let probe = f.iter().find(|(p, _)| *p == LAN).expect("a probe");
        assert_eq!(&probe.1[0..6], &HOST_MAC, "unicast to the cached address");
        // RFC 4861 7.2.5: a solicited NA without a target link-layer option confirms.
        o.handle(na(h, None, true), t + DELAY_FIRST_PROBE_TIME_NS + S / 10);
        assert_eq!(o.state(LAN, h), Some("REACHABLE"));
        assert_eq!(o.table().get(LAN, h).map(|n| n.mac), Some(HOST_MAC));
    }

    #[test]
    fn unanswered_probes_delete_the_entry() {
        let mut o = NeighborOwner::new(&two_isp_site());
        let h = a("2001:db8:1:1::10");
        o.handle(
            NeighborEvent::Solicitation {
                port: LAN as u16,
                src: h,
                mac: HOST_MAC,
            },
            0,
        );
        assert_eq!(o.state(LAN, h), Some("STALE"), "7.2.3: created STALE");
        o.handle(
            NeighborEvent::Used {
                port: LAN as u16,
                ip: h,
            },
            S,
        );
        let mut t = S;
        for _ in 0..200 {
            t += SCAN_INTERVAL_NS;
            o.tick(t);
        }
        assert_eq!(o.state(LAN, h), None);
        assert_eq!(o.table().get(LAN, h), None);
        assert_eq!(o.counters().probe_failed, 1);
        assert_eq!(o.counters().ns_unicast_sent, u64::from(MAX_UNICAST_SOLICIT));
    }

    #[test]
    fn unsolicited_na_creates_nothing_and_na_without_option_does_not_resolve() {
        let mut o = NeighborOwner::new(&two_isp_site());
        let h = a("2001:db8:1:1::10");
        o.handle(na(h, Some(HOST_MAC), false), 0);
        assert_eq!(o.state(LAN, h), None);
        assert_eq!(o.counters().unsolicited_na, 1);
        o.handle(needed(h, Trigger::Inside), 0);
        o.handle(na(h, None, true), 1);
        assert_eq!(o.state(LAN, h), Some("INCOMPLETE"));
    }

    #[test]
    fn override_rules() {
        let mut o = NeighborOwner::new(&two_isp_site());
        let h = a("2001:db8:1:1::10");
        let other = [2, 9, 9, 9, 9, 9];
        o.handle(needed(h, Trigger::Inside), 0);
        o.handle(na(h, Some(HOST_MAC), true), 1);
        // Different address without override: keep it, but doubt it.
        o.handle(
            NeighborEvent::Advertisement {
                port: LAN as u16,
                target: h,
                mac: Some(other),
                solicited: true,
                override_: false,
            },
            2,
        );
        assert_eq!(o.state(LAN, h), Some("STALE"));
        assert_eq!(o.table().get(LAN, h).map(|n| n.mac), Some(HOST_MAC));
        // With override: replaced.
        o.handle(na(h, Some(other), false), 3);
        assert_eq!(o.table().get(LAN, h).map(|n| n.mac), Some(other));
        assert_eq!(o.state(LAN, h), Some("STALE"));
    }

    #[test]
    fn outside_budget_is_apart_from_inside() {
        let mut o = NeighborOwner::new(&two_isp_site());
        let base = u128::from(ip("2001:db8:1:1::"));
        for i in 0..(MAX_INCOMPLETE_OUTSIDE as u128 + 50) {
            o.handle(needed(base + 0x1000 + i, Trigger::Outside), 0);
        }
        assert_eq!(o.counters().refused_outside_budget, 50);
        // A host that talks is still resolved.
        let h = base + 7;
        o.handle(needed(h, Trigger::Inside), 0);
        assert_eq!(o.state(LAN, h), Some("INCOMPLETE"));
        o.handle(na(h, Some(HOST_MAC), true), 1);
        assert_eq!(o.state(LAN, h), Some("REACHABLE"));
        // An outside-triggered resolution is promoted when the host talks.
        let g = base + 0x1000;
        o.handle(needed(g, Trigger::Inside), 2);
        o.handle(needed(base + 0x9999, Trigger::Outside), 2);
        assert_eq!(o.state(LAN, base + 0x9999), Some("INCOMPLETE"));
    }

    #[test]
    fn next_hop_failure_and_recovery_are_reported() {
        let mut o = NeighborOwner::new(&two_isp_site());
        let nh = a("fe80::1");
        o.tick(0);
        assert_eq!(o.state(ISP1, nh), Some("INCOMPLETE"), "solicited at start");
        let mut changes = Vec::new();
        let mut t = 0;
        while t < 4 * S {
            t += SCAN_INTERVAL_NS;
            o.tick(t);
        }
        o.drain_next_hop_changes(&mut |i, up| changes.push((i, up)));
        assert_eq!(changes, vec![(0, false)]);
        // Solicited again at once while down.
        o.tick(t + SCAN_INTERVAL_NS);
        assert_eq!(o.state(ISP1, nh), Some("INCOMPLETE"));
        o.handle(
            NeighborEvent::Advertisement {
                port: ISP1 as u16,
                target: nh,
                mac: Some(ISP1_MAC),
                solicited: true,
                override_: true,
            },
            t + SCAN_INTERVAL_NS + 1,
        );
        changes.clear();
        o.drain_next_hop_changes(&mut |i, up| changes.push((i, up)));
        assert_eq!(changes, vec![(0, true)]);
    }

    #[test]
    fn full_table_evicts_least_recently_used_never_incomplete_or_static() {
        let mut o = NeighborOwner::new(&two_isp_site());
        let base = u128::from(ip("2001:db8:1:1::"));
        o.add_static(LAN, base + 1, HOST_MAC);
        for i in 0..(MAX_NS_CREATED_FILL as u128) {
            o.handle(
                NeighborEvent::Solicitation {
                    port: LAN as u16,
                    src: base + 0x100 + i,
                    mac: HOST_MAC,
                },
                i as u64,
            );
        }
        assert_eq!(
            o.counters().ns_create_refused,
            1,
            "the last one found the share full"
        );
        // Fill the rest by resolution.
        let mut t = 10 * S;
        let mut i = 0u128;
        while o.ports[LAN].entries.len() < MAX_ENTRIES_PER_PORT {
            let h = base + 0x10_0000 + i;
            o.handle(needed(h, Trigger::Inside), t);
            o.handle(na(h, Some(HOST_MAC), true), t);
            i += 1;
            t += 1;
        }
        let oldest = base + 0x100;
        assert!(o.state(LAN, oldest).is_some());
        o.handle(needed(base + 0x20_0000, Trigger::Inside), t);
        assert_eq!(o.state(LAN, oldest), None, "least recently used evicted");
        assert_eq!(o.state(LAN, base + 1), Some("STATIC"));
        assert!(o.counters().evicted >= 1);
    }
}
