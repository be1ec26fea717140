//! The packet buffer the pipeline works on.
//!
//! [`PacketBuf`] is the small part of an mbuf the stages need: the frame bytes and the four
//! headroom/tailroom operations DPDK offers (`rte_pktmbuf_prepend`, `_adj`, `_trim`,
//! `_append`). The io layer implements it for its single-segment mbuf; [`VecBuf`] implements
//! it over a `Vec<u8>` for tests and benches, with the same default geometry as an mbuf
//! (128 bytes of headroom, 2048 bytes of data room).

/// A contiguous, single-segment frame with room before and after it.
///
/// Operations that cannot be satisfied leave the buffer unchanged and report failure,
/// as their DPDK counterparts do.
pub trait PacketBuf {
    /// The frame, starting at the Ethernet header.
    fn data(&self) -> &[u8];

    /// The frame, writable.
    fn data_mut(&mut self) -> &mut [u8];

    /// Length of the frame in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }

    /// Whether the frame is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Grows the frame by `n` bytes at the front and returns them (contents unspecified),
    /// or `None` when the headroom is too small.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;

    /// Removes `n` bytes from the front; false (and no change) if the frame is shorter.
    fn adj(&mut self, n: usize) -> bool;

    /// Removes `n` bytes from the end; false (and no change) if the frame is shorter.
    fn trim(&mut self, n: usize) -> bool;

    /// Grows the frame by `n` bytes at the end and returns them (contents unspecified),
    /// or `None` when the tailroom is too small.
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;

    /// Shortens the frame to `len` bytes; does nothing if it is not longer than that.
    fn truncate(&mut self, len: usize) {
        let cur = self.len();
        if len < cur {
            self.trim(cur - len);
        }
    }
}

/// Headroom of a DPDK mbuf (`RTE_PKTMBUF_HEADROOM`).
pub const DEFAULT_HEADROOM: usize = 128;
/// Data room after the headroom of a default DPDK mbuf (`RTE_MBUF_DEFAULT_DATAROOM`).
pub const DEFAULT_DATAROOM: usize = 2048;

/// A `Vec<u8>`-backed [`PacketBuf`]: a fixed storage area holding the frame at
/// `head..tail`, like an mbuf's data room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecBuf {
    storage: Vec<u8>,
    head: usize,
    tail: usize,
}

impl VecBuf {
    /// A buffer holding `frame` with mbuf-like geometry: 128 bytes of headroom and at least
    /// 2048 bytes of data room.
    pub fn new(frame: &[u8]) -> VecBuf {
        let tailroom = DEFAULT_DATAROOM.saturating_sub(frame.len());
        VecBuf::with_room(frame, DEFAULT_HEADROOM, tailroom)
    }

    /// A buffer holding `frame` with exactly `headroom` bytes before and `tailroom` after.
    pub fn with_room(frame: &[u8], headroom: usize, tailroom: usize) -> VecBuf {
        let mut storage = vec![0u8; headroom + frame.len() + tailroom];
        let tail = headroom + frame.len();
        if let Some(dst) = storage.get_mut(headroom..tail) {
            dst.copy_from_slice(frame);
        }
        VecBuf {
            storage,
            head: headroom,
            tail,
        }
    }

    /// Puts `frame` back into the buffer at `headroom`, reusing the storage (no allocation
    /// when it fits), as a recycled mbuf would be refilled by a NIC. Returns false if the
    /// storage is too small.
    pub fn reset(&mut self, frame: &[u8], headroom: usize) -> bool {
        let tail = headroom + frame.len();
        match self.storage.get_mut(headroom..tail) {
            Some(dst) => {
                dst.copy_from_slice(frame);
                self.head = headroom;
                self.tail = tail;
                true
            }
            None => false,
        }
    }

    /// Bytes free before the frame.
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Bytes free after the frame.
    pub fn tailroom(&self) -> usize {
        self.storage.len() - self.tail
    }

    /// The frame as an owned vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data().to_vec()
    }
}

impl PacketBuf for VecBuf {
    fn data(&self) -> &[u8] {
        self.storage.get(self.head..self.tail).unwrap_or(&[])
    }

    fn data_mut(&mut self) -> &mut [u8] {
        self.storage
            .get_mut(self.head..self.tail)
            .unwrap_or(&mut [])
    }

    fn len(&self) -> usize {
        self.tail - self.head
    }

    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let head = self.head.checked_sub(n)?;
        self.head = head;
        self.storage.get_mut(head..head + n)
    }

    fn adj(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.head += n;
        true
    }

    fn trim(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.tail -= n;
        true
    }

    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let start = self.tail;
        self.tail += n;
        self.storage.get_mut(start..start + n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_an_mbuf() {
        let b = VecBuf::new(&[1, 2, 3]);
        assert_eq!(b.data(), &[1, 2, 3]);
        assert_eq!(b.headroom(), 128);
        assert_eq!(b.tailroom(), 2045);
    }

    #[test]
    fn prepend_adj_trim_append() {
        let mut b = VecBuf::with_room(&[1, 2, 3, 4], 2, 2);
        assert!(b.prepend(3).is_none());
        b.prepend(2).unwrap().copy_from_slice(&[8, 9]);
        assert_eq!(b.data(), &[8, 9, 1, 2, 3, 4]);
        assert!(b.append(3).is_none());
        b.append(2).unwrap().copy_from_slice(&[5, 6]);
        assert_eq!(b.data(), &[8, 9, 1, 2, 3, 4, 5, 6]);
        assert!(b.adj(2));
        assert!(b.trim(3));
        assert_eq!(b.data(), &[1, 2, 3]);
        assert!(!b.adj(4));
        assert!(!b.trim(4));
        b.truncate(10);
        assert_eq!(b.len(), 3);
        b.truncate(1);
        assert_eq!(b.data(), &[1]);
        assert!(b.adj(1));
        assert!(b.is_empty());
    }

    #[test]
    fn reset_reuses_storage() {
        let mut b = VecBuf::with_room(&[0; 10], 4, 0);
        assert!(b.reset(&[7; 6], 8));
        assert_eq!(b.data(), &[7; 6]);
        assert_eq!(b.headroom(), 8);
        assert!(!b.reset(&[7; 12], 4));
    }
}
