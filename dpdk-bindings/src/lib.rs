//! Safe Rust API over Debian's DPDK 22.11: the only crate of the workspace with `unsafe`.
//!
//! Raw bindings are generated at build time by bindgen over the system libdpdk (found with
//! pkg-config, linked shared so PMDs load as plugins) and stay private in `sys`. DPDK's
//! static inline functions (rx/tx burst, mbuf alloc/free, `rte_errno`, `rte_lcore_id`) go
//! through a small C shim, called once per burst; per-packet field access is Rust.
//!
//! Typical use:
//!
//! ```no_run
//! use dpdk_bindings::{Eal, Mempool, Port, PortConfig};
//! # fn main() -> Result<(), dpdk_bindings::Error> {
//! let eal = Eal::init(&["-l", "0", "--vdev=net_ring0"])?;
//! let pool = Mempool::new("rx", 8191, 256, Mempool::DEFAULT_DATA_ROOM)?;
//! let port = Port::by_name("net_ring0")?;
//! port.configure(&PortConfig::default(), &pool)?;
//! port.start()?;
//! let (mut rx, mut tx) = (port.rx_queue(0)?, port.tx_queue(0)?);
//! let mut burst = Vec::with_capacity(32);
//! rx.rx_burst(&mut burst, 32);
//! tx.tx_burst(&mut burst);
//! burst.clear(); // drops (frees) what the NIC did not take
//! # drop((rx, tx)); port.stop()?; port.close()?; drop(pool); eal.cleanup()
//! # }
//! ```
//!
//! # Safety invariants
//!
//! The safe API upholds these; code in this crate must too.
//!
//! - **EAL lifetime.** [`Eal::init`] succeeds at most once per process. Every object that
//!   points into EAL memory holds a lease: [`Mempool`] (and through it its mbufs),
//!   [`RxQueue`], [`TxQueue`], and each [`Port`] call for its duration. `rte_eal_cleanup`
//!   runs only when no lease is left; otherwise EAL stays up until the process exits.
//! - **Mbuf ownership.** An [`Mbuf`] is the sole owner of its `rte_mbuf` (refcnt 1; this
//!   crate creates no clones or indirect mbufs) and frees it on drop. Ownership passes to
//!   the NIC only for the mbufs [`TxQueue::tx_burst`] reports as sent, which it removes from
//!   the Vec without dropping; mbufs from [`RxQueue::rx_burst`] and [`Mempool`] allocation
//!   are owned by the caller.
//! - **Pool outlives its mbufs.** Dropping a [`Mempool`] frees it only if every mbuf is
//!   back in its common pool and no port was configured with it (until [`Port::close`]);
//!   otherwise the pool is leaked for the process. An mbuf therefore never outlives its pool.
//!   Mbufs parked in another lcore's cache count as out: workers call
//!   [`Mempool::flush_local_cache`] before they exit if the pool is to be freed.
//! - **Segments.** [`Mbuf::data`] is the first segment and never reads past it. Mbufs from
//!   this crate's pools and ports are single-segment (configure checks the frame size
//!   against the data room) unless joined with [`Mbuf::chain`]; code that needs the whole
//!   packet in `data()` checks [`Mbuf::nb_segs`].
//! - **Queues.** A queue has at most one handle, `Send` but not `Sync`, so one thread at a
//!   time runs a burst on it. Configure, start, stop and close refuse to run while any queue
//!   handle of the port is alive: take handles after `start`, drop them before `stop`.
//! - **Control path.** DPDK's ethdev control functions are not thread safe; this crate runs
//!   them under one process-wide lock, never taken on the fast path.
//!
//! # Threads
//!
//! EAL pins the thread that called [`Eal::init`] to one CPU, and threads it spawns inherit
//! that mask: pin workers deliberately (core_affinity) and call [`thread_register`] on each
//! so it gets an lcore id and mempool caches work. Per-lcore mempool caches assume one
//! thread per lcore id, which registration guarantees.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs)]

mod eal;
mod error;
mod mbuf;
mod mempool;
mod port;
mod ring;
mod sys;

pub use eal::{lcore_id, thread_register, thread_unregister, Eal};
pub use error::Error;
pub use mbuf::{free_bulk, Mbuf};
pub use mempool::Mempool;
pub use port::{LinkStatus, Port, PortConfig, PortStats, RxQueue, TxQueue};
pub use ring::Ring;

/// The CPU's time-stamp counter (cycles at a constant rate on every CPU this project runs
/// on): what DPDK's `rte_rdtsc` reads, for benchmarks that report cycles per packet.
/// Needs no EAL. On other architectures: nanoseconds of a monotonic clock instead.
#[inline]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC reads a counter; it has no preconditions, touches no memory, and
        // every x86_64 CPU has it.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

/// Asks the CPU to bring the cache line holding `r` into every cache level (DPDK's
/// `rte_prefetch0`): a hint that lets the memory access of a later packet overlap the work
/// on this one. Never faults, whatever the address.
#[inline(always)]
pub fn prefetch<T: ?Sized>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: PREFETCHT0 is only a hint: it reads no data into registers, cannot fault
        // (an invalid address is ignored), and every x86_64 CPU has SSE.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                (r as *const T).cast::<i8>(),
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// [`prefetch`] for every cache line `r` spans (a value larger than one line, such as a
/// table entry read at several offsets).
#[inline(always)]
pub fn prefetch_all<T>(r: &T) {
    let start = (r as *const T).cast::<i8>();
    // From the line that holds the first octet to the one that holds the last.
    let skew = start as usize & 63;
    let lines = (skew + std::mem::size_of::<T>()).div_ceil(64);
    let base = start.wrapping_sub(skew);
    for k in 0..lines {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in prefetch(): a hint that reads nothing and cannot fault; the address
        // is computed with wrapping arithmetic and never dereferenced.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                base.wrapping_add(k * 64),
            )
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (base, k);
    }
}

/// [`tsc`] ticks per second, measured against the monotonic clock over `over`.
pub fn tsc_hz(over: std::time::Duration) -> u64 {
    let (t0, c0) = (std::time::Instant::now(), tsc());
    std::thread::sleep(over);
    let (dt, dc) = (t0.elapsed(), tsc().wrapping_sub(c0));
    (dc as f64 / dt.as_secs_f64()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile-time checks of the thread-safety contract.
    #[test]
    fn auto_traits() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<Mempool>();
        sync::<Mempool>();
        send::<Mbuf>();
        send::<RxQueue>();
        send::<TxQueue>();
        send::<Port>();
        sync::<Port>();
        // The negative cases (RxQueue/TxQueue not Sync, Eal not Send) are compile_fail doc
        // tests on those types.
    }

    #[test]
    fn mbuf_is_a_pointer() {
        assert_eq!(
            std::mem::size_of::<Mbuf>(),
            std::mem::size_of::<*mut sys::rte_mbuf>()
        );
        assert_eq!(
            std::mem::size_of::<Option<Mbuf>>(),
            std::mem::size_of::<*mut sys::rte_mbuf>()
        );
    }
}
