//! The per-worker neighbor cache: IPv6 address -> MAC, per port, plus the per-target
//! solicitation clock.
//!
//! Each worker owns its cache (no locks). What one worker learns from the wire is queued for
//! the io layer, which hands it to the other workers ([`crate::Pipeline::learn_neighbor`]),
//! so every replica converges without sharing memory on the hot path.
//!
//! Entries are created only where RFC 4861 allows it (section 7.2.5: an advertisement
//! creates nothing unless it answers a solicitation of ours, i.e. its target is pending;
//! section 7.2.3: a solicitation's source link-layer option may create a STALE entry) and
//! they age (a simplified section 7.3.2 state machine, clocked by the caller's `now_ns`):
//!
//! * REACHABLE for [`REACHABLE_TIME_NS`] after a confirmation (a solicited NA);
//! * then STALE: still used, but the first use asks for a re-solicitation
//!   ([`Resolved::probe`]); an entry still unconfirmed [`PROBE_TIMEOUT_NS`] after its first
//!   probe is deleted (the host is gone or moved);
//! * unused for [`EXPIRE_UNUSED_NS`]: deleted by [`NeighborCache::sweep`].
//!
//! Both tables are bounded (RFC 6583: an off-link scan of a /64 must not grow the cache or
//! the solicitation state without limit), with their capacity reserved up front. A full
//! table makes room by evicting its least recently used non-static entry (static entries
//! are never evicted); entries created from solicitations may only fill the table up to
//! [`MAX_NS_CREATED_FILL`], so a node spraying solicitations cannot push out the entries
//! the router resolved itself.

use hashbrown::HashMap;

use crate::net::addr::Addr;

/// Entries per port at most; a new neighbor beyond it evicts the least recently used one.
pub const MAX_ENTRIES_PER_PORT: usize = 4096;
/// Solicitations (NS source link-layer options) create entries only while the port has
/// fewer than this many; beyond it they only update existing entries.
pub const MAX_NS_CREATED_FILL: usize = MAX_ENTRIES_PER_PORT * 3 / 4;
/// Targets being solicited per port at most.
pub const MAX_PENDING_PER_PORT: usize = 256;
/// At most one Neighbor Solicitation per target per this interval (RFC 4861 section 10:
/// RetransTimer is 1 s).
pub const SOLICIT_INTERVAL_NS: u64 = 1_000_000_000;
/// An advertisement answers a pending solicitation if it comes within this long of the
/// last one (MAX_MULTICAST_SOLICIT x RetransTimer).
pub const PENDING_TTL_NS: u64 = 3 * SOLICIT_INTERVAL_NS;
/// How long a confirmation keeps an entry REACHABLE (RFC 4861 REACHABLE_TIME).
pub const REACHABLE_TIME_NS: u64 = 30 * 1_000_000_000;
/// A STALE entry not confirmed this long after its first probe is deleted.
pub const PROBE_TIMEOUT_NS: u64 = 3 * SOLICIT_INTERVAL_NS;
/// Entries unused (and unconfirmed) this long are deleted.
pub const EXPIRE_UNUSED_NS: u64 = 600 * 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    mac: [u8; 6],
    is_static: bool,
    /// REACHABLE while `now < reachable_until`; STALE after.
    reachable_until: u64,
    /// Last use by forwarding, or last confirmation: the LRU and expiry clock.
    used: u64,
    /// When the first probe of this STALE entry was asked for (0: none yet).
    probing_since: u64,
}

impl Entry {
    fn new(mac: [u8; 6], now: u64, reachable: bool) -> Entry {
        Entry {
            mac,
            is_static: false,
            reachable_until: if reachable {
                now + REACHABLE_TIME_NS
            } else {
                0
            },
            used: now,
            probing_since: 0,
        }
    }

    fn confirm(&mut self, now: u64) {
        self.reachable_until = now + REACHABLE_TIME_NS;
        self.used = self.used.max(now);
        self.probing_since = 0;
    }

    fn make_stale(&mut self) {
        self.reachable_until = 0;
    }

