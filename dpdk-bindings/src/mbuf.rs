//! Owned packet buffers.
//!
//! Field access is plain Rust over bindgen's `struct rte_mbuf` (no FFI call per packet);
//! only alloc and free go through DPDK.

use std::ptr::NonNull;
use std::slice;

use crate::mempool::Mempool;
use crate::sys;

/// One owned packet buffer (`struct rte_mbuf *`), freed back to its pool on drop.
///
/// `#[repr(transparent)]` over `NonNull<rte_mbuf>`, so a `Vec<Mbuf>` is the pointer array
/// that DPDK's burst functions read and write.
///
/// Segments: the data accessors ([`data`](Mbuf::data), [`len`](Mbuf::len),
/// [`headroom`](Mbuf::headroom), [`tailroom`](Mbuf::tailroom), [`prepend`](Mbuf::prepend),
/// [`adj`](Mbuf::adj)) work on the **first segment** only, as DPDK's `rte_pktmbuf_mtod` and
/// friends do; [`trim`](Mbuf::trim) and [`append`](Mbuf::append) work on the last segment,
/// as `rte_pktmbuf_trim`/`append` do; [`truncate`](Mbuf::truncate) and
/// [`pkt_len`](Mbuf::pkt_len) see the whole chain. Nothing reads out of bounds on a chained
/// mbuf, but code that assumes the whole packet is in `data()` must check
/// [`nb_segs`](Mbuf::nb_segs)` == 1` (or `len() == pkt_len()`). Mbufs from [`Mempool`]
/// allocations and from ports configured by this crate (frame size checked against the
/// pool's data room, no scatter) are single-segment; only [`chain`](Mbuf::chain) makes
/// chains.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the only reference to its rte_mbuf (refcnt 1, never cloned by this
// crate), so moving it to another thread moves sole ownership; freeing it from any thread is
// allowed by DPDK (the pool is thread safe and outlives it, see Mempool's Drop).
unsafe impl Send for Mbuf {}
// SAFETY: &Mbuf only allows reads of the mbuf and its data; all writes need &mut Mbuf.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Takes ownership of an mbuf handed over by DPDK (alloc or RX).
    pub(crate) fn from_owned(ptr: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf(ptr)
    }

    /// Allocates an mbuf from `pool` and copies `bytes` into it; `None` if the pool is empty
    /// or `bytes` does not fit the data room after the headroom.
    pub fn from_slice(pool: &Mempool, bytes: &[u8]) -> Option<Mbuf> {
        let mut m = pool.alloc()?;
        m.append(bytes.len())?.copy_from_slice(bytes);
        Some(m)
    }

    fn hdr(&self) -> &sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf that no one else accesses; the shared borrow of
        // the header lives no longer than &self.
        unsafe { self.0.as_ref() }
    }

    fn hdr_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf exclusively and &mut self is unique.
        unsafe { self.0.as_mut() }
    }

    /// The last segment: self for the usual single-segment mbuf.
    fn last_seg_mut(&mut self) -> &mut sys::rte_mbuf {
        let mut seg = self.0.as_ptr();
        if self.hdr().nb_segs > 1 {
            // SAFETY: a chain's `next` pointers lead to valid segments owned with the head
            // and end with NULL (DPDK keeps nb_segs and the chain consistent).
            unsafe {
                while !(*seg).next.is_null() {
                    seg = (*seg).next;
                }
            }
        }
        // SAFETY: seg is a segment of the chain we own exclusively through &mut self.
        unsafe { &mut *seg }
    }

    /// The application's private area of the mbuf (`rte_mbuf_to_priv`, `priv_size` bytes
    /// as given to [`Mempool::with_private`]; empty for pools made with [`Mempool::new`]).
    /// DPDK and the PMDs never touch it, so it travels with the packet; nor is it reset on
    /// allocation: a fresh mbuf holds what its last user left there.
    pub fn private(&self) -> &[u8] {
        let len = usize::from(self.hdr().priv_size);
        // SAFETY: the pool laid out `priv_size` bytes right after the rte_mbuf header (DPDK's
        // rte_mbuf_to_priv); we own the mbuf and the borrow lives no longer than &self.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(1).cast::<u8>(), len) }
    }

    /// The private area, writable (see [`Mbuf::private`]).
    pub fn private_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.hdr().priv_size);
        // SAFETY: as in private(); &mut self makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr().add(1).cast::<u8>(), len) }
    }

    /// Packet bytes of the first segment (`rte_pktmbuf_mtod`, `data_len` bytes).
    pub fn data(&self) -> &[u8] {
        let h = self.hdr();
        // SAFETY: DPDK keeps data_off + data_len <= buf_len, so the range lies in the
        // segment's buffer, which we own; the buffer does not overlap the header, and the
        // borrow is tied to &self.
        unsafe {
            let start = h.buf_addr.cast::<u8>().add(usize::from(h.data_off));
            slice::from_raw_parts(start, usize::from(h.data_len))
        }
    }

    /// Mutable packet bytes of the first segment.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let h = self.hdr();
        let (start, len) = (h.buf_addr.cast::<u8>(), usize::from(h.data_len));
        let off = usize::from(h.data_off);
        // SAFETY: as in data(); &mut self makes the borrow unique, and no mbuf this crate
        // hands out shares its buffer (no clones or indirect mbufs).
        unsafe { slice::from_raw_parts_mut(start.add(off), len) }
    }

    /// Length of [`data`](Mbuf::data): the first segment's `data_len`.
    pub fn len(&self) -> usize {
        usize::from(self.hdr().data_len)
    }

    /// Whether [`data`](Mbuf::data) is empty.
    pub fn is_empty(&self) -> bool {
        self.hdr().data_len == 0
    }

    /// Length of the whole packet over all segments (`pkt_len`).
    pub fn pkt_len(&self) -> usize {
        self.hdr().pkt_len as usize
    }

    /// Free bytes in front of the data (`rte_pktmbuf_headroom`).
    pub fn headroom(&self) -> usize {
        usize::from(self.hdr().data_off)
    }

    /// Free bytes after the data in the first segment (`rte_pktmbuf_tailroom`).
    pub fn tailroom(&self) -> usize {
        let h = self.hdr();
        usize::from(h.buf_len).saturating_sub(usize::from(h.data_off) + usize::from(h.data_len))
    }

    /// Grows the packet at the front by `n` bytes and returns them (`rte_pktmbuf_prepend`);
    /// `None`, with the mbuf unchanged, if the headroom is smaller than `n`. The new bytes
    /// hold whatever was there before: write them all.
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        let h = self.hdr_mut();
        if n16 > h.data_off {
            return None;
        }
        // No overflow: data_len + n <= data_off + data_len <= buf_len <= u16::MAX.
        h.data_off -= n16;
        h.data_len += n16;
        h.pkt_len += u32::from(n16);
        Some(&mut self.data_mut()[..n])
    }

    /// Removes `n` bytes from the front (`rte_pktmbuf_adj`); false, with the mbuf
    /// unchanged, if the first segment holds fewer than `n`.
    pub fn adj(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        let h = self.hdr_mut();
        if n16 > h.data_len {
            return false;
        }
        h.data_off += n16;
        h.data_len -= n16;
        h.pkt_len -= u32::from(n16);
        true
    }

    /// Removes `n` bytes from the end (`rte_pktmbuf_trim`); false, with the mbuf unchanged,
    /// if the last segment holds fewer than `n`.
    pub fn trim(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        let last = self.last_seg_mut();
        if n16 > last.data_len {
            return false;
        }
        last.data_len -= n16;
        self.hdr_mut().pkt_len -= u32::from(n16);
        true
    }

    /// Grows the packet at the end by `n` bytes and returns them (`rte_pktmbuf_append`);
    /// `None`, with the mbuf unchanged, if the last segment's tailroom is smaller than `n`.
    /// The new bytes are uninitialised garbage from earlier packets: write them all.
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        let last = self.last_seg_mut();
        let end = usize::from(last.data_off) + usize::from(last.data_len);
        if end + n > usize::from(last.buf_len) {
            return None;
        }
        // No overflow: end + n <= buf_len <= u16::MAX.
        last.data_len += n16;
        let tail = last.buf_addr.cast::<u8>();
        self.hdr_mut().pkt_len += u32::from(n16);
        // SAFETY: [end, end + n) lies inside the last segment's buffer (checked above), which
        // we own exclusively; the borrow is tied to &mut self.
        Some(unsafe { slice::from_raw_parts_mut(tail.add(end), n) })
    }

    /// Shortens the packet to `len` bytes over the whole chain, like `Vec::truncate`: no-op
    /// if it is not longer; segments wholly past `len` are freed (the first one is kept,
    /// possibly empty).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.pkt_len() {
            return;
        }
        let head = self.0.as_ptr();
        let mut seg = head;
        let mut before = 0usize; // bytes in the segments before `seg`
        let mut kept = 1u16;
        // SAFETY: we own the whole chain exclusively (&mut self). The walk stops at the
        // segment holding byte `len`, which exists because len < pkt_len = sum of data_len.
        // The segments after it are unlinked and then freed as one chain, so no Mbuf or
        // segment pointer to them remains; the head's counters are updated to match.
        unsafe {
            while before + usize::from((*seg).data_len) < len && !(*seg).next.is_null() {
                before += usize::from((*seg).data_len);
                seg = (*seg).next;
                kept += 1;
            }
            // Never grow a segment, even if pkt_len overstated the chain.
            let keep = (len - before).min(usize::from((*seg).data_len));
            (*seg).data_len = keep as u16; // <= the old u16 data_len
            let rest = std::mem::replace(&mut (*seg).next, std::ptr::null_mut());
            if !rest.is_null() {
                sys::m6_pktmbuf_free(rest);
            }
            (*head).nb_segs = kept;
            (*head).pkt_len = (before + keep) as u32; // <= the old u32 pkt_len
        }
    }

    /// Appends `tail`'s segments to this packet (`rte_pktmbuf_chain`), taking ownership of
    /// them. Gives `tail` back if the chain would exceed 65535 segments.
    pub fn chain(&mut self, tail: Mbuf) -> Result<(), Mbuf> {
        let (tail_segs, tail_len) = (tail.hdr().nb_segs, tail.hdr().pkt_len);
        let Some(segs) = self.hdr().nb_segs.checked_add(tail_segs) else {
            return Err(tail);
        };
        let Some(pkt_len) = self.hdr().pkt_len.checked_add(tail_len) else {
            return Err(tail);
        };
        let tail_ptr = tail.0.as_ptr();
        // The chain owns the tail's segments from here; its head must not free them.
        std::mem::forget(tail);
        self.last_seg_mut().next = tail_ptr;
        let h = self.hdr_mut();
        h.nb_segs = segs;
        h.pkt_len = pkt_len;
        // SAFETY: tail_ptr is the former head of `tail`, owned by this chain now; only the
        // head's pkt_len counts the whole packet, so the old head's is reset to its segment.
        unsafe { (*tail_ptr).pkt_len = u32::from((*tail_ptr).data_len) };
        Ok(())
    }

    /// Number of segments in the chain (1 for a contiguous packet).
    pub fn nb_segs(&self) -> u16 {
        self.hdr().nb_segs
    }

    /// Input port the PMD recorded on receive (not every PMD sets it, e.g. net_ring).
    pub fn port(&self) -> u16 {
        self.hdr().port
    }

    /// The RSS hash computed by the NIC, if the PMD delivered one
    /// (`RTE_MBUF_F_RX_RSS_HASH` in `ol_flags`).
    pub fn rss_hash(&self) -> Option<u32> {
        let h = self.hdr();
        if h.ol_flags & u64::from(sys::RTE_MBUF_F_RX_RSS_HASH) == 0 {
            return None;
        }
        // SAFETY: reading a u32 out of a plain-old-data union is defined for any bits; the
        // flag says this member is the one the PMD wrote.
        Some(unsafe { h.__bindgen_anon_2.hash.rss })
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (chain); its pool outlives it (see Mempool's Drop), and
        // after this nothing references it.
        unsafe { sys::m6_pktmbuf_free(self.0.as_ptr()) };
    }
}

/// Frees every mbuf in `mbufs` with one `rte_pktmbuf_free_bulk` call per 64Ki and leaves
/// the Vec empty: cheaper than dropping them one by one.
pub fn free_bulk(mbufs: &mut Vec<Mbuf>) {
    for chunk in mbufs.chunks_mut(usize::from(u16::MAX)) {
        // SAFETY: Mbuf is repr(transparent) over a non-NULL `struct rte_mbuf *`, so the chunk
        // is an array of owned mbuf pointers; set_len(0) below makes sure none is dropped
        // (freed) again.
        unsafe { sys::rte_pktmbuf_free_bulk(chunk.as_mut_ptr().cast(), chunk.len() as u32) };
    }
    // SAFETY: every element was freed above; forgetting them without drop is the intent.
    unsafe { mbufs.set_len(0) };
}
