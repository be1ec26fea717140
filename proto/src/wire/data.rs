//! M6 data packets: the "rewrite ok" bit encoded in the IPv6 next-header value (seed 001
//! section 6), and the 8-octet escape header.
//!
//! Next header `P1 + k` means "rewrite ok", `P2 + k` "no rewrite", with k = 0 TCP, 1 UDP,
//! 2 SCTP, 3 DCCP, 4 ESP, 5 and 6 reserved, 7 escape. With escape an 8-octet header follows
//! that carries the real protocol:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Header  |  Hdr Ext Len  |           Reserved            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           Reserved                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Hdr Ext Len counts 8-octet units after the first, as in RFC 8200; senders set 0.

use super::bytes::{put_u8, u8_at, zero};
use super::consts;
use super::{Error, Result};

/// Slot k of TCP.
pub const K_TCP: u8 = 0;
/// Slot k of UDP.
pub const K_UDP: u8 = 1;
/// Slot k of SCTP.
pub const K_SCTP: u8 = 2;
/// Slot k of DCCP (the seed's "RDDP"; see docs/protocol.md).
pub const K_DCCP: u8 = 3;
/// Slot k of ESP.
pub const K_ESP: u8 = 4;
/// Slot k of the escape header.
pub const K_ESCAPE: u8 = 7;

/// IANA protocol numbers of the dedicated slots.
pub const IPPROTO_TCP: u8 = 6;
/// UDP.
pub const IPPROTO_UDP: u8 = 17;
/// DCCP.
pub const IPPROTO_DCCP: u8 = 33;
/// ESP.
pub const IPPROTO_ESP: u8 = 50;
/// SCTP.
pub const IPPROTO_SCTP: u8 = 132;

/// Length of the escape header (Hdr Ext Len 0).
pub const ESCAPE_LEN: usize = 8;

/// The real protocol of slot `k`, for the dedicated slots 0-4.
pub const fn protocol_for_k(k: u8) -> Option<u8> {
    match k {
        K_TCP => Some(IPPROTO_TCP),
        K_UDP => Some(IPPROTO_UDP),
        K_SCTP => Some(IPPROTO_SCTP),
        K_DCCP => Some(IPPROTO_DCCP),
        K_ESP => Some(IPPROTO_ESP),
        _ => None,
    }
}

/// The dedicated slot of protocol `proto`, if it has one.
pub const fn k_for_protocol(proto: u8) -> Option<u8> {
    match proto {
        IPPROTO_TCP => Some(K_TCP),
        IPPROTO_UDP => Some(K_UDP),
        IPPROTO_SCTP => Some(K_SCTP),
        IPPROTO_DCCP => Some(K_DCCP),
        IPPROTO_ESP => Some(K_ESP),
        _ => None,
    }
}

/// Why a P1/P2 pair is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// A range would run past 255.
    OutOfBounds,
    /// The two ranges share a value.
    Overlap,
}

impl core::fmt::Display for RangeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RangeError::OutOfBounds => write!(f, "an M6 protocol range runs past 255"),
            RangeError::Overlap => write!(f, "the M6 protocol ranges P1 and P2 overlap"),
        }
    }
}

impl std::error::Error for RangeError {}

/// The two protocol ranges (P1 "rewrite ok", P2 "no rewrite"), 8 values each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtoRanges {
    p1: u8,
    p2: u8,
}

impl Default for ProtoRanges {
    fn default() -> Self {
        ProtoRanges {
            p1: consts::P1_DEFAULT,
            p2: consts::P2_DEFAULT,
        }
    }
}

/// What an M6 data next-header value says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataClass {
    /// In P1 (true) or P2 (false).
    pub rewrite_ok: bool,
    /// Slot 0..=7.
    pub k: u8,
}

impl DataClass {
    /// The real protocol for slots 0-4; `None` for escape and the reserved slots 5, 6.
    pub const fn protocol(&self) -> Option<u8> {
        protocol_for_k(self.k)
    }

    /// True for slot 7.
    pub const fn is_escape(&self) -> bool {
        self.k == K_ESCAPE
    }

    /// True for the reserved slots 5 and 6 (receivers drop such packets).
    pub const fn is_reserved(&self) -> bool {
        self.k == 5 || self.k == 6
    }
}

