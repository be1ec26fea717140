//! Bodies of the fuzz targets in `fuzz/` (cargo fuzz, nightly), callable from stable Rust so
//! that `proto/tests/fuzz_smoke.rs` can run them on seeded random inputs (docs/fuzzing.md).
//!
//! Each function must return without panicking on any input. Besides "no panic" they check
//! oracles with `assert!`: whatever parses re-emits to something that parses to the same
//! representation, and checksums written are checksums verified. An assertion failure is a
//! bug in the wire code, found exactly as a crash would be.
//!
//! Compiled only with the cargo feature `fuzzing` (fuzz/Cargo.toml and proto's self
//! dev-dependency enable it), so no production build contains these panics.
#![allow(clippy::panic)]

use core::net::Ipv6Addr;

use super::checksum;
use super::data::{Escape, EscapeRepr, ProtoRanges};
use super::m6::{IcmpTypes, Packet, Repr};
use super::tlv::{TlvIter, TlvRepr};
use crate::cc::{self, CcEcho, CcKey, CcKeyring, CcPolicy};

const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xa);
const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0xb);

/// The IPv6 (source, destination) the entry points checksum with.
pub const ADDRESSES: (Ipv6Addr, Ipv6Addr) = (SRC, DST);

/// Names of the entry points, as the fuzz targets and the smoke test know them.
pub const TARGETS: &[&str] = &[
    "m6_raw",
    "m6_message",
    "tlv_area",
    "cc_echo",
    "escape",
    "checksum",
];

/// Runs the entry point called `name` (one of [`TARGETS`]); false if there is none.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "m6_raw" => m6_raw(data),
        "m6_message" => m6_message(data),
        "tlv_area" => tlv_area(data),
        "cc_echo" => cc_echo(data),
        "escape" => escape(data),
        "checksum" => checksum(data),
        _ => return false,
    }
    true
}

/// The receive path as the dataplane runs it: view, length check, full parse with checksum,
/// on arbitrary bytes.
pub fn m6_raw(data: &[u8]) {
    if let Ok(p) = Packet::new_checked(data) {
        let _ = p.tlvs().count();
        let _ = Repr::parse(&p, &SRC, &DST, &IcmpTypes::default());
    }
}

/// The parser behind the checksum: the input gets an M6 type and a correct checksum, so
/// every mutation reaches the TLV code. Anything that parses must round-trip.
pub fn m6_message(data: &[u8]) {
    let mut buf = data.to_vec();
    if let Some(t) = buf.first_mut() {
        *t = if *t & 1 == 0 { 200 } else { 201 };
    }
    if buf.len() >= 4 {
        Packet::new_unchecked(&mut buf[..]).fill_checksum(&SRC, &DST);
    }
    let types = IcmpTypes::default();
    let Ok(p) = Packet::new_checked(&buf[..]) else {
        return;
    };
    let Ok(repr) = Repr::parse(&p, &SRC, &DST, &types) else {
        return;
    };
    let out = match repr.to_bytes(&SRC, &DST, &types) {
        Ok(out) => out,
        Err(e) => panic!("parsed representation does not emit: {e:?} {repr:?}"),
    };
    assert_eq!(out.len(), repr.buffer_len());
    assert!(out.len() <= buf.len(), "re-emission grew");
    let again = Packet::new_checked(&out[..]).and_then(|p| Repr::parse(&p, &SRC, &DST, &types));
    assert_eq!(again.as_ref(), Ok(&repr), "round trip changed the message");
}

/// A TLV area on its own; every TLV that parses re-emits to the same octets, apart from
/// reserved bits.
pub fn tlv_area(data: &[u8]) {
    for t in TlvIter::new(data) {
        let Ok(t) = t else { break };
        let Ok(r) = TlvRepr::parse(&t) else { continue };
        if matches!(r, TlvRepr::Unknown { .. }) {
            continue;
        }
        let mut out = vec![0u8; r.buffer_len()];
        match r.emit(&mut out) {
            Ok(n) => assert_eq!(n, t.total_len()),
            Err(e) => panic!("parsed TLV does not emit: {e:?}"),
        }
        let back = TlvRepr::parse(&super::tlv::Packet::new_unchecked(&out[..]));
        assert_eq!(back, Ok(r));
    }
}

