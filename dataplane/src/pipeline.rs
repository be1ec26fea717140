//! The per-worker pipeline: runs the stages of [`crate::nodes`] over a burst, VPP style.
//!
//! A burst is classified whole first; each later stage then runs over the frame (the list
//! of packet indices) the earlier stages gave it, so one stage's code and tables stay hot
//! while it works through its packets, and the table lookups of a stage are issued for the
//! whole frame before their results are used (the rewrite stage resolves every next hop,
//! then rewrites). Safe Rust has no prefetch; the out-of-order core overlaps the
//! independent header reads of a frame's packets instead.
//!
//! One [`Pipeline`] per worker lcore: it owns its tables (a replica of the site, its ISPs'
//! state, its neighbor cache) and its counters, so the hot path takes no lock and writes
//! no shared cache line. The control thread changes ISP state and neighbors between
//! bursts through `&mut self` methods.
//!
//! Nothing here allocates per packet: per-packet state lives in fixed arrays sized for
//! [`MAX_BURST`], and the queues for generated frames and learned neighbors are reserved
//! up front and bounded.

use std::net::Ipv6Addr;

use crate::buf::PacketBuf;
use crate::neighbor::{Learned, NeighborCache, Origin, SWEEP_INTERVAL_NS};
use crate::net::addr::{self, Addr};
use crate::nodes::classify::{self, Disposition, Parsed};
use crate::nodes::icmp_error::{self, Kind, TokenBucket};
use crate::nodes::{echo, egress, inbound, local, nd, rewrite, DropCause, PipelineDrop};
use crate::site::{Site, SiteTables};
use crate::stats::Counters;

/// Longest burst processed in one pass; longer slices are processed in chunks.
pub const MAX_BURST: usize = 256;
/// Router-originated frames held for [`Pipeline::drain_generated`] at most.
pub const MAX_GENERATED: usize = 64;
/// Learned neighbors held for [`Pipeline::drain_learned`] at most.
pub const MAX_LEARNED: usize = 256;

/// Where a packet goes after a burst: one per packet, like VPP's `nexts[]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Next {
    /// Transmit the (rewritten) buffer on this port index.
    Tx(usize),
    /// Free the buffer.
    #[default]
    Drop,
}

/// The next hop whose MAC a forwarded packet needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Hop {
    #[default]
    None,
    /// The next hop of ISP `n`.
    Isp(usize),
    /// An on-link host (the packet's destination on the LAN).
    Host(Addr),
}

/// Per-packet state carried between stages.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    p: Parsed,
    out_port: usize,
    hop: Hop,
    mac: Option<[u8; 6]>,
    /// The neighbor entry is STALE: confirm it with a solicitation.
    probe: bool,
    icmp: Option<Kind>,
}

/// A stage's input: indices into the burst.
struct Frame {
    n: usize,
    idx: [u16; MAX_BURST],
}

impl Frame {
    fn new() -> Frame {
        Frame {
            n: 0,
            idx: [0; MAX_BURST],
        }
    }

    #[inline]
    fn push(&mut self, i: usize) {
        if let Some(slot) = self.idx.get_mut(self.n) {
            *slot = i as u16;
            self.n += 1;
        }
    }

    #[inline]
    fn get(&self, k: usize) -> usize {
        usize::from(self.idx.get(k).copied().unwrap_or_default())
    }
}

struct Frames {
    local: Frame,
    outbound: Frame,
    inbound: Frame,
    rewrite: Frame,
    icmp: Frame,
}

impl Frames {
    fn new() -> Frames {
        Frames {
            local: Frame::new(),
            outbound: Frame::new(),
            inbound: Frame::new(),
            rewrite: Frame::new(),
            icmp: Frame::new(),
        }
    }

    fn clear(&mut self) {
        self.local.n = 0;
        self.outbound.n = 0;
        self.inbound.n = 0;
        self.rewrite.n = 0;
        self.icmp.n = 0;
    }
}

