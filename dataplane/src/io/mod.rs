//! The only module that touches DPDK: mbufs as [`PacketBuf`]s, and the polling worker
//! that moves bursts between RX queues, the [`Pipeline`] and TX queues.

mod mbuf;
mod worker;

pub use worker::{
    run_worker, ControlMsg, IoCounters, WorkerPlan, WorkerSnapshot, BURST_SIZE, PUBLISH_INTERVAL_NS,
};
