//! Host-pair contexts as the dataplane uses them (DESIGN section 6; seed 001 sections 3 and
//! 7.11; seed 002 section 4.4), published by the control thread through [`crate::tables`]
//! and read by the proxy stages ([`crate::nodes::proxy_out`], [`crate::nodes::proxy_in`]).
//!
//! Three lookups, all without hashing on the receive path:
//!
//! - receive: by F(local), the flow label of arriving M6 data, through a dense array of
//!   2^20 slot indices (we allocate F(local), seed 001 section 3.2). Labels are allocated per
//!   local host, so two proxied hosts may share one; the slots of one label are chained and
//!   the destination (which must be in Lsl(local)) picks the right one;
//! - transmit: by (AID(local), AID(peer));
//! - destination cache: by AID(peer): discovery pending, not M6 until a time, or M6 (seed
//!   001 section 5.2: negative answers are cached), so a packet to a non-M6 destination costs
//!   one probe.
//!
//! Memory: [`CONTEXT_BYTES`] per context in the slab plus about 40 octets in the transmit
//! map, and 4 MiB for the receive index once a context exists, per replica (one per
//! worker).

pub mod datapath;

use std::sync::Arc;

use hashbrown::HashMap;

use crate::net::addr::{self, Addr};
use crate::nodes::cc_answer::Responder;
use crate::tables::Table;

/// Locators per locator set at most (a site has a handful of ISPs; longer sets from a peer
/// are cut, counted by the control side).
pub const MAX_LOCATORS: usize = 4;
/// Flow labels are 20 bits.
pub const FLOW_LABELS: usize = 1 << 20;

/// A small locator set, stored as octets (no 16-octet alignment padding).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocatorSet {
    len: u8,
    addrs: [[u8; 16]; MAX_LOCATORS],
}

impl LocatorSet {
    /// The first [`MAX_LOCATORS`] of `addrs`.
    pub fn new(addrs: &[Addr]) -> LocatorSet {
        let mut s = LocatorSet::default();
        for a in addrs.iter().take(MAX_LOCATORS) {
            if let Some(slot) = s.addrs.get_mut(usize::from(s.len)) {
                *slot = addr::to_bytes(*a);
                s.len += 1;
            }
        }
        s
    }

    /// Whether `a` is in the set.
    #[inline]
    pub fn contains(&self, a: Addr) -> bool {
        let b = addr::to_bytes(a);
        self.addrs
            .get(..usize::from(self.len))
            .is_some_and(|v| v.contains(&b))
    }

    /// The locators.
    pub fn iter(&self) -> impl Iterator<Item = Addr> + '_ {
        self.addrs
            .get(..usize::from(self.len))
            .unwrap_or(&[])
            .iter()
            .map(|b| addr::from_bytes(*b))
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One host-pair context (the engine's `DataplaneContext`, seed 001 section 7.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// F(local): the flow label the peer puts on packets to us.
    pub f_local: u32,
    /// AID(local), AID(peer): restored on receive, matched on transmit.
    pub aid_local: [u8; 16],
    pub aid_peer: [u8; 16],
    /// F(peer): the flow label put on transmitted packets (0 until known).
    pub f_peer: u32,
    /// Lsl(local): acceptable destinations of received packets (7.11 step 2).
    pub lsl_local: LocatorSet,
    /// Ls(local): the source locators transmitted packets may carry (one per ISP prefix).
    pub ls_local: LocatorSet,
    /// Lsl(peer): acceptable sources of received packets (7.11 step 3).
    pub lsl_peer: LocatorSet,
    /// Lsv(peer): verified peer locators, the only allowed destinations (section 7.13).
    pub lsv_peer: LocatorSet,
    /// Lp(peer): the destination of transmitted packets (zero until known).
    pub lp_peer: [u8; 16],
    /// Transmit with the rewrite-ok range P1 (true) or P2.
    pub rewrite_ok: bool,
    /// The context may carry transmitted data (established, F(peer) and Lp(peer) known,
    /// not closing).
    pub transmit: bool,
}

/// Octets per context in the slab.
pub const CONTEXT_BYTES: usize = std::mem::size_of::<Slot>();

/// What a worker keeps of a context to report on it after the packet is handled: the
/// datapath reads a context in place in the replica (a copy would touch every cache line
/// of it) and takes this small part before it changes its own state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextKey {
    pub aid_local: Addr,
    pub aid_peer: Addr,
    pub f_local: u32,
    /// Lp(peer) as published (zero until known).
    pub lp_peer: [u8; 16],
}

impl Context {
    /// See [`ContextKey`].
    pub fn key(&self) -> ContextKey {
        ContextKey {
            aid_local: self.aid_local(),
            aid_peer: self.aid_peer(),
            f_local: self.f_local,
            lp_peer: self.lp_peer,
        }
    }

