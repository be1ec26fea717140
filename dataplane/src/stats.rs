//! Per-worker counters: plain `u64`s that only the owning worker writes (no atomics, no
//! shared cache lines), merged and printed by whoever reads the snapshots.
//!
//! Every counter has a stable dotted name (`drop.truncated`, `isp.isp1.tx_packets`);
//! [`Counters::for_each`] reports all of them, zeros included, so a scraper sees the full
//! set from the first snapshot.

use crate::contexts::datapath::ProxyCounters;
use crate::neighbor::datapath::ResolveCounters;
use crate::nodes::nptv6::NptCounters;
use crate::nodes::rewrite::RewriteCounters;
use crate::nodes::{
    adjacency, cc_answer, classify, echo, egress, exthdr, inbound, local, nd, proxy_in, proxy_out,
    reassembly, DropCause, PipelineDrop,
};
use crate::site::Site;

/// Declares a node's drop reasons: a fieldless enum with its counter names, `ALL` in
/// declaration order and `COUNT` (the size of its counter array).
macro_rules! reasons {
    (
        $(#[$m:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vm:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vm])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order (the order of the counter array).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Number of variants.
            pub const COUNT: usize = Self::ALL.len();

            /// The counter name (after `drop.` or `class.`).
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// Index into the counter array.
            #[inline]
            pub const fn index(self) -> usize {
                self as usize
            }
        }
    };
}
pub(crate) use reasons;

