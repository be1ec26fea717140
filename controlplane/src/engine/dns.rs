//! DNS lookups the engine asks for, and their results (seed 001 sections 3.1, 4.1, 5.2,
//! 7.13).
//!
//! The engine never talks to a resolver: it emits [`super::Action::Dns`] with a
//! [`DnsQueryId`] and a [`DnsQuery`], and the caller (the daemon with hickory-resolver, the
//! simulation with a zone table) answers later with [`super::Event::Dns`] carrying the same id
//! and a [`DnsResult`]. Identical lookups in flight are merged, answers are cached for their
//! TTL (permanent failures for the configured negative TTL, section 5.2 "negative caching"),
//! and transient failures are retried with binary exponential backoff (section 7.13).

use std::net::Ipv6Addr;

/// Identifies one lookup the engine asked for; echoed in the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsQueryId(pub u64);

/// The two lookups M6 needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DnsQuery {
    /// Reverse lookup: PTR of the locator's ip6.arpa name, giving the FQDN(s).
    Reverse(Ipv6Addr),
    /// Forward lookup of an FQDN: its AAAA RRset and whether the M6 capability marker
    /// (private-use RR type 65280, DESIGN.md section 7) exists at the name.
    Forward(String),
}

/// The data of a successful lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsAnswer {
    /// PTR targets (FQDNs, with or without the trailing dot; compared case-insensitively).
    Reverse { names: Vec<String> },
    /// AAAA records and the M6 marker.
    Forward { addrs: Vec<Ipv6Addr>, m6: bool },
}

/// The outcome of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsResult {
    /// Data with the (smallest) TTL of the answer, in seconds.
    Ok { answer: DnsAnswer, ttl: u32 },
    /// NXDOMAIN or NODATA: "Things like NXDOMAIN should be a permanent error" (7.13).
    Permanent,
    /// SERVFAIL, timeout, refused: retried with backoff.
    Transient,
}

/// Normalises an FQDN for comparison: lower case, no trailing dot.
pub fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a PTR answer points back at `fqdn` (section 3.1: "verify that these locators
/// have reverse tree entries which point back at the FQDN").
pub fn names_contain(names: &[String], fqdn: &str) -> bool {
    let want = normalize_name(fqdn);
    names.iter().any(|n| normalize_name(n) == want)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_case_insensitively_without_trailing_dot() {
        let names = vec!["Host.Example.".to_string()];
        assert!(names_contain(&names, "host.example"));
        assert!(names_contain(&names, "HOST.example."));
        assert!(!names_contain(&names, "other.example"));
        assert!(!names_contain(&[], "host.example"));
    }
}
