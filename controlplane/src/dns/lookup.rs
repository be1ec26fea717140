//! One engine lookup as DNS queries, and the answers as a [`DnsResult`] (seed 001 sections
//! 3, 3.1, 7.13).
//!
//! - [`DnsQuery::Reverse`]: PTR of the locator's ip6.arpa name; every PTR target is kept
//!   (RFC 2181 section 10.2 allows several, seed 001 section 16.2 "virtual hosting").
//! - [`DnsQuery::Forward`]: AAAA and the M6 marker (an empty RR of the configured
//!   private-use type, DESIGN.md section 7) at the FQDN, asked at the same time.
//!
//! Which failures are permanent is the open question of 7.13 ("Things like NXDOMAIN should
//! be a permanent error"). Our answer: the server said the name or the data does not exist
//! (NXDOMAIN, NODATA) - permanent; the server could not answer (SERVFAIL, REFUSED, a
//! malformed or truncated-and-failed answer, a timeout, no route) - transient, retried by
//! the engine with binary exponential backoff.
//!
//! The TTL of a result is the smallest TTL among the records used, and for a forward lookup
//! whose marker (or AAAA) part was NODATA also that part's negative TTL (SOA minimum,
//! RFC 2308), so a later marker is noticed no later than the zone allows.

use std::future::Future;
use std::net::Ipv6Addr;
use std::task::Poll;

use hickory_resolver::lookup::Lookup;
use hickory_resolver::name_server::ConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, ResolveErrorKind, Resolver};

use crate::engine::dns::{normalize_name, DnsAnswer, DnsQuery, DnsResult};

/// Most PTR names kept from one answer: enough for virtual hosting, bounded work after it.
pub const MAX_PTR_NAMES: usize = 8;

/// Most AAAA records kept from one answer (the engine bounds Lsr(peer) further).
pub const MAX_AAAA: usize = 64;

/// What one DNS query came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Records of the asked type (possibly empty if the answer held only other types).
    Records(Vec<Record>),
    /// NOERROR with no data of the type: permanent; `negative_ttl` from the SOA.
    NoData { negative_ttl: Option<u32> },
    /// NXDOMAIN: permanent.
    NxDomain { negative_ttl: Option<u32> },
    /// SERVFAIL, REFUSED, timeout, I/O, malformed answer: transient.
    Transient,
}

/// Sorts a hickory result into a [`Part`].
pub fn part(res: Result<Lookup, ResolveError>, rtype: RecordType) -> Part {
    match res {
        Ok(lookup) => Part::Records(
            lookup
                .records()
                .iter()
                .filter(|r| r.record_type() == rtype)
                .cloned()
                .collect(),
        ),
        Err(e) => part_of_error(&e),
    }
}

/// Sorts a resolver error: only "the name/data does not exist" is permanent.
pub fn part_of_error(e: &ResolveError) -> Part {
    let ResolveErrorKind::Proto(p) = e.kind() else {
        return Part::Transient;
    };
    match p.kind() {
        ProtoErrorKind::NoRecordsFound {
            response_code,
            negative_ttl,
            ..
        } => match *response_code {
            ResponseCode::NXDomain => Part::NxDomain {
                negative_ttl: *negative_ttl,
            },
            ResponseCode::NoError => Part::NoData {
                negative_ttl: *negative_ttl,
            },
            _ => Part::Transient,
        },
        _ => Part::Transient,
    }
}

/// A PTR answer as a [`DnsResult`]: the target names (lower case, no trailing dot), in
/// answer order without duplicates, at most [`MAX_PTR_NAMES`].
pub fn reverse_result(p: Part) -> DnsResult {
    match p {
        Part::Records(records) => {
            let mut names: Vec<String> = Vec::new();
            let mut ttl = u32::MAX;
            for r in &records {
                if let RData::PTR(ptr) = r.data() {
                    let n = normalize_name(&ptr.0.to_ascii());
                    if n.is_empty() || names.contains(&n) {
                        continue;
                    }
                    ttl = ttl.min(r.ttl());
                    if names.len() < MAX_PTR_NAMES {
                        names.push(n);
                    }
                }
            }
            if names.is_empty() {
                DnsResult::Permanent
            } else {
                DnsResult::Ok {
                    answer: DnsAnswer::Reverse { names },
                    ttl,
                }
            }
        }
        Part::NoData { .. } | Part::NxDomain { .. } => DnsResult::Permanent,
        Part::Transient => DnsResult::Transient,
    }
}

