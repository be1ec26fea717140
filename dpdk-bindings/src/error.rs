//! The crate's one error type: every failure says which DPDK call failed and why.

use std::ffi::CStr;
use std::fmt;

use crate::sys;

/// Why a DPDK operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A DPDK call returned an error.
    Dpdk {
        /// The DPDK function that failed, e.g. `rte_eth_dev_configure`.
        call: &'static str,
        /// What it was called on (port, queue, name); may be empty.
        context: String,
        /// The positive errno value (DPDK returns `-errno` or sets `rte_errno`).
        errno: i32,
        /// `rte_strerror(errno)`, captured when the error happened.
        text: String,
    },
    /// `Eal::init` already ran in this process: DPDK can be initialised only once.
    AlreadyInitialized,
    /// An earlier `Eal::init` in this process failed: DPDK cannot be initialised again.
    InitFailedBefore,
    /// EAL is not initialised, or has been cleaned up.
    EalNotRunning,
    /// An argument was rejected before reaching DPDK.
    InvalidArgument {
        /// The DPDK call the argument was meant for.
        call: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The operation would pull a resource from under a live handle.
    Busy {
        /// The DPDK call that was not made.
        call: &'static str,
        /// Which handles are still alive.
        reason: String,
    },
}

impl Error {
    /// Builds [`Error::Dpdk`] from an errno of either sign.
    pub(crate) fn dpdk(call: &'static str, context: impl Into<String>, errno: i32) -> Error {
        let errno = errno.saturating_abs();
        Error::Dpdk {
            call,
            context: context.into(),
            errno,
            text: strerror(errno),
        }
    }

    /// Builds [`Error::Dpdk`] from the calling thread's `rte_errno`, for calls that return
    /// NULL or -1 and report the reason there.
    pub(crate) fn from_rte_errno(call: &'static str, context: impl Into<String>) -> Error {
        // SAFETY: m6_errno only reads the calling thread's rte_errno TLS variable.
        let errno = unsafe { sys::m6_errno() };
        Error::dpdk(call, context, errno)
    }

    /// The errno of a failed DPDK call, if this error came from one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Dpdk { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// `rte_strerror`, which also knows DPDK's own codes (E_RTE_SECONDARY, E_RTE_NO_CONFIG).
fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a NUL-terminated string that is either
    // static or in a per-thread buffer valid until this thread's next call; it is copied
    // into an owned String before anything else runs on this thread. It needs no EAL.
    unsafe {
        let text = sys::rte_strerror(errno);
        if text.is_null() {
            return format!("unknown error {errno}");
        }
        CStr::from_ptr(text).to_string_lossy().into_owned()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Dpdk {
                call,
                context,
                errno,
                text,
            } => {
                write!(f, "{call}")?;
                if !context.is_empty() {
                    write!(f, " ({context})")?;
                }
                write!(f, " failed: {text} (errno {errno})")
            }
            Error::AlreadyInitialized => f.write_str(
                "rte_eal_init: EAL is already initialised in this process (DPDK allows one init per process)",
            ),
            Error::InitFailedBefore => f.write_str(
                "rte_eal_init: an earlier EAL init in this process failed; DPDK cannot be initialised again",
            ),
            Error::EalNotRunning => {
                f.write_str("EAL is not running: call Eal::init first and keep the Eal alive")
            }
            Error::InvalidArgument { call, reason } => {
                write!(f, "{call}: invalid argument: {reason}")
            }
            Error::Busy { call, reason } => write!(f, "{call} not called: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_call_context_and_errno_text() {
        let e = Error::dpdk("rte_eth_dev_configure", "port 0", -22);
        assert_eq!(e.errno(), Some(22));
        let s = e.to_string();
        assert!(
            s.starts_with("rte_eth_dev_configure (port 0) failed: "),
            "{s}"
        );
        assert!(s.contains("Invalid argument"), "{s}");
        assert!(s.ends_with("(errno 22)"), "{s}");
    }

    #[test]
    fn dpdk_specific_errno_has_text() {
        // E_RTE_NO_CONFIG = RTE_MIN_ERRNO + 2 = 1002: only rte_strerror knows it.
        let s = Error::dpdk("rte_eal_init", "", 1002).to_string();
        assert!(!s.contains("Unknown error"), "{s}");
    }
}
