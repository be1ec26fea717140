//! EAL lifetime: one init per process, and no `rte_eal_cleanup` while anything still uses it.
//!
//! `rte_eal_cleanup` releases the hugepage memory that mempools, mbufs and ethdev state live
//! in, so it must not run while a [`Mempool`](crate::Mempool), an
//! [`RxQueue`](crate::RxQueue)/[`TxQueue`](crate::TxQueue) or a [`Port`](crate::Port) call is
//! alive. Each of those holds a [`Lease`]; one atomic word holds both the lease count and the
//! EAL state, so "no leases" and "now closed" switch in a single compare-and-swap.

use std::ffi::{c_char, c_int, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;
use crate::sys;

/// Set by the first `Eal::init`; never cleared: DPDK cannot be initialised twice.
const CLAIMED: usize = 1 << (usize::BITS - 1);
/// `rte_eal_init` succeeded.
const RUNNING: usize = 1 << (usize::BITS - 2);
/// `rte_eal_init` failed.
const FAILED: usize = 1 << (usize::BITS - 3);
/// `rte_eal_cleanup` ran (or is running).
const CLOSED: usize = 1 << (usize::BITS - 4);
/// The low bits count live leases.
const LEASES: usize = CLOSED - 1;

static STATE: AtomicUsize = AtomicUsize::new(0);

/// Program name put in front of the caller's arguments as `argv[0]`.
const PROGRAM_NAME: &str = "m6-dataplane";

/// Proof that EAL stays initialised while this value lives.
#[derive(Debug)]
pub(crate) struct Lease(());

impl Lease {
    /// Takes a lease, or fails if EAL is not running (not yet initialised or cleaned up).
    pub(crate) fn acquire() -> Result<Lease, Error> {
        let prev = STATE.fetch_add(1, Ordering::Acquire);
        if prev & (RUNNING | CLOSED) == RUNNING {
            Ok(Lease(()))
        } else {
            STATE.fetch_sub(1, Ordering::Release);
            Err(Error::EalNotRunning)
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        STATE.fetch_sub(1, Ordering::Release);
    }
}

/// The initialised DPDK Environment Abstraction Layer.
///
/// Create it once, on the thread that is to be the main lcore, and keep it alive while DPDK
/// is in use. Dropping it calls `rte_eal_cleanup` unless a mempool or queue is still alive
/// (see [`Eal::cleanup`]). It is neither `Send` nor `Sync`: EAL expects its main thread to
/// clean it up.
///
/// ```compile_fail
/// fn send<T: Send>() {}
/// send::<dpdk_bindings::Eal>();
/// ```
#[derive(Debug)]
pub struct Eal {
    done: bool,
    _main_thread_only: PhantomData<*mut ()>,
}

impl Eal {
    /// Initialises EAL with `args` (EAL options only, e.g. `["--in-memory", "-l", "0"]`);
    /// the program name is prepended as `argv[0]`.
    ///
    /// Only one init per process: any second call returns [`Error::AlreadyInitialized`]
    /// (or [`Error::InitFailedBefore`] if the first failed), even after the first `Eal` was
    /// dropped. EAL pins the calling thread to its main lcore's CPU, and threads spawned from
    /// it afterwards inherit that one-CPU mask: pin workers explicitly (DPDK-NOTES item 5).
    /// EAL stops parsing at `--`; anything after it is ignored.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, Error> {
        // Validate before claiming, so a typo does not use up the process's one init.
        let owned = build_args(args)?;
        let argc = c_int::try_from(owned.len()).map_err(|_| Error::InvalidArgument {
            call: "rte_eal_init",
            reason: format!("{} arguments is too many", owned.len()),
        })?;
        let prev = STATE.fetch_or(CLAIMED, Ordering::AcqRel);
        if prev & CLAIMED != 0 {
            return Err(if prev & FAILED != 0 {
                Error::InitFailedBefore
            } else {
                Error::AlreadyInitialized
            });
        }
        // EAL keeps pointers into argv in some versions and getopt permutes the pointer
        // array, so the strings are leaked (a few hundred bytes, once per process) and the
        // permuted array is never used to free them.
        let strings: &'static [CString] = Box::leak(owned.into_boxed_slice());
        let mut argv: Vec<*mut c_char> = strings.iter().map(|s| s.as_ptr().cast_mut()).collect();
        argv.push(std::ptr::null_mut());
        // SAFETY: argv holds argc pointers to NUL-terminated strings that live for the
        // process, plus the conventional NULL; EAL may permute the array, which we own and do
        // not read afterwards. The CLAIMED bit guarantees this is the only call.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let err = Error::from_rte_errno("rte_eal_init", args_context(strings));
            STATE.fetch_or(FAILED, Ordering::Release);
            return Err(err);
        }
        STATE.fetch_or(RUNNING, Ordering::Release);
        Ok(Eal {
            done: false,
            _main_thread_only: PhantomData,
        })
    }

    /// Calls `rte_eal_cleanup` now and reports whether it could.
    ///
    /// Returns [`Error::Busy`] and leaves EAL running (until the process exits) if any
    /// mempool, queue or port call still holds EAL: mbufs may still point into its memory.
    /// A pool that was given to [`Port::configure`](crate::Port::configure) of a port that
    /// was not [closed](crate::Port::close) is kept for the process, and so is EAL. Tests use
    /// this to check that everything was released.
    pub fn cleanup(mut self) -> Result<(), Error> {
        self.done = true;
        shutdown()
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        if !self.done {
            // Nothing to report from a destructor: Busy leaves memory for the OS to reclaim
            // at exit, which is safe; a failing rte_eal_cleanup has already logged itself.
            let _ = shutdown();
        }
    }
}