/// Whether `r` is the M6 marker: the configured type with empty RDATA (DESIGN.md section 7;
/// [`proto::wire::dns::is_m6_marker`] for the default type).
pub fn is_marker(r: &Record, marker_type: u16) -> bool {
    if u16::from(r.record_type()) != marker_type {
        return false;
    }
    match r.data() {
        // hickory reads an empty RDATA as an "update" placeholder of the type.
        RData::Update0(_) => true,
        RData::Unknown { rdata, .. } => rdata.anything().is_empty(),
        _ => false,
    }
}

/// The AAAA part and the marker part of a forward lookup as one [`DnsResult`].
///
/// Either part transient: transient (we cannot tell "not M6" from "server down"). The name
/// does not exist, or has neither AAAA nor marker: permanent. Otherwise the AAAA set and
/// whether the marker exists, with the smallest TTL involved.
pub fn forward_result(aaaa: Part, marker: Part, marker_type: u16) -> DnsResult {
    if aaaa == Part::Transient || marker == Part::Transient {
        return DnsResult::Transient;
    }
    if matches!(aaaa, Part::NxDomain { .. }) || matches!(marker, Part::NxDomain { .. }) {
        return DnsResult::Permanent;
    }
    let mut ttl = u32::MAX;
    let mut addrs: Vec<Ipv6Addr> = Vec::new();
    match &aaaa {
        Part::Records(rs) => {
            for r in rs {
                if let RData::AAAA(a) = r.data() {
                    ttl = ttl.min(r.ttl());
                    if !addrs.contains(&a.0) && addrs.len() < MAX_AAAA {
                        addrs.push(a.0);
                    }
                }
            }
        }
        Part::NoData { negative_ttl } => ttl = ttl.min(negative_ttl.unwrap_or(u32::MAX)),
        _ => {}
    }
    let mut m6 = false;
    match &marker {
        Part::Records(rs) => {
            for r in rs.iter().filter(|r| is_marker(r, marker_type)) {
                m6 = true;
                ttl = ttl.min(r.ttl());
            }
        }
        Part::NoData { negative_ttl } => ttl = ttl.min(negative_ttl.unwrap_or(u32::MAX)),
        _ => {}
    }
    if addrs.is_empty() && !m6 {
        return DnsResult::Permanent;
    }
    if ttl == u32::MAX {
        ttl = 0; // no TTL seen at all: the engine's floor applies
    }
    DnsResult::Ok {
        answer: DnsAnswer::Forward { addrs, m6 },
        ttl,
    }
}

/// The absolute DNS name of an FQDN (`host.example` -> `host.example.`), or `None` if it is
/// not a valid name (then the lookup is a permanent failure: it can never succeed).
pub fn absolute_name(fqdn: &str) -> Option<Name> {
    let mut n = Name::from_ascii(fqdn.trim_end_matches('.')).ok()?;
    if n.num_labels() == 0 {
        return None;
    }
    n.set_fqdn(true);
    Some(n)
}

/// Runs the DNS queries for one engine lookup. Never fails: every outcome is a
/// [`DnsResult`].
pub async fn resolve<P: ConnectionProvider>(
    resolver: &Resolver<P>,
    marker_type: u16,
    query: &DnsQuery,
) -> DnsResult {
    match query {
        DnsQuery::Reverse(addr) => {
            let name = Name::from(*addr);
            let res = resolver.lookup(name, RecordType::PTR).await;
            reverse_result(part(res, RecordType::PTR))
        }
        DnsQuery::Forward(fqdn) => {
            let Some(name) = absolute_name(fqdn) else {
                return DnsResult::Permanent;
            };
            let mtype = RecordType::from(marker_type);
            let (aaaa, marker) = futures_join(
                resolver.lookup(name.clone(), RecordType::AAAA),
                resolver.lookup(name, mtype),
            )
            .await;
            forward_result(
                part(aaaa, RecordType::AAAA),
                part(marker, mtype),
                marker_type,
            )
        }
    }
}

