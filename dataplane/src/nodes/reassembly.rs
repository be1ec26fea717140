//! Bounded IPv6 fragment reassembly for packets addressed to the router itself.
//!
//! Follows RFC 8200 section 4.5 (reassembly, 60 s limit, ICMPv6 errors),
//! RFC 5722 (overlapping fragments discard the whole datagram), RFC 6946
//! (atomic fragments are processed in isolation) and RFC 7112 (the first
//! fragment must carry the whole header chain).
//!
//! Only fragments whose destination is the router belong here: RFC 8200
//! section 4.5 leaves reassembly to the destination, so transit fragments are
//! forwarded untouched and never reach this module.
//!
//! # Bounds
//!
//! Everything is bounded by [`Limits`]: at most `max_datagrams` table entries
//! (datagrams in progress plus tombstones), at most `max_bytes` bytes of packet
//! data held in total, at most `max_fragments` fragments per datagram. The
//! table, its hash index and its free list are allocated once in
//! [`Reassembler::new`]; at run time only the copies of held fragments are
//! allocated, and those are capped by `max_bytes`. The index uses std's
//! randomly keyed SipHash, so an attacker choosing Identification values
//! cannot aim for hash collisions.
//!
//! Entries sit on a list in the order their first fragment arrived. The clock
//! is monotonic and the timeout fixed, so that order is also deadline order:
//! [`Reassembler::expire`] and eviction only look at the entries they remove.
//!
//! # Decisions
//!
//! * **When full, evict the oldest.** A new datagram that finds the table full
//!   evicts the oldest entry, and a fragment that would exceed `max_bytes`
//!   evicts the oldest other datagrams until it fits. Refusing new datagrams
//!   instead would let an attacker hold the table with one spoofed fragment per
//!   slot per timeout (64 packets a minute with the defaults) and so starve
//!   legitimate reassembly for as long as the attack lasts, because the
//!   timeout frees slots only for the attacker to take them again (the
//!   resource-exhaustion concern of RFC 6583). With eviction the attacker must
//!   replace the whole table faster than a legitimate datagram's fragments
//!   arrive (typically within milliseconds), which takes a flood, not a
//!   trickle. Evicted datagrams are dropped silently: RFC 8200 asks for ICMPv6
//!   Time Exceeded only after the timeout.
//! * **Exact duplicates are dropped, not treated as overlaps.** RFC 5722
//!   section 4 allows this: the network may duplicate fragments. A fragment is
//!   an exact duplicate when a held fragment has the same offset, the same
//!   data and the same M flag; the held copy stays, the datagram goes on, and
//!   the duplicate counts as [`DropReason::Duplicate`]. Same offset with any
//!   other difference is an overlap.
//! * **Tombstones.** A datagram discarded before completion (overlap,
//!   conflicting ends, too large, too many fragments, memory) leaves a
//!   tombstone in its table entry until the datagram would have timed out
//!   (first arrival + `timeout_ns`). Later fragments with its key are dropped
//!   with the same reason, as RFC 5722 requires for overlaps, instead of
//!   opening a new datagram that could only time out. A tombstone holds no
//!   data; it keeps its table entry, so it can itself be evicted when the table
//!   is full. A datagram evicted to free a table entry leaves no tombstone: its
//!   entry goes to the newcomer.
//! * **Counters** live in the reassembler ([`Reassembler::counters`]) because
//!   one input can discard fragments held earlier: each held fragment of a
//!   discarded datagram is counted under the reason it was discarded for.

use std::collections::HashMap;

use crate::net::addr::Addr;

/// Length of the IPv6 fixed header, in bytes (RFC 8200 section 3).
const IPV6_HEADER_LEN: usize = 40;
/// Length of the Fragment header, in bytes (RFC 8200 section 4.5).
const FRAGMENT_HEADER_LEN: usize = 8;
/// Largest Payload Length an IPv6 packet can have without a jumbogram, in bytes.
const MAX_PAYLOAD_LEN: usize = 65_535;
/// Offset of the Next Header field in the IPv6 fixed header.
const FIXED_NEXT_HEADER: usize = 6;
/// Offset of the Payload Length field in the IPv6 fixed header.
const PAYLOAD_LENGTH_FIELD: usize = 4;

const NH_HOP_BY_HOP: u8 = 0;
const NH_TCP: u8 = 6;
const NH_UDP: u8 = 17;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_AH: u8 = 51;
const NH_ICMPV6: u8 = 58;
const NH_DEST_OPTS: u8 = 60;

/// Minimum TCP header, in bytes (RFC 9293 section 3.1).
const TCP_MIN_HEADER: usize = 20;
/// UDP header (RFC 768), and the first 8 bytes every ICMPv6 message has
/// (RFC 4443 section 2.1 plus the message's first 32-bit word), in bytes.
const UDP_ICMPV6_MIN_HEADER: usize = 8;

/// End of the intrusive entry list.
const NIL: usize = usize::MAX;

/// Largest `Limits::max_datagrams` that [`Reassembler::new`] honours; larger
/// values are clamped, so a configuration typo cannot reserve gigabytes.
pub const MAX_DATAGRAMS_CAP: usize = 1 << 16;

/// Largest `Limits::max_fragments` that [`Reassembler::new`] honours: every
/// non-last fragment carries at least 8 bytes of at most 65 535, so no
/// datagram needs more than 8192 fragments (RFC 8200 section 4.5).
pub const MAX_FRAGMENTS_CAP: usize = 8192;

/// Bounds on the state a [`Reassembler`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Table entries at once: datagrams in progress plus tombstones
    /// (count; default 64, clamped to [`MAX_DATAGRAMS_CAP`]).
    pub max_datagrams: usize,
    /// Packet bytes held in total over all datagrams: fragment data, plus the
    /// whole packet for each held first fragment because its unfragmentable
    /// part and ICMPv6 quote come from it (bytes; default 256 KiB).
    pub max_bytes: usize,
    /// Fragments held for one datagram (count; default 64, clamped to
    /// [`MAX_FRAGMENTS_CAP`]).
    pub max_fragments: usize,
    /// Time from the first-arriving fragment of a datagram after which it is
    /// abandoned (nanoseconds; default 60 s, RFC 8200 section 4.5).
    pub timeout_ns: u64,
}

impl Default for Limits {
    /// 64 datagrams, 256 KiB, 64 fragments per datagram, 60 s
    /// (the timeout from RFC 8200 section 4.5).
    fn default() -> Self {
        Limits {
            max_datagrams: 64,
            max_bytes: 256 * 1024,
            max_fragments: 64,
            timeout_ns: 60_000_000_000,
        }
    }
}

/// Why a fragment was dropped. Each variant has a stable counter name
/// ([`DropReason::name`]) and an index into [`Counters::dropped`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The packet is truncated or inconsistent: shorter than its headers,
    /// Payload Length not matching the buffer (jumbograms included, which
    /// cannot be fragmented, RFC 2675), the header chain before
    /// `frag_off` not ending in a Fragment header, or a non-atomic fragment
    /// with no data. Counter `malformed`.
    Malformed,
    /// A fragment with M = 1 whose data length is not a multiple of 8 bytes.
    /// RFC 8200 section 4.5: the caller should send ICMPv6 Parameter Problem,
    /// code 0, pointing at the Payload Length field (pointer 4); see
    /// [`DropReason::parameter_problem`]. Counter `length_not_multiple_of_8`.
    LengthNotMultipleOf8,
    /// The fragment's offset plus its data length, after its own
    /// unfragmentable part, would make the reassembled Payload Length exceed
    /// 65 535 bytes. RFC 8200 section 4.5: the caller should send ICMPv6
    /// Parameter Problem, code 0, pointing at the Fragment Offset field
    /// (pointer `frag_off + 2`); see [`DropReason::parameter_problem`].
    /// Counter `offset_too_large`.
    OffsetTooLarge,
    /// The first fragment (offset 0) does not hold the whole header chain:
    /// the extension headers after the Fragment header and, for TCP, UDP and
    /// ICMPv6, the first 20, 8 and 8 bytes of the upper-layer header (other
    /// upper layers are not checked). Only this fragment is dropped. RFC 8200
    /// section 4.5 and RFC 7112: the caller should send ICMPv6
    /// Parameter Problem, code 3, pointer 0; see
    /// [`DropReason::parameter_problem`]. Counter `incomplete_first_fragment`.
    IncompleteFirst,
    /// The fragment overlaps a held one (RFC 5722 section 4): the whole
    /// datagram is discarded silently and its key tombstoned: its later
    /// fragments get this reason too until it would have timed out. Counter
    /// `overlap`.
    Overlap,
    /// An exact duplicate of a held fragment (same offset, data and M flag):
    /// dropped, the datagram goes on (RFC 5722 section 4). Counter `duplicate`.
    Duplicate,
    /// The fragment contradicts the datagram's end: it lies at or beyond the
    /// end fixed by the last fragment (M = 0), or it is a second last fragment
    /// with a different end, or a last fragment ending before held data. As
    /// with overlaps the datagram is discarded and tombstoned. Counter
    /// `beyond_end`.
    BeyondEnd,
    /// The first fragment's unfragmentable part plus the fragmentable length
    /// would exceed 65 535 payload bytes (RFC 8200 section 4.5). Only reachable
    /// when fragments disagree on the unfragmentable part; the datagram is
    /// discarded and tombstoned. Counter `reassembled_too_large`.
    ReassembledTooLarge,
    /// The datagram was evicted to make room for a new one because the table
    /// was full, or (with `max_datagrams == 0`) the fragment could not be
    /// stored. Counter `table_full`.
    TableFull,
    /// The datagram cannot fit in `max_bytes` even alone, or was evicted to
    /// make room for another one's fragment. Counter `memory_full`.
    MemoryFull,
    /// The datagram would need more than `max_fragments` fragments; it is
    /// discarded and tombstoned. Counter `too_many_fragments`.
    TooManyFragments,
}

