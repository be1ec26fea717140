//! Packet mbuf pools.

use std::ffi::{c_uint, CString};
use std::ptr::NonNull;

use crate::eal::Lease;
use crate::error::Error;
use crate::mbuf::Mbuf;
use crate::{port, sys};

/// A pool of packet mbufs (`rte_pktmbuf_pool_create`).
///
/// DPDK mempools are thread safe, so a `Mempool` is `Send + Sync`: share it by reference
/// (or in an `Arc`) between threads.
///
/// Lifetime: an [`Mbuf`] does not borrow its pool, so a pool can be dropped while mbufs from
/// it are still out (in a `Vec`, in a NIC ring). Dropping a `Mempool` therefore frees the
/// pool (`rte_mempool_free`) only when that is provably safe: every mbuf is back in the
/// common pool and no port was configured with it (see [`Port::close`](crate::Port::close)).
/// Otherwise the pool is deliberately leaked and stays valid until the process exits, so
/// late mbuf frees and driver refills stay sound. In a router, pools live for the process
/// anyway.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<sys::rte_mempool>,
    /// Keeps EAL (and so the pool's memory) alive; forgotten when the pool is leaked.
    lease: Option<Lease>,
}

// SAFETY: a DPDK mempool is designed for concurrent use: get and put are multi-producer /
// multi-consumer (the default ring ops), per-lcore caches are only touched by their own
// lcore, and the counters we read are plain loads. The pointer stays valid for the life of
// the Mempool (see Drop).
unsafe impl Send for Mempool {}
// SAFETY: as for Send; every &self method is one of DPDK's thread-safe mempool calls.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// `RTE_PKTMBUF_HEADROOM`: bytes reserved in front of received data, for encapsulation.
    pub const HEADROOM: u16 = sys::RTE_PKTMBUF_HEADROOM as u16;
    /// `RTE_MBUF_DEFAULT_BUF_SIZE`: a 2048-byte data area after the headroom, enough for a
    /// 1500-byte MTU frame in one segment.
    pub const DEFAULT_DATA_ROOM: u16 = 2048 + Self::HEADROOM;

    /// Creates a pool of `n_mbufs` mbufs with a per-lcore cache of `cache_size` and
    /// `data_room` bytes per mbuf, headroom included (see [`Mempool::DEFAULT_DATA_ROOM`]),
    /// on any NUMA socket.
    ///
    /// DPDK's rules apply: the name is unique in the process and short (under 26 bytes),
    /// `cache_size` is at most 512 and at most `n_mbufs / 1.5`; `n_mbufs` = 2^k - 1 uses
    /// memory best.
    pub fn new(
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        data_room: u16,
    ) -> Result<Mempool, Error> {
        Self::with_private(name, n_mbufs, cache_size, 0, data_room)
    }

    /// As [`Mempool::new`], with `priv_size` bytes of application area in each mbuf (a
    /// multiple of 8, `RTE_MBUF_PRIV_ALIGN`), reached through [`Mbuf::private`].
    ///
    /// Errors: EAL not running, a name with a NUL byte, or DPDK's reason (`EINVAL` for a
    /// `priv_size` that is not a multiple of 8 or a cache too big, `EEXIST` for a name in
    /// use, `ENOMEM`).
    pub fn with_private(
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        priv_size: u16,
        data_room: u16,
    ) -> Result<Mempool, Error> {
        let lease = Lease::acquire()?;
        let cname = CString::new(name).map_err(|_| Error::InvalidArgument {
            call: "rte_pktmbuf_pool_create",
            reason: format!("pool name {name:?} contains a NUL byte"),
        })?;
        // SAFETY: EAL is running (lease held); the name is a valid C string that DPDK copies;
        // the numeric arguments are validated by DPDK, which reports errors via rte_errno.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                n_mbufs,
                cache_size,
                priv_size,
                data_room,
                sys::SOCKET_ID_ANY,
            )
        };
        let ptr = NonNull::new(raw).ok_or_else(|| {
            Error::from_rte_errno(
                "rte_pktmbuf_pool_create",
                format!(
                    "pool {name:?}, {n_mbufs} mbufs, cache {cache_size}, private area \
                     {priv_size}, data room {data_room}"
                ),
            )
        })?;
        Ok(Mempool {
            ptr,
            lease: Some(lease),
        })
    }

    /// Mbufs free in the pool, per-lcore caches included (`rte_mempool_avail_count`).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: the pool is valid (self alive); the call only reads counters.
        unsafe { sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs taken out of the pool and not yet returned (`rte_mempool_in_use_count`).
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: the pool is valid (self alive); the call only reads counters.
        unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Bytes per mbuf, headroom included, as given to [`Mempool::new`].
    pub fn data_room(&self) -> u16 {
        // SAFETY: the pool is valid and was created by rte_pktmbuf_pool_create, so its
        // private area holds the pktmbuf pool info this reads.
        unsafe { sys::m6_pktmbuf_data_room_size(self.ptr.as_ptr()) }
    }

    /// Takes one reset mbuf (empty, full headroom), or `None` if the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid; rte_pktmbuf_alloc is thread safe and returns NULL or an
        // mbuf with refcnt 1 that nobody else references, which Mbuf then owns.
        let raw = unsafe { sys::m6_pktmbuf_alloc(self.ptr.as_ptr()) };
        NonNull::new(raw).map(Mbuf::from_owned)
    }

    /// Appends `n` reset mbufs to `out` in one call, or none at all: returns false (and
    /// leaves `out` as it was) if the pool cannot supply all `n`.
    pub fn alloc_bulk(&self, out: &mut Vec<Mbuf>, n: usize) -> bool {
        let Ok(count) = c_uint::try_from(n) else {
            return false;
        };
        out.reserve(n);
        let spare = out.spare_capacity_mut();
        // SAFETY: spare has room for n entries; Mbuf is repr(transparent) over
        // NonNull<rte_mbuf>, so an Mbuf slot has the layout of a `struct rte_mbuf *`. On
        // success (0) DPDK wrote n non-NULL pointers to fresh mbufs we now own; on failure it
        // wrote nothing we keep.
        let ret = unsafe {
            sys::m6_pktmbuf_alloc_bulk(self.ptr.as_ptr(), spare.as_mut_ptr().cast(), count)
        };
        if ret != 0 {
            return false;
        }
        // SAFETY: the first n spare slots were initialised with owned mbufs just above.
        unsafe { out.set_len(out.len() + n) };
        true
    }

    /// Returns the mbufs sitting in the calling thread's lcore cache of this pool to the
    /// common pool. Worker threads call it before they exit (and before
    /// [`thread_unregister`](crate::thread_unregister)), so that the pool can be freed on
    /// drop and other lcores can use those mbufs.
    pub fn flush_local_cache(&self) {
        // SAFETY: the pool is valid; a per-lcore cache is only ever touched by the thread
        // holding that lcore id, which is the caller (lcore ids are unique per thread).
        unsafe { sys::m6_mempool_flush_local_cache(self.ptr.as_ptr()) };
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        let raw = self.ptr.as_ptr();
        // Hold the port table lock so no configure can attach this pool meanwhile (none
        // can anyway: configure needs a &Mempool, and we own it).
        let ports = port::table();
        // SAFETY: the pool is valid. m6_mempool_release_ready flushes only the calling
        // lcore's own cache (which no other thread uses) and then only reads counters.
        let free = !ports.uses_pool(raw) && unsafe { sys::m6_mempool_release_ready(raw) } == 1;
        drop(ports);
        if free {
            // SAFETY: no port references the pool and every mbuf is back in the common pool,
            // so no Mbuf, driver queue or in-flight put can reach it any more (the check in
            // shim.c explains why a put cannot still be running). We own the pool.
            unsafe { sys::rte_mempool_free(raw) };
            drop(self.lease.take());
        } else {
            // Mbufs or a port may still use the pool: keep it, and EAL, for the process.
            std::mem::forget(self.lease.take());
        }
    }
}
