//! DNS for the control plane (seed 001 sections 3, 3.1, 4.1, 4.5, 5.2, 7.13, 16.2;
//! DESIGN.md sections 7 and 8): the resolver the engine's [`crate::engine::Action::Dns`]
//! lookups run on.
//!
//! The engine decides what to look up, caches answers for their TTL, de-duplicates and
//! retries; this module only runs the queries and sorts the answers:
//!
//! - [`config`]: the `dns:` YAML section (servers or /etc/resolv.conf, timeout, attempts,
//!   the marker type, and the engine's DNS policy knobs).
//! - [`lookup`]: one engine [`DnsQuery`] as DNS queries (PTR; AAAA + marker) and the answer
//!   as a [`DnsResult`] (NXDOMAIN/NODATA permanent, SERVFAIL/REFUSED/timeout transient,
//!   TTL = the smallest involved).
//! - [`service`]: the resolver thread behind a bounded queue, a results channel and a
//!   [`mio::Waker`].
//!
//! docs/dns.md says what an operator must publish and how the router behaves when it is
//! missing or inconsistent.
//!
//! [`DnsQuery`]: crate::engine::dns::DnsQuery
//! [`DnsResult`]: crate::engine::dns::DnsResult

pub mod config;
pub mod lookup;
pub mod service;

pub use config::{DnsConfig, DnsConfigError, ResolverSetup};
pub use service::{Completion, DnsService, DnsServiceStats};
