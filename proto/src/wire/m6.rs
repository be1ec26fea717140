//! M6 control messages: ICMPv6 type 200 ("rewrite ok") / 201 ("no rewrite"), code = message
//! (seed 001 sections 3.3 and 7, appendix A). Layout in docs/protocol.md.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |           Checksum            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Header  |D|  Reserved   |       TLV Area Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Nonce (64 bits)                        |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         TLVs (TLV Area Length octets, a multiple of 8)        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  piggybacked ULP packet / UC triggering packet (to the end)   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::fmt;
use core::net::Ipv6Addr;

use super::bytes::{put_u16, put_u64, put_u8, u16_at, u64_at, u8_at};
use super::checksum;
use super::consts;
use super::tlv::{self, CcState, LocatorSetId, Locators, TlvIter, TlvRepr, TlvType, FLAG_D};
use super::{Error, Result};

/// Length of the fixed part.
pub const HEADER_LEN: usize = 16;

/// "No Next Header": nothing piggybacked.
pub const NO_NEXT_HEADER: u8 = 59;

/// Next header of a UC whose trailing data is the triggering IPv6 packet.
pub const NEXT_HEADER_IPV6: u8 = 41;

/// D ("ULP packet discarded") in the flags octet of the fixed part; only meaningful in CC.
pub const FLAG_ULP_DISCARDED: u8 = FLAG_D;

/// Largest ICMPv6 message (IPv6 payload length without jumbograms).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// Byte offsets of the fixed part.
pub mod field {
    use core::ops::Range;
    /// ICMPv6 type.
    pub const TYPE: usize = 0;
    /// ICMPv6 code = M6 message.
    pub const CODE: usize = 1;
    /// ICMPv6 checksum.
    pub const CHECKSUM: Range<usize> = 2..4;
    /// Next header of the piggybacked packet, 59 if none.
    pub const NEXT_HEADER: usize = 4;
    /// Flags (D = 0x80).
    pub const FLAGS: usize = 5;
    /// Length of the TLV area in octets.
    pub const TLV_LEN: Range<usize> = 6..8;
    /// Nonce.
    pub const NONCE: Range<usize> = 8..16;
    /// First TLV.
    pub const TLVS: usize = 16;
}

/// A 20-bit IPv6 flow label (RFC 6437), used by M6 as the receiver's context tag
/// (F(local) / F(peer), seed 001 section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FlowLabel(u32);

impl FlowLabel {
    /// Largest flow label.
    pub const MAX: u32 = 0xf_ffff;

    /// `Some` if `v` fits in 20 bits.
    pub const fn new(v: u32) -> Option<FlowLabel> {
        if v <= Self::MAX {
            Some(FlowLabel(v))
        } else {
            None
        }
    }

    /// The low 20 bits of `v` (the reserved high bits of a wire field are ignored).
    pub const fn new_truncated(v: u32) -> FlowLabel {
        FlowLabel(v & Self::MAX)
    }

    /// The label.
    pub const fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Display for FlowLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:05x}", self.0)
    }
}

/// The two ICMPv6 types that carry M6 control messages (configurable; DESIGN section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpTypes {
    /// Type of messages whose source locator routers may rewrite (default 200).
    pub rewrite_ok: u8,
    /// Type of messages routers must not rewrite (default 201).
    pub no_rewrite: u8,
}

impl Default for IcmpTypes {
    fn default() -> Self {
        IcmpTypes {
            rewrite_ok: consts::ICMP_TYPE_REWRITE_OK,
            no_rewrite: consts::ICMP_TYPE_NO_REWRITE,
        }
    }
}

impl IcmpTypes {
    /// `Some(true)` for the rewrite-ok type, `Some(false)` for the no-rewrite type, `None`
    /// for anything else.
    pub const fn classify(&self, icmp_type: u8) -> Option<bool> {
        if icmp_type == self.rewrite_ok {
            Some(true)
        } else if icmp_type == self.no_rewrite {
            Some(false)
        } else {
            None
        }
    }

    /// The type value for a message with the given rewrite permission.
    pub const fn type_for(&self, rewrite_ok: bool) -> u8 {
        if rewrite_ok {
            self.rewrite_ok
        } else {
            self.no_rewrite
        }
    }
}

/// M6 message codes (the ICMPv6 code field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Code {
    /// Context Initiator (3.3.1).
    Init = 1,
    /// Context Check (3.3.2).
    Cc = 2,
    /// Context Check Reply (3.3.3).
    Ccr = 3,
    /// Context Confirm (3.3.4).
    Conf = 4,
    /// Update Request (3.3.5).
    Ur = 5,
    /// Update Acknowledgement (3.3.6).
    Ua = 6,
    /// Unknown Context (3.3.7).
    Uc = 7,
    /// Close (appendix A).
    Close = 8,
    /// Close Acknowledgement (appendix A).
    CloseAck = 9,
}

impl Code {
    /// The code for a wire value, if known.
    pub const fn from_u8(v: u8) -> Option<Code> {
        match v {
            1 => Some(Code::Init),
            2 => Some(Code::Cc),
            3 => Some(Code::Ccr),
            4 => Some(Code::Conf),
            5 => Some(Code::Ur),
            6 => Some(Code::Ua),
            7 => Some(Code::Uc),
            8 => Some(Code::Close),
            9 => Some(Code::CloseAck),
            _ => None,
        }
    }

    /// True for the codes that may carry a piggybacked ULP packet (INIT, CC, CCR, CONF).
    pub const fn may_piggyback(self) -> bool {
        matches!(self, Code::Init | Code::Cc | Code::Ccr | Code::Conf)
    }
}

