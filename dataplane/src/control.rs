//! The dataplane's control thread, as a library: the single owner of every table the
//! workers read (neighbors, ISP state), fed by the workers' events, the link poller and a
//! clock. `m6-dataplane` runs it on its main thread; tests drive it directly beside
//! [`crate::Pipeline`]s, exactly as the binary wires them.

use crate::contexts::datapath::M6Event;
use crate::contexts::{Context, ContextOp, ContextTable, Destination};
use crate::isp::{IspOwner, IspTable};
use crate::neighbor::owner::{NeighborOwner, OwnerCounters};
use crate::neighbor::Reach;
use crate::neighbor::{NeighborEvent, NeighborTable};
use crate::net::addr;
use crate::net::checksum;
use crate::net::ethernet::{self, ethertype};
use crate::nodes::cc_answer::Responder;
use crate::nodes::rewrite;
use crate::site::{Site, SiteTables};
use crate::tables::{Reader, Writer};

/// Depth of each worker's queue of context changes (a worker that falls further behind
/// gets a snapshot).
pub const CONTEXT_PUBLISH_DEPTH: usize = 8192;
/// M6 reports held for the control plane at most (beyond: counted and lost).
pub const MAX_M6_EVENTS: usize = 65_536;

/// What one worker reads: its replicas of the published tables.
pub struct WorkerTables {
    pub neighbors: Reader<NeighborTable>,
    pub isps: Reader<IspTable>,
    pub contexts: Reader<ContextTable>,
}

/// The owner of the published tables.
pub struct Control {
    pub neighbors: NeighborOwner,
    pub isps: IspOwner,
    /// The host-pair contexts and destination cache, as the control plane installs them.
    contexts: Writer<ContextTable>,
    /// Workers' M6 reports waiting for the control plane.
    m6_events: Vec<M6Event>,
    /// M6 reports lost because the queue was full.
    pub m6_events_dropped: u64,
    site: SiteTables,
    log: Vec<String>,
}

impl Control {
    /// Owners for `site`, with its configured static neighbors still to add
    /// ([`Self::add_static_neighbor`]).
    pub fn new(site: &Site) -> Control {
        Control {
            neighbors: NeighborOwner::new(site),
            isps: IspOwner::new(site),
            contexts: Writer::new(ContextTable::new(0), CONTEXT_PUBLISH_DEPTH),
            m6_events: Vec::new(),
            m6_events_dropped: 0,
            site: SiteTables::new(site),
            log: Vec::new(),
        }
    }

    /// The replicas for one more worker.
    pub fn worker_tables(&mut self) -> WorkerTables {
        WorkerTables {
            neighbors: self.neighbors.reader(),
            isps: self.isps.reader(),
            contexts: self.contexts.reader(),
        }
    }

    /// Creates or replaces a context (the engine's `Install`).
    pub fn install_context(&mut self, ctx: Context) {
        self.contexts.publish(ContextOp::Install(Box::new(ctx)));
    }

    /// Removes a context (the engine's `Remove`).
    pub fn remove_context(&mut self, aid_local: [u8; 16], f_local: u32) {
        self.contexts
            .publish(ContextOp::Remove { aid_local, f_local });
    }

    /// Sets or clears a peer AID's destination-cache entry (the engine's `Destination`).
    pub fn set_destination(&mut self, aid_peer: [u8; 16], status: Option<Destination>) {
        self.contexts
            .publish(ContextOp::Destination { aid_peer, status });
    }

    /// Replaces the CC responder state the workers answer INITs with; `None` withdraws it
    /// (no control plane: its key would make CCs nobody can verify).
    pub fn set_responder(&mut self, r: Option<Responder>) {
        if r.is_none() && self.contexts.get().responder().is_none() {
            return;
        }
        self.contexts
            .publish(ContextOp::Responder(r.map(std::sync::Arc::new)));
    }

