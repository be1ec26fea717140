//! The per-worker pipeline: the graph wiring that runs the stages of [`crate::nodes`] over a
//! burst, VPP style. Each feature's own story lives elsewhere: neighbor resolution in
//! [`crate::neighbor`] (this file only asks its [`Resolver`] and fills its hold queue), ISP
//! state in [`crate::isp`], the published tables in [`crate::tables`].
//!
//! A burst is classified whole first; each later stage then runs over the frame (the list
//! of packet indices) the earlier stages gave it, so one stage's code and tables stay hot
//! while it works through its packets, and the table lookups of a stage are issued for the
//! whole frame before their results are used (the adjacency stage resolves every next hop,
//! then rewrites).
//!
//! One [`Pipeline`] per worker lcore: it reads its own replicas of the published tables
//! (synced at the start of every burst) and writes only its own counters, so the hot path
//! takes no lock and writes no shared cache line.
//!
//! `held.rs` sends or answers the packets that waited for their next hop; `originate.rs`
//! answers datagrams reassembled from fragments and routes what the router itself sends.
//!
//! Forwarding allocates nothing per packet: per-packet state lives in fixed arrays sized
//! for [`MAX_BURST`]; the hold queue and the queue of generated frames are bounded and
//! reuse their buffers. The router's own slow paths copy: fragments addressed to it go
//! into the reassembler (bounded by its limits), and its answers to reassembled datagrams
//! are built in fresh buffers.

mod held;
mod originate;

use crate::buf::PacketBuf;
use crate::contexts::datapath::{ContextReader, M6Event};
use crate::control::{WorkerEvent, WorkerTables};
use crate::isp::IspTable;
use crate::neighbor::datapath::{Hold, HoldMeta, HoldQueue, Lookup, Resolver};
use crate::neighbor::{NeighborEvent, Trigger};
use crate::net::addr::{self, Addr};
use crate::nodes::classify::{self, Disposition, Parsed};
use crate::nodes::icmp_error::{self, Kind, TokenBucket};
use crate::nodes::reassembly::{self, Reassembler};
use crate::nodes::{
    adjacency, cc_answer, echo, egress, exthdr, inbound, local, nd, nptv6, proxy_in, proxy_out,
    rewrite, DropCause, PipelineDrop,
};
use crate::site::{Role, Site, SiteTables};
use crate::stats::Counters;
use crate::tables::Reader;
use crate::{health, ra};

/// Longest burst processed in one pass; longer slices are processed in chunks.
pub const MAX_BURST: usize = 256;
/// Bytes of generated frames (released held packets, errors about them) queued for the io
/// layer at most between two drains.
pub const MAX_GENERATED_BYTES: usize = 64 * 1024;

/// Where a packet goes after a burst: one per packet, like VPP's `nexts[]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Next {
    /// Transmit the (rewritten) buffer on this port index.
    Tx(usize),
    /// Free the buffer (the pipeline has counted why).
    #[default]
    Drop,
    /// The pipeline kept a copy to send once its next hop resolves: free the buffer.
    Held,
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
    /// The router built this packet (an echo reply routed through an ISP): its hop limit
    /// is not decremented.
    originated: bool,
    lookup: Option<Lookup>,
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
    adjacency: Frame,
    icmp: Frame,
}

impl Frames {
    fn new() -> Frames {
        Frames {
            local: Frame::new(),
            outbound: Frame::new(),
            inbound: Frame::new(),
            adjacency: Frame::new(),
            icmp: Frame::new(),
        }
    }

    fn clear(&mut self) {
        self.local.n = 0;
        self.outbound.n = 0;
        self.inbound.n = 0;
        self.adjacency.n = 0;
        self.icmp.n = 0;
    }
}

/// Frames the pipeline built outside the burst (released held packets), waiting for the
/// io layer to copy them into fresh buffers.
struct Generated {
    bytes: Vec<u8>,
    frames: Vec<(usize, usize, usize)>,
}