/// How to send a ULP protocol as M6 data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encoding {
    /// IPv6 next-header value to put in the header chain.
    pub next_header: u8,
    /// `Some` if an escape header carrying this protocol must follow.
    pub escape: Option<EscapeRepr>,
}

impl ProtoRanges {
    /// The ranges `p1..=p1+7` and `p2..=p2+7`.
    pub const fn new(p1: u8, p2: u8) -> core::result::Result<ProtoRanges, RangeError> {
        if p1 > 248 || p2 > 248 {
            return Err(RangeError::OutOfBounds);
        }
        if p1.abs_diff(p2) < 8 {
            return Err(RangeError::Overlap);
        }
        Ok(ProtoRanges { p1, p2 })
    }

    /// P1.
    pub const fn p1(&self) -> u8 {
        self.p1
    }

    /// P2.
    pub const fn p2(&self) -> u8 {
        self.p2
    }

    /// `Some` if `next_header` is in P1 or P2.
    pub const fn classify(&self, next_header: u8) -> Option<DataClass> {
        if next_header >= self.p1 && next_header - self.p1 < 8 {
            Some(DataClass {
                rewrite_ok: true,
                k: next_header - self.p1,
            })
        } else if next_header >= self.p2 && next_header - self.p2 < 8 {
            Some(DataClass {
                rewrite_ok: false,
                k: next_header - self.p2,
            })
        } else {
            None
        }
    }

    /// True if `next_header` is an M6 data value (either range).
    pub const fn is_m6(&self, next_header: u8) -> bool {
        self.classify(next_header).is_some()
    }

    /// The next-header value of slot `k` (masked to 0..=7) in the chosen range.
    pub const fn next_header(&self, rewrite_ok: bool, k: u8) -> u8 {
        let base = if rewrite_ok { self.p1 } else { self.p2 };
        base + (k & 7)
    }

    /// How to carry the ULP protocol `proto` as M6 data: its dedicated slot, or escape.
    pub const fn encode(&self, proto: u8, rewrite_ok: bool) -> Encoding {
        match k_for_protocol(proto) {
            Some(k) => Encoding {
                next_header: self.next_header(rewrite_ok, k),
                escape: None,
            },
            None => Encoding {
                next_header: self.next_header(rewrite_ok, K_ESCAPE),
                escape: Some(EscapeRepr { next_header: proto }),
            },
        }
    }

    /// The same slot in the other range (a host turning "rewrite ok" on or off).
    pub const fn with_rewrite(&self, next_header: u8, rewrite_ok: bool) -> Option<u8> {
        match self.classify(next_header) {
            Some(c) => Some(self.next_header(rewrite_ok, c.k)),
            None => None,
        }
    }
}

/// Zero-copy view of the escape header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escape<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Escape<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Escape<T> {
        Escape { buffer }
    }

    /// Wraps a buffer and runs [`Escape::check_len`].
    pub fn new_checked(buffer: T) -> Result<Escape<T>> {
        let e = Escape::new_unchecked(buffer);
        e.check_len()?;
        Ok(e)
    }

    /// `Truncated` if the buffer is shorter than the header it declares.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < ESCAPE_LEN || len < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The real protocol.
    pub fn next_header(&self) -> u8 {
        u8_at(self.buffer.as_ref(), 0)
    }

    /// Hdr Ext Len.
    pub fn hdr_ext_len(&self) -> u8 {
        u8_at(self.buffer.as_ref(), 1)
    }

    /// Length of the header in octets: (Hdr Ext Len + 1) * 8.
    pub fn header_len(&self) -> usize {
        (usize::from(self.hdr_ext_len()) + 1) * 8
    }

    /// What follows the header.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Escape<T> {
    /// Sets the real protocol.
    pub fn set_next_header(&mut self, v: u8) {
        put_u8(self.buffer.as_mut(), 0, v);
    }

    /// Sets Hdr Ext Len.
    pub fn set_hdr_ext_len(&mut self, v: u8) {
        put_u8(self.buffer.as_mut(), 1, v);
    }
}

/// The escape header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EscapeRepr {
    /// The real protocol of what follows.
    pub next_header: u8,
}