/// A memoised next-hop resolution, valid while the neighbor cache generation is unchanged,
/// within one burst (the resolution marks the entry used at the burst's time).
#[derive(Clone, Copy, Debug, Default)]
struct Memo {
    generation: u64,
    now: u64,
    port: usize,
    ip: Addr,
    mac: Option<[u8; 6]>,
}

/// Frames the pipeline originates (Neighbor Solicitations), waiting for the io layer.
struct Generated {
    bytes: Vec<u8>,
    frames: Vec<(usize, usize, usize)>,
    /// The target of each frame.
    targets: Vec<(usize, Addr)>,
}

/// One worker's packet pipeline.
pub struct Pipeline {
    site: Site,
    tables: SiteTables,
    neighbors: NeighborCache,
    icmp_bucket: TokenBucket,
    counters: Counters,
    slots: Box<[Slot]>,
    frames: Box<Frames>,
    isp_memo: Vec<Memo>,
    host_memo: Memo,
    generated: Generated,
    learned: Vec<(usize, Ipv6Addr, [u8; 6])>,
    /// The clock of the latest burst: the time of neighbors learned between bursts.
    now: u64,
    /// When the neighbor cache was last swept of dead entries.
    last_sweep: u64,
}

#[inline]
fn send(counters: &mut Counters, next: &mut [Next], i: usize, port: usize, len: usize) {
    if let Some(n) = next.get_mut(i) {
        *n = Next::Tx(port);
    }
    if let Some(c) = counters.tx.get_mut(port) {
        c.add(len);
    }
}

impl Pipeline {
    /// A pipeline for one worker. Never fails: references in `site` that do not resolve
    /// (see [`Site::validate`]) only make the packets that would use them drop.
    pub fn new(site: Site) -> Pipeline {
        let tables = SiteTables::new(&site);
        let counters = Counters::new(&site);
        let neighbors = NeighborCache::new(site.ports.len());
        Pipeline {
            icmp_bucket: TokenBucket::new(site.icmp_errors_per_sec),
            isp_memo: vec![Memo::default(); site.isps.len()],
            tables,
            neighbors,
            counters,
            slots: vec![Slot::default(); MAX_BURST].into_boxed_slice(),
            frames: Box::new(Frames::new()),
            host_memo: Memo::default(),
            generated: Generated {
                bytes: Vec::with_capacity(MAX_GENERATED * nd::NS_FRAME_LEN),
                frames: Vec::with_capacity(MAX_GENERATED),
                targets: Vec::with_capacity(MAX_GENERATED),
            },
            learned: Vec::with_capacity(MAX_LEARNED),
            now: 0,
            last_sweep: 0,
            site,
        }
    }

    /// The site this pipeline was built for.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// Processes a burst received on `rx_port`: each buffer is rewritten in place and its
    /// fate written to `next` at the same index. `next` must be at least as long as `pkts`
    /// (only `min(pkts.len(), next.len())` packets are processed). `now_ns` is a monotonic
    /// clock (rate limits).
    pub fn process_burst<B: PacketBuf>(
        &mut self,
        rx_port: usize,
        pkts: &mut [B],
        next: &mut [Next],
        now_ns: u64,
    ) {
        debug_assert!(next.len() >= pkts.len(), "next[] shorter than the burst");
        let n = pkts.len().min(next.len());
        let (Some(pkts), Some(next)) = (pkts.get_mut(..n), next.get_mut(..n)) else {
            return;
        };
        self.now = self.now.max(now_ns);
        if now_ns.saturating_sub(self.last_sweep) >= SWEEP_INTERVAL_NS {
            self.last_sweep = now_ns;
            self.neighbors.sweep(now_ns);
        }
        for (p, x) in pkts.chunks_mut(MAX_BURST).zip(next.chunks_mut(MAX_BURST)) {
            self.process_chunk(rx_port, p, x, now_ns);
        }
        self.sync_neighbor_counters();
    }

