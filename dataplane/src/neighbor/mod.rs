//! Neighbor Discovery address resolution and unreachability detection (RFC 4861 section 7),
//! with one owner.
//!
//! The story in one place:
//!
//! - [`owner`] (the dataplane's control thread) runs the RFC 4861 section 7.3.2 state
//!   machine for every neighbor of every port: INCOMPLETE with multicast solicitations,
//!   REACHABLE, STALE, DELAY, PROBE with unicast solicitations, deletion. It is the only
//!   writer of the [`NeighborTable`] and publishes it to every worker through
//!   [`crate::tables`]. It also watches each ISP's next hop: a next hop that stops answering
//!   takes its ISP down like a lost carrier.
//! - [`datapath`] (each worker) reads its replica of the table to put the next hop's MAC on
//!   forwarded packets, holds the first packets to a neighbor being resolved (section
//!   7.2.2), and reports what the owner needs to know as [`NeighborEvent`]s: a next hop is
//!   *needed*, a STALE entry was *used*, a solicitation or advertisement arrived. Reports
//!   are rate-limited per target and, for resolutions triggered from the Internet side, per
//!   worker (RFC 6583), so a scan of the site prefix cannot flood the owner.
//!
//! A worker never changes neighbor state on its own evidence: replicas that each ran the
//! state machine on the packets their RSS queue happened to see diverged (a next hop
//! confirmed on one worker was deleted for good on another).

pub mod datapath;
pub mod owner;

use hashbrown::HashMap;

use crate::net::addr::Addr;
use crate::tables::Table;

/// RFC 4861 section 10: at most this many multicast solicitations for an unresolved address.
pub const MAX_MULTICAST_SOLICIT: u8 = 3;
/// RFC 4861 section 10: at most this many unicast probes of a STALE entry in use.
pub const MAX_UNICAST_SOLICIT: u8 = 3;
/// The timers of RFC 4861 section 10 in nanoseconds, from the configuration's
/// milliseconds (defaults: RetransTimer 1 s, REACHABLE_TIME 30 s, DELAY_FIRST_PROBE_TIME
/// 5 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub retrans_ns: u64,
    pub reachable_ns: u64,
    pub delay_first_probe_ns: u64,
}

impl Timers {
    pub fn new(t: &crate::site::NdTimers) -> Timers {
        Timers {
            retrans_ns: t.retrans_timer_ms * 1_000_000,
            reachable_ns: t.reachable_time_ms * 1_000_000,
            delay_first_probe_ns: t.delay_first_probe_ms * 1_000_000,
        }
    }

    /// How long a failed resolution is remembered (packets to it get Destination
    /// Unreachable code 3 at once, and it is not solicited again), so a scan re-hitting dead
    /// addresses costs nothing: as long as the resolution took.
    pub fn failed_hold_ns(&self) -> u64 {
        u64::from(MAX_MULTICAST_SOLICIT) * self.retrans_ns
    }

    /// How long a worker holds a packet for an unresolved next hop before answering it
    /// with code 3 itself: half a RetransTimer longer than the owner needs to give up.
    pub fn hold_timeout_ns(&self) -> u64 {
        u64::from(MAX_MULTICAST_SOLICIT) * self.retrans_ns + self.retrans_ns / 2
    }
}

impl Default for Timers {
    fn default() -> Timers {
        Timers::new(&crate::site::NdTimers::default())
    }
}
/// Entries not used (nor confirmed) for this long are deleted (garbage collection, RFC 4861
/// section 7.3.2 leaves the policy to the implementation).
pub const EXPIRE_UNUSED_NS: u64 = 600 * 1_000_000_000;

/// Whether a published entry may be used to forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reach {
    /// Confirmed within REACHABLE_TIME (or configured statically): use it, report nothing.
    Reachable,
    /// Not confirmed lately (STALE, DELAY or PROBE at the owner): use it, and report the use
    /// so the owner starts unreachability detection (RFC 4861 section 7.3.3).
    Stale,
    /// Resolution failed less than [`Timers::failed_hold_ns`] ago: packets to it are answered with
    /// Destination Unreachable code 3 (RFC 4861 section 7.2.2).
    Failed,
}