/// Zero-copy view of an M6 control message (the whole ICMPv6 message, from the type octet to
/// the end of the IPv6 payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and runs [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if the buffer is shorter than the fixed part or than the TLV area it
    /// declares; `Misaligned` if the TLV area length is not a multiple of 8.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let tlv_len = usize::from(self.tlv_len());
        if tlv_len & (tlv::UNIT - 1) != 0 {
            return Err(Error::Misaligned);
        }
        if len < HEADER_LEN + tlv_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// ICMPv6 type.
    pub fn msg_type(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::TYPE)
    }

    /// ICMPv6 code (the M6 message).
    pub fn msg_code(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::CODE)
    }

    /// The code as a known message, `None` for codes receivers must ignore.
    pub fn code(&self) -> Option<Code> {
        Code::from_u8(self.msg_code())
    }

    /// Whether the type says "rewrite ok" (`Some(true)`), "no rewrite" (`Some(false)`), or
    /// is not an M6 type (`None`).
    pub fn rewrite_ok(&self, types: &IcmpTypes) -> Option<bool> {
        types.classify(self.msg_type())
    }

    /// ICMPv6 checksum.
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Next header of the piggybacked packet (59 if none; 41 for a UC's triggering packet).
    pub fn next_header(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::NEXT_HEADER)
    }

    /// Flags octet.
    pub fn flags(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::FLAGS)
    }

    /// The D ("ULP packet discarded") flag.
    pub fn ulp_discarded(&self) -> bool {
        self.flags() & FLAG_ULP_DISCARDED != 0
    }

    /// Length of the TLV area in octets.
    pub fn tlv_len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::TLV_LEN.start)
    }

    /// Nonce.
    pub fn nonce(&self) -> u64 {
        u64_at(self.buffer.as_ref(), field::NONCE.start)
    }

    /// The TLV area (empty if the buffer is too short).
    pub fn tlv_area(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        b.get(field::TLVS..field::TLVS + usize::from(self.tlv_len()))
            .unwrap_or(&[])
    }

    /// Iterator over the TLVs.
    pub fn tlvs(&self) -> TlvIter<'_> {
        TlvIter::new(self.tlv_area())
    }

    /// Everything after the TLV area: the piggybacked packet (empty if the buffer is too
    /// short).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        b.get(field::TLVS + usize::from(self.tlv_len())..)
            .unwrap_or(&[])
    }

    /// True if the ICMPv6 checksum verifies for these IPv6 addresses.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        checksum::icmpv6_verify(src, dst, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the ICMPv6 type.
    pub fn set_msg_type(&mut self, v: u8) {
        put_u8(self.buffer.as_mut(), field::TYPE, v);
    }

    /// Sets the code.
    pub fn set_msg_code(&mut self, v: u8) {
        put_u8(self.buffer.as_mut(), field::CODE, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, v: u8) {
        put_u8(self.buffer.as_mut(), field::NEXT_HEADER, v);
    }

    /// Sets the flags octet.
    pub fn set_flags(&mut self, v: u8) {
        put_u8(self.buffer.as_mut(), field::FLAGS, v);
    }

    /// Sets the TLV area length (octets).
    pub fn set_tlv_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::TLV_LEN.start, v);
    }

    /// Sets the nonce.
    pub fn set_nonce(&mut self, v: u64) {
        put_u64(self.buffer.as_mut(), field::NONCE.start, v);
    }

    /// Mutable TLV area (empty if the buffer is too short).
    pub fn tlv_area_mut(&mut self) -> &mut [u8] {
        let end = field::TLVS + usize::from(self.tlv_len());
        self.buffer
            .as_mut()
            .get_mut(field::TLVS..end)
            .unwrap_or(&mut [])
    }

    /// Mutable payload after the TLV area.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = field::TLVS + usize::from(self.tlv_len());
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }

    /// Computes and stores the ICMPv6 checksum for these IPv6 addresses.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let c = checksum::icmpv6_checksum(src, dst, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// A ULP packet piggybacked on INIT, CC, CCR or CONF (seed 001 sections 4.1, 7.3-7.6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Piggyback {
    /// Its protocol (IPv6 next-header value); never 59.
    pub next_header: u8,
    /// The ULP packet (transport header and data), never empty.
    pub data: Vec<u8>,
}

/// INIT (seed 001 section 3.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Init {
    /// AID(initiator).
    pub aid_initiator: Ipv6Addr,
    /// AID(responder).
    pub aid_responder: Ipv6Addr,
    /// Lsl(initiator).
    pub lsl_initiator: Vec<Ipv6Addr>,
    /// Lsr(responder), as the initiator found it in the DNS.
    pub lsr_responder: Vec<Ipv6Addr>,
    /// F(initiator): the flow label the initiator allocated for this context.
    pub flow_label: FlowLabel,
    /// The initiator's birthday counter.
    pub birthday: u32,
}

/// CC or CCR (seed 001 sections 3.3.2, 3.3.3): the responder's would-be context state. The
/// CCR echoes the TLVs of the CC unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cc {
    /// AID(initiator).
    pub aid_initiator: Ipv6Addr,
    /// AID(responder).
    pub aid_responder: Ipv6Addr,
    /// Lsl(initiator), from the INIT.
    pub lsl_initiator: Vec<Ipv6Addr>,
    /// Lsr(responder), from the INIT.
    pub lsr_responder: Vec<Ipv6Addr>,
    /// Lsl(responder), the responder's own set.
    pub lsl_responder: Vec<Ipv6Addr>,
    /// Fixed-size state, timestamp and MAC.
    pub state: CcState,
}

impl Cc {
    /// The echoed state as the input of [`crate::cc::check`].
    pub fn echo(&self) -> crate::cc::CcEcho<'_> {
        crate::cc::CcEcho {
            state: self.state,
            aid_initiator: self.aid_initiator,
            aid_responder: self.aid_responder,
            lsl_initiator: Locators::from_addrs(&self.lsl_initiator),
            lsr_responder: Locators::from_addrs(&self.lsr_responder),
            lsl_responder: Locators::from_addrs(&self.lsl_responder),
        }
    }
}

/// CONF (seed 001 section 3.3.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conf {
    /// AID(initiator).
    pub aid_initiator: Ipv6Addr,
    /// AID(responder).
    pub aid_responder: Ipv6Addr,
    /// F(responder).
    pub flow_label: FlowLabel,
    /// The responder's birthday counter.
    pub birthday: u32,
    /// Optional Lsr(initiator) (when the responder verified the initiator in the DNS).
    pub lsr_initiator: Option<Vec<Ipv6Addr>>,
    /// Optional Lsl(responder) (needed when the CONF answers an INIT).
    pub lsl_responder: Option<Vec<Ipv6Addr>>,
}

/// UR (seed 001 section 3.3.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ur {
    /// AID of the sender.
    pub aid_sender: Ipv6Addr,
    /// AID of the receiver.
    pub aid_receiver: Ipv6Addr,
    /// F(sender): the flow label the sender allocated (its F(local)).
    pub flow_label_sender: FlowLabel,
    /// F(receiver): the flow label the receiver allocated (the sender's F(peer)).
    pub flow_label_receiver: FlowLabel,
    /// Lsl(sender).
    pub lsl_sender: Vec<Ipv6Addr>,
    /// Lsr(receiver).
    pub lsr_receiver: Vec<Ipv6Addr>,
}

/// UA (seed 001 section 3.3.6); the nonce of the [`Repr`] is copied from the UR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ua {
    /// AID of the sender of the UA.
    pub aid_sender: Ipv6Addr,
    /// AID of the receiver of the UA.
    pub aid_receiver: Ipv6Addr,
    /// F(sender of the UA).
    pub flow_label_sender: FlowLabel,
    /// F(receiver of the UA).
    pub flow_label_receiver: FlowLabel,
}

/// UC (seed 001 section 3.3.7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uc {
    /// Flow label of the triggering packet.
    pub flow_label: FlowLabel,
    /// The sender's birthday counter.
    pub birthday: u32,
    /// The triggering packet from its IPv6 header on, as much as fits (may be empty).
    pub invoking_packet: Vec<u8>,
}

/// CLOSE or CLOSEACK (seed 001 appendix A); the nonce of a CLOSEACK's [`Repr`] is copied
/// from the CLOSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Close {
    /// AID of the sender.
    pub aid_sender: Ipv6Addr,
    /// AID of the receiver.
    pub aid_receiver: Ipv6Addr,
    /// F(sender).
    pub flow_label_sender: FlowLabel,
    /// F(receiver).
    pub flow_label_receiver: FlowLabel,
}