    /// Copies the neighbor cache's own counts into the counters.
    fn sync_neighbor_counters(&mut self) {
        self.counters.nd.neighbor_evicted = self.neighbors.evictions();
        self.counters.nd.neighbor_expired = self.neighbors.expirations();
    }

    fn process_chunk<B: PacketBuf>(
        &mut self,
        rx: usize,
        pkts: &mut [B],
        next: &mut [Next],
        now: u64,
    ) {
        next.fill(Next::Drop);
        self.frames.clear();
        if let Some(c) = self.counters.rx.get_mut(rx) {
            for b in pkts.iter() {
                c.add(b.len());
            }
        }
        self.classify_stage(rx, pkts, next);
        self.local_stage(rx, pkts, next, now);
        self.egress_stage();
        self.inbound_stage(rx, pkts);
        self.rewrite_stage(pkts, next, now);
        self.icmp_error_stage(rx, pkts, next, now);
    }

    /// Stage 1: classify the whole burst and dispatch to the next stages.
    fn classify_stage<B: PacketBuf>(&mut self, rx: usize, pkts: &mut [B], next: &mut [Next]) {
        for (i, (b, slot)) in pkts.iter_mut().zip(self.slots.iter_mut()).enumerate() {
            let (class, disp) = classify::classify_into(b, &self.tables, rx, &mut slot.p);
            if let Some(c) = class.and_then(|c| self.counters.class.get_mut(c.index())) {
                *c += 1;
            }
            slot.hop = Hop::None;
            slot.mac = None;
            slot.probe = false;
            slot.icmp = None;
            match disp {
                Disposition::Local => self.frames.local.push(i),
                Disposition::Outbound => self.frames.outbound.push(i),
                Disposition::Inbound => self.frames.inbound.push(i),
                Disposition::Bridge(port) => send(&mut self.counters, next, i, port, b.len()),
                Disposition::Drop(r) => self.counters.drop.count(DropCause::Classify(r)),
            }
        }
    }

    /// Stage 2: the router's own traffic (ND, echo).
    fn local_stage<B: PacketBuf>(
        &mut self,
        rx: usize,
        pkts: &mut [B],
        next: &mut [Next],
        now: u64,
    ) {
        let Some(port) = self.tables.ports.get(rx) else {
            // Unreachable: classification refuses frames from unknown ports.
            for _ in 0..self.frames.local.n {
                self.counters
                    .drop
                    .count(DropCause::Pipeline(PipelineDrop::InternalError));
            }
            return;
        };
        for k in 0..self.frames.local.n {
            let i = self.frames.local.get(k);
            let (Some(b), Some(slot)) = (pkts.get_mut(i), self.slots.get(i)) else {
                continue;
            };
            let p = slot.p;
            match local::dispatch(&p) {
                Err(r) => self.counters.drop.count(DropCause::Local(r)),
                Ok(local::Handler::Echo) => match echo::reply(b, &p, port.mac) {
                    Ok(()) => {
                        self.counters.icmp.echo_replied += 1;
                        send(&mut self.counters, next, i, rx, b.len());
                    }
                    Err(r) => self.counters.drop.count(DropCause::Echo(r)),
                },
                Ok(local::Handler::Nd) => {
                    match nd::input_with_origin(b, &p, port, &mut self.counters.nd) {
                        Ok((outcome, learn)) => {
                            if let Some(l) = learn {
                                learn_from_wire(
                                    &mut self.neighbors,
                                    &mut self.learned,
                                    &mut self.counters,
                                    rx,
                                    l,
                                    now,
                                );
                            }
                            match outcome {
                                nd::Outcome::Reply => {
                                    send(&mut self.counters, next, i, rx, b.len())
                                }
                                nd::Outcome::Consumed => self.counters.local_consumed += 1,
                            }
                        }
                        Err(r) => self.counters.drop.count(DropCause::Nd(r)),
                    }
                }
            }
        }
    }

