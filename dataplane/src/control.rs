//! The dataplane's control thread, as a library: the single owner of every table the
//! workers read (neighbors, ISP state), fed by the workers' events, the link poller and a
//! clock. `m6-dataplane` runs it on its main thread; tests drive it directly beside
//! [`crate::Pipeline`]s, exactly as the binary wires them.

use crate::isp::{IspOwner, IspTable};
use crate::neighbor::owner::{NeighborOwner, OwnerCounters};
use crate::neighbor::{NeighborEvent, NeighborTable};
use crate::net::addr;
use crate::site::Site;
use crate::tables::Reader;

/// What one worker reads: its replicas of the published tables.
pub struct WorkerTables {
    pub neighbors: Reader<NeighborTable>,
    pub isps: Reader<IspTable>,
}

/// The owner of the published tables.
pub struct Control {
    pub neighbors: NeighborOwner,
    pub isps: IspOwner,
    log: Vec<String>,
}

impl Control {
    /// Owners for `site`, with its configured static neighbors still to add
    /// ([`Self::add_static_neighbor`]).
    pub fn new(site: &Site) -> Control {
        Control {
            neighbors: NeighborOwner::new(site),
            isps: IspOwner::new(site),
            log: Vec::new(),
        }
    }

    /// The replicas for one more worker.
    pub fn worker_tables(&mut self) -> WorkerTables {
        WorkerTables {
            neighbors: self.neighbors.reader(),
            isps: self.isps.reader(),
        }
    }

    /// Installs a configured neighbor.
    pub fn add_static_neighbor(&mut self, port: usize, ip: std::net::Ipv6Addr, mac: [u8; 6]) {
        self.neighbors.add_static(port, addr::from_std(&ip), mac);
    }

    /// Takes one worker event at `now` (ns, the workers' clock).
    pub fn handle(&mut self, ev: NeighborEvent, now: u64) {
        self.neighbors.handle(ev, now);
        self.next_hop_changes();
    }

    /// Runs the timers due at `now`, applies their consequences to the ISP state, and
    /// resends tables to workers that fell behind.
    pub fn tick(&mut self, now: u64) {
        self.neighbors.tick(now);
        self.next_hop_changes();
        self.neighbors.flush();
        self.isps.flush();
    }

    /// Sets ISP `isp`'s link state (carrier).
    pub fn set_link(&mut self, isp: usize, up: bool) {
        if let Some(line) = self.isps.set_link(isp, up) {
            self.log.push(line);
        }
    }

    /// Sets ISP `isp`'s administrative state.
    pub fn set_admin(&mut self, isp: usize, up: bool) {
        if let Some(line) = self.isps.set_admin(isp, up) {
            self.log.push(line);
        }
    }

    /// Hands every frame to transmit (solicitations) to `out` as (port, frame).
    pub fn drain_frames(&mut self, out: &mut impl FnMut(usize, &[u8])) {
        self.neighbors.drain_frames(out);
    }

    /// Hands every state change worth logging to `out`, and forgets them.
    pub fn drain_log(&mut self, out: &mut impl FnMut(&str)) {
        for l in self.log.drain(..) {
            out(&l);
        }
    }

    /// The neighbor owner's counters.
    pub fn counters(&self) -> &OwnerCounters {
        self.neighbors.counters()
    }

    fn next_hop_changes(&mut self) {
        let mut changes = Vec::new();
        self.neighbors
            .drain_next_hop_changes(&mut |isp, up| changes.push((isp, up)));
        for (isp, up) in changes {
            if let Some(line) = self.isps.set_next_hop(isp, up) {
                self.log.push(line);
            }
        }
    }
}
