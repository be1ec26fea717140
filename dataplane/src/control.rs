//! The dataplane's control thread, as a library: the single owner of every table the
//! workers read (neighbors, ISP state), fed by the workers' events, the link poller and a
//! clock. `m6-dataplane` runs it on its main thread; tests drive it directly beside
//! [`crate::Pipeline`]s, exactly as the binary wires them.

use crate::contexts::datapath::M6Event;
use crate::contexts::{Context, ContextOp, ContextTable, Destination};
use crate::health::{HealthCounters, Prober};
use crate::isp::{IspOwner, IspTable};
use crate::neighbor::owner::{NeighborOwner, OwnerCounters};
use crate::neighbor::Reach;
use crate::neighbor::{NeighborEvent, NeighborTable};
use crate::net::addr::{self, Addr};
use crate::net::checksum;
use crate::net::ethernet::{self, ethertype};
use crate::nodes::cc_answer::Responder;
use crate::nodes::rewrite;
use crate::ra::{Advertiser, RaCounters};
use crate::site::{Site, SiteTables};
use crate::tables::{Reader, Writer};

/// Depth of each worker's queue of context changes (a worker that falls further behind
/// gets a snapshot).
pub const CONTEXT_PUBLISH_DEPTH: usize = 8192;
/// M6 reports held for the control plane at most (beyond: counted and lost).
pub const MAX_M6_EVENTS: usize = 65_536;

/// A seed for the RA timers' spread (the clock: the RFC asks for spread, not secrecy).
fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// What a worker reports to the control thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerEvent {
    /// Neighbor Discovery evidence and needs ([`crate::neighbor::owner`]).
    Neighbor(NeighborEvent),
    /// An echo reply to one of the router's addresses with a probe identifier
    /// ([`crate::health`]).
    EchoReply {
        src: Addr,
        dst: Addr,
        ident: u16,
        seq: u16,
    },
    /// A valid Router Solicitation on the LAN ([`crate::ra`]).
    RouterSolicitation,
}

/// What one worker reads: its replicas of the published tables.
pub struct WorkerTables {
    pub neighbors: Reader<NeighborTable>,
    pub isps: Reader<IspTable>,
    pub contexts: Reader<ContextTable>,
    /// The site as last reloaded (addresses, prefixes, timers), which the worker compiles
    /// again when it changes.
    pub site: Reader<SiteTable>,
}