/// One published neighbor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// The link-layer address (zero for [`Reach::Failed`]).
    pub mac: [u8; 6],
    pub reach: Reach,
}

/// What the workers read: per port, IPv6 address -> neighbor. Addresses being resolved
/// (INCOMPLETE) are not published: a worker treats them like unknown ones.
#[derive(Clone, Debug, Default)]
pub struct NeighborTable {
    ports: Vec<HashMap<Addr, Neighbor>>,
    /// Bumped by every change, so readers can memoise lookups.
    generation: u64,
}

impl NeighborTable {
    /// An empty table for `ports` ports, with room for `capacity` entries per port reserved.
    pub fn new(ports: usize, capacity: usize) -> NeighborTable {
        NeighborTable {
            ports: (0..ports)
                .map(|_| HashMap::with_capacity(capacity))
                .collect(),
            generation: 1,
        }
    }

    /// The entry for `ip` on `port`.
    #[inline]
    pub fn get(&self, port: usize, ip: Addr) -> Option<Neighbor> {
        self.ports.get(port)?.get(&ip).copied()
    }

    /// Changes since creation (memo key).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Entries on `port`.
    pub fn len(&self, port: usize) -> usize {
        self.ports.get(port).map_or(0, |p| p.len())
    }

    /// Whether `port` has no entries.
    pub fn is_empty(&self, port: usize) -> bool {
        self.len(port) == 0
    }
}

/// A change to the [`NeighborTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighborOp {
    Set {
        port: u16,
        ip: Addr,
        neighbor: Neighbor,
    },
    Remove {
        port: u16,
        ip: Addr,
    },
}

impl Table for NeighborTable {
    type Op = NeighborOp;

    fn apply(&mut self, op: &NeighborOp) {
        match *op {
            NeighborOp::Set { port, ip, neighbor } => {
                if let Some(p) = self.ports.get_mut(usize::from(port)) {
                    p.insert(ip, neighbor);
                }
            }
            NeighborOp::Remove { port, ip } => {
                if let Some(p) = self.ports.get_mut(usize::from(port)) {
                    p.remove(&ip);
                }
            }
        }
        self.generation += 1;
    }
}

/// Why a worker asks for a neighbor to be resolved; the owner keeps separate budgets
/// (RFC 6583 section 7.1: resolution triggered from outside must not starve the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// An ISP next hop, or a LAN host that talked (sent a packet through the router).
    Inside,
    /// A packet from an ISP toward a LAN address the router does not know.
    Outside,
}

/// What a worker reports to the owner (RFC 4861 events seen on the data path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighborEvent {
    /// A packet needs `ip` on `port` and the replica has no usable entry.
    Needed {
        port: u16,
        ip: Addr,
        trigger: Trigger,
    },
    /// A [`Reach::Stale`] entry forwarded a packet (section 7.3.3: start NUD).
    Used { port: u16, ip: Addr },
    /// A valid Neighbor Solicitation from `src` carrying a source link-layer address
    /// option (section 7.2.3).
    Solicitation { port: u16, src: Addr, mac: [u8; 6] },
    /// A valid Neighbor Advertisement for `target` (not one of the router's addresses),
    /// with its target link-layer address option if it had one (section 7.2.5).
    Advertisement {
        port: u16,
        target: Addr,
        mac: Option<[u8; 6]>,
        solicited: bool,
        override_: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_change_the_table_and_its_generation() {
        let mut t = NeighborTable::new(2, 4);
        let g = t.generation();
        let n = Neighbor {
            mac: [2, 0, 0, 0, 0, 1],
            reach: Reach::Reachable,
        };
        t.apply(&NeighborOp::Set {
            port: 1,
            ip: 7,
            neighbor: n,
        });
        assert_eq!(t.get(1, 7), Some(n));
        assert_eq!(t.get(0, 7), None);
        assert!(t.generation() > g);
        t.apply(&NeighborOp::Remove { port: 1, ip: 7 });
        assert_eq!(t.get(1, 7), None);
        // Ports that do not exist change nothing and never panic.
        t.apply(&NeighborOp::Set {
            port: 9,
            ip: 7,
            neighbor: n,
        });
        assert!(t.is_empty(9));
    }
}