impl DropReason {
    /// Every reason, in [`DropReason::index`] order.
    pub const ALL: &'static [DropReason] = &[
        DropReason::Malformed,
        DropReason::LengthNotMultipleOf8,
        DropReason::OffsetTooLarge,
        DropReason::IncompleteFirst,
        DropReason::Overlap,
        DropReason::Duplicate,
        DropReason::BeyondEnd,
        DropReason::ReassembledTooLarge,
        DropReason::TableFull,
        DropReason::MemoryFull,
        DropReason::TooManyFragments,
    ];

    /// Number of reasons: the length of [`Counters::dropped`].
    pub const COUNT: usize = DropReason::ALL.len();

    /// Stable snake_case counter name.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::LengthNotMultipleOf8 => "length_not_multiple_of_8",
            DropReason::OffsetTooLarge => "offset_too_large",
            DropReason::IncompleteFirst => "incomplete_first_fragment",
            DropReason::Overlap => "overlap",
            DropReason::Duplicate => "duplicate",
            DropReason::BeyondEnd => "beyond_end",
            DropReason::ReassembledTooLarge => "reassembled_too_large",
            DropReason::TableFull => "table_full",
            DropReason::MemoryFull => "memory_full",
            DropReason::TooManyFragments => "too_many_fragments",
        }
    }

    /// Position in [`DropReason::ALL`] and [`Counters::dropped`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The ICMPv6 Parameter Problem (type 4) the caller should send to the
    /// fragment's source for this drop, as `(code, pointer)`, or `None` when
    /// the drop is silent. `frag_off` is the value given to
    /// [`Reassembler::input`]; the pointer is a byte offset into the packet
    /// as received (RFC 4443 section 3.4). RFC 8200 section 4.5 asks for
    /// code 0 at the Payload Length field for
    /// [`DropReason::LengthNotMultipleOf8`], code 0 at the Fragment Offset
    /// field for [`DropReason::OffsetTooLarge`], and code 3 with pointer 0 for
    /// [`DropReason::IncompleteFirst`] (also RFC 7112).
    pub const fn parameter_problem(self, frag_off: usize) -> Option<(u8, u32)> {
        match self {
            DropReason::LengthNotMultipleOf8 => Some((0, PAYLOAD_LENGTH_FIELD as u32)),
            // The Fragment Offset field starts 2 bytes into the Fragment header.
            DropReason::OffsetTooLarge => Some((0, frag_off.saturating_add(2) as u32)),
            DropReason::IncompleteFirst => Some((3, 0)),
            _ => None,
        }
    }
}

/// What [`Reassembler::input`] did with a fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored; the datagram is not complete yet.
    Held,
    /// The datagram is complete. The packet is the unfragmentable part of the
    /// first fragment (offset 0) with the Fragment header removed, the Next
    /// Header of the header before it set to the Fragment header's Next
    /// Header, and the Payload Length fixed, followed by the fragment data in
    /// offset order (RFC 8200 section 4.5). Headers before the Fragment header
    /// in other fragments are discarded, as RFC 8200 section 4.5 allows.
    Complete(Vec<u8>),
    /// An atomic fragment (offset 0, M = 0): the packet with the Fragment
    /// header removed and the Next Header and Payload Length fixed. It is
    /// processed on its own and never mixed with, nor affects, other fragments
    /// of the same Identification (RFC 6946).
    Atomic(Vec<u8>),
    /// Dropped; see the reason for the ICMPv6 error, if any, to send.
    Dropped(DropReason),
}

/// Counters kept by a [`Reassembler`], in packets unless noted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets given to [`Reassembler::input`].
    pub received: u64,
    /// Datagrams reassembled ([`Outcome::Complete`]).
    pub reassembled: u64,
    /// Atomic fragments passed through ([`Outcome::Atomic`]).
    pub atomic: u64,
    /// Datagrams abandoned after `timeout_ns` (RFC 8200 section 4.5),
    /// by [`Reassembler::expire`] or when a late fragment finds them stale.
    pub timed_out: u64,
    /// Fragments dropped, indexed by [`DropReason::index`]: the dropped input
    /// plus, when a datagram is discarded or evicted, each fragment it held.
    pub dropped: [u64; DropReason::COUNT],
}

impl Counters {
    /// Fragments dropped for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason.index()).copied().unwrap_or(0)
    }
}

/// Reassembly key: source, destination, Identification (RFC 8200 section 4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: Addr,
    dst: Addr,
    id: u32,
}

/// Where a fragment's unfragmentable part ends and how to splice it.
#[derive(Clone, Copy, Debug)]
struct Splice {
    /// Offset of the Fragment header = length of the unfragmentable part.
    frag_off: usize,
    /// Offset of the Next Header field that names the Fragment header.
    nh_index: usize,
    /// The Fragment header's Next Header, which replaces 44 there.
    next_header: u8,
}

/// One held fragment. The first fragment keeps the whole packet (its
/// unfragmentable part is reused, and it is quoted in Time Exceeded); others
/// keep their data only.
#[derive(Debug)]
struct Fragment {
    /// Fragment offset, in bytes.
    offset: usize,
    /// Where the fragment data starts in `bytes`.
    start: usize,
    bytes: Vec<u8>,
}

impl Fragment {
    fn data(&self) -> &[u8] {
        self.bytes.get(self.start..).unwrap_or(&[])
    }

    fn end(&self) -> usize {
        self.offset + self.data().len()
    }
}

/// A datagram in progress. Fragments are sorted by offset and never overlap,
/// so the data covered is the sum of their lengths.
#[derive(Debug, Default)]
struct Datagram {
    frags: Vec<Fragment>,
    /// Bytes held, as counted against `max_bytes`.
    bytes: usize,
    /// Sum of the fragments' data lengths.
    data_len: usize,
    /// Fragmentable length, known once the last fragment (M = 0) arrived.
    total: Option<usize>,
    /// Set once the first fragment (offset 0) arrived.
    first: Option<Splice>,
}

#[derive(Debug)]
enum Body {
    Free,
    Active(Datagram),
    Tombstone(DropReason),
}

#[derive(Debug)]
struct Entry {
    key: Key,
    /// First arrival + timeout.
    deadline_ns: u64,
    prev: usize,
    next: usize,
    body: Body,
}

/// A parsed fragment.
struct Parsed<'a> {
    key: Key,
    /// Fragment offset, in bytes.
    offset: usize,
    /// M flag.
    more: bool,
    splice: Splice,
    data: &'a [u8],
}

enum Verdict {
    Store(usize),
    Duplicate,
    Discard(DropReason),
}

/// Reassembles IPv6 fragments addressed to the router within fixed bounds
/// (RFC 8200 section 4.5). Every method that changes state takes `&mut self`
/// and nothing blocks: keep one per dataplane thread rather than sharing one
/// behind a lock.
#[derive(Debug)]
pub struct Reassembler {
    limits: Limits,
    map: HashMap<Key, usize>,
    entries: Vec<Entry>,
    free: Vec<usize>,
    /// Oldest entry.
    head: usize,
    /// Newest entry.
    tail: usize,
    active: usize,
    tombstones: usize,
    bytes: usize,
    counters: Counters,
}

impl Reassembler {
    /// Creates a reassembler, reserving the table, its index and its free
    /// list for `limits.max_datagrams` entries up front. `max_datagrams` and
    /// `max_fragments` are clamped to [`MAX_DATAGRAMS_CAP`] and
    /// [`MAX_FRAGMENTS_CAP`].
    pub fn new(limits: Limits) -> Reassembler {
        let limits = Limits {
            max_datagrams: limits.max_datagrams.min(MAX_DATAGRAMS_CAP),
            max_fragments: limits.max_fragments.min(MAX_FRAGMENTS_CAP),
            ..limits
        };
        let n = limits.max_datagrams;
        let unused = Key {
            src: 0,
            dst: 0,
            id: 0,
        };
        let entries = (0..n)
            .map(|_| Entry {
                key: unused,
                deadline_ns: 0,
                prev: NIL,
                next: NIL,
                body: Body::Free,
            })
            .collect();
        Reassembler {
            limits,
            map: HashMap::with_capacity(n),
            entries,
            // Popped from the back: hand out entry 0 first.
            free: (0..n).rev().collect(),
            head: NIL,
            tail: NIL,
            active: 0,
            tombstones: 0,
            bytes: 0,
            counters: Counters::default(),
        }
    }

    /// Takes one fragment addressed to the router.
    ///
    /// `packet` is one IPv6 packet from its fixed header to the end of its
    /// payload (exactly 40 + Payload Length bytes). It carries a Fragment
    /// header at byte offset `frag_off`, after the unfragmentable part
    /// (hop-by-hop, routing, and destination options before the routing
    /// header), and the header before it names 44 as Next Header. These
    /// preconditions are checked; a packet violating them is
    /// [`DropReason::Malformed`]. `now_ns` is a monotonic clock, in
    /// nanoseconds.
    ///
    /// A datagram whose timeout has passed is never completed: if
    /// [`Reassembler::expire`] has not removed it yet, it is removed here
    /// (without the Time Exceeded report) and the fragment starts a new one.
    /// Never panics.
    pub fn input(&mut self, packet: &[u8], frag_off: usize, now_ns: u64) -> Outcome {
        self.counters.received += 1;
        let outcome = self.process(packet, frag_off, now_ns);
        match &outcome {
            Outcome::Held => {}
            Outcome::Complete(_) => self.counters.reassembled += 1,
            Outcome::Atomic(_) => self.counters.atomic += 1,
            Outcome::Dropped(reason) => self.count_drops(*reason, 1),
        }
        outcome
    }

