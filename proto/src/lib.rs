//! Shared definitions: M6 wire formats, the dataplane <-> control-plane channel's messages,
//! configuration schema.
#![deny(unsafe_code)]

pub mod cc;
pub mod channel;
pub mod config;
pub mod prefix;
pub mod wire;
