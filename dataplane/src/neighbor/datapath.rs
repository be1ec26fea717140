//! The worker's side of neighbor resolution: read the replica, hold what must wait, report.
//!
//! [`Resolver`] answers "which MAC for this next hop" from the worker's replica of the
//! [`NeighborTable`] (memoised per burst, so a burst toward one next hop hashes once) and
//! queues [`NeighborEvent`]s for the owner, rate-limited:
//!
//! - per target: at most one report per [`REPORT_INTERVAL_NS`] (a flow to an unresolved
//!   host asks once, not once per packet);
//! - resolutions triggered from outside (an ISP's packet toward an unknown LAN address)
//!   additionally draw from a per-worker token bucket of [`OUTSIDE_REPORTS_PER_SEC`]
//!   (RFC 6583 section 7.1), checked before the per-target table so a scan of random
//!   addresses neither floods the owner nor crowds the table;
//! - the queue of events is bounded ([`MAX_EVENTS`]); beyond it events are counted and lost
//!   (the next packet asks again).
//!
//! [`HoldQueue`] keeps copies of packets waiting for their next hop (RFC 4861 section 7.2.2:
//! "at least one packet" per neighbor; here at most [`MAX_HELD_PER_NEIGHBOR`] per neighbor
//! and [`MAX_HELD`] in all, so the first packet of a new flow is not lost; one still
//! unresolved after [`super::Timers::hold_timeout_ns`] is answered with code 3).

use hashbrown::HashMap;

use super::{Neighbor, NeighborEvent, NeighborTable, Reach, Trigger};
use crate::net::addr::Addr;
use crate::nodes::classify::Parsed;
use crate::nodes::icmp_error::TokenBucket;
use crate::stats::named_counters;
use crate::tables::Reader;

/// At most one report per target per this interval.
pub const REPORT_INTERVAL_NS: u64 = 1_000_000_000;
/// Reports for resolutions triggered from outside, per worker per second at most.
pub const OUTSIDE_REPORTS_PER_SEC: u32 = 200;
/// Targets remembered for per-target rate limiting; a full table is cleared.
pub const MAX_REPORTED: usize = 2048;
/// Events queued for the owner at most between two drains.
pub const MAX_EVENTS: usize = 1024;
/// Packets held per neighbor awaiting resolution at most.
pub const MAX_HELD_PER_NEIGHBOR: usize = 3;
/// Packets held per worker at most.
pub const MAX_HELD: usize = 256;
/// Of those, packets from the Internet side toward LAN hosts at most, so that a scan of the
/// LAN prefix cannot crowd out the first packets of flows from inside (RFC 6583).
pub const MAX_HELD_OUTSIDE: usize = 64;

named_counters! {
    /// The worker's neighbor counters (`resolve.*`).
    pub struct ResolveCounters("resolve") {
        /// Packets held awaiting resolution of their next hop.
        held,
        /// Held packets sent once the next hop resolved.
        released,
        /// Held packets whose resolution failed or timed out (answered with code 3 when
        /// the rate limit allows).
        hold_failed,
        /// `Needed` reports sent to the owner.
        needed_reported,
        /// `Used` reports sent to the owner (STALE entries in use).
        used_reported,
        /// Outside-triggered reports withheld by the per-worker budget (RFC 6583).
        outside_ratelimited,
        /// Events lost because the queue to the owner was full.
        events_dropped,
    }
}

/// What the replica says about a next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Forward to this MAC.
    Mac([u8; 6]),
    /// Not resolved yet: hold the packet.
    Unresolved,
    /// Resolution failed: answer code 3.
    Failed,
}

#[derive(Clone, Copy, Debug, Default)]
struct Memo {
    generation: u64,
    now: u64,
    port: usize,
    ip: Addr,
    result: Option<Neighbor>,
}

/// One worker's view of the neighbor table and its reports to the owner.
pub struct Resolver {
    table: Reader<NeighborTable>,
    memos: Vec<Memo>,
    reported: HashMap<(u16, Addr, bool), u64>,
    outside: TokenBucket,
    events: Vec<NeighborEvent>,
    pub counters: ResolveCounters,
}