/// The code-specific part of an M6 control message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// Code 1.
    Init(Init),
    /// Code 2.
    Cc(Cc),
    /// Code 3 (same content as the CC it answers).
    Ccr(Cc),
    /// Code 4.
    Conf(Conf),
    /// Code 5.
    Ur(Ur),
    /// Code 6.
    Ua(Ua),
    /// Code 7.
    Uc(Uc),
    /// Code 8.
    Close(Close),
    /// Code 9.
    CloseAck(Close),
}

impl Message {
    /// The ICMPv6 code of this message.
    pub const fn code(&self) -> Code {
        match self {
            Message::Init(_) => Code::Init,
            Message::Cc(_) => Code::Cc,
            Message::Ccr(_) => Code::Ccr,
            Message::Conf(_) => Code::Conf,
            Message::Ur(_) => Code::Ur,
            Message::Ua(_) => Code::Ua,
            Message::Uc(_) => Code::Uc,
            Message::Close(_) => Code::Close,
            Message::CloseAck(_) => Code::CloseAck,
        }
    }
}

/// An M6 control message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Type 200 (true) or 201 (false): whether routers may rewrite the source locator.
    pub rewrite_ok: bool,
    /// The nonce of the fixed part (the initiator's nonce in INIT/CC/CONF, the CCR's nonce,
    /// the request nonce in UR/UA and CLOSE/CLOSEACK; 0 in UC).
    pub nonce: u64,
    /// The code-specific content.
    pub message: Message,
    /// A piggybacked ULP packet (INIT, CC, CCR, CONF only).
    pub piggyback: Option<Piggyback>,
}

/// The TLVs of one message, collected before they are checked against the code.
#[derive(Default)]
struct Collected<'a> {
    aids: Option<(Ipv6Addr, Ipv6Addr)>,
    sets: [Option<Locators<'a>>; 4],
    flow_label: Option<FlowLabel>,
    pair: Option<(FlowLabel, FlowLabel)>,
    birthday: Option<u32>,
    cc_state: Option<CcState>,
}

fn set_slot(id: LocatorSetId) -> usize {
    match id {
        LocatorSetId::LslFirst => 0,
        LocatorSetId::LsrFirst => 1,
        LocatorSetId::LslSecond => 2,
        LocatorSetId::LsrSecond => 3,
    }
}

fn store<T>(slot: &mut Option<T>, v: T, t: TlvType) -> Result<()> {
    if slot.is_some() {
        return Err(Error::DuplicateTlv(t));
    }
    *slot = Some(v);
    Ok(())
}

impl<'a> Collected<'a> {
    fn from_area(area: &'a [u8]) -> Result<Collected<'a>> {
        let mut c = Collected::default();
        for t in TlvIter::new(area) {
            match TlvRepr::parse(&t?)? {
                TlvRepr::Aids { first, second } => {
                    store(&mut c.aids, (first, second), TlvType::Aids)?
                }
                TlvRepr::LocatorSet { set, locators } => {
                    let slot = c.sets.get_mut(set_slot(set)).ok_or(Error::Inconsistent)?;
                    store(slot, locators, TlvType::LocatorSet)?
                }
                TlvRepr::FlowLabel(f) => store(&mut c.flow_label, f, TlvType::FlowLabel)?,
                TlvRepr::FlowLabelPair { sender, receiver } => {
                    store(&mut c.pair, (sender, receiver), TlvType::FlowLabelPair)?
                }
                TlvRepr::Birthday(b) => store(&mut c.birthday, b, TlvType::Birthday)?,
                TlvRepr::CcState(s) => store(&mut c.cc_state, s, TlvType::CcState)?,
                TlvRepr::Unknown { .. } => {}
            }
        }
        Ok(c)
    }

    fn set(&self, id: LocatorSetId) -> Option<Locators<'a>> {
        self.sets.get(set_slot(id)).copied().flatten()
    }

    /// Checks that exactly the allowed TLVs are present (the required ones among them).
    fn allow(&self, required: &[Want], optional: &[Want]) -> Result<()> {
        let allowed = |w: Want| required.contains(&w) || optional.contains(&w);
        for w in Want::ALL {
            let present = self.has(w);
            if present && !allowed(w) {
                return Err(Error::UnexpectedTlv(w.tlv_type()));
            }
            if !present && required.contains(&w) {
                return Err(Error::MissingTlv(w.tlv_type()));
            }
        }
        Ok(())
    }

