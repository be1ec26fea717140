//! The TLVs of the M6 control messages (docs/protocol.md section "TLVs").
//!
//! Every TLV is a whole number of 8-octet units:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |    Length     |     Value ...                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Length counts the whole TLV (type and length octets included) in units of 8 octets and is
//! never 0. Unknown types are skipped, so new TLVs can be added without breaking old receivers.

use core::net::Ipv6Addr;

use super::bytes::{
    addr_at, array, put, put_addr, put_u32, put_u64, put_u8, u32_at, u64_at, u8_at, zero,
};
use super::m6::FlowLabel;
use super::{Error, Result};

/// Size of one TLV length unit.
pub const UNIT: usize = 8;

/// Most locators one Locator Set TLV can carry: (255 * 8 - 8) / 16.
pub const MAX_LOCATORS: usize = 127;

/// Length in octets of the AIDs TLV.
pub const AIDS_LEN: usize = 40;
/// Length in octets of the Flow Label TLV.
pub const FLOW_LABEL_LEN: usize = 8;
/// Length in octets of the Flow Label Pair TLV.
pub const FLOW_LABEL_PAIR_LEN: usize = 8;
/// Length in octets of the Birthday TLV.
pub const BIRTHDAY_LEN: usize = 8;
/// Length in octets of the CC State TLV.
pub const CC_STATE_LEN: usize = 80;
/// Length in octets of the fixed head of a Locator Set TLV (before the locators).
pub const LOCATOR_SET_HEAD_LEN: usize = 8;

/// TLV type codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TlvType {
    /// The two AIDs of the context: (initiator, responder) in INIT/CC/CCR/CONF, (sender,
    /// receiver) in UR/UA/CLOSE/CLOSEACK.
    Aids = 1,
    /// A locator set (Lsl or Lsr of one of the two hosts named by the AIDs TLV).
    LocatorSet = 2,
    /// One flow label: the one the sender allocated (F(initiator) in INIT, F(responder) in
    /// CONF), or the flow label of the triggering packet in UC.
    FlowLabel = 3,
    /// F(sender) and F(receiver): the context's two flow labels (UR, UA, CLOSE, CLOSEACK).
    FlowLabelPair = 4,
    /// The sender's birthday counter (seed 001 section 7.14).
    Birthday = 5,
    /// The responder's context state with timestamp, key serial and HMAC (CC, CCR).
    CcState = 6,
}

impl TlvType {
    /// The type for a wire value, if known.
    pub const fn from_u8(v: u8) -> Option<TlvType> {
        match v {
            1 => Some(TlvType::Aids),
            2 => Some(TlvType::LocatorSet),
            3 => Some(TlvType::FlowLabel),
            4 => Some(TlvType::FlowLabelPair),
            5 => Some(TlvType::Birthday),
            6 => Some(TlvType::CcState),
            _ => None,
        }
    }
}

/// Which locator set a Locator Set TLV carries.
///
/// "First" is the host named by the first AID of the message's AIDs TLV (the initiator in
/// INIT/CC/CCR/CONF, the sender in UR), "second" the host named by the second AID (the
/// responder, or the receiver of a UR). Lsl(X) is the set X knows it has; Lsr(X) the set of
/// X's locators its peer found in the DNS (seed 001 section 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum LocatorSetId {
    /// Lsl(first): Lsl(initiator) in INIT/CC/CCR, Lsl(sender) in UR.
    LslFirst = 1,
    /// Lsr(first): Lsr(initiator) in CONF.
    LsrFirst = 2,
    /// Lsl(second): Lsl(responder) in CC/CCR/CONF.
    LslSecond = 3,
    /// Lsr(second): Lsr(responder) in INIT/CC/CCR, Lsr(receiver) in UR.
    LsrSecond = 4,
}

impl LocatorSetId {
    /// The set identifier for a wire value, if known.
    pub const fn from_u8(v: u8) -> Option<LocatorSetId> {
        match v {
            1 => Some(LocatorSetId::LslFirst),
            2 => Some(LocatorSetId::LsrFirst),
            3 => Some(LocatorSetId::LslSecond),
            4 => Some(LocatorSetId::LsrSecond),
            _ => None,
        }
    }
}