    /// Removes datagrams whose first-arriving fragment is `timeout_ns` or more
    /// before `now_ns` (RFC 8200 section 4.5), and tombstones that have run
    /// out. For each removed datagram whose first fragment (offset 0) had
    /// arrived, passes that fragment's bytes, the packet as received, to
    /// `expired`, so the caller can send ICMPv6 Time Exceeded, code 1
    /// (fragment reassembly time exceeded) to its source. Returns how many
    /// datagrams were removed (tombstones not included). Call it regularly,
    /// for instance once per poll loop; it only touches what it removes.
    pub fn expire(&mut self, now_ns: u64, expired: &mut impl FnMut(&[u8])) -> usize {
        let mut removed = 0;
        while let Some(deadline) = self.entries.get(self.head).map(|e| e.deadline_ns) {
            if deadline > now_ns {
                break;
            }
            match self.remove(self.head) {
                // Only if the list were corrupt; stop rather than spin.
                Body::Free => break,
                Body::Tombstone(_) => {}
                Body::Active(d) => {
                    removed += 1;
                    self.counters.timed_out += 1;
                    if let Some(first) = d.frags.first().filter(|f| f.offset == 0) {
                        expired(&first.bytes);
                    }
                }
            }
        }
        removed
    }

    /// Datagrams in progress (tombstones not included), count.
    pub fn in_progress(&self) -> usize {
        self.active
    }

    /// Packet bytes held over all datagrams, as counted against
    /// `Limits::max_bytes`.
    pub fn bytes_held(&self) -> usize {
        self.bytes
    }

    /// Tombstones of discarded datagrams still blocking their key, count.
    pub fn tombstones(&self) -> usize {
        self.tombstones
    }

    /// The limits in force, after clamping.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counters since creation.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    fn process(&mut self, packet: &[u8], frag_off: usize, now_ns: u64) -> Outcome {
        let Some(p) = parse(packet, frag_off) else {
            return Outcome::Dropped(DropReason::Malformed);
        };
        if p.offset == 0 && !p.more {
            // RFC 6946: processed in isolation, no table lookup, no tombstone check.
            return match packet
                .get(..frag_off)
                .and_then(|unfrag| rebuild(unfrag, p.splice, p.data.len(), [p.data]))
            {
                Some(out) => Outcome::Atomic(out),
                None => Outcome::Dropped(DropReason::Malformed),
            };
        }
        if p.data.is_empty() {
            // Carries nothing yet would take a fragment slot.
            return Outcome::Dropped(DropReason::Malformed);
        }
        if p.more && p.data.len() % 8 != 0 {
            return Outcome::Dropped(DropReason::LengthNotMultipleOf8);
        }
        let end = p.offset + p.data.len();
        if frag_off - IPV6_HEADER_LEN + end > MAX_PAYLOAD_LEN {
            return Outcome::Dropped(DropReason::OffsetTooLarge);
        }
        if p.offset == 0 && !chain_complete(p.splice.next_header, p.data) {
            return Outcome::Dropped(DropReason::IncompleteFirst);
        }
        // The first fragment keeps the whole packet; see `Fragment`.
        let need = if p.offset == 0 {
            packet.len()
        } else {
            p.data.len()
        };

        let mut found = None;
        if let Some(i) = self.map.get(&p.key).copied() {
            let (deadline, tomb) = match self.entries.get(i) {
                Some(e) => match e.body {
                    Body::Tombstone(reason) => (e.deadline_ns, Some(reason)),
                    _ => (e.deadline_ns, None),
                },
                None => (0, None),
            };
            if deadline <= now_ns {
                if let Body::Active(_) = self.remove(i) {
                    self.counters.timed_out += 1;
                }
            } else if let Some(reason) = tomb {
                return Outcome::Dropped(reason);
            } else {
                found = Some(i);
            }
        }
        let i = match found {
            Some(i) => i,
            None => match self.create(p.key, need, now_ns) {
                Ok(i) => i,
                Err(reason) => return Outcome::Dropped(reason),
            },
        };
        self.add(i, &p, packet, need)
    }

    /// Opens a datagram entry, evicting the oldest entry if the table is full.
    fn create(&mut self, key: Key, need: usize, now_ns: u64) -> Result<usize, DropReason> {
        // Refuse up front what could never be stored, before evicting anyone.
        if self.limits.max_fragments == 0 {
            return Err(DropReason::TooManyFragments);
        }
        if need > self.limits.max_bytes {
            return Err(DropReason::MemoryFull);
        }
        if self.free.is_empty() {
            if let Body::Active(d) = self.remove(self.head) {
                self.count_drops(DropReason::TableFull, d.frags.len());
            }
        }
        let Some(i) = self.free.pop() else {
            return Err(DropReason::TableFull);
        };
        let Some(e) = self.entries.get_mut(i) else {
            return Err(DropReason::TableFull);
        };
        *e = Entry {
            key,
            deadline_ns: now_ns.saturating_add(self.limits.timeout_ns),
            prev: NIL,
            next: NIL,
            body: Body::Active(Datagram::default()),
        };
        self.active += 1;
        self.map.insert(key, i);
        self.push_back(i);
        Ok(i)
    }

    /// Adds a fragment to the datagram in entry `i`.
    fn add(&mut self, i: usize, p: &Parsed<'_>, packet: &[u8], need: usize) -> Outcome {
        let verdict = match self.entries.get(i) {
            Some(Entry {
                body: Body::Active(d),
                ..
            }) => judge(d, p, need, &self.limits),
            _ => return Outcome::Dropped(DropReason::Malformed),
        };
        let pos = match verdict {
            Verdict::Store(pos) => pos,
            Verdict::Duplicate => return Outcome::Dropped(DropReason::Duplicate),
            Verdict::Discard(reason) => {
                self.discard(i, reason);
                return Outcome::Dropped(reason);
            }
        };
        if self.bytes.saturating_add(need) > self.limits.max_bytes {
            self.make_room(need, i);
        }
        let fragment = if p.offset == 0 {
            Fragment {
                offset: 0,
                start: p.splice.frag_off + FRAGMENT_HEADER_LEN,
                bytes: packet.to_vec(),
            }
        } else {
            Fragment {
                offset: p.offset,
                start: 0,
                bytes: p.data.to_vec(),
            }
        };
        let Some(Entry {
            body: Body::Active(d),
            ..
        }) = self.entries.get_mut(i)
        else {
            return Outcome::Dropped(DropReason::Malformed);
        };
        if pos > d.frags.len() {
            return Outcome::Dropped(DropReason::Malformed);
        }
        if d.frags.is_empty() {
            // A few slots cover the usual 2-3 fragments; growth stays below
            // max_fragments.
            d.frags.reserve(self.limits.max_fragments.min(4));
        }
        d.frags.insert(pos, fragment);
        d.bytes += need;
        d.data_len += p.data.len();
        if !p.more {
            d.total = Some(p.offset + p.data.len());
        }
        if p.offset == 0 {
            d.first = Some(p.splice);
        }
        let complete = d.first.is_some() && d.total == Some(d.data_len);
        self.bytes += need;
        if !complete {
            return Outcome::Held;
        }
        let Body::Active(d) = self.remove(i) else {
            return Outcome::Dropped(DropReason::Malformed);
        };
        match assemble(&d) {
            Some(out) => Outcome::Complete(out),
            None => {
                // Unreachable given `judge`; the input is counted by `input`.
                self.count_drops(
                    DropReason::ReassembledTooLarge,
                    d.frags.len().saturating_sub(1),
                );
                Outcome::Dropped(DropReason::ReassembledTooLarge)
            }
        }
    }

    /// Turns the datagrams oldest first, except `keep`, into tombstones until
    /// `need` more bytes fit in `max_bytes`.
    fn make_room(&mut self, need: usize, keep: usize) {
        let mut cur = self.head;
        while cur != NIL && self.bytes.saturating_add(need) > self.limits.max_bytes {
            let next = self.entries.get(cur).map_or(NIL, |e| e.next);
            if cur != keep {
                self.discard(cur, DropReason::MemoryFull);
            }
            cur = next;
        }
    }

    /// Discards the datagram in entry `i`, leaving a tombstone until its
    /// deadline (RFC 5722 section 4 for overlaps).
    fn discard(&mut self, i: usize, reason: DropReason) {
        let Some(e) = self.entries.get_mut(i) else {
            return;
        };
        let Body::Active(d) = &e.body else {
            return;
        };
        let (frags, bytes) = (d.frags.len(), d.bytes);
        e.body = Body::Tombstone(reason);
        self.active = self.active.saturating_sub(1);
        self.tombstones += 1;
        self.bytes = self.bytes.saturating_sub(bytes);
        self.count_drops(reason, frags);
    }

    /// Frees entry `i` and returns what it held.
    fn remove(&mut self, i: usize) -> Body {
        let Some(e) = self.entries.get_mut(i) else {
            return Body::Free;
        };
        let body = std::mem::replace(&mut e.body, Body::Free);
        let key = e.key;
        match &body {
            Body::Free => return body,
            Body::Active(d) => {
                self.active = self.active.saturating_sub(1);
                self.bytes = self.bytes.saturating_sub(d.bytes);
            }
            Body::Tombstone(_) => self.tombstones = self.tombstones.saturating_sub(1),
        }
        self.unlink(i);
        self.map.remove(&key);
        self.free.push(i);
        body
    }

    fn push_back(&mut self, i: usize) {
        let tail = self.tail;
        if let Some(e) = self.entries.get_mut(i) {
            e.prev = tail;
            e.next = NIL;
        }
        match self.entries.get_mut(tail) {
            Some(t) => t.next = i,
            None => self.head = i,
        }
        self.tail = i;
    }

    fn unlink(&mut self, i: usize) {
        let Some((prev, next)) = self.entries.get(i).map(|e| (e.prev, e.next)) else {
            return;
        };
        match self.entries.get_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.entries.get_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
        if let Some(e) = self.entries.get_mut(i) {
            e.prev = NIL;
            e.next = NIL;
        }
    }

    fn count_drops(&mut self, reason: DropReason, fragments: usize) {
        if let Some(c) = self.counters.dropped.get_mut(reason.index()) {
            *c = c.saturating_add(fragments as u64);
        }
    }
}