    /// Dead: unused too long, or probed without answer.
    fn expired(&self, now: u64) -> bool {
        !self.is_static
            && (now.saturating_sub(self.used) >= EXPIRE_UNUSED_NS
                || (self.probing_since != 0
                    && now.saturating_sub(self.probing_since) >= PROBE_TIMEOUT_NS))
    }
}

#[derive(Clone, Debug)]
struct PortCache {
    entries: HashMap<Addr, Entry>,
    /// Target -> time the last solicitation for it was sent.
    pending: HashMap<Addr, u64>,
}

impl PortCache {
    fn new() -> PortCache {
        PortCache {
            entries: HashMap::with_capacity(MAX_ENTRIES_PER_PORT),
            pending: HashMap::with_capacity(MAX_PENDING_PER_PORT),
        }
    }

    /// Removes dead entries, then, if still full, the least recently used non-static one.
    /// O(entries): runs only when a new entry meets a full table. Returns how many entries
    /// were evicted and how many had expired.
    fn make_room(&mut self, now: u64) -> (u64, u64) {
        let before = self.entries.len();
        self.entries.retain(|_, e| !e.expired(now));
        let expired = (before - self.entries.len()) as u64;
        if self.entries.len() < MAX_ENTRIES_PER_PORT {
            return (0, expired);
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| !e.is_static)
            .min_by_key(|(_, e)| e.used)
            .map(|(ip, _)| *ip);
        match victim {
            Some(ip) => {
                self.entries.remove(&ip);
                (1, expired)
            }
            None => (0, expired),
        }
    }

    fn is_pending(&self, ip: Addr, now: u64) -> bool {
        self.pending
            .get(&ip)
            .is_some_and(|t| now.saturating_sub(*t) < PENDING_TTL_NS)
    }
}

/// Where a link-layer address comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A Neighbor Advertisement's target link-layer option, with its flags.
    Advert { solicited: bool, override_: bool },
    /// A Neighbor Solicitation's source link-layer option (RFC 4861 section 7.2.3).
    Solicit,
    /// Another worker of this router learned it (already validated there): trusted,
    /// REACHABLE.
    Peer,
}

/// What [`NeighborCache::learn`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    New,
    Changed,
    Unchanged,
    /// The entry is static, a solicitation met a table filled past
    /// [`MAX_NS_CREATED_FILL`], the table holds only static entries, or the port does not
    /// exist.
    Refused,
    /// An advertisement for a target that has no entry and was not solicited: RFC 4861
    /// section 7.2.5 says to discard it.
    Unsolicited,
}

/// A usable entry from [`NeighborCache::resolve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub mac: [u8; 6],
    /// The entry is STALE: send (rate-limited) a solicitation to confirm it.
    pub probe: bool,
}

#[derive(Clone, Debug)]
pub struct NeighborCache {
    ports: Vec<PortCache>,
    /// Bumped on every change, so callers can memoise lookups.
    generation: u64,
    /// Entries evicted to make room, since creation.
    evictions: u64,
    /// Entries deleted by aging, since creation.
    expirations: u64,
}

impl NeighborCache {
    pub fn new(ports: usize) -> NeighborCache {
        NeighborCache {
            ports: (0..ports).map(|_| PortCache::new()).collect(),
            generation: 1,
            evictions: 0,
            expirations: 0,
        }
    }

    /// The MAC known for `ip` on `port`, whatever its state (no side effects: for tools
    /// and tests; forwarding uses [`Self::resolve`]).
    #[inline]
    pub fn lookup(&self, port: usize, ip: Addr) -> Option<[u8; 6]> {
        self.ports.get(port)?.entries.get(&ip).map(|e| e.mac)
    }

    /// The MAC to forward to `ip` on `port` at `now`: marks the entry used, deletes it if
    /// it is dead (then `None`: solicit), and says whether it needs a probe.
    #[inline]
    pub fn resolve(&mut self, port: usize, ip: Addr, now: u64) -> Option<Resolved> {
        let p = self.ports.get_mut(port)?;
        let e = p.entries.get_mut(&ip)?;
        if e.expired(now) {
            p.entries.remove(&ip);
            self.expirations += 1;
            self.generation += 1;
            return None;
        }
        e.used = e.used.max(now);
        let probe = !e.is_static && now >= e.reachable_until;
        if probe && e.probing_since == 0 {
            e.probing_since = now.max(1);
        }
        Some(Resolved { mac: e.mac, probe })
    }