    /// Stage 3: LAN -> ISP, by source prefix.
    fn egress_stage(&mut self) {
        for k in 0..self.frames.outbound.n {
            let i = self.frames.outbound.get(k);
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            match egress::select(&self.tables, slot.p.src, slot.p.dst) {
                egress::Decision::Forward { isp, port } => {
                    slot.out_port = port;
                    slot.hop = Hop::Isp(isp);
                    self.frames.rewrite.push(i);
                }
                egress::Decision::Refuse {
                    reason,
                    unreachable,
                } => {
                    self.counters.drop.count(DropCause::Egress(reason));
                    if unreachable {
                        slot.icmp = Some(Kind::SourcePolicy);
                        self.frames.icmp.push(i);
                    }
                }
            }
        }
    }

    /// Stage 4: ISP -> LAN filter.
    fn inbound_stage<B: PacketBuf>(&mut self, rx: usize, pkts: &[B]) {
        for k in 0..self.frames.inbound.n {
            let i = self.frames.inbound.get(k);
            let (Some(slot), Some(b)) = (self.slots.get_mut(i), pkts.get(i)) else {
                continue;
            };
            match inbound::select(&self.tables, slot.p.dst) {
                inbound::Decision::Forward { lan_port } => {
                    if let Some(c) = inbound::isp_of(&self.tables, rx, slot.p.dst)
                        .and_then(|isp| self.counters.isp_rx.get_mut(isp))
                    {
                        c.add(b.len());
                    }
                    slot.out_port = lan_port;
                    slot.hop = Hop::Host(slot.p.dst);
                    self.frames.rewrite.push(i);
                }
                inbound::Decision::Refuse(r) => self.counters.drop.count(DropCause::Inbound(r)),
            }
        }
    }

    /// Stage 5: hop limit, next-hop resolution for the whole frame, then the rewrite.
    fn rewrite_stage<B: PacketBuf>(&mut self, pkts: &mut [B], next: &mut [Next], now: u64) {
        // Hop limit: out of the frame (compacted in place) and into the error stage.
        let mut kept = 0;
        for k in 0..self.frames.rewrite.n {
            let i = self.frames.rewrite.get(k);
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            if rewrite::hop_limit_ok(&slot.p) {
                if let Some(x) = self.frames.rewrite.idx.get_mut(kept) {
                    *x = i as u16;
                }
                kept += 1;
            } else {
                self.counters
                    .drop
                    .count(DropCause::Rewrite(rewrite::DropReason::HopLimitExceeded));
                slot.icmp = Some(Kind::HopLimit);
                self.frames.icmp.push(i);
            }
        }
        self.frames.rewrite.n = kept;

        // Resolve every next hop of the frame.
        for k in 0..self.frames.rewrite.n {
            let i = self.frames.rewrite.get(k);
            if let Some(slot) = self.slots.get(i) {
                let (port, hop) = (slot.out_port, slot.hop);
                let (mac, probe) = self.resolve(port, hop, now);
                if let Some(slot) = self.slots.get_mut(i) {
                    slot.mac = mac;
                    slot.probe = probe;
                }
            }
        }

        // Rewrite and send, or solicit.
        for k in 0..self.frames.rewrite.n {
            let i = self.frames.rewrite.get(k);
            let (Some(slot), Some(b)) = (self.slots.get(i).copied(), pkts.get_mut(i)) else {
                continue;
            };
            let Some(port) = self.tables.ports.get(slot.out_port) else {
                // Unreachable: out ports come from the tables.
                self.counters
                    .drop
                    .count(DropCause::Pipeline(PipelineDrop::InternalError));
                continue;
            };
            let target = match slot.hop {
                Hop::Isp(isp) => self.tables.isps.get(isp).map(|s| s.next_hop),
                Hop::Host(a) => Some(a),
                Hop::None => None,
            };
            match slot.mac {
                Some(mac) => {
                    if !rewrite::apply(b, &slot.p, port.mac, mac) {
                        // Unreachable: classification checked the headers are there.
                        self.counters
                            .drop
                            .count(DropCause::Pipeline(PipelineDrop::InternalError));
                        continue;
                    }
                    if slot.probe {
                        if let Some(target) = target {
                            if self.solicit(slot.out_port, target, now, false) {
                                self.counters.nd.stale_probes += 1;
                            }
                        }
                    }
                    let len = b.len();
                    send(&mut self.counters, next, i, slot.out_port, len);
                    if let Hop::Isp(isp) = slot.hop {
                        if let Some(c) = self.counters.isp_tx.get_mut(isp) {
                            c.add(len);
                        }
                    }
                }
                None => {
                    self.counters
                        .drop
                        .count(DropCause::Rewrite(rewrite::DropReason::NeighborUnresolved));
                    if let Some(target) = target {
                        self.solicit(slot.out_port, target, now, true);
                    }
                }
            }
        }
    }