/// The dataplane's CCR check: zero-copy echo extraction and MAC verification on arbitrary
/// messages; forged states never verify.
pub fn cc_echo(data: &[u8]) {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let Ok(echo) = CcEcho::from_packet(&p) else {
        return;
    };
    let keys = CcKeyring::new(CcKey::new(echo.state.key_serial, &[0x5a; 32]));
    let r = cc::check(
        &keys,
        &echo,
        &SRC,
        &DST,
        echo.state.timestamp,
        &CcPolicy::default(),
    );
    // A random 128-bit MAC verifying is a 2^-128 event, or a bug.
    assert_ne!(r.map(|_| ()), Ok(()), "forged CC state verified");
    // The same state, freshly MACed, verifies.
    let input = cc::CcInput {
        init_src: echo.state.init_src,
        init_dst: echo.state.init_dst,
        aid_initiator: echo.aid_initiator,
        aid_responder: echo.aid_responder,
        initiator_nonce: echo.state.initiator_nonce,
        initiator_flow_label: echo.state.initiator_flow_label,
        initiator_birthday: echo.state.initiator_birthday,
        responder_birthday: echo.state.responder_birthday,
        ulp_discarded: echo.state.ulp_discarded,
        lsl_initiator: echo.lsl_initiator,
        lsr_responder: echo.lsr_responder,
        lsl_responder: echo.lsl_responder,
    };
    let fresh = CcEcho {
        state: cc::generate(&keys, &input, echo.state.timestamp),
        ..echo
    };
    let lax = CcPolicy {
        check_addresses: false,
        ..CcPolicy::default()
    };
    assert!(cc::check(&keys, &fresh, &SRC, &DST, echo.state.timestamp, &lax).is_ok());
}

/// The escape header and the protocol-range classification.
pub fn escape(data: &[u8]) {
    let ranges = data
        .get(..2)
        .and_then(|b| match b {
            [p1, p2] => ProtoRanges::new(*p1, *p2).ok(),
            _ => None,
        })
        .unwrap_or_default();
    let rest = data.get(2..).unwrap_or(&[]);
    if let Some(nh) = rest.first() {
        if let Some(c) = ranges.classify(*nh) {
            assert_eq!(ranges.next_header(c.rewrite_ok, c.k), *nh);
        }
        let enc = ranges.encode(*nh, true);
        assert!(ranges.is_m6(enc.next_header));
    }
    if let Ok(e) = Escape::new_checked(rest) {
        let _ = e.payload();
        if let Ok(r) = EscapeRepr::parse(&e, &ranges) {
            let mut out = [0u8; 8];
            r.emit(&mut Escape::new_unchecked(&mut out[..]));
            assert_eq!(out.first(), rest.first());
        }
    }
}

/// The checksum helpers: the 8-octets-per-step sum equals a plain 16-bit word sum, a filled
/// checksum verifies, the incremental update equals a full recomputation. Input: 16 octets
/// old source, 16 new source, then the message.
pub fn checksum(data: &[u8]) {
    let narrow = data.chunks(2).fold(0u32, |s, c| {
        let w = match c {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from(*a) << 8,
            _ => 0,
        };
        let s = s + u32::from(w);
        (s & 0xffff) + (s >> 16)
    });
    assert_eq!(u32::from(checksum::fold64(checksum::add(0, data))), narrow);
    let (Some(a), Some(b)) = (data.get(..16), data.get(16..32)) else {
        return;
    };
    let mut old = [0u8; 16];
    old.copy_from_slice(a);
    let mut new = [0u8; 16];
    new.copy_from_slice(b);
    let (old, new) = (Ipv6Addr::from(old), Ipv6Addr::from(new));
    let mut msg = data.get(32..).unwrap_or(&[]).to_vec();
    if msg.len() < 4 {
        return;
    }
    let mut p = Packet::new_unchecked(&mut msg[..]);
    p.fill_checksum(&old, &DST);
    assert!(checksum::icmpv6_verify(&old, &DST, &msg));
    let c = Packet::new_unchecked(&msg[..]).checksum();
    let updated = checksum::update_for_address(c, &old, &new);
    let mut p = Packet::new_unchecked(&mut msg[..]);
    p.set_checksum(updated);
    assert!(checksum::icmpv6_verify(&new, &DST, &msg));
}