    /// A change counter: a lookup result stays valid while it is unchanged.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Entries evicted from full tables so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Entries deleted by aging so far.
    pub fn expirations(&self) -> u64 {
        self.expirations
    }

    /// Records that `ip` on `port` is at `mac`, as `origin` says, at `now`. Static entries
    /// are never overwritten.
    pub fn learn(
        &mut self,
        port: usize,
        ip: Addr,
        mac: [u8; 6],
        origin: Origin,
        now: u64,
    ) -> Learned {
        let Some(p) = self.ports.get_mut(port) else {
            return Learned::Refused;
        };
        let result = match p.entries.get_mut(&ip) {
            Some(e) if e.is_static => Learned::Refused,
            Some(e) => update(e, mac, origin, now),
            None => {
                let reachable = match origin {
                    Origin::Advert { solicited, .. } => {
                        if !p.is_pending(ip, now) {
                            return Learned::Unsolicited;
                        }
                        solicited
                    }
                    Origin::Solicit => {
                        if p.entries.len() >= MAX_NS_CREATED_FILL {
                            return Learned::Refused;
                        }
                        false
                    }
                    Origin::Peer => true,
                };
                if p.entries.len() >= MAX_ENTRIES_PER_PORT {
                    let (evicted, expired) = p.make_room(now);
                    self.evictions += evicted;
                    self.expirations += expired;
                    self.generation += 1;
                    if p.entries.len() >= MAX_ENTRIES_PER_PORT {
                        return Learned::Refused;
                    }
                }
                p.entries.insert(ip, Entry::new(mac, now, reachable));
                Learned::New
            }
        };
        if matches!(result, Learned::New | Learned::Changed) {
            p.pending.remove(&ip);
            self.generation += 1;
        }
        result
    }

    /// Installs an entry learning will not replace (configured neighbors). Static entries
    /// do not count against eviction: one always gets its place.
    pub fn set_static(&mut self, port: usize, ip: Addr, mac: [u8; 6]) {
        if let Some(p) = self.ports.get_mut(port) {
            if !p.entries.contains_key(&ip) && p.entries.len() >= MAX_ENTRIES_PER_PORT {
                let (evicted, expired) = p.make_room(0);
                self.evictions += evicted;
                self.expirations += expired;
            }
            p.entries.insert(
                ip,
                Entry {
                    mac,
                    is_static: true,
                    reachable_until: u64::MAX,
                    used: 0,
                    probing_since: 0,
                },
            );
            p.pending.remove(&ip);
            self.generation += 1;
        }
    }

    /// Deletes the dead entries of every port (unused for [`EXPIRE_UNUSED_NS`], or probed
    /// without answer). O(entries): call it now and then (the pipeline does every
    /// [`SWEEP_INTERVAL_NS`]). Returns how many were deleted.
    pub fn sweep(&mut self, now: u64) -> usize {
        let mut removed = 0;
        for p in &mut self.ports {
            let before = p.entries.len();
            p.entries.retain(|_, e| !e.expired(now));
            removed += before - p.entries.len();
            p.pending
                .retain(|_, last| now.saturating_sub(*last) < PENDING_TTL_NS);
        }
        if removed > 0 {
            self.expirations += removed as u64;
            self.generation += 1;
        }
        removed
    }

    /// Marks `target` on `port` as solicited at `now` (another worker sent the
    /// solicitation), so the advertisement answering it may create an entry here.
    pub fn expect(&mut self, port: usize, target: Addr, now: u64) {
        if let Some(p) = self.ports.get_mut(port) {
            if p.pending.len() < MAX_PENDING_PER_PORT || p.pending.contains_key(&target) {
                p.pending.insert(target, now);
            }
        }
    }

