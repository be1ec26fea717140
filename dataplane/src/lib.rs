//! The M6 border router's packet pipeline: pure functions over byte buffers.
//!
//! The io layer (`io/`, DPDK) receives bursts of mbufs, calls
//! [`Pipeline::process_burst`] with them, and transmits or frees each one as the
//! [`Next`] array says. Everything in between is here and runs on any [`PacketBuf`],
//! so the whole pipeline is tested and benchmarked on [`VecBuf`]s without DPDK.
//!
//! - [`buf`]: the buffer trait and the `Vec<u8>` implementation.
//! - [`net`]: zero-copy header views (Ethernet, IPv6 and its extension chain, ICMPv6, ND).
//! - [`nodes`]: one stage per file, each with its drop reasons.
//! - [`tables`]: one writer (the control thread), per-worker replicas.
//! - [`neighbor`], [`isp`]: features with a control side ([`control`]) and a data path side.
//! - [`site`], [`stats`], [`pipeline`]: the compiled site, counters, the burst loop.
//! - [`testpkt`]: frame builders and an example site for tests and benches.
//! - [`io`]: the only module that touches DPDK.
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod buf;
pub mod channel;
pub mod contexts;
pub mod control;
pub mod health;
/// DPDK glue: mbufs as [`PacketBuf`]s and the polling worker.
pub mod io;
pub mod isp;
pub mod neighbor;
pub mod net;
pub mod nodes;
pub mod pipeline;
pub mod policy;
pub mod ra;
pub mod site;
pub mod stats;
pub mod tables;
pub mod testpkt;

pub use buf::{PacketBuf, VecBuf};
pub use control::{Control, WorkerTables};
pub use pipeline::{Next, Pipeline, MAX_BURST};
pub use site::{Ipv6Prefix, IspInfo, PortInfo, Site, SiteError};
pub use stats::Counters;