impl Resolver {
    /// A resolver over `table`, with `memo_slots` memo slots (one per ISP next hop plus
    /// one for hosts).
    pub fn new(table: Reader<NeighborTable>, memo_slots: usize) -> Resolver {
        Resolver {
            table,
            memos: vec![Memo::default(); memo_slots.max(1)],
            reported: HashMap::with_capacity(MAX_REPORTED),
            outside: TokenBucket::new(OUTSIDE_REPORTS_PER_SEC),
            events: Vec::with_capacity(MAX_EVENTS),
            counters: ResolveCounters::default(),
        }
    }

    /// Applies the owner's changes (between bursts); how many.
    #[inline]
    pub fn sync(&mut self) -> usize {
        self.table.sync()
    }

    /// The replica.
    #[inline]
    pub fn table(&self) -> &NeighborTable {
        self.table.get()
    }

    /// The next hop `ip` on `port` for a packet at `now`, through memo slot `slot`; reports
    /// what the owner must know (a missing entry, the use of a STALE one).
    #[inline]
    pub fn lookup(
        &mut self,
        slot: usize,
        port: usize,
        ip: Addr,
        trigger: Trigger,
        now: u64,
    ) -> Lookup {
        let generation = self.table.get().generation();
        let memo = self.memos.get(slot).copied().unwrap_or_default();
        let result = if memo.generation == generation
            && memo.now == now
            && memo.port == port
            && memo.ip == ip
        {
            // Already looked up (and reported) in this burst.
            memo.result
        } else {
            let r = self.table.get().get(port, ip);
            if let Some(m) = self.memos.get_mut(slot) {
                *m = Memo {
                    generation,
                    now,
                    port,
                    ip,
                    result: r,
                };
            }
            match r {
                None => self.report_needed(port, ip, trigger, now),
                Some(n) if n.reach == Reach::Stale => self.report_used(port, ip, now),
                _ => {}
            }
            r
        };
        match result {
            Some(Neighbor {
                mac,
                reach: Reach::Reachable | Reach::Stale,
            }) => Lookup::Mac(mac),
            Some(Neighbor {
                reach: Reach::Failed,
                ..
            }) => Lookup::Failed,
            None => Lookup::Unresolved,
        }
    }

    /// What the replica says about `ip` on `port`, without reporting anything (held
    /// packets, tools).
    #[inline]
    pub fn peek(&self, port: usize, ip: Addr) -> Lookup {
        match self.table.get().get(port, ip) {
            Some(Neighbor {
                mac,
                reach: Reach::Reachable | Reach::Stale,
            }) => Lookup::Mac(mac),
            Some(_) => Lookup::Failed,
            None => Lookup::Unresolved,
        }
    }

    /// A LAN host sent a packet from `ip`: if the router cannot reach it yet, ask for it
    /// (inside budget), so that the answers it waits for are not stuck behind a scan.
    #[inline]
    pub fn talked(&mut self, port: usize, ip: Addr, now: u64) {
        match self.table.get().get(port, ip) {
            Some(Neighbor {
                reach: Reach::Reachable | Reach::Stale,
                ..
            }) => {}
            _ => self.report_needed(port, ip, Trigger::Inside, now),
        }
    }

    /// Queues an ND message's evidence for the owner (not rate-limited: the messages are
    /// already validated and bounded by the link).
    pub fn report(&mut self, ev: NeighborEvent) {
        self.push(ev);
    }

    /// Hands every queued event to `out`, and forgets them.
    pub fn drain_events(&mut self, out: &mut impl FnMut(NeighborEvent)) {
        for ev in self.events.drain(..) {
            out(ev);
        }
    }

    fn report_needed(&mut self, port: usize, ip: Addr, trigger: Trigger, now: u64) {
        if trigger == Trigger::Outside && !self.outside.take(now) {
            self.counters.outside_ratelimited += 1;
            return;
        }
        if self.due(port, ip, false, now) {
            self.counters.needed_reported += 1;
            self.push(NeighborEvent::Needed {
                port: port as u16,
                ip,
                trigger,
            });
        }
    }

    fn report_used(&mut self, port: usize, ip: Addr, now: u64) {
        if self.due(port, ip, true, now) {
            self.counters.used_reported += 1;
            self.push(NeighborEvent::Used {
                port: port as u16,
                ip,
            });
        }
    }