    fn has(&self, w: Want) -> bool {
        match w {
            Want::Aids => self.aids.is_some(),
            Want::Set(id) => self.set(id).is_some(),
            Want::FlowLabel => self.flow_label.is_some(),
            Want::Pair => self.pair.is_some(),
            Want::Birthday => self.birthday.is_some(),
            Want::CcState => self.cc_state.is_some(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Aids,
    Set(LocatorSetId),
    FlowLabel,
    Pair,
    Birthday,
    CcState,
}

impl Want {
    const ALL: [Want; 9] = [
        Want::Aids,
        Want::Set(LocatorSetId::LslFirst),
        Want::Set(LocatorSetId::LsrFirst),
        Want::Set(LocatorSetId::LslSecond),
        Want::Set(LocatorSetId::LsrSecond),
        Want::FlowLabel,
        Want::Pair,
        Want::Birthday,
        Want::CcState,
    ];

    fn tlv_type(self) -> TlvType {
        match self {
            Want::Aids => TlvType::Aids,
            Want::Set(_) => TlvType::LocatorSet,
            Want::FlowLabel => TlvType::FlowLabel,
            Want::Pair => TlvType::FlowLabelPair,
            Want::Birthday => TlvType::Birthday,
            Want::CcState => TlvType::CcState,
        }
    }
}

use LocatorSetId::{LslFirst, LslSecond, LsrFirst, LsrSecond};

const INIT_TLVS: &[Want] = &[
    Want::Aids,
    Want::Set(LslFirst),
    Want::Set(LsrSecond),
    Want::FlowLabel,
    Want::Birthday,
];
const CC_TLVS: &[Want] = &[
    Want::Aids,
    Want::Set(LslFirst),
    Want::Set(LsrSecond),
    Want::Set(LslSecond),
    Want::CcState,
];
const CONF_TLVS: &[Want] = &[Want::Aids, Want::FlowLabel, Want::Birthday];
const CONF_OPT: &[Want] = &[Want::Set(LsrFirst), Want::Set(LslSecond)];
const UR_TLVS: &[Want] = &[
    Want::Aids,
    Want::Pair,
    Want::Set(LslFirst),
    Want::Set(LsrSecond),
];
const PAIR_TLVS: &[Want] = &[Want::Aids, Want::Pair];
const UC_TLVS: &[Want] = &[Want::FlowLabel, Want::Birthday];

fn vec_or(v: Option<Locators<'_>>) -> Vec<Ipv6Addr> {
    v.map(|l| l.to_vec()).unwrap_or_default()
}

impl Repr {
    /// Parses and checks a control message: length, type, ICMPv6 checksum (with the IPv6
    /// `src`/`dst` of the packet that carried it), code, TLVs.
    ///
    /// Receivers MUST silently ignore `Err(UnknownCode(_))` (seed 001 section 3.3).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        types: &IcmpTypes,
    ) -> Result<Repr> {
        packet.check_len()?;
        types
            .classify(packet.msg_type())
            .ok_or(Error::UnknownType(packet.msg_type()))?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        Repr::parse_unchecksummed(packet, types)
    }

    /// As [`Repr::parse`] but without verifying the checksum (for callers whose NIC already
    /// did, and for fuzzing).
    pub fn parse_unchecksummed<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        types: &IcmpTypes,
    ) -> Result<Repr> {
        packet.check_len()?;
        let rewrite_ok = types
            .classify(packet.msg_type())
            .ok_or(Error::UnknownType(packet.msg_type()))?;
        let code = Code::from_u8(packet.msg_code()).ok_or(Error::UnknownCode(packet.msg_code()))?;
        let c = Collected::from_area(packet.tlv_area())?;
        let nh = packet.next_header();
        let payload = packet.payload();

        // Trailing data: a piggybacked ULP packet, a UC's triggering packet, or nothing.
        let mut piggyback = None;
        let mut invoking = Vec::new();
        if nh == NO_NEXT_HEADER {
            if !payload.is_empty() {
                return Err(Error::TrailingBytes);
            }
        } else if code.may_piggyback() {
            if payload.is_empty() {
                return Err(Error::Truncated);
            }
            piggyback = Some(Piggyback {
                next_header: nh,
                data: payload.to_vec(),
            });
        } else if code == Code::Uc && nh == NEXT_HEADER_IPV6 {
            if payload.is_empty() {
                return Err(Error::Truncated);
            }
            invoking = payload.to_vec();
        } else {
            return Err(Error::Inconsistent);
        }

        let aids = c
            .aids
            .unwrap_or((Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED));
        let fl = c.flow_label.unwrap_or_default();
        let pair = c.pair.unwrap_or_default();
        let bday = c.birthday.unwrap_or_default();
        let message = match code {
            Code::Init => {
                c.allow(INIT_TLVS, &[])?;
                Message::Init(Init {
                    aid_initiator: aids.0,
                    aid_responder: aids.1,
                    lsl_initiator: vec_or(c.set(LslFirst)),
                    lsr_responder: vec_or(c.set(LsrSecond)),
                    flow_label: fl,
                    birthday: bday,
                })
            }
            Code::Cc | Code::Ccr => {
                c.allow(CC_TLVS, &[])?;
                let state = c.cc_state.ok_or(Error::MissingTlv(TlvType::CcState))?;
                if code == Code::Cc && packet.ulp_discarded() != state.ulp_discarded {
                    return Err(Error::Inconsistent);
                }
                let cc = Cc {
                    aid_initiator: aids.0,
                    aid_responder: aids.1,
                    lsl_initiator: vec_or(c.set(LslFirst)),
                    lsr_responder: vec_or(c.set(LsrSecond)),
                    lsl_responder: vec_or(c.set(LslSecond)),
                    state,
                };
                if code == Code::Cc {
                    Message::Cc(cc)
                } else {
                    Message::Ccr(cc)
                }
            }
            Code::Conf => {
                c.allow(CONF_TLVS, CONF_OPT)?;
                Message::Conf(Conf {
                    aid_initiator: aids.0,
                    aid_responder: aids.1,
                    flow_label: fl,
                    birthday: bday,
                    lsr_initiator: c.set(LsrFirst).map(|l| l.to_vec()),
                    lsl_responder: c.set(LslSecond).map(|l| l.to_vec()),
                })
            }
            Code::Ur => {
                c.allow(UR_TLVS, &[])?;
                Message::Ur(Ur {
                    aid_sender: aids.0,
                    aid_receiver: aids.1,
                    flow_label_sender: pair.0,
                    flow_label_receiver: pair.1,
                    lsl_sender: vec_or(c.set(LslFirst)),
                    lsr_receiver: vec_or(c.set(LsrSecond)),
                })
            }
            Code::Ua => {
                c.allow(PAIR_TLVS, &[])?;
                Message::Ua(Ua {
                    aid_sender: aids.0,
                    aid_receiver: aids.1,
                    flow_label_sender: pair.0,
                    flow_label_receiver: pair.1,
                })
            }
            Code::Uc => {
                c.allow(UC_TLVS, &[])?;
                Message::Uc(Uc {
                    flow_label: fl,
                    birthday: bday,
                    invoking_packet: invoking,
                })
            }
            Code::Close | Code::CloseAck => {
                c.allow(PAIR_TLVS, &[])?;
                let m = Close {
                    aid_sender: aids.0,
                    aid_receiver: aids.1,
                    flow_label_sender: pair.0,
                    flow_label_receiver: pair.1,
                };
                if code == Code::Close {
                    Message::Close(m)
                } else {
                    Message::CloseAck(m)
                }
            }
        };
        Ok(Repr {
            rewrite_ok,
            nonce: packet.nonce(),
            message,
            piggyback,
        })
    }

    /// The TLVs of this message in emission order.
    fn tlvs(&self) -> TlvList<'_> {
        let mut l = TlvList::default();
        fn set(set: LocatorSetId, v: &[Ipv6Addr]) -> TlvRepr<'_> {
            TlvRepr::LocatorSet {
                set,
                locators: Locators::from_addrs(v),
            }
        }
        match &self.message {
            Message::Init(m) => {
                l.push(TlvRepr::Aids {
                    first: m.aid_initiator,
                    second: m.aid_responder,
                });
                l.push(TlvRepr::FlowLabel(m.flow_label));
                l.push(TlvRepr::Birthday(m.birthday));
                l.push(set(LslFirst, &m.lsl_initiator));
                l.push(set(LsrSecond, &m.lsr_responder));
            }
            Message::Cc(m) | Message::Ccr(m) => {
                l.push(TlvRepr::Aids {
                    first: m.aid_initiator,
                    second: m.aid_responder,
                });
                l.push(set(LslFirst, &m.lsl_initiator));
                l.push(set(LslSecond, &m.lsl_responder));
                l.push(set(LsrSecond, &m.lsr_responder));
                l.push(TlvRepr::CcState(m.state));
            }
            Message::Conf(m) => {
                l.push(TlvRepr::Aids {
                    first: m.aid_initiator,
                    second: m.aid_responder,
                });
                l.push(TlvRepr::FlowLabel(m.flow_label));
                l.push(TlvRepr::Birthday(m.birthday));
                if let Some(v) = &m.lsr_initiator {
                    l.push(set(LsrFirst, v));
                }
                if let Some(v) = &m.lsl_responder {
                    l.push(set(LslSecond, v));
                }
            }
            Message::Ur(m) => {
                l.push(TlvRepr::Aids {
                    first: m.aid_sender,
                    second: m.aid_receiver,
                });
                l.push(TlvRepr::FlowLabelPair {
                    sender: m.flow_label_sender,
                    receiver: m.flow_label_receiver,
                });
                l.push(set(LslFirst, &m.lsl_sender));
                l.push(set(LsrSecond, &m.lsr_receiver));
            }
            Message::Ua(Ua {
                aid_sender,
                aid_receiver,
                flow_label_sender,
                flow_label_receiver,
            })
            | Message::Close(Close {
                aid_sender,
                aid_receiver,
                flow_label_sender,
                flow_label_receiver,
            })
            | Message::CloseAck(Close {
                aid_sender,
                aid_receiver,
                flow_label_sender,
                flow_label_receiver,
            }) => {
                l.push(TlvRepr::Aids {
                    first: *aid_sender,
                    second: *aid_receiver,
                });
                l.push(TlvRepr::FlowLabelPair {
                    sender: *flow_label_sender,
                    receiver: *flow_label_receiver,
                });
            }
            Message::Uc(m) => {
                l.push(TlvRepr::FlowLabel(m.flow_label));
                l.push(TlvRepr::Birthday(m.birthday));
            }
        }
        l
    }

    /// Next header and trailing data as they go on the wire.
    fn trailer(&self) -> (u8, &[u8]) {
        match (&self.message, &self.piggyback) {
            (_, Some(p)) => (p.next_header, &p.data),
            (Message::Uc(uc), None) if !uc.invoking_packet.is_empty() => {
                (NEXT_HEADER_IPV6, &uc.invoking_packet)
            }
            _ => (NO_NEXT_HEADER, &[]),
        }
    }

    /// Length of the TLV area.
    pub fn tlv_len(&self) -> usize {
        self.tlvs().iter().map(TlvRepr::buffer_len).sum()
    }

    /// Length of the whole ICMPv6 message this representation emits.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.tlv_len() + self.trailer().1.len()
    }

    /// `Err` if this representation cannot be emitted: a piggyback on a code that cannot
    /// carry one, or with next header 59 or empty data (`Inconsistent`); a locator set of
    /// more than 127 locators or a message longer than 65535 octets (`Unencodable`).
    pub fn validate(&self) -> Result<()> {
        if let Some(p) = &self.piggyback {
            if !self.message.code().may_piggyback()
                || p.next_header == NO_NEXT_HEADER
                || p.data.is_empty()
            {
                return Err(Error::Inconsistent);
            }
        }
        for t in self.tlvs().iter() {
            if let TlvRepr::LocatorSet { locators, .. } = t {
                if locators.len() > tlv::MAX_LOCATORS {
                    return Err(Error::Unencodable);
                }
            }
        }
        if self.buffer_len() > MAX_MESSAGE_LEN {
            return Err(Error::Unencodable);
        }
        Ok(())
    }

    /// Writes the message into `packet` (whose buffer must hold at least
    /// [`Repr::buffer_len`] octets; only that many are written) with the checksum for the
    /// IPv6 `src`/`dst` it will be sent with. Returns the number of octets written.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        types: &IcmpTypes,
    ) -> Result<usize> {
        self.validate()?;
        let len = self.buffer_len();
        let tlv_len = u16::try_from(self.tlv_len()).map_err(|_| Error::Unencodable)?;
        let buf = packet
            .buffer
            .as_mut()
            .get_mut(..len)
            .ok_or(Error::Unencodable)?;
        let mut p = Packet::new_unchecked(&mut *buf);
        p.set_msg_type(types.type_for(self.rewrite_ok));
        p.set_msg_code(self.message.code() as u8);
        p.set_checksum(0);
        let (nh, trailer) = self.trailer();
        p.set_next_header(nh);
        let d = matches!(&self.message, Message::Cc(cc) if cc.state.ulp_discarded);
        p.set_flags(if d { FLAG_ULP_DISCARDED } else { 0 });
        p.set_tlv_len(tlv_len);
        p.set_nonce(self.nonce);
        let mut off = 0usize;
        {
            let area = p.tlv_area_mut();
            for t in self.tlvs().iter() {
                let rest = area.get_mut(off..).ok_or(Error::Unencodable)?;
                off += t.emit(rest)?;
            }
        }
        let out = p.payload_mut();
        if out.len() != trailer.len() {
            return Err(Error::Unencodable);
        }
        out.copy_from_slice(trailer);
        p.fill_checksum(src, dst);
        Ok(len)
    }

    /// Emits into a new vector.
    pub fn to_bytes(&self, src: &Ipv6Addr, dst: &Ipv6Addr, types: &IcmpTypes) -> Result<Vec<u8>> {
        self.validate()?;
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut v[..]), src, dst, types)?;
        Ok(v)
    }
}