impl Generated {
    fn push(&mut self, port: usize, frame: &[u8]) -> bool {
        if self.bytes.len() + frame.len() > MAX_GENERATED_BYTES {
            return false;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(frame);
        self.frames.push((port, start, frame.len()));
        true
    }
}

/// One worker's packet pipeline.
pub struct Pipeline {
    site: Site,
    tables: SiteTables,
    isps: Reader<IspTable>,
    resolver: Resolver,
    contexts: ContextReader,
    held: HoldQueue,
    icmp_bucket: TokenBucket,
    counters: Counters,
    slots: Box<[Slot]>,
    frames: Box<Frames>,
    generated: Generated,
    /// The last LAN source reported as talking, and when (one report per source per burst).
    last_talker: (Addr, u64),
    /// The replica generation the hold queue was last checked against, and when.
    held_checked: (u64, u64),
    hold_timeout_ns: u64,
    /// Fragments addressed to the router (RFC 8200 section 4.5).
    reassembler: Reassembler,
    /// Datagrams reassembled during a burst, processed after it: (rx port, sender MAC,
    /// IPv6 packet).
    datagrams: Vec<(usize, [u8; 6], Vec<u8>)>,
    /// Identification of the next packet the router fragments.
    frag_id: u32,
    /// Reports for the control thread other than neighbor evidence (probe replies, router
    /// solicitations), at most [`MAX_LOCAL_REPORTS`] per burst.
    reports: Vec<WorkerEvent>,
    /// NPTv6 mappings (empty unless configured).
    nptv6: Vec<nptv6::Mapping>,
    /// The site as the control thread last published it (a reload).
    site_reader: Reader<crate::control::SiteTable>,
}

/// Probe replies and router solicitations one burst reports at most (a flood of them
/// costs counted drops, not the control thread's time).
pub const MAX_LOCAL_REPORTS: usize = 8;

/// Queues a report for the control thread within the burst's budget.
fn report(reports: &mut Vec<WorkerEvent>, counters: &mut Counters, e: WorkerEvent) {
    if reports.len() < MAX_LOCAL_REPORTS {
        reports.push(e);
    } else {
        counters
            .drop
            .count(DropCause::Local(local::DropReason::ReportsOverBudget));
    }
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
    /// A pipeline for one worker, reading `tables` (from [`crate::control::Control`]).
    /// Never fails: references in `site` that do not resolve (see [`Site::validate`]) only
    /// make the packets that would use them drop.
    pub fn new(site: Site, tables: WorkerTables) -> Pipeline {
        let compiled = SiteTables::new(&site);
        let counters = Counters::new(&site);
        Pipeline {
            icmp_bucket: TokenBucket::new(site.icmp_errors_per_sec),
            // One memo slot per ISP next hop, one for LAN hosts.
            resolver: Resolver::new(tables.neighbors, site.isps.len() + 1),
            isps: tables.isps,
            contexts: ContextReader::new(tables.contexts),
            held: HoldQueue::new(),
            tables: compiled,
            counters,
            slots: vec![Slot::default(); MAX_BURST].into_boxed_slice(),
            frames: Box::new(Frames::new()),
            generated: Generated {
                bytes: Vec::with_capacity(MAX_GENERATED_BYTES),
                frames: Vec::with_capacity(MAX_BURST),
            },
            last_talker: (0, u64::MAX),
            held_checked: (0, 0),
            hold_timeout_ns: crate::neighbor::Timers::new(&site.nd).hold_timeout_ns(),
            reassembler: Reassembler::new(reassembly::Limits::default()),
            datagrams: Vec::new(),
            // Unpredictable Identifications (RFC 7739): a random start per worker.
            frag_id: {
                use std::hash::{BuildHasher, Hasher};
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_usize(site.ports.len());
                h.finish() as u32
            },
            reports: Vec::with_capacity(MAX_LOCAL_REPORTS),
            nptv6: nptv6::mappings(&site),
            site_reader: tables.site,
            site,
        }
    }

    /// The site this pipeline was built for.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// Processes a burst received on `rx_port`: each buffer is rewritten in place and its
    /// fate written to `next` at the same index. `next` must be at least as long as `pkts`
    /// (only `min(pkts.len(), next.len())` packets are processed). `now_ns` is the
    /// workers' shared monotonic clock (rate limits, neighbor reports, held packets).
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
        self.sync();
        for (p, x) in pkts.chunks_mut(MAX_BURST).zip(next.chunks_mut(MAX_BURST)) {
            self.process_chunk(rx_port, p, x, now_ns);
        }
        self.counters.resolve = self.resolver.counters.clone();
        self.counters.proxy = self.contexts.counters.clone();
    }

    /// Applies the control thread's table changes (done at the start of every burst too).
    pub fn sync(&mut self) {
        self.resolver.sync();
        self.isps.sync();
        self.contexts.sync();
        if self.site_reader.sync() > 0 {
            // A reload changed addresses, prefixes or timers: compile the site again (rare).
            let site: Site = (*self.site_reader.get().0).clone();
            self.tables = SiteTables::new(&site);
            self.nptv6 = nptv6::mappings(&site);
            self.hold_timeout_ns = crate::neighbor::Timers::new(&site.nd).hold_timeout_ns();
            self.site = site;
        }
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
        self.classify_stage(rx, pkts);
        self.local_stage(rx, pkts, next, now);
        self.egress_stage(pkts, now);
        self.inbound_stage(rx, pkts, now);
        self.adjacency_stage(rx, pkts, next, now);
        self.icmp_error_stage(rx, pkts, next, now);
    }

    /// Stage 1: classify the whole burst and dispatch to the next stages.
    fn classify_stage<B: PacketBuf>(&mut self, rx: usize, pkts: &mut [B]) {
        for (i, (b, slot)) in pkts.iter_mut().zip(self.slots.iter_mut()).enumerate() {
            let (class, disp) = classify::classify_into(b, &self.tables, rx, &mut slot.p);
            if let Some(c) = class.and_then(|c| self.counters.class.get_mut(c.index())) {
                *c += 1;
            }
            slot.hop = Hop::None;
            slot.originated = false;
            slot.lookup = None;
            slot.icmp = None;
            match disp {
                Disposition::Local => self.frames.local.push(i),
                Disposition::Outbound => self.frames.outbound.push(i),
                Disposition::Inbound => self.frames.inbound.push(i),
                Disposition::Drop(r) => {
                    self.counters.drop.count(DropCause::Classify(r));
                    if r == classify::DropReason::SourceBeyondScope {
                        slot.icmp = Some(Kind::BeyondScope);
                        self.frames.icmp.push(i);
                    }
                }
            }
        }
    }

