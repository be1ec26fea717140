//! M6 wire formats (draft-nordmark-multi6-noid-02, seed 001), smoltcp style.
//!
//! The full specification, with byte diagrams, is `docs/protocol.md`.
//!
//! - [`m6`]: the M6 control messages (ICMPv6 types 200/201, codes INIT..CLOSEACK): the
//!   zero-copy [`m6::Packet`] view of the fixed part and the owned [`m6::Repr`] / [`m6::Message`].
//! - [`tlv`]: the 8-octet aligned TLVs of the control messages (AIDs, locator sets, flow
//!   labels, birthday counter, CC state).
//! - [`data`]: the data-packet protocol ranges P1/P2 (seed 001 section 6) and the 8-octet
//!   escape header.
//! - [`checksum`]: the Internet checksum with the IPv6 pseudo-header (ICMPv6, RFC 4443) over
//!   plain bytes, also the dataplane's per-packet one.
//! - [`dns`]: the M6 capability marker in DNS.
//! - [`consts`]: every protocol constant with its default.
//! - `fuzz_entry` (cargo feature `fuzzing`, enabled only by `fuzz/` and proto's own tests):
//!   the bodies of the fuzz targets, callable from stable Rust. It is the only code here with
//!   `panic!`/`assert!` (its oracles), which is why production builds leave it out.
//!
//! Nothing in this module panics on network data: parsers return [`Error`].
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod checksum;
pub mod consts;
pub mod data;
pub mod dns;
#[cfg(feature = "fuzzing")]
pub mod fuzz_entry;
pub mod m6;
pub mod tlv;

mod bytes;

use core::fmt;

pub use m6::FlowLabel;
pub use tlv::TlvType;

/// Why a buffer is not a valid M6 message or header.
///
/// Every parser in [`crate::wire`] returns one of these instead of panicking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before a header, a field or a length it declares.
    Truncated,
    /// Bytes follow the end of the message (e.g. data after the TLVs while the next header
    /// is 59, No Next Header).
    TrailingBytes,
    /// The TLV area length is not a multiple of 8 octets.
    Misaligned,
    /// A length field is invalid: a TLV of length 0, a TLV running past the TLV area, or a
    /// TLV whose length does not fit its type (e.g. a locator set not of 8 + 16n octets).
    BadLength,
    /// The ICMPv6 type is neither of the configured M6 types.
    UnknownType(u8),
    /// The ICMPv6 code is not an M6 message this implementation knows. Receivers MUST
    /// silently ignore such messages (seed 001 section 3.3).
    UnknownCode(u8),
    /// The ICMPv6 checksum does not verify.
    BadChecksum,
    /// A TLV the message code requires is absent.
    MissingTlv(TlvType),
    /// A TLV (or, for locator sets, a set identifier) appears more than once.
    DuplicateTlv(TlvType),
    /// A known TLV that this message code does not carry.
    UnexpectedTlv(TlvType),
    /// Fields contradict each other (e.g. a CC whose D flag differs from its CC state, a
    /// piggybacked packet on a message that cannot carry one, an escape header carrying an
    /// M6 protocol number).
    Inconsistent,
    /// A representation cannot be encoded (too many locators, message longer than 65535
    /// octets, buffer too small for [`m6::Repr::buffer_len`]).
    Unencodable,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "truncated"),
            Error::TrailingBytes => write!(f, "trailing bytes after the message"),
            Error::Misaligned => write!(f, "TLV area not a multiple of 8 octets"),
            Error::BadLength => write!(f, "bad TLV length"),
            Error::UnknownType(t) => write!(f, "not an M6 ICMPv6 type: {t}"),
            Error::UnknownCode(c) => write!(f, "unknown M6 code {c}"),
            Error::BadChecksum => write!(f, "bad ICMPv6 checksum"),
            Error::MissingTlv(t) => write!(f, "missing TLV {t:?}"),
            Error::DuplicateTlv(t) => write!(f, "duplicate TLV {t:?}"),
            Error::UnexpectedTlv(t) => write!(f, "TLV {t:?} not allowed in this message"),
            Error::Inconsistent => write!(f, "inconsistent fields"),
            Error::Unencodable => write!(f, "representation cannot be encoded"),
        }
    }
}

impl std::error::Error for Error {}

/// Result of the wire parsers.
pub type Result<T> = core::result::Result<T, Error>;
