//! The M6 capability marker in DNS (seed 001 section 3: "a new M6 Resource Record type in
//! the DNS which has no RDATA").
//!
//! A host is M6 capable if its FQDN has an RR of private-use type 65280 with empty RDATA.
//! Zone files write it in RFC 3597 generic syntax, which Knot, NSD and BIND accept:
//!
//! ```text
//! host.example.  3600  IN  TYPE65280  \# 0
//! ```

pub use super::consts::M6_RR_TYPE;

/// RDATA length of the marker.
pub const M6_RDATA_LEN: usize = 0;

/// True if an RR of type `rr_type` with `rdata` is the M6 marker. A record of the right type
/// with non-empty RDATA is not: future versions may give it content, and today's receivers
/// must not guess what it means.
pub fn is_m6_marker(rr_type: u16, rdata: &[u8]) -> bool {
    rr_type == M6_RR_TYPE && rdata.len() == M6_RDATA_LEN
}

/// The zone-file line (RFC 3597 generic syntax) of the marker for `owner` (an FQDN with or
/// without the final dot).
pub fn zone_line(owner: &str, ttl: u32) -> String {
    let dot = if owner.ends_with('.') { "" } else { "." };
    format!("{owner}{dot} {ttl} IN TYPE{M6_RR_TYPE} \\# 0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker() {
        assert!(is_m6_marker(65280, &[]));
        assert!(!is_m6_marker(65280, &[0]));
        assert!(!is_m6_marker(28, &[]));
        assert_eq!(
            zone_line("a.example", 60),
            "a.example. 60 IN TYPE65280 \\# 0"
        );
        assert_eq!(
            zone_line("a.example.", 60),
            "a.example. 60 IN TYPE65280 \\# 0"
        );
    }
}