    pub fn aid_local(&self) -> Addr {
        addr::from_bytes(self.aid_local)
    }
    pub fn aid_peer(&self) -> Addr {
        addr::from_bytes(self.aid_peer)
    }
    pub fn lp_peer(&self) -> Option<Addr> {
        let a = addr::from_bytes(self.lp_peer);
        (a != 0).then_some(a)
    }
}

/// What the destination cache says about a peer AID (the engine's `DestinationStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Discovery in progress: plain IPv6, do not report again.
    Pending,
    /// Not M6 capable until `until_ns` (workers' clock): plain IPv6.
    NotM6 { until_ns: u64 },
    /// M6: a context exists or is being established.
    M6,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    ctx: Context,
    /// The next slot with the same F(local), plus one (0: none).
    next_same_label: u32,
}

/// A change to the [`ContextTable`]. Small (the context is boxed), so that each worker's
/// queue of changes stays small too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContextOp {
    /// Create or replace the context of (AID(local), F(local)).
    Install(Box<Context>),
    /// Remove the context of (AID(local), F(local)).
    Remove { aid_local: [u8; 16], f_local: u32 },
    /// Set (or, with `None`, forget) a peer AID's destination status.
    Destination {
        aid_peer: [u8; 16],
        status: Option<Destination>,
    },
    /// Replace (or with `None` withdraw) the CC responder state (key, birthday, clock,
    /// hosts) the workers answer INITs with (`nodes::cc_answer`).
    Responder(Option<Arc<Responder>>),
}

/// The published contexts.
#[derive(Clone, Debug)]
pub struct ContextTable {
    /// F(local) -> first slot + 1 (0: none).
    rx: Vec<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    tx: HashMap<(Addr, Addr), u32>,
    dest: HashMap<Addr, Destination>,
    responder: Option<Arc<Responder>>,
    /// Contexts held (slots in use).
    live: usize,
    generation: u64,
}

impl Default for ContextTable {
    fn default() -> ContextTable {
        ContextTable::new(0)
    }
}

impl ContextTable {
    /// An empty table with room for `capacity` contexts reserved.
    pub fn new(capacity: usize) -> ContextTable {
        ContextTable {
            // Allocated at the first install: a router that proxies nobody (and every
            // test pipeline) does not carry 4 MiB per replica.
            rx: Vec::new(),
            slots: Vec::with_capacity(capacity),
            free: Vec::new(),
            tx: HashMap::with_capacity(capacity),
            dest: HashMap::new(),
            responder: None,
            live: 0,
            generation: 1,
        }
    }

    /// Contexts held.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Changes since creation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The context whose F(local) is `label` and whose Lsl(local) holds `dst` (the receive
    /// path, seed 001 section 7.11 steps 1 and 2): `Err(true)` when the label is known but
    /// `dst` is in no context's Lsl(local) (silently dropped), `Err(false)` when no context
    /// has the label (answered with UC).
    #[inline]
    pub fn by_label(&self, label: u32, dst: Addr) -> Result<&Context, bool> {
        let mut i = self.rx.get(label as usize).copied().unwrap_or(0);
        if i == 0 {
            return Err(false);
        }
        while i != 0 {
            let Some(s) = self.slots.get(i as usize - 1) else {
                break;
            };
            if s.ctx.lsl_local.contains(dst) {
                return Ok(&s.ctx);
            }
            i = s.next_same_label;
        }
        Err(true)
    }

    /// Prefetches what [`Self::by_label`] will read for `label`: the dense array's entry.
    #[inline]
    pub fn prefetch_label(&self, label: u32) {
        if let Some(e) = self.rx.get(label as usize) {
            dpdk_bindings::prefetch(e);
        }
    }

    /// Prefetches the slot [`Self::by_label`] will read first for `label` (its array entry
    /// should be in cache by now: [`Self::prefetch_label`]).
    #[inline]
    pub fn prefetch_label_slot(&self, label: u32) {
        let i = self.rx.get(label as usize).copied().unwrap_or(0);
        if let Some(s) = (i as usize).checked_sub(1).and_then(|i| self.slots.get(i)) {
            // Every line of it: the checks read the locator sets and Lp(peer) in place.
            dpdk_bindings::prefetch_all(s);
        }
    }

    /// The slot of (AID(local), AID(peer)) (the transmit key), for [`Self::prefetch_slot`]
    /// and [`Self::at`]: the transmit path hashes the key once per packet, in a pass over
    /// the burst that prefetches the slots so that their cache misses overlap.
    #[inline]
    pub fn tx_slot(&self, aid_local: Addr, aid_peer: Addr) -> Option<u32> {
        self.tx.get(&(aid_local, aid_peer)).copied()
    }

