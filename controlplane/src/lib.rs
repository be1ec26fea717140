//! M6 control plane: sans-I/O signaling engine, DNS verification, health and metrics.
#![deny(unsafe_code)]

pub mod admin;
pub mod config;
pub mod daemon;
pub mod dns;
pub mod engine;
pub mod metrics;
pub mod storage;