/// A list of locators that borrows its storage: either the raw octets of a Locator Set TLV
/// (zero copy, for the dataplane) or a slice of addresses.
#[derive(Debug, Clone, Copy)]
pub enum Locators<'a> {
    /// Raw locators, 16 octets each (a trailing partial locator is ignored).
    Bytes(&'a [u8]),
    /// Addresses.
    Addrs(&'a [Ipv6Addr]),
}

impl<'a> Locators<'a> {
    /// Wraps raw octets; `Err(BadLength)` unless the length is a multiple of 16.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Locators<'a>> {
        if bytes.len() & 15 != 0 {
            return Err(Error::BadLength);
        }
        Ok(Locators::Bytes(bytes))
    }

    /// Wraps a slice of addresses.
    pub const fn from_addrs(addrs: &'a [Ipv6Addr]) -> Locators<'a> {
        Locators::Addrs(addrs)
    }

    /// Number of locators.
    pub fn len(&self) -> usize {
        match self {
            Locators::Bytes(b) => b.len() / 16,
            Locators::Addrs(a) => a.len(),
        }
    }

    /// True if there is no locator.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The locators in order.
    pub fn iter(&self) -> LocatorIter<'a> {
        match *self {
            Locators::Bytes(b) => LocatorIter::Bytes(b.chunks_exact(16)),
            Locators::Addrs(a) => LocatorIter::Addrs(a.iter()),
        }
    }

    /// True if `addr` is one of the locators.
    pub fn contains(&self, addr: &Ipv6Addr) -> bool {
        self.iter().any(|a| a == *addr)
    }

    /// Owned copy.
    pub fn to_vec(&self) -> Vec<Ipv6Addr> {
        self.iter().collect()
    }
}

impl PartialEq for Locators<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Locators<'_> {}

/// Iterator over [`Locators`].
#[derive(Debug, Clone)]
pub enum LocatorIter<'a> {
    /// Over raw octets.
    Bytes(core::slice::ChunksExact<'a, u8>),
    /// Over addresses.
    Addrs(core::slice::Iter<'a, Ipv6Addr>),
}

impl Iterator for LocatorIter<'_> {
    type Item = Ipv6Addr;

    fn next(&mut self) -> Option<Ipv6Addr> {
        match self {
            LocatorIter::Bytes(c) => c.next().map(|b| addr_at(b, 0)),
            LocatorIter::Addrs(a) => a.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            LocatorIter::Bytes(c) => c.size_hint(),
            LocatorIter::Addrs(a) => a.size_hint(),
        }
    }
}

impl ExactSizeIterator for LocatorIter<'_> {}

/// The responder's context state carried in CC and echoed in CCR (seed 001 section 3.3.2),
/// with the timestamp, key serial and truncated HMAC that let a stateless responder check
/// the echo (see [`crate::cc`]).
///
/// The AIDs and the three locator sets of the state travel in their own TLVs of the same
/// message; the MAC covers them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CcState {
    /// The "ULP packet discarded" bit: the ULP packet piggybacked on the INIT was not passed
    /// to the ULP (seed 001 section 7.3).
    pub ulp_discarded: bool,
    /// Serial of the per-host key that made `mac`.
    pub key_serial: u32,
    /// Responder's clock (seconds, wrapping) when the CC was made.
    pub timestamp: u32,
    /// F(initiator), from the INIT.
    pub initiator_flow_label: FlowLabel,
    /// Initiator's birthday counter, from the INIT.
    pub initiator_birthday: u32,
    /// Responder's birthday counter.
    pub responder_birthday: u32,
    /// The INIT's nonce.
    pub initiator_nonce: u64,
    /// IPv6 source address of the INIT as received (the locator the CC is sent to).
    pub init_src: Ipv6Addr,
    /// IPv6 destination address of the INIT as received.
    pub init_dst: Ipv6Addr,
    /// HMAC-SHA256 truncated to 128 bits.
    pub mac: [u8; 16],
}

