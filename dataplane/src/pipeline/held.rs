//! Between bursts: the packets held for a next hop being resolved (RFC 4861 section 7.2.2)
//! are sent once the worker's replica resolves it, or answered with Destination
//! Unreachable code 3 when the owner gives up or the hold times out.

use super::Pipeline;
use crate::buf::{PacketBuf, VecBuf};
use crate::neighbor::datapath::{Held, HoldMeta, Lookup};
use crate::nodes::icmp_error::{self, Kind};
use crate::nodes::{adjacency, DropCause};

impl Pipeline {
    /// Between bursts: syncs the tables and sends the held packets whose next hop resolved
    /// (through [`Self::drain_generated`]), or answers those whose resolution failed or
    /// timed out with Destination Unreachable code 3 (RFC 4861 section 7.2.2).
    pub fn service(&mut self, now: u64) {
        self.sync();
        self.expire_fragments(now);
        if self.held.is_empty() {
            return;
        }
        // Only when the replica changed, or now and then for the timeouts.
        let generation = self.resolver.table().generation();
        if generation == self.held_checked.0
            && now.saturating_sub(self.held_checked.1) < 100_000_000
        {
            return;
        }
        self.held_checked = (generation, now);
        let hold_timeout = self.hold_timeout_ns;
        let resolver = &self.resolver;
        let mut ready = Vec::new();
        self.held.take_ready(
            |m| {
                matches!(
                    resolver.peek(m.out_port, m.next_hop),
                    Lookup::Mac(_) | Lookup::Failed
                ) || now.saturating_sub(m.since) >= hold_timeout
            },
            |h| ready.push(h),
        );
        for Held { meta, mut frame } in ready {
            match self.resolver.peek(meta.out_port, meta.next_hop) {
                Lookup::Mac(mac) => self.release(&meta, &mut frame, mac),
                _ => self.fail_held(&meta, &frame, now),
            }
            self.held.recycle(frame);
        }
        self.counters.resolve = self.resolver.counters.clone();
    }

    fn release(&mut self, meta: &HoldMeta, frame: &mut [u8], mac: [u8; 6]) {
        let Some(port_mac) = self.tables.ports.get(meta.out_port).map(|p| p.mac) else {
            return;
        };
        if !adjacency::apply(frame, &meta.parsed, port_mac, mac, meta.originated)
            || !self.generated.push(meta.out_port, frame)
        {
            self.counters.drop.count(DropCause::Adjacency(
                adjacency::DropReason::NeighborUnresolved,
            ));
            return;
        }
        self.resolver.counters.released += 1;
        if let Some(c) = self.counters.tx.get_mut(meta.out_port) {
            c.add(frame.len());
        }
        if let Some(c) = meta.isp.and_then(|i| self.counters.isp_tx.get_mut(i)) {
            c.add(frame.len());
        }
    }

    fn fail_held(&mut self, meta: &HoldMeta, frame: &[u8], now: u64) {
        self.resolver.counters.hold_failed += 1;
        self.counters
            .drop
            .count(DropCause::Adjacency(adjacency::DropReason::NeighborFailed));
        let kind = Kind::AddressUnreachable;
        let judged = icmp_error::upper_layer(&meta.parsed, frame.get(14..).unwrap_or(&[]));
        if meta.originated || !judged.is_some_and(|p| icmp_error::allowed(&p, kind)) {
            self.counters.icmp.error_suppressed += 1;
            return;
        }
        if !self.icmp_bucket.take(now) {
            self.counters.icmp.other_ratelimited += 1;
            return;
        }
        let Some(src) = self.tables.source_for(meta.rx_port, meta.parsed.src) else {
            self.counters.icmp.error_no_source += 1;
            return;
        };
        let Some(port_mac) = self.tables.ports.get(meta.rx_port).map(|p| p.mac) else {
            return;
        };
        let mut b = VecBuf::with_room(frame, icmp_error::OVERHEAD, 0);
        if icmp_error::build(&mut b, &meta.parsed, kind, src, port_mac).is_ok()
            && self.generated.push(meta.rx_port, b.data())
        {
            self.counters.icmp.address_unreachable_sent += 1;
            if let Some(c) = self.counters.tx.get_mut(meta.rx_port) {
                c.add(b.len());
            }
        } else {
            self.counters.icmp.error_no_room += 1;
        }
    }
}
