//! The pipeline's stages, one per file, each with its own drop reasons (VPP's
//! `foreach_*_error`): a stage reads the [`classify::Parsed`] summary of a packet and the
//! per-worker tables, and decides; [`crate::pipeline`] runs the stages over a burst.
//!
//! Order: `classify` -> `local` (`exthdr`, `reassembly`, `nd`, `echo`) | `rewrite` (M6
//! rewrite ok: any healthy ISP, source locator rewritten) or `egress` (by source prefix),
//! LAN -> ISP | `inbound` (ISP -> LAN) -> `adjacency` (hop limit, MTU, neighbor, Ethernet)
//! -> `icmp_error`.

pub mod adjacency;
pub mod cc_answer;
pub mod classify;
pub mod echo;
pub mod egress;
pub mod exthdr;
pub mod icmp_error;
pub mod inbound;
pub mod local;
pub mod nd;
pub mod nptv6;
pub mod proxy_in;
pub mod proxy_out;
pub mod reassembly;
pub mod rewrite;

use crate::stats::reasons;

reasons! {
    /// Drops outside any stage's rules, counted by the pipeline itself.
    pub enum PipelineDrop {
        /// A stage could not do what classification promised (a buffer shorter than its
        /// parsed headers, a port missing from the tables). Unreachable by construction;
        /// counted so that no drop is silent.
        InternalError = "internal_error",
        /// A chained (multi-segment) mbuf: the pipeline reads single-segment buffers only.
        /// The io layer drops these before the pipeline and counts them through
        /// [`crate::Pipeline::count_drop_multi_segment`].
        MultiSegment = "multi_segment",
    }
}

/// A drop reason of any stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropCause {
    Classify(classify::DropReason),
    Local(local::DropReason),
    Nd(nd::DropReason),
    Echo(echo::DropReason),
    Egress(egress::DropReason),
    Inbound(inbound::DropReason),
    Adjacency(adjacency::DropReason),
    ExtHdr(exthdr::DropReason),
    ProxyIn(proxy_in::DropReason),
    CcAnswer(cc_answer::DropReason),
    ProxyOut(proxy_out::DropReason),
    Pipeline(PipelineDrop),
}

impl DropCause {
    /// The counter name after `drop.`.
    pub fn name(self) -> &'static str {
        match self {
            DropCause::Classify(r) => r.name(),
            DropCause::Local(r) => r.name(),
            DropCause::Nd(r) => r.name(),
            DropCause::Echo(r) => r.name(),
            DropCause::Egress(r) => r.name(),
            DropCause::Inbound(r) => r.name(),
            DropCause::Adjacency(r) => r.name(),
            DropCause::ExtHdr(r) => r.name(),
            DropCause::ProxyIn(r) => r.name(),
            DropCause::CcAnswer(r) => r.name(),
            DropCause::ProxyOut(r) => r.name(),
            DropCause::Pipeline(r) => r.name(),
        }
    }
}
