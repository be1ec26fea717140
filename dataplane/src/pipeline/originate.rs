//! What the router sends on its own outside a burst: answers to datagrams reassembled from
//! fragments (RFC 8200 section 4.5), Time Exceeded for reassemblies that timed out, and the
//! routing of such packets by address (through the LAN neighbor or the ISP that owns the
//! source), fragmented when they exceed the egress MTU.

use super::Pipeline;
use crate::buf::{PacketBuf, VecBuf};
use crate::neighbor::datapath::{Hold, HoldMeta, Lookup};
use crate::neighbor::Trigger;
use crate::net::addr;
use crate::net::ethernet::{self, ethertype};
use crate::net::frag;
use crate::net::ipv6::{self, proto};
use crate::nodes::classify::{self, Disposition, Parsed};
use crate::nodes::icmp_error::{self, Kind};
use crate::nodes::{adjacency, echo, exthdr, local, DropCause};

impl Pipeline {
    /// A datagram for the router, reassembled from fragments: processed like an unfragmented
    /// one (extension headers, echo), its answer sent through [`Self::originate`] (which
    /// fragments it when it exceeds the egress MTU). Neighbor Discovery is never accepted
    /// in fragments (RFC 6980).
    pub(super) fn local_datagram(&mut self, rx: usize, src_mac: [u8; 6], packet: &[u8], now: u64) {
        let Some(port_mac) = self.tables.ports.get(rx).map(|pt| pt.mac) else {
            return;
        };
        let mut frame = Vec::with_capacity(ethernet::HEADER_LEN + packet.len());
        frame.resize(ethernet::HEADER_LEN, 0);
        ethernet::emit(&mut frame, port_mac, src_mac, None, ethertype::IPV6);
        frame.extend_from_slice(packet);
        let mut b = VecBuf::with_room(&frame, icmp_error::OVERHEAD, 0);
        let mut p = Parsed::default();
        if classify::classify_into(&mut b, &self.tables, rx, &mut p).1 != Disposition::Local {
            self.counters
                .drop
                .count(DropCause::Local(local::DropReason::ToRouterUnhandled));
            return;
        }
        match exthdr::verdict(&p, b.data()) {
            exthdr::Verdict::Accept => {}
            exthdr::Verdict::Drop(r) => {
                self.counters.drop.count(DropCause::ExtHdr(r));
                return;
            }
            exthdr::Verdict::Problem {
                reason,
                code,
                pointer,
            } => {
                self.counters.drop.count(DropCause::ExtHdr(reason));
                let kind = Kind::ParamProblem { code, pointer };
                let from = self.tables.reply_source(p.dst);
                if icmp_error::allowed(&p, kind)
                    && self.icmp_bucket.take(now)
                    && icmp_error::build(&mut b, &p, kind, from, port_mac).is_ok()
                {
                    self.counters.icmp.param_problem_sent += 1;
                    let ip = b.data().get(ethernet::HEADER_LEN..).unwrap_or(&[]).to_vec();
                    self.originate(&ip, Some((rx, src_mac)), now);
                }
                return;
            }
        }
        match local::dispatch(&p) {
            Ok(local::Handler::Echo) => {
                let from = self.tables.reply_source(p.dst);
                match echo::reply(&mut b, &p, port_mac, from) {
                    Ok(()) => {
                        self.counters.icmp.echo_replied += 1;
                        let ip = b.data().get(ethernet::HEADER_LEN..).unwrap_or(&[]).to_vec();
                        self.originate(&ip, Some((rx, src_mac)), now);
                    }
                    Err(r) => self.counters.drop.count(DropCause::Echo(r)),
                }
            }
            // ND and RS must not be fragmented (RFC 6980); probe replies are small.
            Ok(
                local::Handler::Nd | local::Handler::EchoReply | local::Handler::RouterSolicitation,
            )
            | Err(_) => self
                .counters
                .drop
                .count(DropCause::Local(local::DropReason::ToRouterUnhandled)),
        }
    }

