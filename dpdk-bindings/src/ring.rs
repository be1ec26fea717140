//! Rings of mbufs (`rte_ring`) and ports made of them (`rte_eth_from_rings`): an Ethernet
//! port whose RX queues read rings and whose TX queues write rings, for benchmarks and tests
//! that feed the router's real worker loop from memory (DPDK's net_ring PMD).

use std::ffi::{c_uint, CString};
use std::ptr::NonNull;

use crate::eal::Lease;
use crate::error::Error;
use crate::mbuf::{free_bulk, Mbuf};
use crate::port;
use crate::sys;

/// A multi-producer, multi-consumer ring of mbufs (`rte_ring_create` with no flags).
///
/// Mbufs enqueued are owned by the ring until dequeued. Dropping a ring that no port uses
/// frees the mbufs still in it, then the ring; a ring a port made by
/// [`crate::Port::from_rings`] still uses (not yet closed) is kept, with EAL, for the
/// process.
#[derive(Debug)]
pub struct Ring {
    ptr: NonNull<sys::rte_ring>,
    lease: Option<Lease>,
}

// SAFETY: a ring created without RING_F_SP_ENQ/RING_F_SC_DEQ is safe for concurrent
// enqueues and dequeues from any threads (DPDK's default MP/MC sync); the pointer stays valid
// for the Ring's life (see Drop).
unsafe impl Send for Ring {}
// SAFETY: as for Send: every &self method is one of the MP/MC-safe ring calls.
unsafe impl Sync for Ring {}

impl Ring {
    /// Creates a ring named `name` (unique in the process, at most 28 bytes: DPDK prefixes
    /// "RG_" within 32) holding up to `count - 1` mbufs; `count` is a power of two, at
    /// least 2.
    ///
    /// Errors: EAL not running, a count that is not a power of two or is below 2 (DPDK
    /// itself takes 0 for a power of two and makes a ring over no memory), or DPDK's
    /// reason (`EEXIST` for a name in use, `ENAMETOOLONG`, `ENOMEM`).
    pub fn new(name: &str, count: u32) -> Result<Ring, Error> {
        if count < 2 || !count.is_power_of_two() {
            return Err(Error::InvalidArgument {
                call: "rte_ring_create",
                reason: format!("ring {name:?}: {count} slots; expected a power of two, 2 or more"),
            });
        }
        let lease = Lease::acquire()?;
        let cname = CString::new(name).map_err(|_| Error::InvalidArgument {
            call: "rte_ring_create",
            reason: format!("ring name {name:?} contains a NUL byte"),
        })?;
        // SAFETY: EAL is running (lease held); the name is a valid C string that DPDK
        // copies; DPDK validates count and reports errors through rte_errno.
        let raw = unsafe { sys::rte_ring_create(cname.as_ptr(), count, sys::SOCKET_ID_ANY, 0) };
        let ptr = NonNull::new(raw).ok_or_else(|| {
            Error::from_rte_errno("rte_ring_create", format!("ring {name:?}, {count} slots"))
        })?;
        Ok(Ring {
            ptr,
            lease: Some(lease),
        })
    }

    /// Moves mbufs from the front of `pkts` into the ring, as many as fit, and removes them
    /// from `pkts`; the rest stay, in order. Returns how many were enqueued.
    pub fn enqueue_burst(&self, pkts: &mut Vec<Mbuf>) -> usize {
        let n = c_uint::try_from(pkts.len()).unwrap_or(c_uint::MAX);
        // SAFETY: the ring is valid (self alive) and MP-safe; pkts holds at least n owned
        // mbufs laid out as `struct rte_mbuf *` (Mbuf is repr(transparent)); the ring takes
        // ownership of the first `done` and does not write to the array.
        let done =
            unsafe { sys::m6_ring_enqueue_burst(self.ptr.as_ptr(), pkts.as_mut_ptr().cast(), n) };
        let done = (done.min(n)) as usize;
        // The ring owns those now: take them out without running Mbuf's Drop.
        pkts.drain(..done).for_each(std::mem::forget);
        done
    }

    /// Dequeues up to `max` mbufs (at most 65535 per call, as a burst) and appends them to
    /// `out`. Returns how many.
    pub fn dequeue_burst(&self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let n = max.min(usize::from(u16::MAX)) as c_uint;
        out.reserve(n as usize);
        let spare = out.spare_capacity_mut();
        // SAFETY: the ring is valid and MC-safe; spare has room for n pointers of the Mbuf
        // layout; the ring writes `got` <= n pointers to mbufs whose ownership passes to us
        // (only owned mbufs are ever enqueued, by enqueue_burst or a ring port's TX).
        let got =
            unsafe { sys::m6_ring_dequeue_burst(self.ptr.as_ptr(), spare.as_mut_ptr().cast(), n) };
        let got = got.min(n) as usize;
        // SAFETY: the first `got` spare slots were initialised just above.
        unsafe { out.set_len(out.len() + got) };
        got
    }

    /// Mbufs in the ring now (`rte_ring_count`).
    pub fn len(&self) -> usize {
        // SAFETY: the ring is valid; the call reads its head and tail indexes.
        unsafe { sys::m6_ring_count(self.ptr.as_ptr()) as usize }
    }

    /// True when [`Ring::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_ring {
        self.ptr.as_ptr()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Under the port table's lock, so no port can be made over this ring meanwhile (none
        // can anyway: that needs a &Ring, and we own it).
        let ports = port::table();
        if ports.uses_ring(self.ptr.as_ptr()) {
            // A port may still read or write it: keep the ring, and EAL, for the process.
            std::mem::forget(self.lease.take());
            return;
        }
        drop(ports);
        let mut rest = Vec::new();
        while self.dequeue_burst(&mut rest, 512) > 0 {
            free_bulk(&mut rest);
        }
        // SAFETY: no open port uses the ring (table) and we own it; its mbufs were
        // freed above, and &mut self means no other call on it is running.
        unsafe { sys::rte_ring_free(self.ptr.as_ptr()) };
        drop(self.lease.take());
    }
}