/// Byte offsets of the CC State TLV, from the start of the TLV.
pub mod cc_state_field {
    use core::ops::Range;
    /// Type octet (6).
    pub const TYPE: usize = 0;
    /// Length octet (10).
    pub const LENGTH: usize = 1;
    /// Flags: bit 0x80 is D ("ULP packet discarded"); the rest reserved.
    pub const FLAGS: usize = 2;
    /// Reserved octet.
    pub const RESERVED: usize = 3;
    /// Key serial, 32 bits.
    pub const KEY_SERIAL: Range<usize> = 4..8;
    /// Timestamp, 32 bits.
    pub const TIMESTAMP: Range<usize> = 8..12;
    /// 12 reserved bits, then the 20-bit F(initiator).
    pub const FLOW_LABEL: Range<usize> = 12..16;
    /// Initiator's birthday counter.
    pub const INITIATOR_BIRTHDAY: Range<usize> = 16..20;
    /// Responder's birthday counter.
    pub const RESPONDER_BIRTHDAY: Range<usize> = 20..24;
    /// INIT nonce, 64 bits.
    pub const INITIATOR_NONCE: Range<usize> = 24..32;
    /// IPv6 source of the INIT.
    pub const INIT_SRC: Range<usize> = 32..48;
    /// IPv6 destination of the INIT.
    pub const INIT_DST: Range<usize> = 48..64;
    /// Truncated HMAC.
    pub const MAC: Range<usize> = 64..80;
}

/// D flag in the flags octet of the CC State TLV (and of the fixed part of CC).
pub const FLAG_D: u8 = 0x80;

/// Zero-copy view of one TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and checks that it holds the whole TLV.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if the buffer is shorter than 2 octets or than the TLV's length;
    /// `BadLength` if the length field is 0.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < 2 {
            return Err(Error::Truncated);
        }
        let len = self.total_len();
        if len == 0 {
            return Err(Error::BadLength);
        }
        if b.len() < len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Type octet.
    pub fn tlv_type(&self) -> u8 {
        u8_at(self.buffer.as_ref(), 0)
    }

    /// Length field (8-octet units).
    pub fn length_units(&self) -> u8 {
        u8_at(self.buffer.as_ref(), 1)
    }

    /// Length of the whole TLV in octets.
    pub fn total_len(&self) -> usize {
        usize::from(self.length_units()) * UNIT
    }

    /// The octets of this TLV (type and length included), as far as the buffer holds them.
    pub fn as_bytes(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        b.get(..self.total_len()).unwrap_or(b)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the type octet.
    pub fn set_tlv_type(&mut self, v: u8) {
        put_u8(self.buffer.as_mut(), 0, v);
    }

    /// Sets the length field (8-octet units).
    pub fn set_length_units(&mut self, v: u8) {
        put_u8(self.buffer.as_mut(), 1, v);
    }
}

/// Iterator over the TLVs of a TLV area. Yields one `Err` and stops at the first malformed
/// TLV.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> TlvIter<'a> {
    /// Iterates over `area` (the TLV area of a control message).
    pub const fn new(area: &'a [u8]) -> TlvIter<'a> {
        TlvIter {
            rest: area,
            failed: false,
        }
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<Packet<&'a [u8]>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let p = Packet::new_unchecked(self.rest);
        if let Err(e) = p.check_len() {
            self.failed = true;
            // A TLV that runs past the end of the TLV area has a bad length, not a short
            // buffer: the area's own length was already checked.
            return Some(Err(if e == Error::Truncated {
                Error::BadLength
            } else {
                e
            }));
        }
        let len = p.total_len();
        match (self.rest.get(..len), self.rest.get(len..)) {
            (Some(this), Some(rest)) => {
                self.rest = rest;
                Some(Ok(Packet::new_unchecked(this)))
            }
            _ => {
                self.failed = true;
                Some(Err(Error::BadLength))
            }
        }
    }
}