    /// Whether to solicit `target` on `port` now: at most once per
    /// [`SOLICIT_INTERVAL_NS`] per target, and for at most [`MAX_PENDING_PER_PORT`]
    /// targets at a time. Records the solicitation when it says yes.
    pub fn should_solicit(&mut self, port: usize, target: Addr, now_ns: u64) -> bool {
        let Some(p) = self.ports.get_mut(port) else {
            return false;
        };
        if let Some(last) = p.pending.get_mut(&target) {
            if now_ns.saturating_sub(*last) < SOLICIT_INTERVAL_NS {
                return false;
            }
            *last = now_ns;
            return true;
        }
        if p.pending.len() >= MAX_PENDING_PER_PORT {
            // Forget targets whose last solicitation is old: they get a new one when
            // traffic for them comes again. O(pending), only when the table is full.
            p.pending
                .retain(|_, last| now_ns.saturating_sub(*last) < SOLICIT_INTERVAL_NS);
            if p.pending.len() >= MAX_PENDING_PER_PORT {
                return false;
            }
        }
        p.pending.insert(target, now_ns);
        true
    }

    /// Number of entries on `port` (resolved only).
    pub fn len(&self, port: usize) -> usize {
        self.ports.get(port).map_or(0, |p| p.entries.len())
    }

    /// Whether `port` has no entries.
    pub fn is_empty(&self, port: usize) -> bool {
        self.len(port) == 0
    }
}

/// How the evidence in `origin` changes an existing (non-static) entry: RFC 4861 section
/// 7.2.5 for advertisements, 7.2.3 for solicitations.
fn update(e: &mut Entry, mac: [u8; 6], origin: Origin, now: u64) -> Learned {
    let changed = e.mac != mac;
    match origin {
        Origin::Advert {
            solicited,
            override_,
        } => {
            if changed && !override_ {
                // Keep the MAC we know, but doubt it.
                if now < e.reachable_until {
                    e.make_stale();
                }
                return Learned::Unchanged;
            }
            e.mac = mac;
            if solicited {
                e.confirm(now);
            } else if changed {
                e.make_stale();
                e.probing_since = 0;
            }
        }
        Origin::Solicit => {
            if changed {
                e.mac = mac;
                e.make_stale();
                e.probing_since = 0;
            }
        }
        Origin::Peer => {
            e.mac = mac;
            e.confirm(now);
        }
    }
    if changed {
        Learned::Changed
    } else {
        Learned::Unchanged
    }
}