    /// Prefetches every line of slot `i`: translation reads Ls(local), the flags and
    /// Lp(peer) in place.
    #[inline]
    pub fn prefetch_slot(&self, i: u32) {
        if let Some(s) = self.slots.get(i as usize) {
            dpdk_bindings::prefetch_all(s);
        }
    }

    /// The context in slot `i` ([`Self::tx_slot`] of this same table).
    #[inline]
    pub fn at(&self, i: u32) -> Option<&Context> {
        self.slots.get(i as usize).map(|s| &s.ctx)
    }

    /// The context of (AID(local), AID(peer)) (the transmit path).
    #[inline]
    pub fn by_aids(&self, aid_local: Addr, aid_peer: Addr) -> Option<&Context> {
        self.at(self.tx_slot(aid_local, aid_peer)?)
    }

    /// The destination cache entry for `aid_peer`.
    #[inline]
    pub fn destination(&self, aid_peer: Addr) -> Option<Destination> {
        self.dest.get(&aid_peer).copied()
    }

    /// The CC responder state, once the control plane has published one.
    pub fn responder(&self) -> Option<&Responder> {
        self.responder.as_deref()
    }

    /// The slot of (AID(local), F(local)), through the label's chain.
    fn slot_of(&self, aid_local: [u8; 16], f_local: u32) -> Option<u32> {
        let mut cur = self.rx.get(f_local as usize).copied().unwrap_or(0);
        while cur != 0 {
            let s = self.slots.get(cur as usize - 1)?;
            if s.ctx.aid_local == aid_local && s.ctx.f_local == f_local {
                return Some(cur - 1);
            }
            cur = s.next_same_label;
        }
        None
    }

    /// Creates or updates the context of (AID(local), F(local)). The engine may hold two
    /// for one AID pair (one closing, one new): both keep receiving, and the transmit path
    /// points at the one that may transmit.
    fn install(&mut self, ctx: Context) {
        if self.rx.is_empty() {
            self.rx = vec![0; FLOW_LABELS];
        }
        let i = match self.slot_of(ctx.aid_local, ctx.f_local) {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    s.ctx = ctx;
                }
                i
            }
            None => {
                let slot = Slot {
                    ctx,
                    next_same_label: self.rx.get(ctx.f_local as usize).copied().unwrap_or(0),
                };
                let i = match self.free.pop() {
                    Some(i) => {
                        if let Some(s) = self.slots.get_mut(i as usize) {
                            *s = slot;
                        }
                        i
                    }
                    None => {
                        self.slots.push(slot);
                        (self.slots.len() - 1) as u32
                    }
                };
                if let Some(head) = self.rx.get_mut(ctx.f_local as usize) {
                    *head = i + 1;
                }
                self.live += 1;
                i
            }
        };
        let key = (ctx.aid_local(), ctx.aid_peer());
        let current_transmits = self
            .tx
            .get(&key)
            .and_then(|&j| self.slots.get(j as usize))
            .is_some_and(|s| s.ctx.transmit && s.ctx.f_local != ctx.f_local);
        if ctx.transmit || !current_transmits {
            self.tx.insert(key, i);
        }
    }

    fn remove(&mut self, aid_local: [u8; 16], f_local: u32) {
        // Unlink from the label's chain.
        let mut prev: Option<u32> = None;
        let mut cur = self.rx.get(f_local as usize).copied().unwrap_or(0);
        while cur != 0 {
            let Some(s) = self.slots.get(cur as usize - 1).copied() else {
                return;
            };
            if s.ctx.aid_local == aid_local && s.ctx.f_local == f_local {
                match prev {
                    None => {
                        if let Some(head) = self.rx.get_mut(f_local as usize) {
                            *head = s.next_same_label;
                        }
                    }
                    Some(p) => {
                        if let Some(ps) = self.slots.get_mut(p as usize - 1) {
                            ps.next_same_label = s.next_same_label;
                        }
                    }
                }
                let key = (s.ctx.aid_local(), s.ctx.aid_peer());
                if self.tx.get(&key) == Some(&(cur - 1)) {
                    self.tx.remove(&key);
                }
                self.free.push(cur - 1);
                self.live -= 1;
                return;
            }
            prev = Some(cur);
            cur = s.next_same_label;
        }
    }
}

impl Table for ContextTable {
    type Op = ContextOp;