/// Declares a group of scalar counters named `<prefix>.<field>`.
macro_rules! named_counters {
    (
        $(#[$m:meta])*
        $vis:vis struct $name:ident($prefix:literal) {
            $( $(#[$fm:meta])* $field:ident, )+
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        $vis struct $name {
            $( $(#[$fm])* pub $field: u64, )+
        }

        impl $name {
            pub fn merge(&mut self, o: &$name) {
                $( self.$field += o.$field; )+
            }

            pub fn for_each(&self, f: &mut impl FnMut(&str, u64)) {
                $( f(concat!($prefix, ".", stringify!($field)), self.$field); )+
            }
        }
    };
}

pub(crate) use named_counters;

named_counters! {
    /// Router-originated ICMPv6.
    pub struct IcmpCounters("icmp") {
        /// Destination unreachable sent (code 5 for source-prefix egress failures).
        unreachable_sent,
        /// Destination unreachable not sent: the per-worker token bucket was empty.
        unreachable_ratelimited,
        time_exceeded_sent,
        time_exceeded_ratelimited,
        /// Destination unreachable code 3: address resolution of the next hop failed.
        address_unreachable_sent,
        /// Destination unreachable code 2: link-local source, global destination.
        beyond_scope_sent,
        packet_too_big_sent,
        param_problem_sent,
        /// Errors other than code 5 and time exceeded held back by the token bucket.
        other_ratelimited,
        /// Errors RFC 4443 section 2.4 (e) forbids (the invoking packet is itself an error,
        /// or was sent to a link-layer multicast address).
        error_suppressed,
        /// Errors that did not fit in the buffer (no headroom nor tailroom).
        error_no_room,
        /// Errors not sent: the router has no address to send them from on the port.
        error_no_source,
        echo_replied,
    }
}

named_counters! {
    /// Neighbor Discovery messages the worker handled itself.
    pub struct NdCounters("nd") {
        ns_received,
        na_received,
        na_sent,
        /// Received NAs for one of the router's own addresses (an address conflict).
        own_address_conflict,
    }
}

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub packets: u64,
    pub bytes: u64,
}

impl Flow {
    #[inline]
    pub fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }

    fn merge(&mut self, o: &Flow) {
        self.packets += o.packets;
        self.bytes += o.bytes;
    }
}

/// Drop counters, one array per node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    pub classify: [u64; classify::DropReason::COUNT],
    pub local: [u64; local::DropReason::COUNT],
    pub nd: [u64; nd::DropReason::COUNT],
    pub echo: [u64; echo::DropReason::COUNT],
    pub egress: [u64; egress::DropReason::COUNT],
    pub inbound: [u64; inbound::DropReason::COUNT],
    pub adjacency: [u64; adjacency::DropReason::COUNT],
    pub exthdr: [u64; exthdr::DropReason::COUNT],
    pub proxy_in: [u64; proxy_in::DropReason::COUNT],
    pub cc_answer: [u64; cc_answer::DropReason::COUNT],
    pub proxy_out: [u64; proxy_out::DropReason::COUNT],
    pub pipeline: [u64; PipelineDrop::COUNT],
}

fn add_arrays<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += *y;
    }
}

impl DropCounters {
    #[inline]
    pub fn count(&mut self, cause: DropCause) {
        let slot = match cause {
            DropCause::Classify(r) => self.classify.get_mut(r.index()),
            DropCause::Local(r) => self.local.get_mut(r.index()),
            DropCause::Nd(r) => self.nd.get_mut(r.index()),
            DropCause::Echo(r) => self.echo.get_mut(r.index()),
            DropCause::Egress(r) => self.egress.get_mut(r.index()),
            DropCause::Inbound(r) => self.inbound.get_mut(r.index()),
            DropCause::Adjacency(r) => self.adjacency.get_mut(r.index()),
            DropCause::ExtHdr(r) => self.exthdr.get_mut(r.index()),
            DropCause::ProxyIn(r) => self.proxy_in.get_mut(r.index()),
            DropCause::CcAnswer(r) => self.cc_answer.get_mut(r.index()),
            DropCause::ProxyOut(r) => self.proxy_out.get_mut(r.index()),
            DropCause::Pipeline(r) => self.pipeline.get_mut(r.index()),
        };
        if let Some(c) = slot {
            *c += 1;
        }
    }

    /// The count for one reason.
    pub fn get(&self, cause: DropCause) -> u64 {
        let v = match cause {
            DropCause::Classify(r) => self.classify.get(r.index()),
            DropCause::Local(r) => self.local.get(r.index()),
            DropCause::Nd(r) => self.nd.get(r.index()),
            DropCause::Echo(r) => self.echo.get(r.index()),
            DropCause::Egress(r) => self.egress.get(r.index()),
            DropCause::Inbound(r) => self.inbound.get(r.index()),
            DropCause::Adjacency(r) => self.adjacency.get(r.index()),
            DropCause::ExtHdr(r) => self.exthdr.get(r.index()),
            DropCause::ProxyIn(r) => self.proxy_in.get(r.index()),
            DropCause::CcAnswer(r) => self.cc_answer.get(r.index()),
            DropCause::ProxyOut(r) => self.proxy_out.get(r.index()),
            DropCause::Pipeline(r) => self.pipeline.get(r.index()),
        };
        v.copied().unwrap_or_default()
    }

    /// Sum over every reason.
    pub fn total(&self) -> u64 {
        [
            &self.classify[..],
            &self.local[..],
            &self.nd[..],
            &self.echo[..],
            &self.egress[..],
            &self.inbound[..],
            &self.adjacency[..],
            &self.exthdr[..],
            &self.proxy_in[..],
            &self.cc_answer[..],
            &self.proxy_out[..],
            &self.pipeline[..],
        ]
        .iter()
        .flat_map(|a| a.iter())
        .sum()
    }

    fn merge(&mut self, o: &DropCounters) {
        add_arrays(&mut self.classify, &o.classify);
        add_arrays(&mut self.local, &o.local);
        add_arrays(&mut self.nd, &o.nd);
        add_arrays(&mut self.echo, &o.echo);
        add_arrays(&mut self.egress, &o.egress);
        add_arrays(&mut self.inbound, &o.inbound);
        add_arrays(&mut self.adjacency, &o.adjacency);
        add_arrays(&mut self.exthdr, &o.exthdr);
        add_arrays(&mut self.proxy_in, &o.proxy_in);
        add_arrays(&mut self.cc_answer, &o.cc_answer);
        add_arrays(&mut self.proxy_out, &o.proxy_out);
        add_arrays(&mut self.pipeline, &o.pipeline);
    }

    fn for_each(&self, f: &mut impl FnMut(&str, u64)) {
        fn each<R: Copy>(
            all: &[R],
            name: fn(R) -> &'static str,
            counts: &[u64],
            f: &mut impl FnMut(&str, u64),
        ) {
            for (r, c) in all.iter().zip(counts) {
                let mut s = String::with_capacity(40);
                s.push_str("drop.");
                s.push_str(name(*r));
                f(&s, *c);
            }
        }
        each(
            classify::DropReason::ALL,
            classify::DropReason::name,
            &self.classify,
            f,
        );
        each(
            local::DropReason::ALL,
            local::DropReason::name,
            &self.local,
            f,
        );
        each(nd::DropReason::ALL, nd::DropReason::name, &self.nd, f);
        each(echo::DropReason::ALL, echo::DropReason::name, &self.echo, f);
        each(
            egress::DropReason::ALL,
            egress::DropReason::name,
            &self.egress,
            f,
        );
        each(
            inbound::DropReason::ALL,
            inbound::DropReason::name,
            &self.inbound,
            f,
        );
        each(
            adjacency::DropReason::ALL,
            adjacency::DropReason::name,
            &self.adjacency,
            f,
        );
        each(
            exthdr::DropReason::ALL,
            exthdr::DropReason::name,
            &self.exthdr,
            f,
        );
        each(
            proxy_in::DropReason::ALL,
            proxy_in::DropReason::name,
            &self.proxy_in,
            f,
        );
        each(
            cc_answer::DropReason::ALL,
            cc_answer::DropReason::name,
            &self.cc_answer,
            f,
        );
        each(
            proxy_out::DropReason::ALL,
            proxy_out::DropReason::name,
            &self.proxy_out,
            f,
        );
        each(PipelineDrop::ALL, PipelineDrop::name, &self.pipeline, f);
    }
}

/// One worker's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    port_names: Vec<String>,
    isp_names: Vec<String>,
    /// Per port: frames received (`rx.<port>.packets` / `.bytes`).
    pub rx: Vec<Flow>,
    /// Per port: frames the pipeline sent out (`tx.<port>.*`), held packets released
    /// through [`crate::Pipeline::drain_generated`] included.
    pub tx: Vec<Flow>,
    /// Per ISP: packets from it that passed the inbound filter, on their way to the LAN
    /// (`isp.<name>.rx_*`).
    pub isp_rx: Vec<Flow>,
    /// Per ISP: packets forwarded to it (`isp.<name>.tx_*`).
    pub isp_tx: Vec<Flow>,
    /// Per class (`class.<class>`).
    pub class: [u64; classify::Class::COUNT],
    /// Per drop reason (`drop.<reason>`).
    pub drop: DropCounters,
    pub icmp: IcmpCounters,
    pub nd: NdCounters,
    pub resolve: ResolveCounters,
    pub rewrite: RewriteCounters,
    pub nptv6: NptCounters,
    pub proxy: ProxyCounters,
    /// Reassembly of fragments addressed to the router (`reassembly.*`).
    pub reassembly: reassembly::Counters,
    /// Packets the router consumed without answering (Neighbor Advertisements).
    pub local_consumed: u64,
}