/// How often [`NeighborCache::sweep`] should run.
pub const SWEEP_INTERVAL_NS: u64 = 10 * 1_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;
    const SOLICITED: Origin = Origin::Advert {
        solicited: true,
        override_: true,
    };
    const UNSOLICITED: Origin = Origin::Advert {
        solicited: false,
        override_: true,
    };

    #[test]
    fn learn_lookup_change() {
        let mut c = NeighborCache::new(2);
        let g0 = c.generation();
        assert_eq!(c.lookup(0, 7), None);
        assert_eq!(c.learn(0, 7, [1; 6], Origin::Peer, 0), Learned::New);
        assert_eq!(c.learn(0, 7, [1; 6], Origin::Peer, 0), Learned::Unchanged);
        assert_eq!(c.learn(0, 7, [2; 6], Origin::Peer, 0), Learned::Changed);
        assert_eq!(c.lookup(0, 7), Some([2; 6]));
        assert_eq!(c.lookup(1, 7), None);
        assert_eq!(c.learn(5, 7, [2; 6], Origin::Peer, 0), Learned::Refused);
        assert!(c.generation() > g0);
        assert_eq!(c.len(0), 1);
        assert!(c.is_empty(1));
    }

    #[test]
    fn static_entries_stay() {
        let mut c = NeighborCache::new(1);
        c.set_static(0, 9, [9; 6]);
        assert_eq!(c.learn(0, 9, [1; 6], Origin::Peer, 0), Learned::Refused);
        assert_eq!(c.learn(0, 9, [1; 6], UNSOLICITED, 0), Learned::Refused);
        assert_eq!(c.lookup(0, 9), Some([9; 6]));
        // Never stale, never expired.
        let r = c.resolve(0, 9, EXPIRE_UNUSED_NS * 10);
        assert_eq!(
            r,
            Some(Resolved {
                mac: [9; 6],
                probe: false
            })
        );
        assert_eq!(c.sweep(EXPIRE_UNUSED_NS * 20), 0);
        assert_eq!(c.lookup(0, 9), Some([9; 6]));
    }

    /// Was `table_is_bounded`, which asserted that a new neighbor is refused once the
    /// table is full: that was the bug (new hosts unreachable forever). A full table now
    /// evicts its least recently used non-static entry.
    #[test]
    fn full_table_evicts_least_recently_used_non_static() {
        let mut c = NeighborCache::new(1);
        c.set_static(0, u128::MAX - 1, [7; 6]);
        for i in 0..MAX_ENTRIES_PER_PORT as u128 - 1 {
            assert_eq!(
                c.learn(0, i, [1; 6], Origin::Peer, 10 + i as u64),
                Learned::New
            );
        }
        assert_eq!(c.len(0), MAX_ENTRIES_PER_PORT);
        // Entry 0 is the oldest, but it was used since: entry 1 goes.
        assert!(c.resolve(0, 0, 100_000).is_some());
        assert_eq!(
            c.learn(0, u128::MAX, [1; 6], Origin::Peer, 100_001),
            Learned::New
        );
        assert_eq!(c.evictions(), 1);
        assert_eq!(c.lookup(0, 1), None);
        assert!(c.lookup(0, 0).is_some());
        assert!(c.lookup(0, u128::MAX).is_some());
        assert_eq!(c.lookup(0, u128::MAX - 1), Some([7; 6]));
        assert_eq!(c.len(0), MAX_ENTRIES_PER_PORT);
        assert_eq!(
            c.learn(0, 3, [4; 6], Origin::Peer, 100_002),
            Learned::Changed
        );
    }

    #[test]
    fn a_table_of_static_entries_refuses() {
        let mut c = NeighborCache::new(1);
        for i in 0..MAX_ENTRIES_PER_PORT as u128 {
            c.set_static(0, i, [1; 6]);
        }
        assert_eq!(
            c.learn(0, u128::MAX, [1; 6], Origin::Peer, 1),
            Learned::Refused
        );
        assert_eq!(c.len(0), MAX_ENTRIES_PER_PORT);
    }

    #[test]
    fn unsolicited_advert_creates_nothing_but_updates() {
        let mut c = NeighborCache::new(1);
        assert_eq!(c.learn(0, 5, [1; 6], UNSOLICITED, 0), Learned::Unsolicited);
        assert_eq!(c.learn(0, 5, [1; 6], SOLICITED, 0), Learned::Unsolicited);
        assert_eq!(c.lookup(0, 5), None);
        // Solicited by us: created, REACHABLE.
        assert!(c.should_solicit(0, 5, 10));
        assert_eq!(c.learn(0, 5, [1; 6], SOLICITED, 20), Learned::New);
        assert_eq!(c.resolve(0, 5, 30).map(|r| r.probe), Some(false));
        // An unsolicited override updates it, STALE.
        assert_eq!(c.learn(0, 5, [2; 6], UNSOLICITED, 40), Learned::Changed);
        assert_eq!(
            c.resolve(0, 5, 50),
            Some(Resolved {
                mac: [2; 6],
                probe: true
            })
        );
        // Without override, a different MAC is not taken.
        let no_override = Origin::Advert {
            solicited: true,
            override_: false,
        };
        assert_eq!(c.learn(0, 5, [3; 6], no_override, 60), Learned::Unchanged);
        assert_eq!(c.lookup(0, 5), Some([2; 6]));
        // A solicitation answered too late creates nothing.
        assert!(c.should_solicit(0, 6, 0));
        assert_eq!(
            c.learn(0, 6, [1; 6], SOLICITED, PENDING_TTL_NS),
            Learned::Unsolicited
        );
    }

    #[test]
    fn solicitations_create_stale_entries_up_to_a_bound() {
        let mut c = NeighborCache::new(1);
        for i in 0..MAX_NS_CREATED_FILL as u128 {
            assert_eq!(c.learn(0, i, [1; 6], Origin::Solicit, 0), Learned::New);
        }
        assert_eq!(
            c.learn(0, u128::MAX, [1; 6], Origin::Solicit, 0),
            Learned::Refused
        );
        // Existing ones still update.
        assert_eq!(c.learn(0, 1, [2; 6], Origin::Solicit, 0), Learned::Changed);
        assert_eq!(
            c.resolve(0, 1, 1),
            Some(Resolved {
                mac: [2; 6],
                probe: true
            })
        );
    }

    #[test]
    fn aging_reachable_stale_probe_expire() {
        let mut c = NeighborCache::new(1);
        assert!(c.should_solicit(0, 5, 0));
        assert_eq!(c.learn(0, 5, [1; 6], SOLICITED, 0), Learned::New);
        let fresh = Resolved {
            mac: [1; 6],
            probe: false,
        };
        let stale = Resolved {
            mac: [1; 6],
            probe: true,
        };
        assert_eq!(c.resolve(0, 5, REACHABLE_TIME_NS - 1), Some(fresh));
        // STALE: still used, probe asked for.
        let t = REACHABLE_TIME_NS;
        assert_eq!(c.resolve(0, 5, t), Some(stale));
        assert!(c.should_solicit(0, 5, t));
        // The answer makes it REACHABLE again.
        assert_eq!(c.learn(0, 5, [1; 6], SOLICITED, t + 1), Learned::Unchanged);
        assert_eq!(c.resolve(0, 5, t + 2), Some(fresh));
        // STALE again, probed, no answer: deleted after the probe timeout.
        let t2 = t + 1 + REACHABLE_TIME_NS;
        assert_eq!(c.resolve(0, 5, t2), Some(stale));
        assert_eq!(c.resolve(0, 5, t2 + PROBE_TIMEOUT_NS - 1), Some(stale));
        let g = c.generation();
        assert_eq!(c.resolve(0, 5, t2 + PROBE_TIMEOUT_NS), None);
        assert!(c.generation() > g);
        assert_eq!(c.lookup(0, 5), None);
        // Unused for EXPIRE_UNUSED_NS: swept.
        assert_eq!(c.learn(0, 6, [1; 6], Origin::Peer, 0), Learned::New);
        assert_eq!(c.sweep(EXPIRE_UNUSED_NS - 1), 0);
        assert_eq!(c.sweep(EXPIRE_UNUSED_NS), 1);
        assert!(c.is_empty(0));
    }

    #[test]
    fn solicitation_once_per_second_per_target() {
        let mut c = NeighborCache::new(1);
        assert!(c.should_solicit(0, 1, 10));
        assert!(!c.should_solicit(0, 1, 10 + SOLICIT_INTERVAL_NS - 1));
        assert!(c.should_solicit(0, 2, 20));
        assert!(c.should_solicit(0, 1, 10 + SOLICIT_INTERVAL_NS));
        assert!(!c.should_solicit(3, 1, 0));
        // Learning the target clears its clock.
        c.learn(0, 2, [1; 6], SOLICITED, 21);
        assert!(c.should_solicit(0, 2, 21));
    }

    #[test]
    fn pending_is_bounded_and_recycled() {
        let mut c = NeighborCache::new(1);
        for i in 0..MAX_PENDING_PER_PORT as u128 {
            assert!(c.should_solicit(0, i, 0));
        }
        assert!(!c.should_solicit(0, 10_000, 1));
        assert!(c.should_solicit(0, 10_000, SOLICIT_INTERVAL_NS));
    }

    #[test]
    fn expected_targets_may_be_answered() {
        let mut c = NeighborCache::new(1);
        c.expect(0, 5, 3 * SEC);
        assert_eq!(c.learn(0, 5, [1; 6], SOLICITED, 4 * SEC), Learned::New);
    }
}