    fn apply(&mut self, op: &ContextOp) {
        match *op {
            ContextOp::Install(ref ctx) => self.install(**ctx),
            ContextOp::Remove { aid_local, f_local } => self.remove(aid_local, f_local),
            ContextOp::Responder(ref r) => self.responder = r.clone(),
            ContextOp::Destination { aid_peer, status } => {
                let a = addr::from_bytes(aid_peer);
                match status {
                    Some(s) => {
                        self.dest.insert(a, s);
                    }
                    None => {
                        self.dest.remove(&a);
                    }
                }
            }
        }
        self.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Addr {
        addr::from_std(&s.parse().unwrap())
    }

    pub(crate) fn ctx(f_local: u32, aid_local: &str, aid_peer: &str) -> Context {
        let al = a(aid_local);
        Context {
            f_local,
            aid_local: addr::to_bytes(al),
            aid_peer: addr::to_bytes(a(aid_peer)),
            f_peer: 0x12345,
            lsl_local: LocatorSet::new(&[al, al ^ (3 << 104)]),
            ls_local: LocatorSet::new(&[al, al ^ (3 << 104)]),
            lsl_peer: LocatorSet::new(&[a(aid_peer), a("2001:db8:b2::20")]),
            lsv_peer: LocatorSet::new(&[a(aid_peer)]),
            lp_peer: addr::to_bytes(a(aid_peer)),
            rewrite_ok: true,
            transmit: true,
        }
    }

    #[test]
    fn install_lookup_replace_remove() {
        let mut t = ContextTable::new(4);
        let c = ctx(7, "2001:db8:1:1::10", "2001:db8:b1::20");
        t.apply(&ContextOp::Install(Box::new(c)));
        assert_eq!(t.by_label(7, a("2001:db8:1:1::10")), Ok(&c));
        assert_eq!(t.by_label(7, a("2001:db8:1:1::99")), Err(true));
        assert_eq!(t.by_label(8, a("2001:db8:1:1::10")), Err(false));
        assert_eq!(t.by_aids(c.aid_local(), c.aid_peer()), Some(&c));
        // The engine's new context for the same AID pair (the old one closing): both
        // receive, the new one transmits, and a late update of the closing one does not
        // take the transmit path back.
        let c2 = Context { f_local: 9, ..c };
        t.apply(&ContextOp::Install(Box::new(c2)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.by_aids(c.aid_local(), c.aid_peer()), Some(&c2));
        let closing = Context {
            transmit: false,
            ..c
        };
        t.apply(&ContextOp::Install(Box::new(closing)));
        assert_eq!(t.by_label(7, a("2001:db8:1:1::10")), Ok(&closing));
        assert_eq!(t.by_aids(c.aid_local(), c.aid_peer()), Some(&c2));
        t.apply(&ContextOp::Remove {
            aid_local: c.aid_local,
            f_local: 7,
        });
        assert_eq!(t.len(), 1);
        assert_eq!(t.by_aids(c.aid_local(), c.aid_peer()), Some(&c2));
        t.apply(&ContextOp::Remove {
            aid_local: c.aid_local,
            f_local: 9,
        });
        assert!(t.is_empty());
        assert_eq!(t.by_aids(c.aid_local(), c.aid_peer()), None);
    }

    #[test]
    fn two_hosts_may_share_a_label() {
        let mut t = ContextTable::new(4);
        let c1 = ctx(5, "2001:db8:1:1::10", "2001:db8:b1::20");
        let c2 = ctx(5, "2001:db8:1:1::11", "2001:db8:b1::20");
        t.apply(&ContextOp::Install(Box::new(c1)));
        t.apply(&ContextOp::Install(Box::new(c2)));
        assert_eq!(t.by_label(5, a("2001:db8:1:1::10")), Ok(&c1));
        assert_eq!(t.by_label(5, a("2001:db8:1:1::11")), Ok(&c2));
        t.apply(&ContextOp::Remove {
            aid_local: c2.aid_local,
            f_local: 5,
        });
        assert_eq!(t.by_label(5, a("2001:db8:1:1::10")), Ok(&c1));
        assert_eq!(t.by_label(5, a("2001:db8:1:1::11")), Err(true));
        // Slots are reused.
        t.apply(&ContextOp::Install(Box::new(c2)));
        assert_eq!(t.slots.len(), 2);
    }

    #[test]
    fn destination_cache() {
        let mut t = ContextTable::new(0);
        let p = a("2001:db8:b1::20");
        t.apply(&ContextOp::Destination {
            aid_peer: addr::to_bytes(p),
            status: Some(Destination::NotM6 { until_ns: 5 }),
        });
        assert_eq!(t.destination(p), Some(Destination::NotM6 { until_ns: 5 }));
        t.apply(&ContextOp::Destination {
            aid_peer: addr::to_bytes(p),
            status: None,
        });
        assert_eq!(t.destination(p), None);
    }

    #[test]
    fn locator_sets_are_bounded_and_compact() {
        let many: Vec<Addr> = (1..10).collect();
        let s = LocatorSet::new(&many);
        assert_eq!(s.len(), MAX_LOCATORS);
        assert!(s.contains(4) && !s.contains(5));
        assert_eq!(std::mem::align_of::<Context>(), 4);
        const { assert!(CONTEXT_BYTES <= 360) };
        eprintln!("{CONTEXT_BYTES} octets per context in the slab");
    }
}