/// Polls two futures concurrently (both queries are on the wire at once).
async fn futures_join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let mut ra = None;
    let mut rb = None;
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                ra = x;
                rb = y;
                Poll::Pending
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::Query;
    use hickory_resolver::proto::rr::rdata::{AAAA, NULL, PTR};
    use hickory_resolver::proto::ProtoError;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn aaaa(a: &str, ttl: u32) -> Record {
        Record::from_rdata(name("h.test."), ttl, RData::AAAA(AAAA(a.parse().unwrap())))
    }

    fn ptr(target: &str, ttl: u32) -> Record {
        Record::from_rdata(name("1.ip6.arpa."), ttl, RData::PTR(PTR(name(target))))
    }

    fn marker(ttl: u32) -> Record {
        Record::from_rdata(
            name("h.test."),
            ttl,
            RData::Update0(RecordType::Unknown(65280)),
        )
    }

    fn no_records(code: ResponseCode, negative_ttl: Option<u32>) -> ResolveError {
        let kind = ProtoErrorKind::NoRecordsFound {
            query: Box::new(Query::query(name("h.test."), RecordType::AAAA)),
            soa: None,
            ns: None,
            negative_ttl,
            response_code: code,
            trusted: true,
            authorities: None,
        };
        ResolveError::from(ProtoError::from(kind))
    }

    #[test]
    fn nxdomain_and_nodata_are_permanent_servfail_refused_timeout_transient() {
        assert_eq!(
            part_of_error(&no_records(ResponseCode::NXDomain, Some(5))),
            Part::NxDomain {
                negative_ttl: Some(5)
            }
        );
        assert_eq!(
            part_of_error(&no_records(ResponseCode::NoError, None)),
            Part::NoData { negative_ttl: None }
        );
        assert_eq!(
            part_of_error(&no_records(ResponseCode::ServFail, None)),
            Part::Transient
        );
        assert_eq!(
            part_of_error(&no_records(ResponseCode::Refused, None)),
            Part::Transient
        );
        let timeout = ResolveError::from(ProtoError::from(ProtoErrorKind::Timeout));
        assert_eq!(part_of_error(&timeout), Part::Transient);
        let io = ResolveError::from(ProtoError::from(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(part_of_error(&io), Part::Transient);
    }

    #[test]
    fn reverse_keeps_every_name_once_with_the_smallest_ttl() {
        let r = reverse_result(Part::Records(vec![
            ptr("WWW.Foo.test.", 300),
            ptr("www.bar.test.", 60),
            ptr("www.foo.test.", 10),
        ]));
        assert_eq!(
            r,
            DnsResult::Ok {
                answer: DnsAnswer::Reverse {
                    names: vec!["www.foo.test".into(), "www.bar.test".into()]
                },
                ttl: 60
            }
        );
        assert_eq!(reverse_result(Part::Records(vec![])), DnsResult::Permanent);
        assert_eq!(
            reverse_result(Part::NxDomain { negative_ttl: None }),
            DnsResult::Permanent
        );
        assert_eq!(reverse_result(Part::Transient), DnsResult::Transient);
    }

    #[test]
    fn forward_combines_aaaa_and_marker() {
        let both = forward_result(
            Part::Records(vec![aaaa("2001:db8::1", 60), aaaa("2001:db8::2", 30)]),
            Part::Records(vec![marker(20)]),
            65280,
        );
        assert_eq!(
            both,
            DnsResult::Ok {
                answer: DnsAnswer::Forward {
                    addrs: vec![
                        "2001:db8::1".parse().unwrap(),
                        "2001:db8::2".parse().unwrap()
                    ],
                    m6: true
                },
                ttl: 20
            }
        );
        // No marker (NODATA): not M6, and the SOA's negative TTL bounds the result's TTL.
        let legacy = forward_result(
            Part::Records(vec![aaaa("2001:db8::1", 600)]),
            Part::NoData {
                negative_ttl: Some(30),
            },
            65280,
        );
        assert_eq!(
            legacy,
            DnsResult::Ok {
                answer: DnsAnswer::Forward {
                    addrs: vec!["2001:db8::1".parse().unwrap()],
                    m6: false
                },
                ttl: 30
            }
        );
        assert_eq!(
            forward_result(
                Part::NoData { negative_ttl: None },
                Part::NoData { negative_ttl: None },
                65280
            ),
            DnsResult::Permanent
        );
        assert_eq!(
            forward_result(
                Part::NxDomain { negative_ttl: None },
                Part::Transient,
                65280
            ),
            DnsResult::Transient
        );
        assert_eq!(
            forward_result(
                Part::NxDomain { negative_ttl: None },
                Part::NxDomain { negative_ttl: None },
                65280
            ),
            DnsResult::Permanent
        );
    }

    #[test]
    fn a_marker_with_content_is_not_the_marker() {
        let full = Record::from_rdata(
            name("h.test."),
            60,
            RData::Unknown {
                code: RecordType::Unknown(65280),
                rdata: NULL::with(vec![1]),
            },
        );
        assert!(!is_marker(&full, 65280));
        assert!(is_marker(&marker(60), 65280));
        assert!(!is_marker(&marker(60), 65281));
    }

    #[test]
    fn names_are_made_absolute() {
        assert_eq!(absolute_name("h.test").unwrap().to_ascii(), "h.test.");
        assert_eq!(absolute_name("h.test.").unwrap().to_ascii(), "h.test.");
        assert!(absolute_name("").is_none());
        assert!(absolute_name(".").is_none());
        assert!(absolute_name(&"a".repeat(300)).is_none());
    }
}
