//! Shared definitions: M6 wire formats, configuration schema.
#![deny(unsafe_code)]

pub mod cc;
pub mod config;
pub mod prefix;
pub mod wire;