    /// Stage 6: ICMPv6 errors for the packets the earlier stages refused.
    fn icmp_error_stage<B: PacketBuf>(
        &mut self,
        rx: usize,
        pkts: &mut [B],
        next: &mut [Next],
        now: u64,
    ) {
        let Some(port_mac) = self.tables.ports.get(rx).map(|p| p.mac) else {
            return;
        };
        for k in 0..self.frames.icmp.n {
            let i = self.frames.icmp.get(k);
            let (Some(slot), Some(b)) = (self.slots.get(i).copied(), pkts.get_mut(i)) else {
                continue;
            };
            let Some(kind) = slot.icmp else {
                continue;
            };
            if !icmp_error::allowed(&slot.p) {
                self.counters.icmp.error_suppressed += 1;
                continue;
            }
            if !self.icmp_bucket.take(now) {
                match kind {
                    Kind::SourcePolicy => self.counters.icmp.unreachable_ratelimited += 1,
                    Kind::HopLimit => self.counters.icmp.time_exceeded_ratelimited += 1,
                }
                continue;
            }
            let Some(src) = self.tables.source_for(rx, slot.p.src) else {
                // The packet is already counted as a drop; count the error not sent.
                self.counters.icmp.error_no_source += 1;
                continue;
            };
            match icmp_error::build(b, &slot.p, kind, src, port_mac) {
                Ok(()) => {
                    match kind {
                        Kind::SourcePolicy => self.counters.icmp.unreachable_sent += 1,
                        Kind::HopLimit => self.counters.icmp.time_exceeded_sent += 1,
                    }
                    send(&mut self.counters, next, i, rx, b.len());
                }
                Err(icmp_error::NoRoom) => self.counters.icmp.error_no_room += 1,
            }
        }
    }

    /// The MAC of `hop` on `port`: a static next-hop MAC, else the neighbor cache, through
    /// a memo so a burst toward one next hop hashes once. The flag asks for a probe of a
    /// STALE entry (once per burst: memo hits never ask).
    #[inline]
    fn resolve(&mut self, port: usize, hop: Hop, now: u64) -> (Option<[u8; 6]>, bool) {
        let (ip, memo) = match hop {
            Hop::None => return (None, false),
            Hop::Isp(isp) => {
                let Some(s) = self.tables.isps.get(isp) else {
                    return (None, false);
                };
                if s.static_mac.is_some() {
                    return (s.static_mac, false);
                }
                let Some(memo) = self.isp_memo.get_mut(isp) else {
                    return (None, false);
                };
                (s.next_hop, memo)
            }
            Hop::Host(a) => (a, &mut self.host_memo),
        };
        let generation = self.neighbors.generation();
        if memo.generation == generation && memo.now == now && memo.port == port && memo.ip == ip {
            return (memo.mac, false);
        }
        let r = self.neighbors.resolve(port, ip, now);
        let mac = r.map(|r| r.mac);
        *memo = Memo {
            // The resolution may have deleted a dead entry.
            generation: self.neighbors.generation(),
            now,
            port,
            ip,
            mac,
        };
        (mac, r.is_some_and(|r| r.probe))
    }