    /// Stage 2: the router's own traffic: extension headers, reassembly, then ND and echo.
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
            let (Some(b), Some(slot)) = (pkts.get_mut(i), self.slots.get_mut(i)) else {
                continue;
            };
            let p = slot.p;
            match exthdr::verdict(&p, b.data()) {
                exthdr::Verdict::Accept => {}
                exthdr::Verdict::Drop(r) => {
                    self.counters.drop.count(DropCause::ExtHdr(r));
                    continue;
                }
                exthdr::Verdict::Problem {
                    reason,
                    code,
                    pointer,
                } => {
                    self.counters.drop.count(DropCause::ExtHdr(reason));
                    slot.icmp = Some(Kind::ParamProblem { code, pointer });
                    self.frames.icmp.push(i);
                    continue;
                }
            }
            if p.fragment {
                let packet = b.data().get(p.l3()..p.end()).unwrap_or(&[]);
                match self.reassembler.input(packet, usize::from(p.frag_at), now) {
                    reassembly::Outcome::Held => {
                        if let Some(n) = next.get_mut(i) {
                            *n = Next::Held;
                        }
                    }
                    reassembly::Outcome::Complete(d) | reassembly::Outcome::Atomic(d) => {
                        self.datagrams.push((rx, p.src_mac, d));
                        if let Some(n) = next.get_mut(i) {
                            *n = Next::Held;
                        }
                    }
                    // Counted by the reassembler (`reassembly.drop.*`).
                    reassembly::Outcome::Dropped(r) => {
                        if let Some((code, pointer)) = r.parameter_problem(usize::from(p.frag_at)) {
                            slot.icmp = Some(Kind::ParamProblem { code, pointer });
                            self.frames.icmp.push(i);
                        }
                    }
                }
                continue;
            }
            // M6 control for the router itself: the control plane's (seed 001 section 7).
            if p.l4_proto == crate::net::ipv6::proto::ICMPV6
                && matches!(p.icmp_type, Some(200 | 201))
            {
                let packet = b.data().get(p.l3()..p.end()).unwrap_or(&[]);
                if !self.contexts.punt(rx, packet, now) {
                    self.counters
                        .drop
                        .count(DropCause::ProxyIn(proxy_in::DropReason::PuntRateLimited));
                }
                continue;
            }
            match local::dispatch(&p) {
                Err(r) => self.counters.drop.count(DropCause::Local(r)),
                Ok(local::Handler::Echo) => {
                    let from = self.tables.reply_source(p.dst);
                    match echo::reply(b, &p, port.mac, from) {
                        Ok(()) => {
                            self.counters.icmp.echo_replied += 1;
                            // Toward the Internet, a reply leaves through the ISP that
                            // owns its source, whose ingress filter accepts it (seed 000
                            // section 5.1); on-link answers go straight back.
                            let toward_internet = port.role == Role::Isp
                                && !self.tables.in_site(p.src)
                                && !addr::is_link_local(p.src);
                            let owner = self.tables.owner_of(from).and_then(|isp| {
                                let s = self.tables.isps.get(isp)?;
                                (s.port != Some(rx)).then_some((isp, s.port?))
                            });
                            let usable = |isp: usize| {
                                self.isps.get().0.live.get(isp).is_some_and(|l| l.usable())
                            };
                            match owner {
                                Some((isp, _)) if toward_internet && !usable(isp) => {
                                    self.counters
                                        .drop
                                        .count(DropCause::Echo(echo::DropReason::OwnerIspDown));
                                }
                                Some((isp, out)) if toward_internet => {
                                    slot.out_port = out;
                                    slot.hop = Hop::Isp(isp);
                                    slot.originated = true;
                                    self.frames.adjacency.push(i);
                                }
                                _ => send(&mut self.counters, next, i, rx, b.len()),
                            }
                        }
                        Err(r) => self.counters.drop.count(DropCause::Echo(r)),
                    }
                }
                Ok(local::Handler::EchoReply) => {
                    let msg = b.data().get(p.l4()..p.end()).unwrap_or(&[]);
                    let isps = &self.tables.isps;
                    let cookie = &self.site.probe_cookie;
                    match health::is_probe_reply(msg, rx, cookie, |i| isps.get(i)?.port) {
                        Some((ident, seq)) => {
                            self.counters.local_consumed += 1;
                            let e = WorkerEvent::EchoReply {
                                src: p.src,
                                dst: p.dst,
                                ident,
                                seq,
                            };
                            report(&mut self.reports, &mut self.counters, e);
                        }
                        None => self
                            .counters
                            .drop
                            .count(DropCause::Local(local::DropReason::EchoReplyNotOurs)),
                    }
                }
                Ok(local::Handler::RouterSolicitation) => {
                    match ra::check_solicitation(b, &p) {
                        // Reported whether RAs are configured or not: a reload may turn them
                        // on, and the control thread, which knows, answers or ignores it.
                        Ok(sll) if port.role == Role::Lan => {
                            self.counters.local_consumed += 1;
                            if let Some(mac) = sll {
                                // Section 6.2.6: the neighbor cache learns the solicitor.
                                self.resolver.report(NeighborEvent::Solicitation {
                                    port: rx as u16,
                                    src: p.src,
                                    mac,
                                });
                            }
                            let e = WorkerEvent::RouterSolicitation;
                            report(&mut self.reports, &mut self.counters, e);
                        }
                        _ => self
                            .counters
                            .drop
                            .count(DropCause::Local(local::DropReason::BadRouterSolicitation)),
                    }
                }
                Ok(local::Handler::Nd) => match nd::input(b, &p, port, rx, &mut self.counters.nd) {
                    Ok((outcome, evidence)) => {
                        if let Some(ev) = evidence {
                            self.resolver.report(ev);
                        }
                        match outcome {
                            nd::Outcome::Reply => send(&mut self.counters, next, i, rx, b.len()),
                            nd::Outcome::Consumed => self.counters.local_consumed += 1,
                        }
                    }
                    Err(r) => self.counters.drop.count(DropCause::Nd(r)),
                },
            }
        }
        let datagrams = std::mem::take(&mut self.datagrams);
        for (rx, mac, d) in &datagrams {
            self.local_datagram(*rx, *mac, d, now);
        }
        self.datagrams = datagrams;
        self.datagrams.clear();
        self.counters.reassembly = self.reassembler.counters().clone();
    }

    /// Stage 3: LAN -> ISP, by source prefix.
    fn egress_stage<B: PacketBuf>(&mut self, pkts: &mut [B], now: u64) {
        let lan = self.tables.lan_port.unwrap_or(0);
        // Proxied packets: every context looked up (and its slot prefetched) first, so that
        // the misses of a cold table overlap across the burst (VPP's prefetching loop); the
        // slots found serve the loop below (u32::MAX: none).
        let mut tx_slots = [u32::MAX; MAX_BURST];
        if !self.tables.proxied.is_empty() {
            let table = self.contexts.table();
            for (k, found) in tx_slots.iter_mut().enumerate().take(self.frames.outbound.n) {
                if let Some(slot) = self.slots.get(self.frames.outbound.get(k)) {
                    if self.tables.is_proxied(slot.p.src) && !slot.p.rewrite_ok {
                        if let Some(i) = table.tx_slot(slot.p.src, slot.p.dst) {
                            table.prefetch_slot(i);
                            *found = i;
                        }
                    }
                }
            }
        }
        for k in 0..self.frames.outbound.n {
            let i = self.frames.outbound.get(k);
            let (Some(slot), Some(b)) = (self.slots.get_mut(i), pkts.get_mut(i)) else {
                continue;
            };
            // A proxied legacy host: M6 through its context if one is usable (seed 002),
            // else plain IPv6 and, for a new peer, a report.
            if self.tables.is_proxied(slot.p.src)
                && !slot.p.rewrite_ok
                && !matches!(slot.p.l4_proto, classify::P1..=0xaf)
                && !self.tables.in_site(slot.p.dst)
            {
                let (src, dst) = (slot.p.src, slot.p.dst);
                // The context is read in place in the replica (a copy would touch every
                // cache line of it); the reports and proxy counters, kept by the same
                // ContextReader, wait until the borrow ends.
                let mut first = false;
                let mut translated = None;
                let found = tx_slots.get(k).copied().unwrap_or(u32::MAX);
                match self.contexts.table().at(found) {
                    Some(c) if c.transmit && c.f_peer != 0 => {
                        let picked = proxy_out::pick(&self.tables, &self.isps.get().0, c, dst);
                        let lp = self.contexts.lp_peer(c);
                        let port = picked.and_then(|(isp, _)| self.tables.isps.get(isp)?.port);
                        if let (Some((isp, from)), Some(lp), Some(port)) = (picked, lp, port) {
                            // Hop limit and MTU are judged on the packet as the host sent it,
                            // so that an error quotes what the host can match; an escape
                            // header makes the packet 8 octets longer (RFC 8200 5).
                            let grows = proxy_out::grows(slot.p.l4_proto) as u32;
                            let mtu = self.tables.ports.get(port).map_or(0, |p| p.mtu);
                            let problem = if !adjacency::hop_limit_ok(&slot.p) {
                                Some((adjacency::DropReason::HopLimitExceeded, Kind::HopLimit))
                            } else if slot.p.ip_len + grows > u32::from(mtu) {
                                Some((
                                    adjacency::DropReason::PacketTooBig,
                                    Kind::PacketTooBig {
                                        mtu: u32::from(mtu).saturating_sub(grows),
                                    },
                                ))
                            } else {
                                None
                            };
                            if let Some((reason, kind)) = problem {
                                self.counters.drop.count(DropCause::Adjacency(reason));
                                slot.icmp = Some(kind);
                                self.frames.icmp.push(i);
                                continue;
                            }
                            let done = proxy_out::translate(b, &mut slot.p, c, from, lp);
                            translated = Some((c.key(), done.map(|()| (isp, port))));
                        }
                    }
                    Some(_) => {}
                    None => first = true,
                }
                if let Some((key, done)) = translated {
                    self.contexts.used(&key, now);
                    match done {
                        Ok((isp, port)) => {
                            self.contexts.counters.translated_out += 1;
                            slot.out_port = port;
                            slot.hop = Hop::Isp(isp);
                            self.frames.adjacency.push(i);
                        }
                        Err(r) => self.counters.drop.count(DropCause::ProxyOut(r)),
                    }
                    continue;
                }
                if first {
                    self.contexts.first_packet(src, dst, now);
                }
                self.contexts.counters.plain_out += 1;
            }
            // Rewrite ok: any usable ISP, picked per flow, with the source locator
            // rewritten to its prefix (seed 001 sections 6 and 11).
            if slot.p.rewrite_ok
                && self.tables.in_site(slot.p.src)
                && !self.tables.in_site(slot.p.dst)
            {
                let live = &self.isps.get().0;
                let flow = rewrite::flow_label(b.data().get(slot.p.l3()..).unwrap_or(&[]));
                let owner = self.tables.isp_owning(slot.p.src);
                let chosen = rewrite::pick(&self.tables, live, slot.p.src, slot.p.dst, flow);
                let port = chosen.and_then(|c| self.tables.isps.get(c)?.port);
                if let (Some(isp), Some(port)) = (chosen, port) {
                    if Some(isp) != owner {
                        match rewrite::apply(b, &slot.p, &self.tables, isp) {
                            Some(new) => {
                                slot.p.src = new;
                                self.counters.rewrite.rewritten += 1;
                            }
                            None => {
                                self.counters
                                    .drop
                                    .count(DropCause::Pipeline(PipelineDrop::InternalError));
                                continue;
                            }
                        }
                    } else {
                        self.counters.rewrite.kept += 1;
                    }
                    slot.out_port = port;
                    slot.hop = Hop::Isp(isp);
                    self.frames.adjacency.push(i);
                    continue;
                }
                self.counters.rewrite.no_usable_isp += 1;
            }
            // A ULA host behind NPTv6: its prefix translated to an eligible ISP's.
            if !self.nptv6.is_empty() && !self.tables.in_site(slot.p.dst) {
                let flow = rewrite::flow_label(b.data().get(slot.p.l3()..).unwrap_or(&[]));
                let (src, dst) = (slot.p.src, slot.p.dst);
                let view = &self.isps.get().0;
                match nptv6::outbound(&self.nptv6, view, self.tables.wired_isps, src, dst, flow) {
                    Some(Ok((isp, new))) => {
                        let port = self.tables.isps.get(isp).and_then(|s| s.port);
                        if let Some(port) = port {
                            if nptv6::set_address(b, slot.p.l3() + 8, new) {
                                self.counters.nptv6.translated_out += 1;
                                if self.tables.on_link(lan, src) {
                                    self.resolver.talked(lan, src, now);
                                }
                                slot.p.src = new;
                                slot.out_port = port;
                                slot.hop = Hop::Isp(isp);
                                self.frames.adjacency.push(i);
                                continue;
                            }
                        }
                    }
                    Some(Err(())) => {
                        self.counters
                            .drop
                            .count(DropCause::Egress(egress::DropReason::Nptv6Unmappable));
                        continue;
                    }
                    None => {}
                }
            }
            match egress::select(
                &self.tables,
                &self.isps.get().0.live,
                slot.p.src,
                slot.p.dst,
            ) {
                egress::Decision::Forward { isp, port } => {
                    // A host that talks gets resolved ahead of any scan (RFC 6583 section
                    // 7.1); only a source that can be on the LAN (a spoofed one must not
                    // spend the inside budget).
                    if self.last_talker != (slot.p.src, now) {
                        self.last_talker = (slot.p.src, now);
                        if self.tables.on_link(lan, slot.p.src) {
                            self.resolver.talked(lan, slot.p.src, now);
                        }
                    }
                    slot.out_port = port;
                    slot.hop = Hop::Isp(isp);
                    self.frames.adjacency.push(i);
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
    fn inbound_stage<B: PacketBuf>(&mut self, rx: usize, pkts: &mut [B], now: u64) {
        // M6 data for proxied hosts: the F(local) array entries, then their slots,
        // prefetched across the burst before any is used.
        if !self.tables.proxied.is_empty() {
            let table = self.contexts.table();
            // Labels read once for both passes (u32::MAX: not M6 data).
            let mut labels = [u32::MAX; MAX_BURST];
            for (k, l) in labels.iter_mut().enumerate().take(self.frames.inbound.n) {
                let i = self.frames.inbound.get(k);
                if let (Some(slot), Some(b)) = (self.slots.get(i), pkts.get(i)) {
                    if matches!(slot.p.l4_proto, classify::P1..=0xaf) {
                        *l = rewrite::flow_label(b.data().get(slot.p.l3()..).unwrap_or(&[]));
                        table.prefetch_label(*l);
                    }
                }
            }
            for &l in labels.iter().take(self.frames.inbound.n) {
                if l != u32::MAX {
                    table.prefetch_label_slot(l);
                }
            }
        }
        for k in 0..self.frames.inbound.n {
            let i = self.frames.inbound.get(k);
            let (Some(slot), Some(b)) = (self.slots.get_mut(i), pkts.get_mut(i)) else {
                continue;
            };
            match inbound::select(&self.tables, slot.p.dst) {
                inbound::Decision::Forward { lan_port } => {
                    // To a ULA host behind NPTv6: its internal address back.
                    if !self.nptv6.is_empty() {
                        match nptv6::inbound(&self.nptv6, slot.p.dst) {
                            Some(Ok(internal)) => {
                                if !nptv6::set_address(b, slot.p.l3() + 24, internal) {
                                    self.counters
                                        .drop
                                        .count(DropCause::Pipeline(PipelineDrop::InternalError));
                                    continue;
                                }
                                self.counters.nptv6.translated_in += 1;
                                slot.p.dst = internal;
                            }
                            Some(Err(())) => {
                                self.counters.drop.count(DropCause::Inbound(
                                    inbound::DropReason::Nptv6Unmappable,
                                ));
                                continue;
                            }
                            None => {}
                        }
                    }
                    if let Some(c) = inbound::isp_of(&self.tables, rx, slot.p.dst)
                        .and_then(|isp| self.counters.isp_rx.get_mut(isp))
                    {
                        c.add(b.len());
                    }
                    // M6 data for a proxied host: the context's checks, then the AIDs back
                    // (seed 001 section 7.11).
                    let nh = slot.p.l4_proto;
                    let base = match nh {
                        classify::P1..=0xa7 => Some(classify::P1),
                        classify::P2..=0xaf => Some(classify::P2),
                        _ => None,
                    };
                    // M6 control for a proxied host: the control plane runs the protocol on
                    // its behalf (seed 002 section 6 step 5A).
                    if self.tables.is_proxied(slot.p.dst)
                        && matches!(slot.p.icmp_type, Some(200 | 201))
                        && slot.p.l4_proto == crate::net::ipv6::proto::ICMPV6
                    {
                        // An INIT is answered here with a CC (DESIGN section 5); the rest
                        // goes to the control plane.
                        match self.contexts.answer_init(b, &slot.p, now) {
                            Err(r) => {
                                self.counters.drop.count(DropCause::CcAnswer(r));
                                continue;
                            }
                            Ok(cc_answer::Outcome::Answered {
                                reply_src,
                                rewrite_ok,
                            }) => {
                                // Back through the ISP that owns the CC's source, whose
                                // ingress filter accepts it (seed 000 section 5.1).
                                let usable = |isp: usize| {
                                    self.isps.get().0.live.get(isp).is_some_and(|l| l.usable())
                                };
                                let owner = self
                                    .tables
                                    .owner_of(reply_src)
                                    .and_then(|isp| Some((isp, self.tables.isps.get(isp)?.port?)));
                                match owner {
                                    Some((isp, out)) if usable(isp) => {
                                        self.contexts.counters.cc_answered += 1;
                                        slot.p =
                                            cc_answer::reply_parsed(&slot.p, b.len(), rewrite_ok);
                                        slot.out_port = out;
                                        slot.hop = Hop::Isp(isp);
                                        slot.originated = true;
                                        self.frames.adjacency.push(i);
                                    }
                                    _ => self.counters.drop.count(DropCause::CcAnswer(
                                        cc_answer::DropReason::OwnerIspDown,
                                    )),
                                }
                                continue;
                            }
                            Ok(cc_answer::Outcome::Punt) => {}
                        }
                        let packet = b.data().get(slot.p.l3()..slot.p.end()).unwrap_or(&[]);
                        if !self.contexts.punt(rx, packet, now) {
                            self.counters
                                .drop
                                .count(DropCause::ProxyIn(proxy_in::DropReason::PuntRateLimited));
                        }
                        continue;
                    }
                    if let (Some(base), true) = (base, self.tables.is_proxied(slot.p.dst)) {
                        let (src, dst) = (slot.p.src, slot.p.dst);
                        let label = rewrite::flow_label(b.data().get(slot.p.l3()..).unwrap_or(&[]));
                        let contexts = &self.contexts;
                        let checked = proxy_in::check(contexts.table(), label, src, dst, |c| {
                            contexts.lp_peer(c)
                        });
                        // The context stays in the replica (read in place); its key is what
                        // the reports below need.
                        let restored = match checked {
                            Ok((ctx, note)) => proxy_in::restore(b, &mut slot.p, ctx, base)
                                .map(|()| (ctx.key(), note)),
                            Err(r) => {
                                self.counters.drop.count(DropCause::ProxyIn(r));
                                if r == proxy_in::DropReason::UnknownFlowLabel {
                                    self.contexts.unknown_label(src, dst, label, now);
                                }
                                continue;
                            }
                        };
                        // A malformed M6 header is dropped before it may move Lp(peer) or
                        // cause a report.
                        let (key, note) = match restored {
                            Ok(found) => found,
                            Err(r) => {
                                self.counters.drop.count(DropCause::ProxyIn(r));
                                continue;
                            }
                        };
                        match note {
                            proxy_in::SourceNote::Preferred => {}
                            proxy_in::SourceNote::NewPreferred => {
                                self.contexts.switch_lp(&key, src, now)
                            }
                            proxy_in::SourceNote::Unverified => {
                                self.contexts.new_source(&key, src, now)
                            }
                        }
                        self.contexts.used(&key, now);
                        self.contexts.counters.translated_in += 1;
                    }
                    slot.out_port = lan_port;
                    slot.hop = Hop::Host(slot.p.dst);
                    self.frames.adjacency.push(i);
                }
                inbound::Decision::Refuse(r) => self.counters.drop.count(DropCause::Inbound(r)),
            }
        }
    }

    /// Stage 5: hop limit, MTU, next hop, Ethernet header.
    fn adjacency_stage<B: PacketBuf>(
        &mut self,
        rx: usize,
        pkts: &mut [B],
        next: &mut [Next],
        now: u64,
    ) {
        // Hop limit and MTU first: what fails them needs no next hop.
        let mut kept = 0;
        for k in 0..self.frames.adjacency.n {
            let i = self.frames.adjacency.get(k);
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            let mtu = self.tables.ports.get(slot.out_port).map_or(0, |p| p.mtu);
            let problem = if !slot.originated && !adjacency::hop_limit_ok(&slot.p) {
                Some((adjacency::DropReason::HopLimitExceeded, Kind::HopLimit))
            } else if !adjacency::fits(&slot.p, mtu) {
                Some((
                    adjacency::DropReason::PacketTooBig,
                    Kind::PacketTooBig {
                        mtu: u32::from(mtu),
                    },
                ))
            } else {
                None
            };
            match problem {
                None => {
                    if let Some(x) = self.frames.adjacency.idx.get_mut(kept) {
                        *x = i as u16;
                    }
                    kept += 1;
                }
                Some((reason, kind)) => {
                    self.counters.drop.count(DropCause::Adjacency(reason));
                    if !slot.originated {
                        slot.icmp = Some(kind);
                        self.frames.icmp.push(i);
                    }
                }
            }
        }
        self.frames.adjacency.n = kept;

        // Look up every next hop of the frame.
        let host_slot = self.tables.isps.len();
        for k in 0..self.frames.adjacency.n {
            let i = self.frames.adjacency.get(k);
            // Only the hop and the port: the slot stays where it is (a copy of it per packet
            // showed in the profile).
            let Some((hop, out_port)) = self.slots.get(i).map(|s| (s.hop, s.out_port)) else {
                continue;
            };
            let lookup = match hop {
                Hop::Isp(isp) => match self.tables.isps.get(isp) {
                    Some(s) => match s.static_mac {
                        Some(mac) => Lookup::Mac(mac),
                        None => {
                            self.resolver
                                .lookup(isp, out_port, s.next_hop, Trigger::Inside, now)
                        }
                    },
                    None => Lookup::Failed,
                },
                Hop::Host(a) => self
                    .resolver
                    .lookup(host_slot, out_port, a, Trigger::Outside, now),
                Hop::None => Lookup::Failed,
            };
            if let Some(s) = self.slots.get_mut(i) {
                s.lookup = Some(lookup);
            }
        }

        // Rewrite and send, hold, or refuse.
        for k in 0..self.frames.adjacency.n {
            let i = self.frames.adjacency.get(k);
            let (Some(slot), Some(b)) = (self.slots.get(i), pkts.get_mut(i)) else {
                continue;
            };
            let Some(port_mac) = self.tables.ports.get(slot.out_port).map(|p| p.mac) else {
                // Unreachable: out ports come from the tables.
                self.counters
                    .drop
                    .count(DropCause::Pipeline(PipelineDrop::InternalError));
                continue;
            };
            let isp = match slot.hop {
                Hop::Isp(isp) => Some(isp),
                _ => None,
            };
            match slot.lookup.unwrap_or(Lookup::Failed) {
                Lookup::Mac(mac) => {
                    if !adjacency::apply(b.data_mut(), &slot.p, port_mac, mac, slot.originated) {
                        // Unreachable: classification checked the headers are there.
                        self.counters
                            .drop
                            .count(DropCause::Pipeline(PipelineDrop::InternalError));
                        continue;
                    }
                    let len = b.len();
                    send(&mut self.counters, next, i, slot.out_port, len);
                    if let Some(c) = isp.and_then(|isp| self.counters.isp_tx.get_mut(isp)) {
                        c.add(len);
                    }
                }
                Lookup::Unresolved => {
                    let next_hop = match slot.hop {
                        Hop::Isp(isp) => self.tables.isps.get(isp).map_or(0, |s| s.next_hop),
                        Hop::Host(a) => a,
                        Hop::None => 0,
                    };
                    let meta = HoldMeta {
                        rx_port: rx,
                        out_port: slot.out_port,
                        next_hop,
                        isp,
                        parsed: slot.p,
                        originated: slot.originated,
                        outside: matches!(slot.hop, Hop::Host(_)),
                        since: now,
                    };
                    let held = self.held.push(b.data(), meta);
                    if held != Hold::Full {
                        self.resolver.counters.held += 1;
                        if let Some(n) = next.get_mut(i) {
                            *n = Next::Held;
                        }
                    }
                    if held != Hold::Held {
                        // The packet itself, or the neighbor's oldest held one.
                        self.counters.drop.count(DropCause::Adjacency(
                            adjacency::DropReason::NeighborUnresolved,
                        ));
                    }
                }
                Lookup::Failed => {
                    self.counters
                        .drop
                        .count(DropCause::Adjacency(adjacency::DropReason::NeighborFailed));
                    if !slot.originated {
                        if let Some(s) = self.slots.get_mut(i) {
                            s.icmp = Some(Kind::AddressUnreachable);
                        }
                        self.frames.icmp.push(i);
                    }
                }
            }
        }
    }

    /// Stage 6: ICMPv6 errors for the packets the earlier stages refused, sent back out the
    /// port they came in on (their source is on that side).
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
            let judged = icmp_error::upper_layer(
                &slot.p,
                b.data().get(slot.p.l3()..slot.p.end()).unwrap_or(&[]),
            );
            if !judged.is_some_and(|p| icmp_error::allowed(&p, kind)) {
                self.counters.icmp.error_suppressed += 1;
                continue;
            }
            if !self.icmp_bucket.take(now) {
                match kind {
                    Kind::SourcePolicy => self.counters.icmp.unreachable_ratelimited += 1,
                    Kind::HopLimit => self.counters.icmp.time_exceeded_ratelimited += 1,
                    _ => self.counters.icmp.other_ratelimited += 1,
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
                    let c = &mut self.counters.icmp;
                    match kind {
                        Kind::SourcePolicy => c.unreachable_sent += 1,
                        Kind::HopLimit | Kind::ReassemblyTimeout => c.time_exceeded_sent += 1,
                        Kind::AddressUnreachable => c.address_unreachable_sent += 1,
                        Kind::BeyondScope => c.beyond_scope_sent += 1,
                        Kind::PacketTooBig { .. } => c.packet_too_big_sent += 1,
                        Kind::ParamProblem { .. } => c.param_problem_sent += 1,
                    }
                    send(&mut self.counters, next, i, rx, b.len());
                }
                Err(icmp_error::NoRoom) => self.counters.icmp.error_no_room += 1,
            }
        }
    }

    /// Hands every frame the pipeline built outside a burst (released held packets, code 3
    /// errors about them) to `out` with the port to send it on, and forgets them. The io
    /// layer copies each into a fresh mbuf.
    pub fn drain_generated(&mut self, out: &mut impl FnMut(usize, &[u8])) {
        for &(port, start, len) in &self.generated.frames {
            if let Some(f) = self.generated.bytes.get(start..start + len) {
                out(port, f);
            }
        }
        self.generated.frames.clear();
        self.generated.bytes.clear();
    }

    /// Hands every M6 report (first packets, unknown flow labels, new source locators) for
    /// the control plane to `out`, and forgets them.
    pub fn drain_m6_events(&mut self, out: &mut impl FnMut(M6Event)) {
        self.contexts.drain_events(out);
    }

    /// Hands every report for the control thread (neighbor evidence, probe replies,
    /// router solicitations) to `out`, and forgets them.
    pub fn drain_events(&mut self, out: &mut impl FnMut(WorkerEvent)) {
        self.resolver
            .drain_events(&mut |e| out(WorkerEvent::Neighbor(e)));
        for e in self.reports.drain(..) {
            out(e);
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

    /// The MAC this worker's replica has for `ip` on `port` (usable entries only).
    pub fn neighbor(&self, port: usize, ip: std::net::Ipv6Addr) -> Option<[u8; 6]> {
        match self.resolver.peek(port, addr::from_std(&ip)) {
            Lookup::Mac(m) => Some(m),
            _ => None,
        }
    }

    /// Packets held awaiting resolution.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Whether ISP `isp` would carry traffic now, as this worker sees it.
    pub fn isp_usable(&self, isp: usize) -> bool {
        self.isps.get().0.live.get(isp).is_some_and(|s| s.usable())
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
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

    fn standalone() -> (crate::control::Control, Pipeline) {
        let site = two_isp_site();
        let mut control = crate::control::Control::new(&site);
        let pl = Pipeline::new(site, control.worker_tables());
        (control, pl)
    }

    fn one(pl: &mut Pipeline, port: usize, frame: &[u8], now: u64) -> (Next, Vec<u8>) {
        let mut b = [VecBuf::new(frame)];
        let mut next = [Next::Drop];
        pl.process_burst(port, &mut b, &mut next, now);
        (next[0], b[0].to_vec())
    }

    #[test]
    fn golden_ns_na() {
        let (_c, mut pl) = standalone();
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
        // The NS's source link-layer address goes to the owner, not into the replica.
        let mut ev = Vec::new();
        pl.drain_events(&mut |e| ev.push(e));
        assert_eq!(
            ev,
            vec![WorkerEvent::Neighbor(NeighborEvent::Solicitation {
                port: 0,
                src: addr::from_std(&ip("fe80::10")),
                mac: HOST_MAC
            })]
        );
    }

    #[test]
    fn golden_echo() {
        let (_c, mut pl) = standalone();
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
    fn bursts_longer_than_max_burst_are_chunked() {
        let (_c, mut pl) = standalone();
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