/// Owned-or-borrowed high-level form of one TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlvRepr<'a> {
    /// AIDs TLV.
    Aids {
        /// AID of the first host (initiator / sender).
        first: Ipv6Addr,
        /// AID of the second host (responder / receiver).
        second: Ipv6Addr,
    },
    /// Locator Set TLV.
    LocatorSet {
        /// Which set.
        set: LocatorSetId,
        /// The locators.
        locators: Locators<'a>,
    },
    /// Flow Label TLV.
    FlowLabel(FlowLabel),
    /// Flow Label Pair TLV.
    FlowLabelPair {
        /// F(sender): the label the sender allocated and expects in packets it receives.
        sender: FlowLabel,
        /// F(receiver): the label the receiver allocated.
        receiver: FlowLabel,
    },
    /// Birthday TLV.
    Birthday(u32),
    /// CC State TLV.
    CcState(CcState),
    /// A TLV of unknown type, or a Locator Set with an unknown set identifier: skipped.
    Unknown {
        /// Its type octet.
        tlv_type: u8,
    },
}

impl<'a> TlvRepr<'a> {
    /// Parses one TLV (as yielded by [`TlvIter`]). `BadLength` if the length does not fit
    /// the type.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<TlvRepr<'a>> {
        p.check_len()?;
        let b: &'a [u8] = p.buffer;
        let len = p.total_len();
        let t = p.tlv_type();
        let Some(tt) = TlvType::from_u8(t) else {
            return Ok(TlvRepr::Unknown { tlv_type: t });
        };
        let want = |n: usize| {
            if len == n {
                Ok(())
            } else {
                Err(Error::BadLength)
            }
        };
        match tt {
            TlvType::Aids => {
                want(AIDS_LEN)?;
                Ok(TlvRepr::Aids {
                    first: addr_at(b, 8),
                    second: addr_at(b, 24),
                })
            }
            TlvType::LocatorSet => {
                if len < LOCATOR_SET_HEAD_LEN || (len - LOCATOR_SET_HEAD_LEN) & 15 != 0 {
                    return Err(Error::BadLength);
                }
                let body = b.get(LOCATOR_SET_HEAD_LEN..len).ok_or(Error::BadLength)?;
                match LocatorSetId::from_u8(u8_at(b, 2)) {
                    Some(set) => Ok(TlvRepr::LocatorSet {
                        set,
                        locators: Locators::from_bytes(body)?,
                    }),
                    None => Ok(TlvRepr::Unknown { tlv_type: t }),
                }
            }
            TlvType::FlowLabel => {
                want(FLOW_LABEL_LEN)?;
                Ok(TlvRepr::FlowLabel(FlowLabel::new_truncated(u32_at(b, 4))))
            }
            TlvType::FlowLabelPair => {
                want(FLOW_LABEL_PAIR_LEN)?;
                Ok(TlvRepr::FlowLabelPair {
                    sender: FlowLabel::new_truncated(u24_at(b, 2)),
                    receiver: FlowLabel::new_truncated(u24_at(b, 5)),
                })
            }
            TlvType::Birthday => {
                want(BIRTHDAY_LEN)?;
                Ok(TlvRepr::Birthday(u32_at(b, 4)))
            }
            TlvType::CcState => {
                want(CC_STATE_LEN)?;
                use cc_state_field as f;
                Ok(TlvRepr::CcState(CcState {
                    ulp_discarded: u8_at(b, f::FLAGS) & FLAG_D != 0,
                    key_serial: u32_at(b, f::KEY_SERIAL.start),
                    timestamp: u32_at(b, f::TIMESTAMP.start),
                    initiator_flow_label: FlowLabel::new_truncated(u32_at(b, f::FLOW_LABEL.start)),
                    initiator_birthday: u32_at(b, f::INITIATOR_BIRTHDAY.start),
                    responder_birthday: u32_at(b, f::RESPONDER_BIRTHDAY.start),
                    initiator_nonce: u64_at(b, f::INITIATOR_NONCE.start),
                    init_src: addr_at(b, f::INIT_SRC.start),
                    init_dst: addr_at(b, f::INIT_DST.start),
                    mac: array(b, f::MAC.start),
                }))
            }
        }
    }

    /// The TLV type this representation encodes to (`None` for `Unknown`).
    pub fn tlv_type(&self) -> Option<TlvType> {
        match self {
            TlvRepr::Aids { .. } => Some(TlvType::Aids),
            TlvRepr::LocatorSet { .. } => Some(TlvType::LocatorSet),
            TlvRepr::FlowLabel(_) => Some(TlvType::FlowLabel),
            TlvRepr::FlowLabelPair { .. } => Some(TlvType::FlowLabelPair),
            TlvRepr::Birthday(_) => Some(TlvType::Birthday),
            TlvRepr::CcState(_) => Some(TlvType::CcState),
            TlvRepr::Unknown { .. } => None,
        }
    }

    /// Encoded length in octets (0 for `Unknown`, which is never emitted).
    pub fn buffer_len(&self) -> usize {
        match self {
            TlvRepr::Aids { .. } => AIDS_LEN,
            TlvRepr::LocatorSet { locators, .. } => LOCATOR_SET_HEAD_LEN + 16 * locators.len(),
            TlvRepr::FlowLabel(_) => FLOW_LABEL_LEN,
            TlvRepr::FlowLabelPair { .. } => FLOW_LABEL_PAIR_LEN,
            TlvRepr::Birthday(_) => BIRTHDAY_LEN,
            TlvRepr::CcState(_) => CC_STATE_LEN,
            TlvRepr::Unknown { .. } => 0,
        }
    }

    /// Writes the TLV at the start of `buf` (reserved octets zero) and returns its length.
    /// `Unencodable` if it does not fit `buf`, has more than [`MAX_LOCATORS`] locators, or
    /// is `Unknown`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        if len == 0 || len > 255 * UNIT {
            return Err(Error::Unencodable);
        }
        let out = buf.get_mut(..len).ok_or(Error::Unencodable)?;
        out.fill(0);
        let tt = self.tlv_type().ok_or(Error::Unencodable)?;
        put_u8(out, 0, tt as u8);
        put_u8(
            out,
            1,
            u8::try_from(len / UNIT).map_err(|_| Error::Unencodable)?,
        );
        match self {
            TlvRepr::Aids { first, second } => {
                put_addr(out, 8, first);
                put_addr(out, 24, second);
            }
            TlvRepr::LocatorSet { set, locators } => {
                put_u8(out, 2, *set as u8);
                for (i, a) in locators.iter().enumerate() {
                    put_addr(out, LOCATOR_SET_HEAD_LEN + 16 * i, &a);
                }
            }
            TlvRepr::FlowLabel(fl) => put_u32(out, 4, fl.value()),
            TlvRepr::FlowLabelPair { sender, receiver } => {
                put_u24(out, 2, sender.value());
                put_u24(out, 5, receiver.value());
            }
            TlvRepr::Birthday(b) => put_u32(out, 4, *b),
            TlvRepr::CcState(s) => {
                use cc_state_field as f;
                put_u8(out, f::FLAGS, if s.ulp_discarded { FLAG_D } else { 0 });
                put_u32(out, f::KEY_SERIAL.start, s.key_serial);
                put_u32(out, f::TIMESTAMP.start, s.timestamp);
                put_u32(out, f::FLOW_LABEL.start, s.initiator_flow_label.value());
                put_u32(out, f::INITIATOR_BIRTHDAY.start, s.initiator_birthday);
                put_u32(out, f::RESPONDER_BIRTHDAY.start, s.responder_birthday);
                put_u64(out, f::INITIATOR_NONCE.start, s.initiator_nonce);
                put_addr(out, f::INIT_SRC.start, &s.init_src);
                put_addr(out, f::INIT_DST.start, &s.init_dst);
                put(out, f::MAC.start, &s.mac);
            }
            TlvRepr::Unknown { .. } => {
                zero(out, 0, len);
                return Err(Error::Unencodable);
            }
        }
        Ok(len)
    }
}