    /// Whether a report about `ip` is due, recording it if so.
    fn due(&mut self, port: usize, ip: Addr, used: bool, now: u64) -> bool {
        let key = (port as u16, ip, used);
        if let Some(last) = self.reported.get_mut(&key) {
            if now.saturating_sub(*last) < REPORT_INTERVAL_NS && *last != 0 {
                return false;
            }
            *last = now.max(1);
            return true;
        }
        if self.reported.len() >= MAX_REPORTED {
            self.reported.clear();
        }
        self.reported.insert(key, now.max(1));
        true
    }

    fn push(&mut self, ev: NeighborEvent) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(ev);
        } else {
            self.counters.events_dropped += 1;
        }
    }
}

/// Where a held packet goes once its next hop resolves, and what to answer if it does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldMeta {
    /// The port it came in on (a code 3 error goes back there).
    pub rx_port: usize,
    /// The port to send it on.
    pub out_port: usize,
    /// The next hop being resolved.
    pub next_hop: Addr,
    /// The ISP whose next hop it is, for the ISP's counters.
    pub isp: Option<usize>,
    /// The packet's summary (its frame is the held copy).
    pub parsed: Parsed,
    /// The router originated it (its hop limit is not decremented).
    pub originated: bool,
    /// It came from outside toward a LAN host (the share of [`MAX_HELD_OUTSIDE`]).
    pub outside: bool,
    /// When it was held.
    pub since: u64,
}

/// What [`HoldQueue::push`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Kept.
    Held,
    /// Kept; the neighbor's share was full, so its oldest packet was dropped (RFC 4861
    /// section 7.2.2: "the new arrival SHOULD replace the oldest entry").
    ReplacedOldest,
    /// Not kept: the worker's share (or the outside share) is full.
    Full,
}

/// One held packet.
#[derive(Clone, Debug)]
pub struct Held {
    pub frame: Vec<u8>,
    pub meta: HoldMeta,
}

/// Copies of packets awaiting resolution, bounded per neighbor and in all. Buffers are
/// reused, so holding allocates only while the queue first grows.
#[derive(Debug, Default)]
pub struct HoldQueue {
    held: Vec<Held>,
    spare: Vec<Vec<u8>>,
}

impl HoldQueue {
    pub fn new() -> HoldQueue {
        HoldQueue {
            held: Vec::with_capacity(MAX_HELD),
            spare: Vec::new(),
        }
    }