    /// Queues a Neighbor Solicitation for `target` on `port`, at most one per second per
    /// target; whether it did. `count_limited`: count the solicitations the rate limit
    /// holds back (not for probes of STALE entries, asked for on every burst that uses
    /// them).
    fn solicit(&mut self, port: usize, target: Addr, now: u64, count_limited: bool) -> bool {
        if self.generated.frames.len() >= MAX_GENERATED {
            self.counters.nd.ns_queue_full += 1;
            return false;
        }
        if !self.neighbors.should_solicit(port, target, now) {
            if count_limited {
                self.counters.nd.ns_ratelimited += 1;
            }
            return false;
        }
        let (Some(p), Some(src)) = (
            self.tables.ports.get(port),
            self.tables.ns_source_for(port, target),
        ) else {
            return false;
        };
        let mut frame = [0u8; nd::NS_FRAME_LEN];
        nd::build_ns_frame(&mut frame, p.mac, src, target);
        let start = self.generated.bytes.len();
        self.generated.bytes.extend_from_slice(&frame);
        self.generated.frames.push((port, start, frame.len()));
        self.generated.targets.push((port, target));
        self.counters.nd.ns_sent += 1;
        true
    }

    /// Hands every router-originated frame (Neighbor Solicitations) to `out` with the port
    /// to send it on, and forgets them. The io layer copies each into a fresh mbuf.
    pub fn drain_generated(&mut self, out: &mut impl FnMut(usize, &[u8])) {
        for &(port, start, len) in &self.generated.frames {
            if let Some(f) = self.generated.bytes.get(start..start + len) {
                out(port, f);
            }
        }
        self.generated.frames.clear();
        self.generated.targets.clear();
        self.generated.bytes.clear();
    }

    /// Sets the link state of ISP `isp` (ignored if there is no such ISP).
    pub fn set_isp_link(&mut self, isp: usize, up: bool) {
        if let Some(s) = self.tables.isps.get_mut(isp) {
            s.link_up = up;
        }
    }

    /// Sets the administrative state of ISP `isp` (ignored if there is no such ISP).
    pub fn set_isp_admin(&mut self, isp: usize, up: bool) {
        if let Some(s) = self.tables.isps.get_mut(isp) {
            s.admin_up = up;
        }
    }

    /// Whether ISP `isp` would carry traffic now (administratively up, link up).
    pub fn isp_usable(&self, isp: usize) -> bool {
        self.tables.isps.get(isp).is_some_and(|s| s.usable())
    }

    /// Records a neighbor another worker learned (not queued for [`Self::drain_learned`]
    /// again).
    pub fn learn_neighbor(&mut self, port: usize, ip: Ipv6Addr, mac: [u8; 6]) {
        self.neighbors
            .learn(port, addr::from_std(&ip), mac, Origin::Peer, self.now);
        self.sync_neighbor_counters();
    }

    /// Marks `ip` on `port` as being solicited (another worker sent the solicitation,
    /// see [`Self::drain_solicited`]), so that the advertisement answering it may create
    /// an entry here when RSS delivers it to this worker.
    pub fn expect_neighbor(&mut self, port: usize, ip: Ipv6Addr) {
        self.neighbors.expect(port, addr::from_std(&ip), self.now);
    }

    /// The targets of the solicitations waiting in [`Self::drain_generated`] (call before
    /// it), for the io layer to pass to the other workers' [`Self::expect_neighbor`].
    pub fn drain_solicited(&self, out: &mut impl FnMut(usize, Ipv6Addr)) {
        for &(port, target) in &self.generated.targets {
            out(port, addr::to_std(target));
        }
    }