/// Decides what to do with fragment `p` for datagram `d`, without changing it.
fn judge(d: &Datagram, p: &Parsed<'_>, need: usize, limits: &Limits) -> Verdict {
    let end = p.offset + p.data.len();
    let max_end = d.frags.last().map_or(0, Fragment::end);
    // The last fragment fixes the end (RFC 8200 section 4.5); nothing may
    // reach or pass it with M = 1, and it may not cut off held data.
    let end_conflict = if p.more {
        d.total.is_some_and(|total| end >= total)
    } else {
        d.total.is_some_and(|total| total != end) || max_end > end
    };
    if end_conflict {
        return Verdict::Discard(DropReason::BeyondEnd);
    }
    // Size with the first fragment's unfragmentable part, which is the one
    // kept; each fragment was already checked against its own.
    let unfrag = if p.offset == 0 {
        Some(p.splice.frag_off)
    } else {
        d.first.map(|s| s.frag_off)
    };
    if let Some(unfrag) = unfrag {
        let far = end.max(max_end).max(d.total.unwrap_or(0));
        if unfrag - IPV6_HEADER_LEN + far > MAX_PAYLOAD_LEN {
            return Verdict::Discard(DropReason::ReassembledTooLarge);
        }
    }
    let pos = d.frags.partition_point(|f| f.offset < p.offset);
    if let Some(next) = d.frags.get(pos) {
        if next.offset == p.offset {
            // Same M flag: with M = 0 the end is known (checked equal above);
            // with M = 1 it is unknown or beyond (checked above).
            let exact = next.data() == p.data && (p.more || d.total.is_some());
            return if exact {
                Verdict::Duplicate
            } else {
                Verdict::Discard(DropReason::Overlap)
            };
        }
        if end > next.offset {
            return Verdict::Discard(DropReason::Overlap);
        }
    }
    if let Some(prev) = pos.checked_sub(1).and_then(|k| d.frags.get(k)) {
        if prev.end() > p.offset {
            return Verdict::Discard(DropReason::Overlap);
        }
    }
    if d.frags.len() >= limits.max_fragments {
        return Verdict::Discard(DropReason::TooManyFragments);
    }
    if d.bytes.saturating_add(need) > limits.max_bytes {
        // Even alone this datagram would not fit.
        return Verdict::Discard(DropReason::MemoryFull);
    }
    Verdict::Store(pos)
}

/// Parses and checks the fixed header, the unfragmentable part and the
/// Fragment header (RFC 8200 sections 3, 4.1 and 4.5).
fn parse(packet: &[u8], frag_off: usize) -> Option<Parsed<'_>> {
    if byte(packet, 0)? >> 4 != 6 {
        return None;
    }
    let payload_len = usize::from(be16(packet, PAYLOAD_LENGTH_FIELD)?);
    if packet.len() != IPV6_HEADER_LEN + payload_len {
        return None;
    }
    let src = be128(packet, 8)?;
    let dst = be128(packet, 24)?;
    // Walk the unfragmentable part to find the Next Header field to patch.
    let mut nh_index = FIXED_NEXT_HEADER;
    let mut pos = IPV6_HEADER_LEN;
    while pos < frag_off {
        let allowed = match byte(packet, nh_index)? {
            // Hop-by-hop only right after the fixed header (RFC 8200 section 4.1).
            NH_HOP_BY_HOP => nh_index == FIXED_NEXT_HEADER,
            NH_ROUTING | NH_DEST_OPTS => true,
            _ => false,
        };
        if !allowed {
            return None;
        }
        let len = (usize::from(byte(packet, pos + 1)?) + 1) * 8;
        nh_index = pos;
        pos += len;
    }
    if pos != frag_off || byte(packet, nh_index)? != NH_FRAGMENT {
        return None;
    }
    let header = packet.get(frag_off..frag_off.checked_add(FRAGMENT_HEADER_LEN)?)?;
    let next_header = byte(header, 0)?;
    let offset_flags = be16(header, 2)?;
    let id = be32(header, 4)?;
    let data = packet.get(frag_off + FRAGMENT_HEADER_LEN..)?;
    Some(Parsed {
        key: Key { src, dst, id },
        // 13-bit offset in 8-byte units, shifted left by 3: already bytes.
        offset: usize::from(offset_flags & 0xfff8),
        more: offset_flags & 1 == 1,
        splice: Splice {
            frag_off,
            nh_index,
            next_header,
        },
        data,
    })
}

/// Whether the first fragment's data holds the rest of the header chain
/// (RFC 8200 section 4.5, RFC 7112): every extension header whole,
/// and the first bytes of a TCP, UDP or ICMPv6 header. Other upper layers,
/// ESP and No Next Header are accepted as they are.
fn chain_complete(mut next_header: u8, data: &[u8]) -> bool {
    let mut pos = 0usize;
    loop {
        let len = match next_header {
            NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS => match byte(data, pos + 1) {
                Some(l) => (usize::from(l) + 1) * 8,
                None => return false,
            },
            // RFC 4302 section 2.2: length in 4-byte units, minus 2.
            NH_AH => match byte(data, pos + 1) {
                Some(l) => (usize::from(l) + 2) * 4,
                None => return false,
            },
            NH_FRAGMENT => FRAGMENT_HEADER_LEN,
            NH_TCP => return data.len() >= pos + TCP_MIN_HEADER,
            NH_UDP | NH_ICMPV6 => return data.len() >= pos + UDP_ICMPV6_MIN_HEADER,
            _ => return true,
        };
        if data.len() < pos + len {
            return false;
        }
        match byte(data, pos) {
            Some(nh) => next_header = nh,
            None => return false,
        }
        // Every header is at least 8 bytes, so this ends.
        pos += len;
    }
}

/// The reassembled packet from the first fragment's unfragmentable part
/// (RFC 8200 section 4.5).
fn assemble(d: &Datagram) -> Option<Vec<u8>> {
    let splice = d.first?;
    let first = d.frags.first().filter(|f| f.offset == 0)?;
    let unfrag = first.bytes.get(..splice.frag_off)?;
    rebuild(
        unfrag,
        splice,
        d.data_len,
        d.frags.iter().map(Fragment::data),
    )
}