    /// The published contexts.
    pub fn contexts(&self) -> &ContextTable {
        self.contexts.get()
    }

    /// The frame and port for an IPv6 packet the control plane injects: through ISP `isp`
    /// (its next hop's MAC), or with `None` by address (a LAN destination on-link, else the
    /// ISP that owns the source); `None` when the next hop is not resolved (the control
    /// plane retransmits) or the ISP is unusable.
    pub fn frame_for_injected(&self, isp: Option<u16>, packet: &[u8]) -> Option<(usize, Vec<u8>)> {
        let dst = addr::from_bytes(packet.get(24..40)?.try_into().ok()?);
        let src = addr::from_bytes(packet.get(8..24)?.try_into().ok()?);
        let mut packet = packet.to_vec();
        // Without an ISP named: on-link to a LAN destination, else through the ISP that
        // owns the source (whose ingress filter accepts it). An M6 control message that
        // says "rewrite ok" (type 200) whose owner is down leaves through another ISP with
        // its source rewritten, as the rewriting router does for hosts (seed 001 section 11).
        let isp = match isp {
            Some(i) => Some(i),
            None if self.site.in_site(dst) || addr::is_link_local(dst) => None,
            None => {
                let owner = self.site.owner_of(src)?;
                let usable = |i: usize| self.isps.get(i).is_some_and(|s| s.usable());
                let rewrite_ok = packet.get(6) == Some(&58) && packet.get(40) == Some(&200);
                if !usable(owner) && rewrite_ok {
                    let live: Vec<_> = (0..self.site.isps.len())
                        .filter_map(|i| self.isps.get(i))
                        .collect();
                    let flow = rewrite::flow_label(&packet);
                    let chosen = rewrite::pick(&self.site, &live, src, dst, flow)?;
                    let prefix = self.site.isps.get(chosen)?.prefix;
                    let new = (src & !prefix.mask) | prefix.net;
                    let (old_b, new_b) = (addr::to_bytes(src), addr::to_bytes(new));
                    let c = packet.get(42..44)?;
                    let sum = checksum::update_for_address_octets(
                        u16::from_be_bytes([c[0], c[1]]),
                        &old_b,
                        &new_b,
                    );
                    packet.get_mut(42..44)?.copy_from_slice(&sum.to_be_bytes());
                    packet.get_mut(8..24)?.copy_from_slice(&new_b);
                    Some(u16::try_from(chosen).ok()?)
                } else {
                    Some(u16::try_from(owner).ok()?)
                }
            }
        };
        let (port, hop, static_mac) = match isp {
            Some(i) => {
                let i = usize::from(i);
                let s = self.site.isps.get(i)?;
                if !self.isps.get(i)?.usable() {
                    return None;
                }
                (s.port?, s.next_hop, s.static_mac)
            }
            None => (self.site.lan_port?, dst, None),
        };
        let mac = match static_mac {
            Some(m) => m,
            None => match self.neighbors.table().get(port, hop) {
                Some(n) if n.reach != Reach::Failed => n.mac,
                _ => return None,
            },
        };
        let src_mac = self.site.ports.get(port)?.mac;
        let mut frame = vec![0u8; ethernet::HEADER_LEN];
        ethernet::emit(&mut frame, mac, src_mac, None, ethertype::IPV6);
        frame.extend_from_slice(&packet);
        Some((port, frame))
    }

    /// Takes a worker's M6 report for the control plane.
    pub fn m6_event(&mut self, e: M6Event) {
        if self.m6_events.len() < MAX_M6_EVENTS {
            self.m6_events.push(e);
        } else {
            self.m6_events_dropped += 1;
        }
    }

    /// Hands every M6 report to `out`, and forgets them.
    pub fn drain_m6_events(&mut self, out: &mut impl FnMut(M6Event)) {
        for e in self.m6_events.drain(..) {
            out(e);
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
        self.contexts.flush();
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