impl EscapeRepr {
    /// Parses the header. `Inconsistent` if it carries an M6 data value (no nesting).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        e: &Escape<&T>,
        ranges: &ProtoRanges,
    ) -> Result<EscapeRepr> {
        e.check_len()?;
        if ranges.is_m6(e.next_header()) {
            return Err(Error::Inconsistent);
        }
        Ok(EscapeRepr {
            next_header: e.next_header(),
        })
    }

    /// 8.
    pub const fn buffer_len(&self) -> usize {
        ESCAPE_LEN
    }

    /// Writes the header (Hdr Ext Len 0, reserved zero).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, e: &mut Escape<&mut T>) {
        zero(e.buffer.as_mut(), 0, ESCAPE_LEN);
        e.set_next_header(self.next_header);
        e.set_hdr_ext_len(0);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    static ESCAPE_BYTES: [u8; 12] = [58, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0xab, 0xcd];

    #[test]
    fn default_ranges() {
        let r = ProtoRanges::default();
        assert_eq!(r.p1(), 160);
        assert_eq!(r.p2(), 168);
        assert_eq!(
            r.classify(160),
            Some(DataClass {
                rewrite_ok: true,
                k: 0
            })
        );
        assert_eq!(
            r.classify(175),
            Some(DataClass {
                rewrite_ok: false,
                k: 7
            })
        );
        assert_eq!(r.classify(159), None);
        assert_eq!(r.classify(176), None);
        assert_eq!(r.classify(6), None);
    }

    #[test]
    fn every_value_classifies_consistently() {
        let r = ProtoRanges::new(100, 240).unwrap();
        for nh in 0..=255u8 {
            if let Some(c) = r.classify(nh) {
                assert_eq!(r.next_header(c.rewrite_ok, c.k), nh);
            }
        }
    }

    #[test]
    fn range_validation() {
        assert_eq!(ProtoRanges::new(249, 100), Err(RangeError::OutOfBounds));
        assert_eq!(ProtoRanges::new(160, 167), Err(RangeError::Overlap));
        assert!(ProtoRanges::new(160, 168).is_ok());
        assert!(ProtoRanges::new(248, 0).is_ok());
    }

    #[test]
    fn encode_dedicated_and_escape() {
        let r = ProtoRanges::default();
        assert_eq!(
            r.encode(IPPROTO_TCP, true),
            Encoding {
                next_header: 160,
                escape: None
            }
        );
        assert_eq!(
            r.encode(IPPROTO_ESP, false),
            Encoding {
                next_header: 172,
                escape: None
            }
        );
        assert_eq!(
            r.encode(58, true),
            Encoding {
                next_header: 167,
                escape: Some(EscapeRepr { next_header: 58 })
            }
        );
        assert_eq!(r.with_rewrite(161, false), Some(169));
        assert_eq!(r.with_rewrite(6, false), None);
        for k in 0..5 {
            assert_eq!(k_for_protocol(protocol_for_k(k).unwrap()), Some(k));
        }
    }

    #[test]
    fn escape_fields() {
        let e = Escape::new_checked(&ESCAPE_BYTES[..]).unwrap();
        assert_eq!(e.next_header(), 58);
        assert_eq!(e.hdr_ext_len(), 0);
        assert_eq!(e.header_len(), 8);
        assert_eq!(e.payload(), &[0x80, 0, 0xab, 0xcd]);
        let r = EscapeRepr::parse(&e, &ProtoRanges::default()).unwrap();
        assert_eq!(r, EscapeRepr { next_header: 58 });
        let mut buf = [0xffu8; 8];
        r.emit(&mut Escape::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &ESCAPE_BYTES[..8]);
    }

    #[test]
    fn escape_errors() {
        assert_eq!(
            Escape::new_checked(&ESCAPE_BYTES[..7]).unwrap_err(),
            Error::Truncated
        );
        let b = [58u8, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Escape::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        let b = [161u8, 0, 0, 0, 0, 0, 0, 0];
        let e = Escape::new_checked(&b[..]).unwrap();
        assert_eq!(
            EscapeRepr::parse(&e, &ProtoRanges::default()).unwrap_err(),
            Error::Inconsistent
        );
    }
}