impl Counters {
    /// Zeroed counters for `site`'s ports and ISPs.
    pub fn new(site: &Site) -> Counters {
        Counters {
            port_names: site.ports.iter().map(|p| p.name.clone()).collect(),
            isp_names: site.isps.iter().map(|s| s.name.clone()).collect(),
            rx: vec![Flow::default(); site.ports.len()],
            tx: vec![Flow::default(); site.ports.len()],
            isp_rx: vec![Flow::default(); site.isps.len()],
            isp_tx: vec![Flow::default(); site.isps.len()],
            ..Counters::default()
        }
    }

    /// Adds `other` (another worker's counters for the same site) into these.
    pub fn merge(&mut self, other: &Counters) {
        fn merge_flows(a: &mut Vec<Flow>, names: &mut Vec<String>, b: &[Flow], bnames: &[String]) {
            if a.len() < b.len() {
                a.resize(b.len(), Flow::default());
            }
            if names.len() < bnames.len() {
                names.extend_from_slice(bnames.get(names.len()..).unwrap_or(&[]));
            }
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y);
            }
        }
        let mut port_names = std::mem::take(&mut self.port_names);
        merge_flows(&mut self.rx, &mut port_names, &other.rx, &other.port_names);
        merge_flows(&mut self.tx, &mut port_names, &other.tx, &other.port_names);
        self.port_names = port_names;
        let mut isp_names = std::mem::take(&mut self.isp_names);
        merge_flows(
            &mut self.isp_rx,
            &mut isp_names,
            &other.isp_rx,
            &other.isp_names,
        );
        merge_flows(
            &mut self.isp_tx,
            &mut isp_names,
            &other.isp_tx,
            &other.isp_names,
        );
        self.isp_names = isp_names;
        add_arrays(&mut self.class, &other.class);
        self.drop.merge(&other.drop);
        self.icmp.merge(&other.icmp);
        self.nd.merge(&other.nd);
        self.resolve.merge(&other.resolve);
        self.rewrite.merge(&other.rewrite);
        self.nptv6.merge(&other.nptv6);
        self.proxy.merge(&other.proxy);
        let (r, o) = (&mut self.reassembly, &other.reassembly);
        r.received += o.received;
        r.reassembled += o.reassembled;
        r.atomic += o.atomic;
        r.timed_out += o.timed_out;
        add_arrays(&mut r.dropped, &o.dropped);
        self.local_consumed += other.local_consumed;
    }

    /// Calls `f` with every counter's dotted name and value, zeros included, in a stable
    /// order. Names: `rx.<port>.packets|bytes`, `tx.<port>.packets|bytes`,
    /// `isp.<isp>.rx_packets|rx_bytes|tx_packets|tx_bytes`, `class.<class>`,
    /// `drop.<reason>`, `icmp.<what>`, `nd.<what>`, `local.consumed`.
    pub fn for_each(&self, mut f: impl FnMut(&str, u64)) {
        let unnamed = String::from("?");
        for (i, (rx, tx)) in self.rx.iter().zip(&self.tx).enumerate() {
            let n = self.port_names.get(i).unwrap_or(&unnamed);
            f(&format!("rx.{n}.packets"), rx.packets);
            f(&format!("rx.{n}.bytes"), rx.bytes);
            f(&format!("tx.{n}.packets"), tx.packets);
            f(&format!("tx.{n}.bytes"), tx.bytes);
        }
        for (i, (rx, tx)) in self.isp_rx.iter().zip(&self.isp_tx).enumerate() {
            let n = self.isp_names.get(i).unwrap_or(&unnamed);
            f(&format!("isp.{n}.rx_packets"), rx.packets);
            f(&format!("isp.{n}.rx_bytes"), rx.bytes);
            f(&format!("isp.{n}.tx_packets"), tx.packets);
            f(&format!("isp.{n}.tx_bytes"), tx.bytes);
        }
        for (c, v) in classify::Class::ALL.iter().zip(&self.class) {
            f(&format!("class.{}", c.name()), *v);
        }
        self.drop.for_each(&mut f);
        self.icmp.for_each(&mut f);
        self.nd.for_each(&mut f);
        self.resolve.for_each(&mut f);
        self.rewrite.for_each(&mut f);
        self.nptv6.for_each(&mut f);
        self.proxy.for_each(&mut f);
        let r = &self.reassembly;
        f("reassembly.received", r.received);
        f("reassembly.reassembled", r.reassembled);
        f("reassembly.atomic", r.atomic);
        f("reassembly.timed_out", r.timed_out);
        for (reason, n) in reassembly::DropReason::ALL.iter().zip(&r.dropped) {
            f(&format!("reassembly.drop.{}", reason.name()), *n);
        }
        f("local.consumed", self.local_consumed);
    }

    /// One counter by its dotted name (a linear search: for tests and tools, not the hot
    /// path).
    pub fn get(&self, name: &str) -> Option<u64> {
        let mut found = None;
        self.for_each(|n, v| {
            if n == name {
                found = Some(v);
            }
        });
        found
    }

    /// Every counter as `(name, value)` pairs.
    pub fn to_vec(&self) -> Vec<(String, u64)> {
        let mut v = Vec::new();
        self.for_each(|n, c| v.push((n.to_string(), c)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::two_isp_site;

    #[test]
    fn names_are_unique_and_complete() {
        let c = Counters::new(&two_isp_site());
        let names: Vec<String> = c.to_vec().into_iter().map(|(n, _)| n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "duplicate counter names");
        for want in [
            "rx.lan.packets",
            "tx.isp2.packets",
            "isp.isp1.tx_packets",
            "isp.isp2.rx_packets",
            "class.ipv6",
            "class.m6_data_rewrite",
            "drop.truncated",
            "drop.ext_chain_too_long",
            "drop.source_not_in_site_prefix",
            "drop.lan_to_site",
            "drop.spoofed_site_source",
            "drop.inbound_not_for_site",
            "drop.neighbor_unresolved",
            "drop.to_router_unhandled",
            "drop.multicast_not_handled",
            "icmp.unreachable_sent",
            "icmp.unreachable_ratelimited",
            "icmp.echo_replied",
            "nd.na_sent",
            "resolve.held",
            "resolve.needed_reported",
            "drop.option_unrecognized",
            "icmp.error_no_source",
            "drop.internal_error",
            "drop.multi_segment",
            "local.consumed",
        ] {
            assert!(names.iter().any(|n| n == want), "missing {want}");
        }
        for n in &names {
            assert!(!n.contains(' ') && n.split('.').count() >= 2, "{n}");
        }
    }

    #[test]
    fn merge_adds() {
        let site = two_isp_site();
        let mut a = Counters::new(&site);
        let mut b = Counters::new(&site);
        a.rx[0].add(100);
        b.rx[0].add(50);
        b.drop
            .count(DropCause::Classify(classify::DropReason::Truncated));
        b.icmp.echo_replied = 3;
        a.merge(&b);
        assert_eq!(a.get("rx.lan.packets"), Some(2));
        assert_eq!(a.get("rx.lan.bytes"), Some(150));
        assert_eq!(a.get("drop.truncated"), Some(1));
        assert_eq!(a.get("icmp.echo_replied"), Some(3));
        assert_eq!(a.drop.total(), 1);
        // Merging into empty counters takes the other's shape.
        let mut e = Counters::default();
        e.merge(&a);
        assert_eq!(e.get("rx.lan.packets"), Some(2));
    }
}