    /// Abandons reassemblies older than 60 s and answers those whose first fragment had
    /// arrived with Time Exceeded code 1 (RFC 8200 section 4.5), from the router address
    /// the fragments were sent to.
    pub(super) fn expire_fragments(&mut self, now: u64) {
        let mut firsts: Vec<Vec<u8>> = Vec::new();
        self.reassembler
            .expire(now, &mut |f| firsts.push(f.to_vec()));
        for first in firsts {
            let Ok(h) = ipv6::Header::new_checked(&first[..]) else {
                continue;
            };
            let (src, dst) = (
                addr::from_bytes(h.src_addr()),
                addr::from_bytes(h.dst_addr()),
            );
            let mut frame = vec![0u8; ethernet::HEADER_LEN];
            frame.extend_from_slice(&first);
            let p = Parsed {
                l2_len: ethernet::HEADER_LEN as u8,
                ip_len: first.len() as u32,
                l4_proto: proto::FRAGMENT,
                src,
                dst,
                ..Parsed::default()
            };
            let kind = Kind::ReassemblyTimeout;
            if !icmp_error::allowed(&p, kind) || !self.icmp_bucket.take(now) {
                self.counters.icmp.other_ratelimited += 1;
                continue;
            }
            let mut b = VecBuf::with_room(&frame, icmp_error::OVERHEAD, 0);
            let from = self.tables.reply_source(dst);
            if icmp_error::build(&mut b, &p, kind, from, [0; 6]).is_ok() {
                let ip = b.data().get(ethernet::HEADER_LEN..).unwrap_or(&[]).to_vec();
                if self.originate(&ip, None, now) {
                    self.counters.icmp.time_exceeded_sent += 1;
                } else {
                    self.counters.icmp.error_no_source += 1;
                }
            }
        }
        self.counters.reassembly = self.reassembler.counters().clone();
    }

    /// Sends an IPv6 packet the router built outside a burst: to a link-local destination
    /// back over `link` (port, MAC); to a LAN host through its neighbor entry; to the
    /// Internet through the ISP that owns its source address (whose ingress filter accepts
    /// it). Fragmented when larger than the egress MTU; held like a forwarded packet while
    /// the next hop resolves. Whether it was sent or held (false: no route, the owning ISP
    /// is down, or resolution failed).
    pub(super) fn originate(
        &mut self,
        packet: &[u8],
        link: Option<(usize, [u8; 6])>,
        now: u64,
    ) -> bool {
        let Ok(h) = ipv6::Header::new_checked(packet) else {
            return false;
        };
        let (src, dst) = (
            addr::from_bytes(h.src_addr()),
            addr::from_bytes(h.dst_addr()),
        );
        let host_slot = self.tables.isps.len();
        let (out_port, next_hop, isp, lookup) = if addr::is_link_local(dst) {
            match link {
                Some((port, mac)) => (port, dst, None, Lookup::Mac(mac)),
                None => return false,
            }
        } else if self.tables.in_site(dst) {
            let Some(lan) = self.tables.lan_port else {
                return false;
            };
            let l = self
                .resolver
                .lookup(host_slot, lan, dst, Trigger::Inside, now);
            (lan, dst, None, l)
        } else {
            let Some((isp, s)) = self
                .tables
                .owner_of(src)
                .and_then(|i| Some((i, self.tables.isps.get(i)?.clone())))
            else {
                return false;
            };
            let (Some(port), true) = (s.port, self.isp_usable(isp)) else {
                return false;
            };
            let l = match s.static_mac {
                Some(mac) => Lookup::Mac(mac),
                None => self
                    .resolver
                    .lookup(isp, port, s.next_hop, Trigger::Inside, now),
            };
            (port, s.next_hop, Some(isp), l)
        };
        let Some((port_mac, mtu)) = self.tables.ports.get(out_port).map(|pt| (pt.mac, pt.mtu))
        else {
            return false;
        };
        let id = self.frag_id;
        self.frag_id = self.frag_id.wrapping_add(1);
        let mut frames: Vec<Vec<u8>> = Vec::new();
        frag::fragment(packet, usize::from(mtu), id, &mut |f| {
            let mut frame = vec![0u8; ethernet::HEADER_LEN];
            frame.extend_from_slice(f);
            frames.push(frame);
        });
        let mut sent = false;
        for mut frame in frames {
            let parsed = Parsed {
                l2_len: ethernet::HEADER_LEN as u8,
                ip_len: (frame.len() - ethernet::HEADER_LEN) as u32,
                src,
                dst,
                ..Parsed::default()
            };
            match lookup {
                Lookup::Mac(mac) => {
                    if adjacency::apply(&mut frame, &parsed, port_mac, mac, true)
                        && self.generated.push(out_port, &frame)
                    {
                        sent = true;
                        if let Some(c) = self.counters.tx.get_mut(out_port) {
                            c.add(frame.len());
                        }
                    }
                }
                Lookup::Unresolved => {
                    let meta = HoldMeta {
                        rx_port: out_port,
                        out_port,
                        next_hop,
                        isp,
                        parsed,
                        originated: true,
                        outside: false,
                        since: now,
                    };
                    if self.held.push(&frame, meta) != Hold::Full {
                        sent = true;
                        self.resolver.counters.held += 1;
                    }
                }
                Lookup::Failed => self
                    .counters
                    .drop
                    .count(DropCause::Adjacency(adjacency::DropReason::NeighborFailed)),
            }
        }
        sent
    }
}
