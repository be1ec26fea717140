//! The only module that touches DPDK: mbufs as [`PacketBuf`]s, and the polling worker
//! that moves bursts between RX queues, the [`Pipeline`] and TX queues.

mod mbuf;
mod worker;

pub use worker::{
    burst_after_idle_pps, run_worker, tighten_timer_slack, ControlMsg, IoCounters, Worker,
    WorkerPlan, WorkerSnapshot, BURST_SIZE, PUBLISH_INTERVAL_NS, WAKE_UP_US, WORKER_TIMER_SLACK_NS,
};
