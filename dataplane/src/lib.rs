//! The M6 border router's packet pipeline: pure functions over byte buffers.
#![deny(unsafe_code)]