/// At most 6 TLVs per message; a fixed array avoids allocating on emit.
#[derive(Default)]
struct TlvList<'a> {
    items: [Option<TlvRepr<'a>>; 6],
    n: usize,
}

impl<'a> TlvList<'a> {
    fn push(&mut self, t: TlvRepr<'a>) {
        if let Some(slot) = self.items.get_mut(self.n) {
            *slot = Some(t);
            self.n += 1;
        }
    }

    fn iter(&self) -> impl Iterator<Item = &TlvRepr<'a>> {
        self.items.iter().flatten()
    }
}

/// Result of comparing a received birthday counter with the recorded one (seed 001 section
/// 7.12, serial number arithmetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BirthdayCheck {
    /// Equal: the peer garbage-collected the context without rebooting.
    Same,
    /// Greater by 1..=`max_incr`: the peer rebooted.
    Rebooted,
    /// Anything else: drop the UC.
    OutOfWindow,
}

/// Classifies a UC's birthday counter against the recorded one (seed 001 section 7.12).
pub fn check_birthday(recorded: u32, received: u32, max_incr: u32) -> BirthdayCheck {
    let d = received.wrapping_sub(recorded);
    if d == 0 {
        BirthdayCheck::Same
    } else if d <= max_incr && d < 0x8000_0000 {
        BirthdayCheck::Rebooted
    } else {
        BirthdayCheck::OutOfWindow
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    // Written by hand (struct.pack) and checksummed with scapy, independently of this code.
    // Addresses: src = AID(initiator) = 2001:db8:1::a, dst = AID(responder) = 2001:db8:2::b.
    // INIT: 120 octets, checksum 0x9ff5
    static INIT_BYTES: [u8; 120] = [
        0xc8, 0x01, 0x9f, 0xf5, 0x3b, 0x00, 0x00, 0x68, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01, 0x0d, 0xb8, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x03, 0x01, 0x00, 0x00,
        0x00, 0x01, 0x23, 0x45, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, 0x02, 0x03, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20,
        0x01, 0x0d, 0xb8, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b,
    ];
    // CC: 164 octets, checksum 0x0ad5
    static CC_BYTES: [u8; 164] = [
        0xc8, 0x02, 0x0a, 0xd5, 0x06, 0x80, 0x00, 0x90, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01, 0x0d, 0xb8, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x02, 0x01, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x04,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x0a, 0x80, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00,
        0x10, 0x00, 0x00, 0x01, 0x23, 0x45, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x05, 0x01,
        0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
        0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0xde, 0xad, 0xbe, 0xef,
    ];
    // CCR: 160 octets, checksum 0x3ec5
    static CCR_BYTES: [u8; 160] = [
        0xc9, 0x03, 0x3e, 0xc5, 0x3b, 0x00, 0x00, 0x90, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
        0x11, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01, 0x0d, 0xb8, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x02, 0x01, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x04,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x0a, 0x80, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00,
        0x10, 0x00, 0x00, 0x01, 0x23, 0x45, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x05, 0x01,
        0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
        0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
    ];
    // CONF: 96 octets, checksum 0xb6ee
    static CONF_BYTES: [u8; 96] = [
        0xc8, 0x04, 0xb6, 0xee, 0x3b, 0x00, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01, 0x0d, 0xb8, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x03, 0x01, 0x00, 0x00,
        0x00, 0x05, 0x43, 0x21, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x02, 0x03, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x0a,
    ];
    // UR: 96 octets, checksum 0x6fcf
    static UR_BYTES: [u8; 96] = [
        0xc8, 0x05, 0x6f, 0xcf, 0x3b, 0x00, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01, 0x0d, 0xb8, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x04, 0x01, 0x01, 0x23,
        0x45, 0x05, 0x43, 0x21, 0x02, 0x03, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d,
        0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x02, 0x01,
        0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    // UA: 64 octets, checksum 0xe596
    static UA_BYTES: [u8; 64] = [
        0xc9, 0x06, 0xe5, 0x96, 0x3b, 0x00, 0x00, 0x30, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01, 0x0d, 0xb8, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x04, 0x01, 0x05, 0x43,
        0x21, 0x01, 0x23, 0x45,
    ];
    // UC: 40 octets, checksum 0x2ff6
    static UC_BYTES: [u8; 40] = [
        0xc9, 0x07, 0x2f, 0xf6, 0x29, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x03, 0x01, 0x00, 0x00, 0x00, 0x0a, 0xbc, 0xde, 0x05, 0x01, 0x00, 0x00, 0xff, 0xff,
        0xff, 0xf0, 0x60, 0x0a, 0xbc, 0xde, 0x00, 0x00, 0xa0, 0x40,
    ];
    // CLOSE: 64 octets, checksum 0xa6d4
    static CLOSE_BYTES: [u8; 64] = [
        0xc8, 0x08, 0xa6, 0xd4, 0x3b, 0x00, 0x00, 0x30, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01, 0x0d, 0xb8, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x04, 0x01, 0x01, 0x23,
        0x45, 0x05, 0x43, 0x21,
    ];
    // CLOSEACK: 64 octets, checksum 0xe593
    static CLOSEACK_BYTES: [u8; 64] = [
        0xc9, 0x09, 0xe5, 0x93, 0x3b, 0x00, 0x00, 0x30, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01, 0x0d, 0xb8, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x04, 0x01, 0x05, 0x43,
        0x21, 0x01, 0x23, 0x45,
    ];

    fn src() -> Ipv6Addr {
        "2001:db8:1::a".parse().unwrap()
    }

    fn dst() -> Ipv6Addr {
        "2001:db8:2::b".parse().unwrap()
    }

    fn fl(v: u32) -> FlowLabel {
        FlowLabel::new(v).unwrap()
    }

    const N: u64 = 0x0102_0304_0506_0708;

    fn parse(bytes: &[u8]) -> Result<Repr> {
        let p = Packet::new_checked(bytes)?;
        Repr::parse(&p, &src(), &dst(), &IcmpTypes::default())
    }

    fn emit(r: &Repr) -> Vec<u8> {
        r.to_bytes(&src(), &dst(), &IcmpTypes::default()).unwrap()
    }

    fn cc_state() -> CcState {
        CcState {
            ulp_discarded: true,
            key_serial: 7,
            timestamp: 0x1000,
            initiator_flow_label: fl(0x12345),
            initiator_birthday: 1000,
            responder_birthday: 5,
            initiator_nonce: N,
            init_src: src(),
            init_dst: dst(),
            mac: [0x11; 16],
        }
    }

    fn init_repr() -> Repr {
        Repr {
            rewrite_ok: true,
            nonce: N,
            message: Message::Init(Init {
                aid_initiator: src(),
                aid_responder: dst(),
                lsl_initiator: vec![src()],
                lsr_responder: vec![dst()],
                flow_label: fl(0x12345),
                birthday: 1000,
            }),
            piggyback: None,
        }
    }

    fn cc_body() -> Cc {
        Cc {
            aid_initiator: src(),
            aid_responder: dst(),
            lsl_initiator: vec![],
            lsr_responder: vec![],
            lsl_responder: vec![],
            state: cc_state(),
        }
    }

    fn pair_close() -> Close {
        Close {
            aid_sender: src(),
            aid_receiver: dst(),
            flow_label_sender: fl(0x12345),
            flow_label_receiver: fl(0x54321),
        }
    }

    #[test]
    fn init_fields() {
        let p = Packet::new_checked(&INIT_BYTES[..]).unwrap();
        assert_eq!(p.msg_type(), 200);
        assert_eq!(p.msg_code(), 1);
        assert_eq!(p.code(), Some(Code::Init));
        assert_eq!(p.rewrite_ok(&IcmpTypes::default()), Some(true));
        assert_eq!(p.checksum(), 0x9ff5);
        assert_eq!(p.next_header(), NO_NEXT_HEADER);
        assert_eq!(p.flags(), 0);
        assert_eq!(p.tlv_len(), 104);
        assert_eq!(p.nonce(), N);
        assert_eq!(p.tlv_area().len(), 104);
        assert!(p.payload().is_empty());
        assert_eq!(p.tlvs().count(), 5);
        assert!(p.verify_checksum(&src(), &dst()));
    }

    #[test]
    fn init_parse_emit() {
        assert_eq!(parse(&INIT_BYTES).unwrap(), init_repr());
        assert_eq!(emit(&init_repr()), &INIT_BYTES[..]);
        assert_eq!(init_repr().buffer_len(), INIT_BYTES.len());
    }

    #[test]
    fn cc_parse_emit() {
        let r = Repr {
            rewrite_ok: true,
            nonce: N,
            message: Message::Cc(cc_body()),
            piggyback: Some(Piggyback {
                next_header: 6,
                data: vec![0xde, 0xad, 0xbe, 0xef],
            }),
        };
        let p = Packet::new_checked(&CC_BYTES[..]).unwrap();
        assert!(p.ulp_discarded());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(parse(&CC_BYTES).unwrap(), r);
        assert_eq!(emit(&r), &CC_BYTES[..]);
    }

    #[test]
    fn ccr_parse_emit() {
        let r = Repr {
            rewrite_ok: false,
            nonce: 0x1111_1111_1111_1111,
            message: Message::Ccr(cc_body()),
            piggyback: None,
        };
        assert_eq!(parse(&CCR_BYTES).unwrap(), r);
        assert_eq!(emit(&r), &CCR_BYTES[..]);
    }

    #[test]
    fn conf_parse_emit() {
        let r = Repr {
            rewrite_ok: true,
            nonce: N,
            message: Message::Conf(Conf {
                aid_initiator: src(),
                aid_responder: dst(),
                flow_label: fl(0x54321),
                birthday: 5,
                lsr_initiator: Some(vec![src()]),
                lsl_responder: None,
            }),
            piggyback: None,
        };
        assert_eq!(parse(&CONF_BYTES).unwrap(), r);
        assert_eq!(emit(&r), &CONF_BYTES[..]);
    }

    #[test]
    fn ur_parse_emit() {
        let r = Repr {
            rewrite_ok: true,
            nonce: N,
            message: Message::Ur(Ur {
                aid_sender: src(),
                aid_receiver: dst(),
                flow_label_sender: fl(0x12345),
                flow_label_receiver: fl(0x54321),
                lsl_sender: vec![src()],
                lsr_receiver: vec![],
            }),
            piggyback: None,
        };
        assert_eq!(parse(&UR_BYTES).unwrap(), r);
        assert_eq!(emit(&r), &UR_BYTES[..]);
    }

    #[test]
    fn ua_parse_emit() {
        let r = Repr {
            rewrite_ok: false,
            nonce: N,
            message: Message::Ua(Ua {
                aid_sender: src(),
                aid_receiver: dst(),
                flow_label_sender: fl(0x54321),
                flow_label_receiver: fl(0x12345),
            }),
            piggyback: None,
        };
        assert_eq!(parse(&UA_BYTES).unwrap(), r);
        assert_eq!(emit(&r), &UA_BYTES[..]);
    }

    #[test]
    fn uc_parse_emit() {
        let r = Repr {
            rewrite_ok: false,
            nonce: 0,
            message: Message::Uc(Uc {
                flow_label: fl(0xabcde),
                birthday: 0xffff_fff0,
                invoking_packet: vec![0x60, 0x0a, 0xbc, 0xde, 0, 0, 160, 64],
            }),
            piggyback: None,
        };
        let p = Packet::new_checked(&UC_BYTES[..]).unwrap();
        assert_eq!(p.next_header(), NEXT_HEADER_IPV6);
        assert_eq!(parse(&UC_BYTES).unwrap(), r);
        assert_eq!(emit(&r), &UC_BYTES[..]);
    }

    #[test]
    fn close_and_closeack_parse_emit() {
        let r = Repr {
            rewrite_ok: true,
            nonce: N,
            message: Message::Close(pair_close()),
            piggyback: None,
        };
        assert_eq!(parse(&CLOSE_BYTES).unwrap(), r);
        assert_eq!(emit(&r), &CLOSE_BYTES[..]);
        let mut back = pair_close();
        core::mem::swap(&mut back.flow_label_sender, &mut back.flow_label_receiver);
        let r = Repr {
            rewrite_ok: false,
            nonce: N,
            message: Message::CloseAck(back),
            piggyback: None,
        };
        assert_eq!(parse(&CLOSEACK_BYTES).unwrap(), r);
        assert_eq!(emit(&r), &CLOSEACK_BYTES[..]);
    }

    /// Recomputes the checksum after a test modified the bytes.
    fn refill(mut b: Vec<u8>) -> Vec<u8> {
        Packet::new_unchecked(&mut b[..]).fill_checksum(&src(), &dst());
        b
    }

    #[test]
    fn bad_checksum() {
        let mut b = INIT_BYTES.to_vec();
        b[3] ^= 1;
        assert_eq!(parse(&b).unwrap_err(), Error::BadChecksum);
        // The checksum covers the pseudo-header: other addresses, other sum.
        let p = Packet::new_checked(&INIT_BYTES[..]).unwrap();
        let other: Ipv6Addr = "2001:db8:3::a".parse().unwrap();
        assert_eq!(
            Repr::parse(&p, &other, &dst(), &IcmpTypes::default()).unwrap_err(),
            Error::BadChecksum
        );
    }

    #[test]
    fn truncated_everywhere() {
        for n in 0..INIT_BYTES.len() {
            let e = parse(&INIT_BYTES[..n]).unwrap_err();
            assert!(
                matches!(e, Error::Truncated | Error::BadChecksum),
                "len {n}: {e:?}"
            );
        }
        for n in 0..HEADER_LEN + 104 {
            let b = refill(INIT_BYTES[..n.max(4)].to_vec());
            assert_eq!(parse(&b).unwrap_err(), Error::Truncated, "len {n}");
        }
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut b = INIT_BYTES.to_vec();
        b.push(0);
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::TrailingBytes);
    }

    #[test]
    fn misaligned_tlv_area() {
        let mut b = INIT_BYTES.to_vec();
        b[7] = 0x67;
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::Misaligned);
    }

    #[test]
    fn unknown_code_and_type() {
        let mut b = INIT_BYTES.to_vec();
        b[1] = 10;
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::UnknownCode(10));
        let mut b = INIT_BYTES.to_vec();
        b[1] = 0;
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::UnknownCode(0));
        let mut b = INIT_BYTES.to_vec();
        b[0] = 202;
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::UnknownType(202));
    }

    #[test]
    fn configured_types() {
        let types = IcmpTypes {
            rewrite_ok: 150,
            no_rewrite: 151,
        };
        let b = init_repr().to_bytes(&src(), &dst(), &types).unwrap();
        assert_eq!(b[0], 150);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Repr::parse(&p, &src(), &dst(), &types).unwrap(),
            init_repr()
        );
        assert_eq!(
            Repr::parse(&p, &src(), &dst(), &IcmpTypes::default()).unwrap_err(),
            Error::UnknownType(150)
        );
    }

    #[test]
    fn zero_length_tlv() {
        let mut b = INIT_BYTES.to_vec();
        b[17] = 0; // AIDs TLV length
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::BadLength);
    }

    #[test]
    fn tlv_overruns_area() {
        let mut b = INIT_BYTES.to_vec();
        b[16 + 40 + 8 + 8 + 24 + 1] = 4; // last locator set claims 32 octets, 24 remain
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::BadLength);
    }

    #[test]
    fn wrong_fixed_tlv_length() {
        let mut b = INIT_BYTES.to_vec();
        // Flow Label TLV (at 56) claiming 16 octets: swallows the Birthday TLV.
        b[57] = 2;
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::BadLength);
    }

    #[test]
    fn missing_duplicate_unexpected_tlvs() {
        // Turn the Birthday TLV into an unknown type: skipped, so Birthday is missing.
        let mut b = INIT_BYTES.to_vec();
        b[64] = 0x7f;
        assert_eq!(
            parse(&refill(b)).unwrap_err(),
            Error::MissingTlv(TlvType::Birthday)
        );
        // Turn the Birthday TLV into a second Flow Label TLV.
        let mut b = INIT_BYTES.to_vec();
        b[64] = 3;
        assert_eq!(
            parse(&refill(b)).unwrap_err(),
            Error::DuplicateTlv(TlvType::FlowLabel)
        );
        // Lsr(responder) relabelled Lsl(responder): not carried by INIT.
        let mut b = INIT_BYTES.to_vec();
        b[16 + 40 + 8 + 8 + 24 + 2] = 3;
        assert_eq!(
            parse(&refill(b)).unwrap_err(),
            Error::UnexpectedTlv(TlvType::LocatorSet)
        );
        // Lsl(initiator) relabelled Lsr(responder): duplicate set.
        let mut b = INIT_BYTES.to_vec();
        b[16 + 40 + 8 + 8 + 2] = 4;
        assert_eq!(
            parse(&refill(b)).unwrap_err(),
            Error::DuplicateTlv(TlvType::LocatorSet)
        );
    }

    /// Appendix A: UR, UA, CLOSE and CLOSEACK identify the context by both flow labels.
    #[test]
    fn flow_label_pair_required_after_establishment() {
        for (bytes, code) in [
            (&UR_BYTES[..], 5u8),
            (&UA_BYTES[..], 6),
            (&CLOSE_BYTES[..], 8),
            (&CLOSEACK_BYTES[..], 9),
        ] {
            let mut b = bytes.to_vec();
            // The Flow Label Pair TLV follows the AIDs TLV: make it an unknown type.
            assert_eq!(b[16 + 40], 4, "code {code}");
            b[16 + 40] = 0x7e;
            assert_eq!(
                parse(&refill(b)).unwrap_err(),
                Error::MissingTlv(TlvType::FlowLabelPair),
                "code {code}"
            );
        }
    }

    #[test]
    fn unknown_tlv_is_skipped() {
        let mut b = UA_BYTES.to_vec();
        // Append an unknown 8-octet TLV to the TLV area.
        b.extend_from_slice(&[0xee, 1, 1, 2, 3, 4, 5, 6]);
        b[7] += 8;
        assert_eq!(parse(&refill(b)).unwrap(), parse(&UA_BYTES).unwrap());
    }

    #[test]
    fn cc_d_flag_must_match_state() {
        let mut b = CC_BYTES.to_vec();
        b[5] = 0;
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::Inconsistent);
        // In a CCR the fixed D flag is not the state's and is ignored.
        let mut b = CCR_BYTES.to_vec();
        b[5] = 0x80;
        assert!(parse(&refill(b)).is_ok());
    }

    #[test]
    fn piggyback_rules() {
        // INIT with next header 6 but nothing after the TLVs.
        let mut b = INIT_BYTES.to_vec();
        b[4] = 6;
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::Truncated);
        // UA cannot carry a ULP packet.
        let mut b = UA_BYTES.to_vec();
        b[4] = 6;
        b.extend_from_slice(&[1, 2, 3]);
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::Inconsistent);
        // UC trailing data must be an IPv6 packet (41).
        let mut b = UC_BYTES.to_vec();
        b[4] = 6;
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::Inconsistent);
        // UC without a triggering packet.
        let b = UC_BYTES[..32].to_vec();
        let mut b2 = b.clone();
        b2[4] = NO_NEXT_HEADER;
        assert_eq!(parse(&refill(b)).unwrap_err(), Error::Truncated);
        assert!(parse(&refill(b2)).is_ok());
    }

    #[test]
    fn emit_validation() {
        let mut r = init_repr();
        r.message = Message::Ua(Ua {
            aid_sender: src(),
            aid_receiver: dst(),
            flow_label_sender: fl(1),
            flow_label_receiver: fl(2),
        });
        r.piggyback = Some(Piggyback {
            next_header: 6,
            data: vec![1],
        });
        assert_eq!(r.validate().unwrap_err(), Error::Inconsistent);
        let mut r = init_repr();
        r.piggyback = Some(Piggyback {
            next_header: NO_NEXT_HEADER,
            data: vec![1],
        });
        assert_eq!(r.validate().unwrap_err(), Error::Inconsistent);
        r.piggyback = Some(Piggyback {
            next_header: 6,
            data: vec![],
        });
        assert_eq!(r.validate().unwrap_err(), Error::Inconsistent);
        let mut r = init_repr();
        if let Message::Init(m) = &mut r.message {
            m.lsl_initiator = vec![src(); 128];
        }
        assert_eq!(r.validate().unwrap_err(), Error::Unencodable);
        // Buffer too small.
        let r = init_repr();
        let mut small = vec![0u8; r.buffer_len() - 1];
        assert_eq!(
            r.emit(
                &mut Packet::new_unchecked(&mut small[..]),
                &src(),
                &dst(),
                &IcmpTypes::default()
            )
            .unwrap_err(),
            Error::Unencodable
        );
    }

    #[test]
    fn emit_into_larger_buffer_writes_only_its_length() {
        let r = init_repr();
        let mut big = vec![0xaau8; r.buffer_len() + 10];
        let n = r
            .emit(
                &mut Packet::new_unchecked(&mut big[..]),
                &src(),
                &dst(),
                &IcmpTypes::default(),
            )
            .unwrap();
        assert_eq!(&big[..n], &INIT_BYTES[..]);
        assert!(big[n..].iter().all(|b| *b == 0xaa));
    }

    #[test]
    fn setters_and_flow_label() {
        let mut b = [0u8; 16];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(201);
        p.set_msg_code(6);
        p.set_next_header(59);
        p.set_flags(0x80);
        p.set_tlv_len(0);
        p.set_nonce(N);
        p.set_checksum(0xbeef);
        assert_eq!(
            b,
            [201, 6, 0xbe, 0xef, 59, 0x80, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(FlowLabel::new(0x10_0000), None);
        assert_eq!(FlowLabel::new_truncated(0xfff1_2345).value(), 0x12345);
        assert_eq!(fl(0x12345).to_string(), "0x12345");
    }

    #[test]
    fn short_view_getters_do_not_panic() {
        let p = Packet::new_unchecked(&[200u8, 1][..]);
        assert_eq!(p.checksum(), 0);
        assert_eq!(p.nonce(), 0);
        assert!(p.tlv_area().is_empty());
        assert!(p.payload().is_empty());
        let mut b = [0u8; 3];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_nonce(1);
        p.fill_checksum(&src(), &dst());
    }

    #[test]
    fn birthday_window() {
        assert_eq!(check_birthday(10, 10, 900), BirthdayCheck::Same);
        assert_eq!(check_birthday(10, 11, 900), BirthdayCheck::Rebooted);
        assert_eq!(check_birthday(10, 910, 900), BirthdayCheck::Rebooted);
        assert_eq!(check_birthday(10, 911, 900), BirthdayCheck::OutOfWindow);
        assert_eq!(check_birthday(10, 9, 900), BirthdayCheck::OutOfWindow);
        assert_eq!(check_birthday(u32::MAX, 5, 900), BirthdayCheck::Rebooted);
    }
}