    /// Counts a frame the io layer dropped before the pipeline because it is a chained
    /// (multi-segment) mbuf: `drop.multi_segment`, and `rx.<port>` like every received
    /// frame.
    pub fn count_drop_multi_segment(&mut self, port: usize, len: usize) {
        if let Some(c) = self.counters.rx.get_mut(port) {
            c.add(len);
        }
        self.counters
            .drop
            .count(DropCause::Pipeline(PipelineDrop::MultiSegment));
    }

    /// Installs a configured neighbor that nothing learned from the wire replaces.
    pub fn add_static_neighbor(&mut self, port: usize, ip: Ipv6Addr, mac: [u8; 6]) {
        self.neighbors.set_static(port, addr::from_std(&ip), mac);
    }

    /// The MAC this worker knows for `ip` on `port`.
    pub fn neighbor(&self, port: usize, ip: Ipv6Addr) -> Option<[u8; 6]> {
        self.neighbors.lookup(port, addr::from_std(&ip))
    }

    /// Hands every neighbor learned from the wire since the last call (new or changed) to
    /// `out`, for the io layer to pass to the other workers.
    pub fn drain_learned(&mut self, out: &mut impl FnMut(usize, Ipv6Addr, [u8; 6])) {
        for &(port, ip, mac) in &self.learned {
            out(port, ip, mac);
        }
        self.learned.clear();
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// Learns a neighbor from a packet and queues it for the other workers if it is news.
fn learn_from_wire(
    neighbors: &mut NeighborCache,
    learned: &mut Vec<(usize, Ipv6Addr, [u8; 6])>,
    counters: &mut Counters,
    port: usize,
    l: nd::Learning,
    now: u64,
) {
    let (ip, mac) = (l.ip, l.mac);
    match neighbors.learn(port, ip, mac, l.origin, now) {
        Learned::New | Learned::Changed => {
            counters.nd.learned += 1;
            if learned.len() < MAX_LEARNED {
                learned.push((port, addr::to_std(ip), mac));
            } else {
                counters.nd.learn_queue_full += 1;
            }
        }
        Learned::Unchanged => {}
        Learned::Refused => counters.nd.learn_refused += 1,
        Learned::Unsolicited => counters.nd.unsolicited_na_refused += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::testpkt::*;

    // Golden frames written out byte by byte; their checksums were computed by an
    // independent implementation (Python, RFC 1071 over the pseudo-header), not by
    // `net::checksum`.

    /// NS from fe80::10 (02:00:00:00:10:10) for the router's LAN link-local fe80::ff:fe00:1,
    /// to its solicited-node group, with a source link-layer option.
    static NS_FROM_HOST: [u8; 86] = [
        0x33, 0x33, 0xff, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x10, 0x10, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x01, 0x87, 0x00, 0x6b, 0x7b, 0x00, 0x00,
        0x00, 0x00, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xfe,
        0x00, 0x00, 0x01, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x10, 0x10,
    ];

    /// The router's answer: R, S and O set, target link-layer option 02:00:00:00:00:01.
    static NA_TO_HOST: [u8; 86] = [
        0x02, 0x00, 0x00, 0x00, 0x10, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0xff, 0xfe, 0x00, 0x00, 0x01, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x88, 0x00, 0x9a, 0x0d, 0xe0, 0x00,
        0x00, 0x00, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xfe,
        0x00, 0x00, 0x01, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];

    /// Echo request 2001:db8:1:1::10 -> 2001:db8:1:1::1, id 0x1234 seq 1, "abcdefgh".
    static ECHO_REQUEST: [u8; 70] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x10, 0x10, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x10, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x80, 0x00, 0x80, 0x63, 0x12, 0x34,
        0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    ];

    static ECHO_REPLY: [u8; 70] = [
        0x02, 0x00, 0x00, 0x00, 0x10, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x10, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x81, 0x00, 0x7f, 0x63, 0x12, 0x34,
        0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    ];

    fn one(pl: &mut Pipeline, port: usize, frame: &[u8], now: u64) -> (Next, Vec<u8>) {
        let mut b = [VecBuf::new(frame)];
        let mut next = [Next::Drop];
        pl.process_burst(port, &mut b, &mut next, now);
        (next[0], b[0].to_vec())
    }

    #[test]
    fn golden_ns_na() {
        let mut pl = Pipeline::new(two_isp_site());
        assert_eq!(
            one(&mut pl, 0, &NS_FROM_HOST, 0),
            (Next::Tx(0), NA_TO_HOST.to_vec())
        );
        // The builders agree with the golden bytes.
        assert_eq!(
            ns_frame(
                SN_MAC_LAN,
                HOST_MAC,
                "fe80::10",
                "ff02::1:ff00:1",
                "fe80::ff:fe00:1",
                Some(HOST_MAC)
            ),
            NS_FROM_HOST
        );
        assert_eq!(pl.neighbor(0, ip("fe80::10")), Some(HOST_MAC));
    }

    #[test]
    fn golden_echo() {
        let mut pl = Pipeline::new(two_isp_site());
        assert_eq!(
            one(&mut pl, 0, &ECHO_REQUEST, 0),
            (Next::Tx(0), ECHO_REPLY.to_vec())
        );
        assert_eq!(
            echo_request(
                LAN_MAC,
                HOST_MAC,
                "2001:db8:1:1::10",
                "2001:db8:1:1::1",
                b"abcdefgh"
            ),
            ECHO_REQUEST
        );
    }

    #[test]
    fn memo_follows_the_cache() {
        let mut pl = Pipeline::new(two_isp_site());
        let f = udp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:99::1",
            64,
            8,
        );
        assert_eq!(one(&mut pl, 0, &f, 0).0, Next::Drop);
        pl.learn_neighbor(1, ip("fe80::1"), ISP1_MAC);
        let (n, out) = one(&mut pl, 0, &f, 0);
        assert_eq!(n, Next::Tx(1));
        assert_eq!(&out[0..6], &ISP1_MAC);
        // A changed MAC is seen at once.
        pl.learn_neighbor(1, ip("fe80::1"), [0x02, 9, 9, 9, 9, 9]);
        assert_eq!(&one(&mut pl, 0, &f, 0).1[0..6], &[0x02, 9, 9, 9, 9, 9]);
        // Host memo: two hosts alternate.
        pl.learn_neighbor(0, ip("2001:db8:1:1::10"), [0x02, 1, 1, 1, 1, 1]);
        pl.learn_neighbor(0, ip("2001:db8:1:1::11"), [0x02, 2, 2, 2, 2, 2]);
        for (dst, mac) in [
            ("2001:db8:1:1::10", 1u8),
            ("2001:db8:1:1::11", 2),
            ("2001:db8:1:1::10", 1),
        ] {
            let f = udp_frame(ISP1_PORT_MAC, ISP1_MAC, "2001:db8:99::1", dst, 64, 8);
            let (n, out) = one(&mut pl, 1, &f, 0);
            assert_eq!(n, Next::Tx(0));
            assert_eq!(&out[0..6], &[0x02, mac, mac, mac, mac, mac]);
        }
    }

    #[test]
    fn bursts_longer_than_max_burst_are_chunked() {
        let mut pl = Pipeline::new(two_isp_site());
        let f = udp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:2:1::10",
            "2001:db8:99::1",
            64,
            8,
        );
        let mut bufs: Vec<VecBuf> = (0..MAX_BURST * 2 + 3).map(|_| VecBuf::new(&f)).collect();
        let mut next = vec![Next::Drop; bufs.len()];
        pl.process_burst(0, &mut bufs, &mut next, 0);
        assert!(next.iter().all(|n| *n == Next::Tx(2)));
        assert_eq!(
            pl.counters().get("isp.isp2.tx_packets"),
            Some(bufs.len() as u64)
        );
    }
}