/// 24-bit big-endian value at `off` (4 reserved bits + 20-bit flow label in the pair TLV).
fn u24_at(b: &[u8], off: usize) -> u32 {
    let a: [u8; 3] = array(b, off);
    u32::from_be_bytes([0, a[0], a[1], a[2]])
}

fn put_u24(b: &mut [u8], off: usize, v: u32) {
    let [_, x, y, z] = v.to_be_bytes();
    put(b, off, &[x, y, z]);
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    static FLOW_LABEL_PAIR_BYTES: [u8; 8] = [0x04, 0x01, 0x0a, 0xbc, 0xde, 0x01, 0x23, 0x45];

    #[test]
    fn flow_label_pair_fields() {
        let p = Packet::new_checked(&FLOW_LABEL_PAIR_BYTES[..]).unwrap();
        assert_eq!(p.tlv_type(), 4);
        assert_eq!(p.length_units(), 1);
        assert_eq!(
            TlvRepr::parse(&p).unwrap(),
            TlvRepr::FlowLabelPair {
                sender: FlowLabel::new(0xabcde).unwrap(),
                receiver: FlowLabel::new(0x12345).unwrap(),
            }
        );
    }

    #[test]
    fn flow_label_pair_reserved_bits_ignored() {
        let mut b = FLOW_LABEL_PAIR_BYTES;
        b[2] |= 0xf0;
        b[5] |= 0xf0;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            TlvRepr::parse(&p).unwrap(),
            TlvRepr::FlowLabelPair {
                sender: FlowLabel::new(0xabcde).unwrap(),
                receiver: FlowLabel::new(0x12345).unwrap(),
            }
        );
    }

    #[test]
    fn zero_length_is_bad_length() {
        let b = [0x03u8, 0x00, 0, 0, 0, 0, 0, 0];
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
        let mut it = TlvIter::new(&b);
        assert_eq!(it.next().unwrap().unwrap_err(), Error::BadLength);
        assert!(it.next().is_none());
    }

    #[test]
    fn overrun_is_bad_length_in_iter() {
        let b = [0x03u8, 0x02, 0, 0, 0, 0, 0, 0];
        let mut it = TlvIter::new(&b);
        assert_eq!(it.next().unwrap().unwrap_err(), Error::BadLength);
    }

    #[test]
    fn locator_set_odd_length_rejected() {
        // Length 2 units = 16 octets = 8 head + 8: not a whole locator.
        let mut b = [0u8; 16];
        b[0] = 2;
        b[1] = 2;
        b[2] = 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(TlvRepr::parse(&p).unwrap_err(), Error::BadLength);
    }

    #[test]
    fn unknown_type_and_set_skipped() {
        let b = [0x77u8, 0x01, 1, 2, 3, 4, 5, 6];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            TlvRepr::parse(&p).unwrap(),
            TlvRepr::Unknown { tlv_type: 0x77 }
        );
        let b = [0x02u8, 0x01, 9, 0, 0, 0, 0, 0];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            TlvRepr::parse(&p).unwrap(),
            TlvRepr::Unknown { tlv_type: 2 }
        );
    }

    #[test]
    fn locators_bytes_and_addrs_compare_equal() {
        let a: [Ipv6Addr; 2] = [
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        ];
        let mut raw = [0u8; 32];
        raw[..16].copy_from_slice(&a[0].octets());
        raw[16..].copy_from_slice(&a[1].octets());
        let l1 = Locators::from_bytes(&raw).unwrap();
        let l2 = Locators::from_addrs(&a);
        assert_eq!(l1, l2);
        assert!(l1.contains(&a[1]));
        assert_eq!(l1.len(), 2);
        assert_eq!(
            Locators::from_bytes(&raw[..20]).unwrap_err(),
            Error::BadLength
        );
    }

    #[test]
    fn emit_rejects_too_many_locators() {
        let addrs = vec![Ipv6Addr::LOCALHOST; MAX_LOCATORS + 1];
        let r = TlvRepr::LocatorSet {
            set: LocatorSetId::LslFirst,
            locators: Locators::from_addrs(&addrs),
        };
        let mut buf = vec![0u8; r.buffer_len()];
        assert_eq!(r.emit(&mut buf).unwrap_err(), Error::Unencodable);
        let addrs = vec![Ipv6Addr::LOCALHOST; MAX_LOCATORS];
        let r = TlvRepr::LocatorSet {
            set: LocatorSetId::LslFirst,
            locators: Locators::from_addrs(&addrs),
        };
        let mut buf = vec![0u8; r.buffer_len()];
        assert_eq!(r.emit(&mut buf).unwrap(), 2040);
        assert_eq!(buf[1], 255);
    }
}