fn shutdown() -> Result<(), Error> {
    let running = CLAIMED | RUNNING;
    match STATE.compare_exchange(
        running,
        running | CLOSED,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => {
            // SAFETY: the CAS saw no lease and set CLOSED, so no mempool, queue or port call
            // exists and none can start (Lease::acquire now fails): nothing can touch the
            // memory that cleanup releases. It runs once, since CLOSED is never cleared.
            let ret = unsafe { sys::rte_eal_cleanup() };
            if ret < 0 {
                return Err(Error::dpdk("rte_eal_cleanup", "", ret));
            }
            Ok(())
        }
        Err(state) => Err(Error::Busy {
            call: "rte_eal_cleanup",
            reason: format!(
                "{} mempool(s), queue(s) or port call(s) still hold EAL; it stays up until exit",
                state & LEASES
            ),
        }),
    }
}

/// argv for `rte_eal_init`: the program name, then `args`.
fn build_args<S: AsRef<str>>(args: &[S]) -> Result<Vec<CString>, Error> {
    std::iter::once(PROGRAM_NAME)
        .chain(args.iter().map(AsRef::as_ref))
        .map(|a| {
            CString::new(a).map_err(|_| Error::InvalidArgument {
                call: "rte_eal_init",
                reason: format!("argument {a:?} contains a NUL byte"),
            })
        })
        .collect()
}

fn args_context(args: &[CString]) -> String {
    let words: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
    format!("args: {}", words.join(" "))
}

/// Registers the calling (non-EAL) thread as an lcore with `rte_thread_register`.
///
/// Threads pinned with core_affinity are not lcores: they get no lcore id and their mbuf
/// alloc/free bypasses the per-lcore mempool cache (DPDK-NOTES item 6). Call this first
/// thing on each worker thread. A thread that already has an lcore id is left as it is.
pub fn thread_register() -> Result<(), Error> {
    let _lease = Lease::acquire()?;
    if lcore_id().is_some() {
        return Ok(());
    }
    // SAFETY: EAL is running (lease held); rte_thread_register only sets up the calling
    // thread's own lcore TLS and takes a free lcore slot under EAL's lock.
    let ret = unsafe { sys::rte_thread_register() };
    if ret < 0 {
        return Err(Error::from_rte_errno("rte_thread_register", ""));
    }
    Ok(())
}

/// Gives the calling thread's lcore id back (`rte_thread_unregister`). Objects this thread
/// freed into its lcore's mempool cache stay there for the next thread with that id. Does
/// nothing if EAL is not running.
pub fn thread_unregister() {
    if let Ok(_lease) = Lease::acquire() {
        // SAFETY: EAL is running (lease held); the call only releases the calling thread's
        // own lcore slot (main lcores keep their role) and resets its TLS.
        unsafe { sys::rte_thread_unregister() };
    }
}

/// The calling thread's lcore id, or `None` if it is not an lcore (`LCORE_ID_ANY`).
pub fn lcore_id() -> Option<u32> {
    // SAFETY: m6_lcore_id only reads the calling thread's lcore TLS variable, which is
    // LCORE_ID_ANY until EAL or rte_thread_register sets it.
    let id = unsafe { sys::m6_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_get_program_name_first() {
        let args = build_args(&["--in-memory", "-l", "0"]).expect("valid args");
        let words: Vec<_> = args.iter().map(|a| a.to_str().expect("utf-8")).collect();
        assert_eq!(words, [PROGRAM_NAME, "--in-memory", "-l", "0"]);
        let empty: [&str; 0] = [];
        assert_eq!(build_args(&empty).expect("no args").len(), 1);
    }

    #[test]
    fn args_with_nul_are_rejected() {
        let err = build_args(&[String::from("-l\0x")]).expect_err("NUL must be rejected");
        assert!(err.to_string().contains("NUL"), "{err}");
    }

    #[test]
    fn no_lease_and_no_lcore_before_init() {
        // This unit-test binary never initialises EAL.
        assert_eq!(Lease::acquire().map(|_| ()), Err(Error::EalNotRunning));
        assert_eq!(lcore_id(), None);
        assert_eq!(thread_register(), Err(Error::EalNotRunning));
    }
}