/// `unfrag` followed by `parts`, with the Next Header naming the Fragment
/// header replaced and the Payload Length set.
fn rebuild<'a>(
    unfrag: &[u8],
    splice: Splice,
    fragmentable_len: usize,
    parts: impl IntoIterator<Item = &'a [u8]>,
) -> Option<Vec<u8>> {
    let payload_len = unfrag.len().checked_sub(IPV6_HEADER_LEN)? + fragmentable_len;
    let payload_len = u16::try_from(payload_len).ok()?;
    let mut out = Vec::with_capacity(unfrag.len() + fragmentable_len);
    out.extend_from_slice(unfrag);
    *out.get_mut(splice.nh_index)? = splice.next_header;
    out.get_mut(PAYLOAD_LENGTH_FIELD..PAYLOAD_LENGTH_FIELD + 2)?
        .copy_from_slice(&payload_len.to_be_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    Some(out)
}

fn byte(p: &[u8], i: usize) -> Option<u8> {
    p.get(i).copied()
}

fn be16(p: &[u8], i: usize) -> Option<u16> {
    let b = p.get(i..i.checked_add(2)?)?;
    Some(u16::from_be_bytes(b.try_into().ok()?))
}

fn be32(p: &[u8], i: usize) -> Option<u32> {
    let b = p.get(i..i.checked_add(4)?)?;
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

fn be128(p: &[u8], i: usize) -> Option<u128> {
    let b = p.get(i..i.checked_add(16)?)?;
    Some(u128::from_be_bytes(b.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Addr = 0x2001_0db8_0000_0000_0000_0000_0000_0001;
    const DST: Addr = 0x2001_0db8_0000_0000_0000_0000_0000_00fe;
    const SEC: u64 = 1_000_000_000;
    const UDP: u8 = 17;
    const TCP: u8 = 6;

    /// An IPv6 packet from SRC to DST: the fixed header, an optional 8-byte
    /// hop-by-hop header (one PadN option), then `body_len` bytes of `upper`.
    fn original(hop_by_hop: bool, upper: u8, body_len: usize, seed: u8) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[7] = 64;
        p[8..24].copy_from_slice(&SRC.to_be_bytes());
        p[24..40].copy_from_slice(&DST.to_be_bytes());
        if hop_by_hop {
            p[6] = 0;
            p.extend_from_slice(&[upper, 0, 1, 4, 0, 0, 0, 0]);
        } else {
            p[6] = upper;
        }
        p.extend((0..body_len).map(|k| (k as u8).wrapping_mul(31).wrapping_add(seed)));
        set_payload_len(&mut p);
        p
    }

    fn set_payload_len(p: &mut [u8]) {
        let len = u16::try_from(p.len() - 40).unwrap();
        p[4..6].copy_from_slice(&len.to_be_bytes());
    }

    /// One fragment packet: `unfrag` with its Next Header at `nh_index`
    /// changed to 44, a Fragment header, then `data`.
    fn fragment_packet(
        unfrag: &[u8],
        nh_index: usize,
        next_header: u8,
        id: u32,
        offset: usize,
        more: bool,
        data: &[u8],
    ) -> Vec<u8> {
        let mut p = unfrag.to_vec();
        p[nh_index] = 44;
        let field = (offset as u16 & 0xfff8) | u16::from(more);
        p.extend_from_slice(&[next_header, 0]);
        p.extend_from_slice(&field.to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(data);
        set_payload_len(&mut p);
        p
    }

    /// Fragments `orig`, whose unfragmentable part is `unfrag_len` bytes with
    /// the last Next Header at `nh_index`, into pieces of `sizes` bytes.
    fn fragment(
        orig: &[u8],
        unfrag_len: usize,
        nh_index: usize,
        id: u32,
        sizes: &[usize],
    ) -> Vec<Vec<u8>> {
        let (unfrag, rest) = orig.split_at(unfrag_len);
        assert_eq!(sizes.iter().sum::<usize>(), rest.len());
        let mut out = Vec::new();
        let mut off = 0;
        for &size in sizes {
            let more = off + size < rest.len();
            let data = &rest[off..off + size];
            out.push(fragment_packet(
                unfrag,
                nh_index,
                orig[nh_index],
                id,
                off,
                more,
                data,
            ));
            off += size;
        }
        out
    }

    fn limits(f: impl FnOnce(&mut Limits)) -> Reassembler {
        let mut l = Limits::default();
        f(&mut l);
        Reassembler::new(l)
    }

    fn no_report(_: &[u8]) {
        panic!("no first fragment expected");
    }

    /// Recomputes everything the reassembler tracks and compares.
    fn check_invariants(r: &Reassembler) {
        let (mut seen, mut active, mut tombs, mut bytes) = (0, 0, 0, 0);
        let (mut prev, mut cur, mut last_deadline) = (NIL, r.head, 0);
        while cur != NIL {
            let e = &r.entries[cur];
            assert_eq!(e.prev, prev);
            assert_eq!(r.map.get(&e.key), Some(&cur));
            assert!(e.deadline_ns >= last_deadline, "deadline order");
            last_deadline = e.deadline_ns;
            match &e.body {
                Body::Free => panic!("free entry on the list"),
                Body::Tombstone(_) => tombs += 1,
                Body::Active(d) => {
                    active += 1;
                    bytes += d.bytes;
                    assert!(!d.frags.is_empty());
                    assert!(d.frags.len() <= r.limits.max_fragments);
                    let held: usize = d.frags.iter().map(|f| f.bytes.len()).sum();
                    assert_eq!(held, d.bytes);
                    let data: usize = d.frags.iter().map(|f| f.data().len()).sum();
                    assert_eq!(data, d.data_len);
                    for w in d.frags.windows(2) {
                        assert!(w[0].end() <= w[1].offset, "sorted, no overlap");
                    }
                    if let Some(total) = d.total {
                        assert!(d.frags.last().unwrap().end() <= total);
                    }
                    assert_eq!(d.first.is_some(), d.frags[0].offset == 0);
                }
            }
            seen += 1;
            assert!(seen <= r.entries.len());
            prev = cur;
            cur = e.next;
        }
        assert_eq!(r.tail, prev);
        assert_eq!(r.map.len(), seen);
        assert_eq!(seen + r.free.len(), r.entries.len());
        assert_eq!(active, r.in_progress());
        assert_eq!(tombs, r.tombstones());
        assert_eq!(bytes, r.bytes_held());
        assert!(bytes <= r.limits.max_bytes);
        assert!(r.map.capacity() >= r.entries.len(), "index never regrows");
    }

    #[test]
    fn two_fragments_in_order_and_reversed() {
        let orig = original(false, UDP, 100, 1);
        let frags = fragment(&orig, 40, 6, 7, &[56, 44]);
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&frags[0], 40, 0), Outcome::Held);
        assert_eq!(r.in_progress(), 1);
        assert_eq!(r.bytes_held(), frags[0].len());
        check_invariants(&r);
        assert_eq!(r.input(&frags[1], 40, 1), Outcome::Complete(orig.clone()));
        assert_eq!((r.in_progress(), r.bytes_held()), (0, 0));
        assert_eq!(r.input(&frags[1], 40, 2), Outcome::Held);
        assert_eq!(r.input(&frags[0], 40, 3), Outcome::Complete(orig));
        assert_eq!(r.counters().reassembled, 2);
        assert_eq!(r.counters().received, 4);
        check_invariants(&r);
    }

    #[test]
    fn three_fragments_every_order() {
        let orig = original(false, UDP, 16 + 24 + 13, 2);
        let frags = fragment(&orig, 40, 6, 0xdead_beef, &[16, 24, 13]);
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let mut r = Reassembler::new(Limits::default());
        for order in orders {
            assert_eq!(r.input(&frags[order[0]], 40, 0), Outcome::Held);
            assert_eq!(r.input(&frags[order[1]], 40, 0), Outcome::Held);
            assert_eq!(
                r.input(&frags[order[2]], 40, 0),
                Outcome::Complete(orig.clone()),
                "order {order:?}"
            );
            check_invariants(&r);
        }
        assert_eq!(r.bytes_held(), 0);
    }

    #[test]
    fn hop_by_hop_unfragmentable_part_is_kept() {
        let orig = original(true, UDP, 60, 3);
        let frags = fragment(&orig, 48, 40, 9, &[32, 28]);
        assert_eq!((frags[0][6], frags[0][40], frags[0][48]), (0, 44, UDP));
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&frags[1], 48, 0), Outcome::Held);
        let Outcome::Complete(out) = r.input(&frags[0], 48, 0) else {
            panic!("not complete");
        };
        assert_eq!(out, orig);
        assert_eq!(
            (out[6], out[40]),
            (0, UDP),
            "hop-by-hop kept, next header fixed"
        );
    }

    #[test]
    fn atomic_fragment_is_processed_alone() {
        let orig = original(false, UDP, 30, 4);
        let atomic = fragment_packet(&orig[..40], 6, UDP, 5, 0, false, &orig[40..]);
        let other = original(false, UDP, 40, 5);
        let frags = fragment(&other, 40, 6, 5, &[24, 16]);
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&frags[0], 40, 0), Outcome::Held);
        assert_eq!(r.input(&atomic, 40, 0), Outcome::Atomic(orig.clone()));
        assert_eq!(
            r.in_progress(),
            1,
            "same Identification in progress untouched"
        );
        assert_eq!(r.input(&frags[1], 40, 0), Outcome::Complete(other));
        // Not blocked by a tombstone of its Identification either.
        let bad = fragment_packet(&orig[..40], 6, UDP, 5, 8, true, &[0; 8]);
        let bad2 = fragment_packet(&orig[..40], 6, UDP, 5, 0, true, &[0; 16]);
        assert_eq!(r.input(&bad, 40, 0), Outcome::Held);
        assert_eq!(r.input(&bad2, 40, 0), Outcome::Dropped(DropReason::Overlap));
        assert_eq!(r.input(&atomic, 40, 0), Outcome::Atomic(orig.clone()));
        // With a hop-by-hop header, and with an empty payload.
        let hbh = original(true, UDP, 12, 6);
        let atomic = fragment_packet(&hbh[..48], 40, UDP, 1, 0, false, &hbh[48..]);
        assert_eq!(r.input(&atomic, 48, 0), Outcome::Atomic(hbh));
        let empty = original(false, 59, 0, 0);
        let atomic = fragment_packet(&empty, 6, 59, 1, 0, false, &[]);
        assert_eq!(r.input(&atomic, 40, 0), Outcome::Atomic(empty));
        assert_eq!(r.counters().atomic, 4);
    }

    #[test]
    fn overlap_discards_datagram_and_tombstones_key() {
        let orig = original(false, UDP, 64, 7);
        let frags = fragment(&orig, 40, 6, 11, &[24, 24, 16]);
        let overlapping = fragment_packet(&orig[..40], 6, UDP, 11, 16, true, &[9; 16]);
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&frags[0], 40, 0), Outcome::Held);
        assert_eq!(
            r.input(&overlapping, 40, SEC),
            Outcome::Dropped(DropReason::Overlap)
        );
        assert_eq!((r.in_progress(), r.tombstones(), r.bytes_held()), (0, 1, 0));
        assert_eq!(r.counters().drops(DropReason::Overlap), 2);
        // A complete, valid set during the tombstone is dropped too.
        for (k, f) in frags.iter().enumerate() {
            let t = 30 * SEC + k as u64;
            assert_eq!(r.input(f, 40, t), Outcome::Dropped(DropReason::Overlap));
        }
        assert_eq!(
            r.input(&frags[0], 40, 60 * SEC - 1),
            Outcome::Dropped(DropReason::Overlap)
        );
        assert_eq!(r.counters().drops(DropReason::Overlap), 6);
        assert_eq!(r.in_progress(), 0);
        check_invariants(&r);
        // The tombstone lasts until the datagram would have timed out.
        assert_eq!(
            r.expire(60 * SEC, &mut no_report),
            0,
            "tombstones are not datagrams"
        );
        assert_eq!(r.tombstones(), 0);
        for f in &frags[..2] {
            assert_eq!(r.input(f, 40, 60 * SEC), Outcome::Held);
        }
        assert_eq!(r.input(&frags[2], 40, 60 * SEC), Outcome::Complete(orig));
    }

    #[test]
    fn tombstone_ends_without_expire_call() {
        let orig = original(false, UDP, 32, 8);
        let frags = fragment(&orig, 40, 6, 12, &[16, 16]);
        let bad = fragment_packet(&orig[..40], 6, UDP, 12, 8, true, &[1; 8]);
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&frags[0], 40, 0), Outcome::Held);
        assert_eq!(
            r.input(&bad, 40, 50 * SEC),
            Outcome::Dropped(DropReason::Overlap)
        );
        assert_eq!(r.input(&frags[1], 40, 60 * SEC), Outcome::Held);
        assert_eq!(r.input(&frags[0], 40, 60 * SEC), Outcome::Complete(orig));
        assert_eq!(r.tombstones(), 0);
    }

    #[test]
    fn exact_duplicates_are_dropped_and_datagram_goes_on() {
        let orig = original(false, UDP, 48, 9);
        let frags = fragment(&orig, 40, 6, 13, &[16, 16, 16]);
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&frags[0], 40, 0), Outcome::Held);
        assert_eq!(
            r.input(&frags[0], 40, 0),
            Outcome::Dropped(DropReason::Duplicate)
        );
        assert_eq!(r.input(&frags[2], 40, 0), Outcome::Held);
        assert_eq!(
            r.input(&frags[2], 40, 0),
            Outcome::Dropped(DropReason::Duplicate)
        );
        assert_eq!(r.bytes_held(), frags[0].len() + 16);
        assert_eq!(r.input(&frags[1], 40, 0), Outcome::Complete(orig));
        assert_eq!(r.counters().drops(DropReason::Duplicate), 2);
    }

    #[test]
    fn same_offset_with_other_data_or_flag_is_overlap() {
        let orig = original(false, UDP, 32, 10);
        let frags = fragment(&orig, 40, 6, 14, &[16, 16]);
        let mut r = Reassembler::new(Limits::default());
        let mut changed = frags[1].clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(r.input(&frags[1], 40, 0), Outcome::Held);
        assert_eq!(
            r.input(&changed, 40, 0),
            Outcome::Dropped(DropReason::Overlap)
        );
        // Same data, M = 0 where the held copy had M = 1.
        let held = fragment_packet(&orig[..40], 6, UDP, 15, 16, true, &orig[56..]);
        let last = fragment_packet(&orig[..40], 6, UDP, 15, 16, false, &orig[56..]);
        assert_eq!(r.input(&held, 40, 0), Outcome::Held);
        assert_eq!(r.input(&last, 40, 0), Outcome::Dropped(DropReason::Overlap));
        check_invariants(&r);
    }

    #[test]
    fn timeout_frees_state_and_reports_first_fragment() {
        let orig = original(false, UDP, 48, 11);
        let frags = fragment(&orig, 40, 6, 16, &[16, 16, 16]);
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&frags[0], 40, SEC), Outcome::Held);
        assert_eq!(r.input(&frags[2], 40, 2 * SEC), Outcome::Held);
        let mut reported = Vec::new();
        assert_eq!(
            r.expire(61 * SEC - 1, &mut |p| reported.push(p.to_vec())),
            0
        );
        assert!(reported.is_empty());
        assert_eq!(r.expire(61 * SEC, &mut |p| reported.push(p.to_vec())), 1);
        assert_eq!(reported, vec![frags[0].clone()]);
        assert_eq!((r.in_progress(), r.bytes_held(), r.tombstones()), (0, 0, 0));
        assert_eq!(r.counters().timed_out, 1);
        check_invariants(&r);
        // The key is free again.
        for f in &frags[..2] {
            assert_eq!(r.input(f, 40, 62 * SEC), Outcome::Held);
        }
        assert_eq!(r.input(&frags[2], 40, 62 * SEC), Outcome::Complete(orig));
    }

    #[test]
    fn timeout_without_first_fragment_reports_nothing() {
        let orig = original(false, UDP, 32, 12);
        let frags = fragment(&orig, 40, 6, 17, &[16, 16]);
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&frags[1], 40, 0), Outcome::Held);
        assert_eq!(r.expire(60 * SEC, &mut no_report), 1);
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn stale_datagram_is_never_completed() {
        let orig = original(false, UDP, 32, 13);
        let frags = fragment(&orig, 40, 6, 18, &[16, 16]);
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&frags[0], 40, 0), Outcome::Held);
        assert_eq!(r.input(&frags[1], 40, 60 * SEC), Outcome::Held);
        assert_eq!(r.counters().timed_out, 1);
        assert_eq!(r.in_progress(), 1);
        assert_eq!(r.bytes_held(), 16);
        check_invariants(&r);
    }

    #[test]
    fn full_table_evicts_oldest() {
        let mut r = limits(|l| l.max_datagrams = 2);
        let origs: Vec<_> = (0..3).map(|k| original(false, UDP, 32, k)).collect();
        let frags: Vec<_> = (0..3u32)
            .map(|k| fragment(&origs[k as usize], 40, 6, k, &[16, 16]))
            .collect();
        for (k, f) in frags.iter().enumerate() {
            assert_eq!(r.input(&f[0], 40, k as u64), Outcome::Held);
        }
        assert_eq!(r.in_progress(), 2);
        assert_eq!(r.counters().drops(DropReason::TableFull), 1);
        check_invariants(&r);
        assert_eq!(
            r.input(&frags[2][1], 40, 3),
            Outcome::Complete(origs[2].clone())
        );
        assert_eq!(
            r.input(&frags[1][1], 40, 4),
            Outcome::Complete(origs[1].clone())
        );
        // Datagram 0 lost its first fragment: its second one starts afresh.
        assert_eq!(r.input(&frags[0][1], 40, 5), Outcome::Held);
        let mut n = 0;
        assert_eq!(r.expire(u64::MAX, &mut |_| n += 1), 1);
        assert_eq!(n, 0);
    }

    #[test]
    fn zero_datagrams_drops_as_table_full() {
        let mut r = limits(|l| l.max_datagrams = 0);
        let orig = original(false, UDP, 32, 14);
        let frags = fragment(&orig, 40, 6, 19, &[16, 16]);
        assert_eq!(
            r.input(&frags[0], 40, 0),
            Outcome::Dropped(DropReason::TableFull)
        );
        let atomic = fragment(&orig, 40, 6, 19, &[32]);
        assert_eq!(r.input(&atomic[0], 40, 0), Outcome::Atomic(orig));
    }

    #[test]
    fn memory_limit_drops_datagram_that_cannot_fit() {
        let orig = original(false, UDP, 96 + 64, 15);
        let frags = fragment(&orig, 40, 6, 20, &[96, 64]);
        assert_eq!(frags[0].len(), 144);
        let mut r = limits(|l| l.max_bytes = 143);
        assert_eq!(
            r.input(&frags[0], 40, 0),
            Outcome::Dropped(DropReason::MemoryFull)
        );
        assert_eq!(r.in_progress(), 0);
        let mut r = limits(|l| l.max_bytes = 200);
        assert_eq!(r.input(&frags[0], 40, 0), Outcome::Held);
        assert_eq!(
            r.input(&frags[1], 40, 0),
            Outcome::Dropped(DropReason::MemoryFull)
        );
        assert_eq!((r.in_progress(), r.tombstones(), r.bytes_held()), (0, 1, 0));
        assert_eq!(r.counters().drops(DropReason::MemoryFull), 2);
        assert_eq!(
            r.input(&frags[0], 40, 0),
            Outcome::Dropped(DropReason::MemoryFull)
        );
    }

    #[test]
    fn memory_limit_evicts_oldest_datagram() {
        let a = original(false, UDP, 96 + 24, 16);
        let b = original(false, UDP, 96 + 24, 17);
        let fa = fragment(&a, 40, 6, 1, &[96, 24]);
        let fb = fragment(&b, 40, 6, 2, &[96, 24]);
        let c = original(false, UDP, 48, 18);
        let fc = fragment(&c, 40, 6, 3, &[24, 24]);
        let mut r = limits(|l| l.max_bytes = 300);
        assert_eq!(r.input(&fa[0], 40, 0), Outcome::Held);
        assert_eq!(r.input(&fb[0], 40, 1), Outcome::Held);
        assert_eq!(r.bytes_held(), 288);
        assert_eq!(r.input(&fc[1], 40, 2), Outcome::Held);
        assert_eq!(
            (r.in_progress(), r.tombstones(), r.bytes_held()),
            (2, 1, 168)
        );
        assert_eq!(r.counters().drops(DropReason::MemoryFull), 1);
        assert_eq!(
            r.input(&fa[1], 40, 3),
            Outcome::Dropped(DropReason::MemoryFull)
        );
        assert_eq!(r.input(&fb[1], 40, 4), Outcome::Complete(b));
        assert_eq!(r.input(&fc[0], 40, 5), Outcome::Complete(c));
        check_invariants(&r);
    }

    #[test]
    fn too_many_fragments_discards_datagram() {
        let orig = original(false, UDP, 24, 19);
        let frags = fragment(&orig, 40, 6, 21, &[8, 8, 8]);
        let mut r = limits(|l| l.max_fragments = 2);
        assert_eq!(r.input(&frags[0], 40, 0), Outcome::Held);
        assert_eq!(r.input(&frags[1], 40, 0), Outcome::Held);
        assert_eq!(
            r.input(&frags[2], 40, 0),
            Outcome::Dropped(DropReason::TooManyFragments)
        );
        assert_eq!(r.counters().drops(DropReason::TooManyFragments), 3);
        assert_eq!((r.in_progress(), r.bytes_held()), (0, 0));
        let mut r = limits(|l| l.max_fragments = 0);
        assert_eq!(
            r.input(&frags[0], 40, 0),
            Outcome::Dropped(DropReason::TooManyFragments)
        );
    }

    #[test]
    fn middle_fragment_not_multiple_of_8() {
        let orig = original(false, UDP, 36, 20);
        let frags = fragment(&orig, 40, 6, 22, &[16, 12, 8]);
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&frags[0], 40, 0), Outcome::Held);
        let dropped = r.input(&frags[1], 40, 0);
        assert_eq!(dropped, Outcome::Dropped(DropReason::LengthNotMultipleOf8));
        assert_eq!(
            DropReason::LengthNotMultipleOf8.parameter_problem(40),
            Some((0, 4)),
            "pointer at Payload Length"
        );
        assert_eq!(r.in_progress(), 1, "only the fragment is dropped");
    }

    #[test]
    fn offset_plus_length_over_65535() {
        let unfrag = original(false, UDP, 0, 0);
        let mut r = Reassembler::new(Limits::default());
        let over = fragment_packet(&unfrag, 6, UDP, 23, 65528, false, &[0; 8]);
        assert_eq!(
            r.input(&over, 40, 0),
            Outcome::Dropped(DropReason::OffsetTooLarge)
        );
        assert_eq!(
            DropReason::OffsetTooLarge.parameter_problem(40),
            Some((0, 42))
        );
        let fits = fragment_packet(&unfrag, 6, UDP, 23, 65528, false, &[0; 7]);
        assert_eq!(r.input(&fits, 40, 0), Outcome::Held);
        // The fragment's own unfragmentable part counts.
        let hbh = original(true, UDP, 0, 0);
        let over = fragment_packet(&hbh, 40, UDP, 24, 65480, false, &[0; 48]);
        assert_eq!(
            r.input(&over, 48, 0),
            Outcome::Dropped(DropReason::OffsetTooLarge)
        );
        assert_eq!(
            DropReason::OffsetTooLarge.parameter_problem(48),
            Some((0, 50))
        );
        assert_eq!(DropReason::Overlap.parameter_problem(40), None);
    }

    #[test]
    fn largest_datagram_reassembles() {
        let orig = original(false, UDP, 65_535, 21);
        let mut sizes = vec![1232; 53];
        sizes.push(65_535 - 53 * 1232);
        let mut frags = fragment(&orig, 40, 6, 25, &sizes);
        frags.reverse();
        frags.swap(3, 40);
        let mut r = Reassembler::new(Limits::default());
        let (last, rest) = frags.split_last().unwrap();
        for f in rest {
            assert_eq!(r.input(f, 40, 0), Outcome::Held);
        }
        assert_eq!(r.input(last, 40, 0), Outcome::Complete(orig));
    }

    #[test]
    fn fragments_beyond_known_end_discard_datagram() {
        let unfrag = original(false, UDP, 0, 0);
        let last = fragment_packet(&unfrag, 6, UDP, 26, 16, false, &[1; 8]);
        let past = fragment_packet(&unfrag, 6, UDP, 26, 24, true, &[2; 8]);
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&last, 40, 0), Outcome::Held);
        assert_eq!(
            r.input(&past, 40, 0),
            Outcome::Dropped(DropReason::BeyondEnd)
        );
        assert_eq!(r.tombstones(), 1);
        // A second last fragment with another end.
        let last2 = fragment_packet(&unfrag, 6, UDP, 27, 16, false, &[1; 4]);
        let other = fragment_packet(&unfrag, 6, UDP, 27, 32, false, &[1; 4]);
        assert_eq!(r.input(&last2, 40, 0), Outcome::Held);
        assert_eq!(
            r.input(&other, 40, 0),
            Outcome::Dropped(DropReason::BeyondEnd)
        );
        // A last fragment ending before held data.
        let far = fragment_packet(&unfrag, 6, UDP, 28, 64, true, &[1; 8]);
        let short = fragment_packet(&unfrag, 6, UDP, 28, 8, false, &[1; 8]);
        assert_eq!(r.input(&far, 40, 0), Outcome::Held);
        assert_eq!(
            r.input(&short, 40, 0),
            Outcome::Dropped(DropReason::BeyondEnd)
        );
        // M = 1 ending exactly at the known end.
        let last3 = fragment_packet(&unfrag, 6, UDP, 29, 16, false, &[1; 8]);
        let at_end = fragment_packet(&unfrag, 6, UDP, 29, 8, true, &[1; 16]);
        assert_eq!(r.input(&last3, 40, 0), Outcome::Held);
        assert_eq!(
            r.input(&at_end, 40, 0),
            Outcome::Dropped(DropReason::BeyondEnd)
        );
        assert_eq!(r.in_progress(), 0);
        check_invariants(&r);
    }

    #[test]
    fn first_fragment_unfragmentable_part_decides_final_size() {
        let plain = original(false, UDP, 0, 0);
        let hbh = original(true, UDP, 0, 0);
        let last = fragment_packet(&plain, 6, UDP, 30, 65520, false, &[0; 15]);
        let first = fragment_packet(&hbh, 40, UDP, 30, 0, true, &[0; 8]);
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&last, 40, 0), Outcome::Held);
        let dropped = r.input(&first, 48, 0);
        assert_eq!(dropped, Outcome::Dropped(DropReason::ReassembledTooLarge));
        // And the other way round.
        let first = fragment_packet(&hbh, 40, UDP, 31, 0, true, &[0; 8]);
        let last = fragment_packet(&plain, 6, UDP, 31, 65520, false, &[0; 15]);
        assert_eq!(r.input(&first, 48, 0), Outcome::Held);
        let dropped = r.input(&last, 40, 0);
        assert_eq!(dropped, Outcome::Dropped(DropReason::ReassembledTooLarge));
        assert_eq!((r.in_progress(), r.tombstones()), (0, 2));
    }

    #[test]
    fn first_fragment_must_hold_header_chain() {
        let unfrag = original(false, TCP, 0, 0);
        let mut r = Reassembler::new(Limits::default());
        let short = fragment_packet(&unfrag, 6, TCP, 32, 0, true, &[0; 16]);
        assert_eq!(
            r.input(&short, 40, 0),
            Outcome::Dropped(DropReason::IncompleteFirst)
        );
        assert_eq!(
            DropReason::IncompleteFirst.parameter_problem(40),
            Some((3, 0))
        );
        let whole = fragment_packet(&unfrag, 6, TCP, 33, 0, true, &[0; 24]);
        assert_eq!(r.input(&whole, 40, 0), Outcome::Held);
        // Destination options (16 bytes) then UDP.
        let mut dst_udp = vec![UDP, 1];
        dst_udp.extend_from_slice(&[0; 14]);
        dst_udp.extend_from_slice(&[0; 8]);
        let cut = fragment_packet(&unfrag, 6, 60, 34, 0, true, &dst_udp[..8]);
        assert_eq!(
            r.input(&cut, 40, 0),
            Outcome::Dropped(DropReason::IncompleteFirst)
        );
        let cut = fragment_packet(&unfrag, 6, 60, 35, 0, true, &dst_udp[..16]);
        assert_eq!(
            r.input(&cut, 40, 0),
            Outcome::Dropped(DropReason::IncompleteFirst)
        );
        let whole = fragment_packet(&unfrag, 6, 60, 36, 0, true, &dst_udp);
        assert_eq!(r.input(&whole, 40, 0), Outcome::Held);
        // Non-first fragments are not checked.
        let later = fragment_packet(&unfrag, 6, TCP, 37, 8, true, &[0; 8]);
        assert_eq!(r.input(&later, 40, 0), Outcome::Held);
    }

    #[test]
    fn mismatched_unfragmentable_parts_use_first_fragment() {
        let with_hbh = original(true, UDP, 32, 22);
        let plain = {
            let mut p = original(false, UDP, 0, 0);
            p.extend_from_slice(&with_hbh[48..]);
            set_payload_len(&mut p);
            p
        };
        let first = fragment(&with_hbh, 48, 40, 38, &[16, 16]).remove(0);
        let second = fragment(&plain, 40, 6, 38, &[16, 16]).remove(1);
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.input(&second, 40, 0), Outcome::Held);
        assert_eq!(r.input(&first, 48, 0), Outcome::Complete(with_hbh.clone()));
        let first = fragment(&plain, 40, 6, 39, &[16, 16]).remove(0);
        let second = fragment(&with_hbh, 48, 40, 39, &[16, 16]).remove(1);
        assert_eq!(r.input(&first, 40, 0), Outcome::Held);
        assert_eq!(r.input(&second, 48, 0), Outcome::Complete(plain));
    }

    #[test]
    fn malformed_packets() {
        let orig = original(true, UDP, 32, 23);
        let good = fragment(&orig, 48, 40, 40, &[16, 16]).remove(1);
        let mut r = Reassembler::new(Limits::default());
        let malformed = Outcome::Dropped(DropReason::Malformed);
        assert_eq!(r.input(&[], 48, 0), malformed);
        assert_eq!(r.input(&good[..39], 48, 0), malformed);
        assert_eq!(r.input(&good[..good.len() - 1], 48, 0), malformed, "length");
        for frag_off in [0, 40, 41, 47, 49, 56, good.len(), usize::MAX] {
            assert_eq!(
                r.input(&good, frag_off, 0),
                malformed,
                "frag_off {frag_off}"
            );
        }
        let mut v4 = good.clone();
        v4[0] = 0x40;
        assert_eq!(r.input(&v4, 48, 0), malformed);
        let mut not44 = good.clone();
        not44[40] = 60;
        assert_eq!(r.input(&not44, 48, 0), malformed);
        // Hop-by-hop after a routing header.
        let mut late_hbh = good.clone();
        late_hbh[6] = 43;
        let mut with_rh = late_hbh[..40].to_vec();
        with_rh.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        with_rh.extend_from_slice(&late_hbh[40..]);
        set_payload_len(&mut with_rh);
        assert_eq!(r.input(&with_rh, 56, 0), malformed);
        // Routing then destination options is a valid unfragmentable part.
        let mut rh_dst = good[..40].to_vec();
        rh_dst[6] = 43;
        rh_dst.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0, 44, 0, 1, 4, 0, 0, 0, 0]);
        rh_dst.extend_from_slice(&good[48..]);
        set_payload_len(&mut rh_dst);
        assert_eq!(r.input(&rh_dst, 56, 0), Outcome::Held);
        // A non-atomic fragment without data.
        let empty = fragment_packet(&orig[..48], 40, UDP, 41, 8, false, &[]);
        assert_eq!(r.input(&empty, 48, 0), malformed);
        assert_eq!(r.counters().drops(DropReason::Malformed), 15);
    }

    #[test]
    fn reason_names_are_stable_and_unique() {
        assert_eq!(DropReason::ALL.len(), DropReason::COUNT);
        let mut names = std::collections::HashSet::new();
        for (k, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), k);
            let name = reason.name();
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert!(names.insert(name));
        }
        assert_eq!(DropReason::Overlap.name(), "overlap");
        assert_eq!(DropReason::TableFull.name(), "table_full");
    }

    #[test]
    fn limits_are_clamped_and_defaults_follow_rfc() {
        let l = Limits::default();
        assert_eq!(l.timeout_ns, 60 * SEC);
        let r = limits(|l| {
            l.max_datagrams = usize::MAX;
            l.max_fragments = usize::MAX;
        });
        assert_eq!(r.limits().max_datagrams, MAX_DATAGRAMS_CAP);
        assert_eq!(r.limits().max_fragments, MAX_FRAGMENTS_CAP);
    }

    /// xorshift64: enough randomness for fuzzing, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    #[test]
    fn fuzz_random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut r = limits(|l| {
            l.max_datagrams = 8;
            l.max_bytes = 4096;
        });
        let base = fragment(&original(true, UDP, 48, 0), 48, 40, 1, &[24, 24]);
        for n in 0..50_000u64 {
            let mut p: Vec<u8> = if rng.chance(50) {
                base[rng.below(2) as usize].clone()
            } else {
                let len = rng.below(120) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            };
            let flips = rng.below(6);
            for _ in 0..flips {
                if !p.is_empty() {
                    let at = rng.below(p.len() as u64) as usize;
                    p[at] = rng.next() as u8;
                }
            }
            if rng.chance(50) && p.len() >= 40 {
                // Get past the cheapest checks more often.
                p[0] = 0x60 | (p[0] & 0x0f);
                set_payload_len(&mut p);
                if rng.chance(50) {
                    p[6] = 44;
                }
            }
            let frag_off = match rng.below(4) {
                0 => 40,
                1 => 48,
                2 => rng.below(200) as usize,
                _ => rng.next() as usize,
            };
            let _ = r.input(&p, frag_off, n * 1_000_000);
            if rng.chance(5) {
                r.expire(n * 1_000_000, &mut |_| {});
            }
            check_invariants(&r);
        }
    }

    #[test]
    fn fuzz_random_fragments_keep_bounds() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut r = limits(|l| {
            l.max_datagrams = 8;
            l.max_bytes = 900;
            l.max_fragments = 5;
        });
        let plain = original(false, UDP, 0, 0);
        let hbh = original(true, UDP, 0, 0);
        let mut now = 0u64;
        let mut reported = 0usize;
        for _ in 0..50_000 {
            let with_hbh = rng.chance(30);
            let (unfrag, nh_index) = if with_hbh { (&hbh, 40) } else { (&plain, 6) };
            let mut unfrag = unfrag.clone();
            let src = rng.below(2) as u8;
            unfrag[23] = src;
            let id = rng.below(5) as u32;
            let p = if rng.chance(85) {
                // Fragments of well-formed datagrams of 2 to 6 slots of 48
                // bytes, so most keys can complete, some need too many
                // fragments, and repeats are exact duplicates.
                let slots = 2 + (id as usize + usize::from(src)) % 5;
                let slot = rng.below(slots as u64) as usize;
                let more = slot + 1 < slots;
                let len = if more { 48 } else { 8 + id as usize * 5 };
                let data = vec![(id * 7) as u8 + slot as u8; len];
                fragment_packet(&unfrag, nh_index, UDP, id, slot * 48, more, &data)
            } else {
                let offset = if rng.chance(20) {
                    rng.below(8192) as usize * 8
                } else {
                    rng.below(12) as usize * 8
                };
                let len = if rng.chance(80) {
                    rng.below(10) as usize * 8
                } else {
                    rng.below(300) as usize
                };
                let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let next_header = [UDP, TCP, 60, 58, rng.next() as u8][rng.below(5) as usize];
                fragment_packet(
                    &unfrag,
                    nh_index,
                    next_header,
                    id,
                    offset,
                    rng.chance(60),
                    &data,
                )
            };
            now += if rng.chance(1) {
                30 * SEC
            } else {
                rng.below(SEC / 10)
            };
            match r.input(&p, unfrag.len(), now) {
                Outcome::Complete(out) | Outcome::Atomic(out) => {
                    assert_eq!(
                        usize::from(u16::from_be_bytes([out[4], out[5]])),
                        out.len() - 40
                    );
                    assert_eq!(&out[8..40], &unfrag[8..40]);
                }
                Outcome::Held | Outcome::Dropped(_) => {}
            }
            if rng.chance(10) {
                r.expire(now, &mut |first| {
                    let fo = if first[6] == 44 { 40 } else { 48 };
                    assert_eq!(&first[fo + 2..fo + 4], &[0, 1], "offset 0, M = 1");
                    reported += 1;
                });
            }
            check_invariants(&r);
        }
        let c = r.counters();
        assert!(c.reassembled > 0 && c.atomic > 0 && c.timed_out > 0 && reported > 0);
        // Reassembled-too-large needs fragments at the 64 KiB edge that
        // disagree on their unfragmentable part; it has its own test.
        for reason in DropReason::ALL {
            let rare = *reason == DropReason::ReassembledTooLarge;
            assert!(rare || c.drops(*reason) > 0, "{}", reason.name());
        }
        r.expire(u64::MAX, &mut |_| {});
        assert_eq!((r.in_progress(), r.bytes_held(), r.tombstones()), (0, 0, 0));
    }

    #[test]
    fn fuzz_interleaved_datagrams_reassemble_exactly() {
        let mut rng = Rng(0xfeed_f00d_1234_5678);
        let mut r = Reassembler::new(Limits::default());
        for round in 0..300u64 {
            let count = 1 + rng.below(6) as usize;
            let mut expected = Vec::new();
            let mut queue = Vec::new();
            for k in 0..count {
                let with_hbh = rng.chance(50);
                let body = 1 + rng.below(3000) as usize;
                let orig = original(with_hbh, UDP, body, rng.next() as u8);
                let (unfrag_len, nh_index) = if with_hbh { (48, 40) } else { (40, 6) };
                let mut sizes = Vec::new();
                let mut left = body;
                while left > 0 {
                    let size = (8 * (1 + rng.below(60)) as usize).min(left);
                    sizes.push(size);
                    left -= size;
                }
                let id = (round * 8 + k as u64) as u32;
                for f in fragment(&orig, unfrag_len, nh_index, id, &sizes) {
                    queue.push((f.clone(), unfrag_len));
                    if rng.chance(10) {
                        queue.push((f, unfrag_len));
                    }
                }
                expected.push(orig);
            }
            // Fisher-Yates.
            for i in (1..queue.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                queue.swap(i, j);
            }
            let mut done = Vec::new();
            let now = round * 100 * SEC;
            for (f, frag_off) in &queue {
                match r.input(f, *frag_off, now) {
                    Outcome::Complete(out) | Outcome::Atomic(out) => done.push(out),
                    Outcome::Held | Outcome::Dropped(DropReason::Duplicate) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            // A duplicate arriving after its datagram completed starts a new
            // one, which times out or, if every fragment was duplicated,
            // completes again: the network delivered the datagram twice.
            expected.sort();
            expected.dedup();
            done.sort();
            done.dedup();
            assert_eq!(done, expected);
            r.expire(now + 60 * SEC, &mut |_| {});
            assert_eq!((r.in_progress(), r.bytes_held()), (0, 0));
        }
    }
}