/// The published site: replaced whole at a reload.
pub type SiteTable = crate::tables::Whole<std::sync::Arc<Site>>;

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
    /// The site as configured (reloads replace its policy, probes and RA settings).
    config: Site,
    /// The site the workers compile their tables from.
    site_writer: Writer<SiteTable>,
    /// Health probes through each ISP with beacons.
    prober: Prober,
    /// Router Advertisements on the LAN, when configured.
    advertiser: Option<Advertiser>,
    /// Frames the control thread originates (probes, RAs), for worker 0's TX queues.
    frames: Vec<(usize, Vec<u8>)>,
    /// Probes not sent: no usable next-hop address yet.
    pub probes_unsent: u64,
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
            config: site.clone(),
            site_writer: Writer::new(crate::tables::Whole(std::sync::Arc::new(site.clone())), 4),
            prober: Prober::new(site),
            advertiser: Advertiser::new(site, seed()),
            frames: Vec::new(),
            probes_unsent: 0,
            log: Vec::new(),
        }
    }

    /// Applies, at `now` (ns), what a reload may change without a restart: ISP weights,
    /// policy rules, health probes and dampening, Router Advertisement settings. The caller
    /// has checked that nothing else differs.
    pub fn reconfigure(&mut self, site: &Site, now: u64) {
        let weights: Vec<u32> = site.isps.iter().map(|s| s.weight).collect();
        self.isps
            .set_policy(&weights, &site.policy, site.health.dampening);
        let isps = &self.isps;
        self.prober
            .configure(site, &|i| isps.get(i).is_none_or(|l| l.probes_up));
        // An ISP no longer probed is no longer held down by probes.
        for i in 0..site.isps.len() {
            if !self.prober.probed(i) {
                if let Some(line) = self.isps.set_probes(i, true, now) {
                    self.log.push(line);
                }
            }
        }
        match (&mut self.advertiser, site.ra.is_some()) {
            (Some(a), true) => a.configure(site),
            (None, true) => self.advertiser = Advertiser::new(site, seed()),
            (_, false) => self.advertiser = None,
        }
        // Addresses, prefixes, proxied prefixes and ND timers: the owners here, and every
        // worker at its next burst.
        if site
            .isps
            .iter()
            .map(|s| s.prefix)
            .ne(self.config.isps.iter().map(|s| s.prefix))
            || site.ports != self.config.ports
            || site.proxied != self.config.proxied
            || site.nd != self.config.nd
        {
            self.site = SiteTables::new(site);
            self.neighbors.set_site(site);
            self.site_writer.publish(std::sync::Arc::new(site.clone()));
        }
        self.config = site.clone();
        self.log.push("configuration reloaded".into());
    }

    /// The site as last configured.
    pub fn site(&self) -> &Site {
        &self.config
    }

    /// Drains (`true`) or undrains ISP `name`; `Err` names the ISPs there are.
    pub fn set_drained(&mut self, name: &str, drained: bool) -> Result<(), String> {
        let i = self
            .isps
            .names()
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| {
                format!(
                    "no ISP named {name:?} (ISPs: {})",
                    self.isps.names().join(", ")
                )
            })?;
        if let Some(line) = self.isps.set_drained(i, drained) {
            self.log.push(line);
        }
        Ok(())
    }

    /// The health probes' state.
    pub fn prober(&self) -> &Prober {
        &self.prober
    }

    /// The probes' and Router Advertisements' counters, by dotted name.
    pub fn for_each_health_counter(&self, f: &mut impl FnMut(&str, u64)) {
        self.prober.counters().for_each(f);
        f("health.probes_unsent", self.probes_unsent);
        self.advertiser
            .as_ref()
            .map_or(&RaCounters::default(), |a| a.counters())
            .for_each(f);
    }

    /// The health counters (for tests).
    pub fn health_counters(&self) -> &HealthCounters {
        self.prober.counters()
    }

    /// The replicas for one more worker.
    pub fn worker_tables(&mut self) -> WorkerTables {
        WorkerTables {
            neighbors: self.neighbors.reader(),
            isps: self.isps.reader(),
            contexts: self.contexts.reader(),
            site: self.site_writer.reader(),
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
                    let flow = rewrite::flow_label(&packet);
                    let chosen = rewrite::pick(&self.site, &self.isps.view(), src, dst, flow)?;
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
        match isp {
            Some(i) => {
                if !self.isps.get(usize::from(i))?.usable() {
                    return None;
                }
                self.frame_via_isp(usize::from(i), packet)
            }
            None => self.frame_to(self.site.lan_port?, dst, None, packet),
        }
    }

    /// The frame for `packet` through ISP `isp` to its next hop, whatever the ISP's state
    /// (health probes must go out through a withdrawn ISP to see it recover).
    fn frame_via_isp(&self, isp: usize, packet: Vec<u8>) -> Option<(usize, Vec<u8>)> {
        let s = self.site.isps.get(isp)?;
        self.frame_to(s.port?, s.next_hop, s.static_mac, packet)
    }

    /// The frame for `packet` out of `port` to neighbor `hop` (at `static_mac` if given).
    fn frame_to(
        &self,
        port: usize,
        hop: Addr,
        static_mac: Option<[u8; 6]>,
        packet: Vec<u8>,
    ) -> Option<(usize, Vec<u8>)> {
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
    pub fn handle(&mut self, ev: WorkerEvent, now: u64) {
        match ev {
            WorkerEvent::Neighbor(ev) => {
                self.neighbors.handle(ev, now);
                self.next_hop_changes(now);
            }
            WorkerEvent::EchoReply {
                src,
                dst,
                ident,
                seq,
            } => {
                if let Some((isp, up)) = self.prober.on_reply(src, dst, ident, seq, now) {
                    self.probe_verdict(isp, up, now);
                }
            }
            WorkerEvent::RouterSolicitation => {
                if let Some(a) = self.advertiser.as_mut() {
                    a.on_solicitation(now);
                }
            }
        }
    }

    /// Runs the timers due at `now` (neighbors, probes, dampening, advertisements),
    /// applies their consequences to the ISP state, and resends tables to workers that
    /// fell behind.
    pub fn tick(&mut self, now: u64) {
        self.neighbors.tick(now);
        self.next_hop_changes(now);
        let mut probes = Vec::new();
        let mut verdicts = Vec::new();
        self.prober
            .tick(now, &mut |p| probes.push(p), &mut |i, up| {
                verdicts.push((i, up))
            });
        for (i, up) in verdicts {
            self.probe_verdict(i, up, now);
        }
        for p in probes {
            match self.frame_via_isp(p.isp, p.packet) {
                Some(f) => self.frames.push(f),
                None => self.probes_unsent += 1,
            }
        }
        let released = self.isps.tick(now);
        self.log.extend(released);
        if let Some(a) = self.advertiser.as_mut() {
            let live = self.isps.view().live;
            let frames = &mut self.frames;
            a.tick(now, &live, &mut |port, f| frames.push((port, f)));
        }
        self.neighbors.flush();
        self.isps.flush();
        self.contexts.flush();
        self.site_writer.flush();
    }

    fn probe_verdict(&mut self, isp: usize, up: bool, now: u64) {
        let rtt = self
            .prober
            .last_rtt(isp)
            .map(|r| format!(", last rtt {:.1} ms", r as f64 / 1e6))
            .unwrap_or_default();
        if let Some(line) = self.isps.set_probes(isp, up, now) {
            self.log
                .push(format!("{line}{}", if up { rtt } else { String::new() }));
        }
    }

    /// Sets ISP `isp`'s link state (carrier) at `now` (ns).
    pub fn set_link(&mut self, isp: usize, up: bool, now: u64) {
        if let Some(line) = self.isps.set_link(isp, up, now) {
            self.log.push(line);
        }
    }

    /// Sets ISP `isp`'s administrative state.
    pub fn set_admin(&mut self, isp: usize, up: bool) {
        if let Some(line) = self.isps.set_admin(isp, up) {
            self.log.push(line);
        }
    }

    /// Hands every frame to transmit (solicitations, probes, advertisements) to `out` as
    /// (port, frame).
    pub fn drain_frames(&mut self, out: &mut impl FnMut(usize, &[u8])) {
        self.neighbors.drain_frames(out);
        for (port, f) in self.frames.drain(..) {
            out(port, &f);
        }
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

    fn next_hop_changes(&mut self, now: u64) {
        let mut changes = Vec::new();
        self.neighbors
            .drain_next_hop_changes(&mut |isp, up| changes.push((isp, up)));
        for (isp, up) in changes {
            if let Some(line) = self.isps.set_next_hop(isp, up, now) {
                self.log.push(line);
            }
        }
    }
}
