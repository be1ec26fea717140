//! The per-worker neighbor cache: IPv6 address -> MAC, per port, plus the per-target
//! solicitation clock.
//!
//! Each worker owns its cache (no locks). What one worker learns from the wire is queued for
//! the io layer, which hands it to the other workers ([`crate::Pipeline::learn_neighbor`]),
//! so every replica converges without sharing memory on the hot path.
//!
//! Both tables are bounded (RFC 6583: an off-link scan of a /64 must not grow the cache or
//! the solicitation state without limit). Entries do not age yet: a host that changes its
//! MAC announces it (NA with override), which replaces the entry.

use hashbrown::HashMap;

use crate::net::addr::Addr;

/// Learned entries per port at most; further new neighbors are refused (and counted).
pub const MAX_ENTRIES_PER_PORT: usize = 4096;
/// Targets being solicited per port at most.
pub const MAX_PENDING_PER_PORT: usize = 256;
/// At most one Neighbor Solicitation per target per this interval (RFC 4861 section 10:
/// RetransTimer is 1 s).
pub const SOLICIT_INTERVAL_NS: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    mac: [u8; 6],
    is_static: bool,
}

#[derive(Clone, Debug, Default)]
struct PortCache {
    entries: HashMap<Addr, Entry>,
    /// Target -> time the last solicitation for it was sent.
    pending: HashMap<Addr, u64>,
}

/// What [`NeighborCache::learn`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    New,
    Changed,
    Unchanged,
    /// The entry is static, the table is full, or the port does not exist.
    Refused,
}

#[derive(Clone, Debug)]
pub struct NeighborCache {
    ports: Vec<PortCache>,
    /// Bumped on every change, so callers can memoise lookups.
    generation: u64,
}

impl NeighborCache {
    pub fn new(ports: usize) -> NeighborCache {
        NeighborCache {
            ports: (0..ports).map(|_| PortCache::default()).collect(),
            generation: 1,
        }
    }

    #[inline]
    pub fn lookup(&self, port: usize, ip: Addr) -> Option<[u8; 6]> {
        self.ports.get(port)?.entries.get(&ip).map(|e| e.mac)
    }

    /// A change counter: a lookup result stays valid while it is unchanged.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Records that `ip` on `port` is at `mac`. Static entries are never overwritten.
    pub fn learn(&mut self, port: usize, ip: Addr, mac: [u8; 6]) -> Learned {
        let Some(p) = self.ports.get_mut(port) else {
            return Learned::Refused;
        };
        let full = p.entries.len() >= MAX_ENTRIES_PER_PORT;
        let result = match p.entries.get_mut(&ip) {
            Some(e) if e.is_static => Learned::Refused,
            Some(e) if e.mac == mac => Learned::Unchanged,
            Some(e) => {
                e.mac = mac;
                Learned::Changed
            }
            None if full => Learned::Refused,
            None => {
                p.entries.insert(
                    ip,
                    Entry {
                        mac,
                        is_static: false,
                    },
                );
                Learned::New
            }
        };
        if matches!(result, Learned::New | Learned::Changed) {
            p.pending.remove(&ip);
            self.generation += 1;
        }
        result
    }

    /// Installs an entry learning will not replace (configured neighbors).
    pub fn set_static(&mut self, port: usize, ip: Addr, mac: [u8; 6]) {
        if let Some(p) = self.ports.get_mut(port) {
            p.entries.insert(
                ip,
                Entry {
                    mac,
                    is_static: true,
                },
            );
            p.pending.remove(&ip);
            self.generation += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_lookup_change() {
        let mut c = NeighborCache::new(2);
        let g0 = c.generation();
        assert_eq!(c.lookup(0, 7), None);
        assert_eq!(c.learn(0, 7, [1; 6]), Learned::New);
        assert_eq!(c.learn(0, 7, [1; 6]), Learned::Unchanged);
        assert_eq!(c.learn(0, 7, [2; 6]), Learned::Changed);
        assert_eq!(c.lookup(0, 7), Some([2; 6]));
        assert_eq!(c.lookup(1, 7), None);
        assert_eq!(c.learn(5, 7, [2; 6]), Learned::Refused);
        assert!(c.generation() > g0);
        assert_eq!(c.len(0), 1);
        assert!(c.is_empty(1));
    }

    #[test]
    fn static_entries_stay() {
        let mut c = NeighborCache::new(1);
        c.set_static(0, 9, [9; 6]);
        assert_eq!(c.learn(0, 9, [1; 6]), Learned::Refused);
        assert_eq!(c.lookup(0, 9), Some([9; 6]));
    }

    #[test]
    fn table_is_bounded() {
        let mut c = NeighborCache::new(1);
        for i in 0..MAX_ENTRIES_PER_PORT as u128 {
            assert_eq!(c.learn(0, i, [1; 6]), Learned::New);
        }
        assert_eq!(c.learn(0, u128::MAX, [1; 6]), Learned::Refused);
        assert_eq!(c.learn(0, 3, [4; 6]), Learned::Changed);
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
        c.learn(0, 2, [1; 6]);
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
}