    /// Keeps a copy of `frame`. O(held), on the slow path only.
    pub fn push(&mut self, frame: &[u8], meta: HoldMeta) -> Hold {
        let same = |h: &Held| h.meta.out_port == meta.out_port && h.meta.next_hop == meta.next_hop;
        let mut outcome = Hold::Held;
        if self.held.iter().filter(|h| same(h)).count() >= MAX_HELD_PER_NEIGHBOR {
            if let Some(oldest) = self.held.iter().position(same) {
                let h = self.held.remove(oldest);
                self.recycle(h.frame);
                outcome = Hold::ReplacedOldest;
            }
        } else if self.held.len() >= MAX_HELD
            || (meta.outside
                && self.held.iter().filter(|h| h.meta.outside).count() >= MAX_HELD_OUTSIDE)
        {
            return Hold::Full;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        self.held.push(Held { frame: buf, meta });
        outcome
    }

    /// Gives a frame buffer back for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < MAX_HELD {
            self.spare.push(buf);
        }
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Removes and hands to `f` every held packet for which `ready` says yes, in the order
    /// they were held; `f` takes the packet (and may give its buffer back with
    /// [`Self::recycle`]).
    pub fn take_ready(
        &mut self,
        mut ready: impl FnMut(&HoldMeta) -> bool,
        mut f: impl FnMut(Held),
    ) {
        let mut i = 0;
        while i < self.held.len() {
            let go = self.held.get(i).is_some_and(|h| ready(&h.meta));
            if go {
                f(self.held.remove(i));
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neighbor::NeighborOp;
    use crate::tables::Writer;

    const S: u64 = 1_000_000_000;

    fn setup() -> (Writer<NeighborTable>, Resolver) {
        let mut w = Writer::new(NeighborTable::new(2, 16), 64);
        let r = Resolver::new(w.reader(), 2);
        (w, r)
    }

    fn events(r: &mut Resolver) -> Vec<NeighborEvent> {
        let mut v = Vec::new();
        r.drain_events(&mut |e| v.push(e));
        v
    }

    #[test]
    fn unknown_next_hop_is_reported_once_per_interval() {
        let (_w, mut r) = setup();
        assert_eq!(r.lookup(0, 1, 7, Trigger::Inside, 10), Lookup::Unresolved);
        assert_eq!(r.lookup(0, 1, 7, Trigger::Inside, 11), Lookup::Unresolved);
        assert_eq!(r.lookup(1, 1, 7, Trigger::Inside, 12), Lookup::Unresolved);
        assert_eq!(
            events(&mut r),
            vec![NeighborEvent::Needed {
                port: 1,
                ip: 7,
                trigger: Trigger::Inside
            }]
        );
        r.lookup(0, 1, 7, Trigger::Inside, 10 + S);
        assert_eq!(events(&mut r).len(), 1);
    }

    #[test]
    fn published_entries_are_used_and_stale_ones_reported() {
        let (mut w, mut r) = setup();
        let mac = [2, 0, 0, 0, 0, 9];
        w.publish(NeighborOp::Set {
            port: 1,
            ip: 7,
            neighbor: Neighbor {
                mac,
                reach: Reach::Reachable,
            },
        });
        assert_eq!(r.lookup(0, 1, 7, Trigger::Inside, 1), Lookup::Unresolved);
        events(&mut r);
        r.sync();
        assert_eq!(r.lookup(0, 1, 7, Trigger::Inside, 2), Lookup::Mac(mac));
        assert!(events(&mut r).is_empty(), "REACHABLE: nothing to report");
        w.publish(NeighborOp::Set {
            port: 1,
            ip: 7,
            neighbor: Neighbor {
                mac,
                reach: Reach::Stale,
            },
        });
        r.sync();
        assert_eq!(r.lookup(0, 1, 7, Trigger::Inside, 3), Lookup::Mac(mac));
        assert_eq!(events(&mut r), vec![NeighborEvent::Used { port: 1, ip: 7 }]);
        w.publish(NeighborOp::Set {
            port: 1,
            ip: 7,
            neighbor: Neighbor {
                mac: [0; 6],
                reach: Reach::Failed,
            },
        });
        r.sync();
        assert_eq!(r.lookup(0, 1, 7, Trigger::Inside, 4), Lookup::Failed);
        assert_eq!(r.peek(1, 7), Lookup::Failed);
    }

    #[test]
    fn outside_reports_are_budgeted_and_do_not_crowd_inside_ones() {
        let (_w, mut r) = setup();
        for i in 0..10_000u128 {
            r.lookup(1, 0, 1000 + i, Trigger::Outside, 5);
        }
        let n = events(&mut r).len();
        assert_eq!(n, OUTSIDE_REPORTS_PER_SEC as usize);
        assert_eq!(
            r.counters.outside_ratelimited,
            10_000 - u64::from(OUTSIDE_REPORTS_PER_SEC)
        );
        r.talked(0, 42, 6);
        assert_eq!(
            events(&mut r),
            vec![NeighborEvent::Needed {
                port: 0,
                ip: 42,
                trigger: Trigger::Inside
            }]
        );
    }

    #[test]
    fn hold_queue_bounds_and_order() {
        let mut q = HoldQueue::new();
        let meta = |hop: Addr, outside: bool| HoldMeta {
            rx_port: 0,
            out_port: 1,
            next_hop: hop,
            isp: None,
            parsed: Parsed::default(),
            originated: false,
            outside,
            since: 0,
        };
        for i in 0..MAX_HELD_PER_NEIGHBOR {
            assert_eq!(q.push(&[i as u8], meta(1, false)), Hold::Held);
        }
        // RFC 4861 7.2.2: the new arrival replaces the oldest.
        assert_eq!(q.push(&[9], meta(1, false)), Hold::ReplacedOldest);
        assert_eq!(q.push(&[7], meta(2, false)), Hold::Held);
        let mut got = Vec::new();
        q.take_ready(|m| m.next_hop == 1, |h| got.push(h.frame));
        assert_eq!(got, vec![vec![1], vec![2], vec![9]]);
        assert_eq!(q.len(), 1);
        // The outside share.
        for i in 0..MAX_HELD as u128 {
            q.push(&[0], meta(100 + i, true));
        }
        assert_eq!(q.len(), 1 + MAX_HELD_OUTSIDE, "outside bound");
        for i in 0..MAX_HELD as u128 {
            q.push(&[0], meta(1000 + i, false));
        }
        assert_eq!(q.len(), MAX_HELD, "total bound");
    }
}
