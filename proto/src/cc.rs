//! The stateless Context Check (seed 001 sections 3.3.2, 4.1 step 5, 7.3, 7.5).
//!
//! On an INIT the responder allocates nothing: it puts the state it would have allocated in
//! the CC, with a timestamp and a keyed hash, and checks the echo in the CCR (the technique of
//! MIPv6 return routability). Construction (docs/protocol.md "CC integrity"):
//!
//! ```text
//! MAC = HMAC-SHA256(K[serial], "M6-CC-v1" || serial || timestamp || flags || F(initiator)
//!                   || birthday(initiator) || birthday(responder) || INIT nonce
//!                   || INIT src || INIT dst || AID(initiator) || AID(responder)
//!                   || n || Lsl(initiator) || n || Lsr(responder) || n || Lsl(responder))
//!       truncated to its first 128 bits
//! ```
//!
//! with every integer big-endian (serial, timestamp, F, birthdays 32 bits, nonce 64 bits,
//! flags 8 bits, each count n 16 bits) and every address/locator its 16 octets.
//!
//! The key is per host, never shared, and replaced every [`CC_KEY_ROTATION`] with serial + 1;
//! the current and the previous key are accepted. Nothing here allocates: the dataplane can
//! answer INITs and check CCRs at line rate.
//!
//! [`CC_KEY_ROTATION`]: crate::wire::consts::CC_KEY_ROTATION
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use core::fmt;
use core::net::Ipv6Addr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::wire::consts;
use crate::wire::m6::{self, FlowLabel};
pub use crate::wire::tlv::{CcState, Locators};
use crate::wire::tlv::{LocatorSetId, TlvRepr, FLAG_D};
use crate::wire::Error as WireError;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation label at the start of the MAC input.
pub const MAC_LABEL: &[u8; 8] = b"M6-CC-v1";
/// Length of the per-host secret.
pub const SECRET_LEN: usize = consts::CC_SECRET_LEN;
/// Length of the truncated MAC.
pub const MAC_LEN: usize = consts::CC_MAC_LEN;

/// One per-host CC key with its serial: the secret, kept so that the owner can hand the
/// key to the dataplane's workers (which answer INITs themselves, DESIGN section 5), and
/// the keyed HMAC state.
#[derive(Clone)]
pub struct CcKey {
    serial: u32,
    secret: [u8; SECRET_LEN],
    mac: HmacSha256,
}

impl fmt::Debug for CcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CcKey")
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl CcKey {
    /// A key from 32 secret octets (from a CSPRNG; the caller owns the randomness).
    pub fn new(serial: u32, secret: &[u8; SECRET_LEN]) -> CcKey {
        // HMAC takes keys of any length, so this cannot fail; fall back to the empty-key
        // state rather than panic should the library ever say otherwise.
        let mac = <HmacSha256 as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
        CcKey {
            serial,
            secret: *secret,
            mac,
        }
    }

    /// The key's serial.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The secret the key was made from (to publish it to the dataplane over the 0600
    /// channel; never logged: `Debug` leaves it out).
    pub fn secret(&self) -> &[u8; SECRET_LEN] {
        &self.secret
    }
}

/// The current key and the one before it (accepted until the next rotation).
#[derive(Debug, Clone)]
pub struct CcKeyring {
    current: CcKey,
    previous: Option<CcKey>,
}

impl CcKeyring {
    /// A keyring with only `current`.
    pub fn new(current: CcKey) -> CcKeyring {
        CcKeyring {
            current,
            previous: None,
        }
    }

    /// Replaces the current key by one made from `secret` with serial + 1 (wrapping); the
    /// old current key becomes the previous one, the old previous one is forgotten.
    pub fn rotate(&mut self, secret: &[u8; SECRET_LEN]) {
        let next = CcKey::new(self.current.serial.wrapping_add(1), secret);
        let old = core::mem::replace(&mut self.current, next);
        self.previous = Some(old);
    }

    /// The key new CCs are made with.
    pub fn current(&self) -> &CcKey {
        &self.current
    }

    /// The previous key, if any.
    pub fn previous(&self) -> Option<&CcKey> {
        self.previous.as_ref()
    }

    /// The accepted key with this serial.
    pub fn key_for_serial(&self, serial: u32) -> Option<&CcKey> {
        if self.current.serial == serial {
            Some(&self.current)
        } else {
            self.previous.as_ref().filter(|k| k.serial == serial)
        }
    }
}

/// What the responder knows when it answers an INIT: the INIT's fields and addresses, and
/// its own birthday counter and Lsl(responder).
#[derive(Debug, Clone, Copy)]
pub struct CcInput<'a> {
    /// IPv6 source of the INIT as received.
    pub init_src: Ipv6Addr,
    /// IPv6 destination of the INIT as received.
    pub init_dst: Ipv6Addr,
    /// AID(initiator) from the INIT.
    pub aid_initiator: Ipv6Addr,
    /// AID(responder) from the INIT.
    pub aid_responder: Ipv6Addr,
    /// The INIT's nonce.
    pub initiator_nonce: u64,
    /// F(initiator) from the INIT.
    pub initiator_flow_label: FlowLabel,
    /// Initiator's birthday counter from the INIT.
    pub initiator_birthday: u32,
    /// Responder's birthday counter.
    pub responder_birthday: u32,
    /// The INIT's piggybacked ULP packet was not passed to the ULP.
    pub ulp_discarded: bool,
    /// Lsl(initiator) from the INIT.
    pub lsl_initiator: Locators<'a>,
    /// Lsr(responder) from the INIT.
    pub lsr_responder: Locators<'a>,
    /// Lsl(responder), the responder's own locators.
    pub lsl_responder: Locators<'a>,
}

/// The state as echoed in a CCR: the CC State TLV and the AIDs and locator sets it covers.
#[derive(Debug, Clone, Copy)]
pub struct CcEcho<'a> {
    /// The CC State TLV.
    pub state: CcState,
    /// AID(initiator).
    pub aid_initiator: Ipv6Addr,
    /// AID(responder).
    pub aid_responder: Ipv6Addr,
    /// Lsl(initiator).
    pub lsl_initiator: Locators<'a>,
    /// Lsr(responder).
    pub lsr_responder: Locators<'a>,
    /// Lsl(responder).
    pub lsl_responder: Locators<'a>,
}

impl<'a> CcEcho<'a> {
    /// Reads the echo straight from a CC or CCR packet without allocating (for the
    /// dataplane). Only the TLVs are read: length, type, code and checksum are the caller's
    /// (or use [`m6::Repr::parse`] and [`m6::Cc::echo`]).
    pub fn from_packet<T: AsRef<[u8]> + ?Sized>(
        packet: &'a m6::Packet<&'a T>,
    ) -> Result<CcEcho<'a>, WireError> {
        packet.check_len()?;
        let mut state = None;
        let mut aids = None;
        let mut sets: [Option<Locators<'a>>; 3] = [None, None, None];
        for t in packet.tlvs() {
            match TlvRepr::parse(&t?)? {
                TlvRepr::CcState(s) => once(&mut state, s, crate::wire::TlvType::CcState)?,
                TlvRepr::Aids { first, second } => {
                    once(&mut aids, (first, second), crate::wire::TlvType::Aids)?
                }
                TlvRepr::LocatorSet { set, locators } => {
                    let i = match set {
                        LocatorSetId::LslFirst => 0,
                        LocatorSetId::LsrSecond => 1,
                        LocatorSetId::LslSecond => 2,
                        LocatorSetId::LsrFirst => {
                            return Err(WireError::UnexpectedTlv(crate::wire::TlvType::LocatorSet))
                        }
                    };
                    if let Some(slot) = sets.get_mut(i) {
                        once(slot, locators, crate::wire::TlvType::LocatorSet)?;
                    }
                }
                TlvRepr::Unknown { .. } => {}
                other => {
                    if let Some(t) = other.tlv_type() {
                        return Err(WireError::UnexpectedTlv(t));
                    }
                }
            }
        }
        let missing = |t| WireError::MissingTlv(t);
        let (aid_initiator, aid_responder) = aids.ok_or(missing(crate::wire::TlvType::Aids))?;
        let [lsl_i, lsr_r, lsl_r] = sets;
        let set = |s: Option<Locators<'a>>| s.ok_or(missing(crate::wire::TlvType::LocatorSet));
        Ok(CcEcho {
            state: state.ok_or(missing(crate::wire::TlvType::CcState))?,
            aid_initiator,
            aid_responder,
            lsl_initiator: set(lsl_i)?,
            lsr_responder: set(lsr_r)?,
            lsl_responder: set(lsl_r)?,
        })
    }
}

fn once<T>(slot: &mut Option<T>, v: T, t: crate::wire::TlvType) -> Result<(), WireError> {
    if slot.is_some() {
        return Err(WireError::DuplicateTlv(t));
    }
    *slot = Some(v);
    Ok(())
}

/// Limits applied by [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcPolicy {
    /// Oldest acceptable state, seconds (default [`consts::CC_LIFETIME`]).
    pub lifetime_secs: u32,
    /// Largest accepted timestamp in the future, seconds (default
    /// [`consts::CC_MAX_FUTURE_SKEW`]).
    pub max_future_skew_secs: u32,
    /// Require the CCR's source to be in Lsl(initiator) or AID(initiator) and its destination
    /// in Lsl(responder) or AID(responder) of the echoed state (default true).
    pub check_addresses: bool,
}

impl Default for CcPolicy {
    fn default() -> Self {
        CcPolicy {
            lifetime_secs: u32::try_from(consts::CC_LIFETIME.as_secs()).unwrap_or(u32::MAX),
            max_future_skew_secs: u32::try_from(consts::CC_MAX_FUTURE_SKEW.as_secs())
                .unwrap_or(u32::MAX),
            check_addresses: true,
        }
    }
}

/// Why a CCR's echoed state is refused (the CCR is then silently dropped, 7.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CcError {
    /// The key serial is neither the current nor the previous one.
    UnknownSerial,
    /// Older than the lifetime.
    Expired,
    /// Further in the future than the allowed skew.
    FromFuture,
    /// The MAC does not verify: the state was modified or made by someone else.
    BadMac,
    /// The CCR's source is not a locator of the initiator per the echoed state.
    SourceNotInLsl,
    /// The CCR's destination is not a locator of the responder per the echoed state.
    DestinationNotInLsl,
}

impl fmt::Display for CcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            CcError::UnknownSerial => "unknown CC key serial",
            CcError::Expired => "CC state expired",
            CcError::FromFuture => "CC timestamp in the future",
            CcError::BadMac => "CC MAC does not verify",
            CcError::SourceNotInLsl => "CCR source not in Lsl(initiator)",
            CcError::DestinationNotInLsl => "CCR destination not in Lsl(responder)",
        };
        f.write_str(s)
    }
}

impl std::error::Error for CcError {}

/// What a valid echo tells the responder beyond its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcVerified {
    /// Serial of the key that verified.
    pub key_serial: u32,
    /// Age of the state in seconds (0 if from the allowed future).
    pub age_secs: u32,
    /// The INIT came from AID(initiator) and the CC went there: the AID is return-routable
    /// and starts in Lsv(initiator) (seed 001 section 7.13).
    pub aid_was_locator: bool,
}

/// Fields of the state that the MAC covers, apart from the AIDs and sets.
struct MacFields<'a> {
    serial: u32,
    timestamp: u32,
    ulp_discarded: bool,
    flow_label: FlowLabel,
    initiator_birthday: u32,
    responder_birthday: u32,
    nonce: u64,
    init_src: &'a Ipv6Addr,
    init_dst: &'a Ipv6Addr,
    aid_initiator: &'a Ipv6Addr,
    aid_responder: &'a Ipv6Addr,
    sets: [Locators<'a>; 3],
}

fn keyed_mac(key: &CcKey, f: &MacFields<'_>) -> HmacSha256 {
    let mut m = key.mac.clone();
    m.update(MAC_LABEL);
    m.update(&f.serial.to_be_bytes());
    m.update(&f.timestamp.to_be_bytes());
    m.update(&[if f.ulp_discarded { FLAG_D } else { 0 }]);
    m.update(&f.flow_label.value().to_be_bytes());
    m.update(&f.initiator_birthday.to_be_bytes());
    m.update(&f.responder_birthday.to_be_bytes());
    m.update(&f.nonce.to_be_bytes());
    m.update(&f.init_src.octets());
    m.update(&f.init_dst.octets());
    m.update(&f.aid_initiator.octets());
    m.update(&f.aid_responder.octets());
    for set in &f.sets {
        // Sets longer than u16::MAX cannot be encoded anyway; saturate rather than wrap.
        let n = u16::try_from(set.len()).unwrap_or(u16::MAX);
        m.update(&n.to_be_bytes());
        for a in set.iter() {
            m.update(&a.octets());
        }
    }
    m
}

/// Makes the CC state for an INIT with the keyring's current key at `timestamp` (the
/// responder's clock in seconds, see [`CcPolicy`]).
pub fn generate(keys: &CcKeyring, input: &CcInput<'_>, timestamp: u32) -> CcState {
    let key = keys.current();
    let fields = MacFields {
        serial: key.serial,
        timestamp,
        ulp_discarded: input.ulp_discarded,
        flow_label: input.initiator_flow_label,
        initiator_birthday: input.initiator_birthday,
        responder_birthday: input.responder_birthday,
        nonce: input.initiator_nonce,
        init_src: &input.init_src,
        init_dst: &input.init_dst,
        aid_initiator: &input.aid_initiator,
        aid_responder: &input.aid_responder,
        sets: [
            input.lsl_initiator,
            input.lsr_responder,
            input.lsl_responder,
        ],
    };
    let full = keyed_mac(key, &fields).finalize().into_bytes();
    let mut mac = [0u8; MAC_LEN];
    for (o, i) in mac.iter_mut().zip(full.iter()) {
        *o = *i;
    }
    CcState {
        ulp_discarded: input.ulp_discarded,
        key_serial: key.serial,
        timestamp,
        initiator_flow_label: input.initiator_flow_label,
        initiator_birthday: input.initiator_birthday,
        responder_birthday: input.responder_birthday,
        initiator_nonce: input.initiator_nonce,
        init_src: input.init_src,
        init_dst: input.init_dst,
        mac,
    }
}

/// Checks a CCR's echoed state (seed 001 section 7.5): known key serial, timestamp within
/// the lifetime (serial-number arithmetic on the 32-bit clock), MAC valid in constant time,
/// and (if the policy asks) `ccr_src`/`ccr_dst` among the echoed locators of each side.
pub fn check(
    keys: &CcKeyring,
    echo: &CcEcho<'_>,
    ccr_src: &Ipv6Addr,
    ccr_dst: &Ipv6Addr,
    now: u32,
    policy: &CcPolicy,
) -> Result<CcVerified, CcError> {
    let s = &echo.state;
    let key = keys
        .key_for_serial(s.key_serial)
        .ok_or(CcError::UnknownSerial)?;
    let age = now.wrapping_sub(s.timestamp);
    let age_secs = if age >= 0x8000_0000 {
        let ahead = s.timestamp.wrapping_sub(now);
        if ahead > policy.max_future_skew_secs {
            return Err(CcError::FromFuture);
        }
        0
    } else if age > policy.lifetime_secs {
        return Err(CcError::Expired);
    } else {
        age
    };
    let fields = MacFields {
        serial: s.key_serial,
        timestamp: s.timestamp,
        ulp_discarded: s.ulp_discarded,
        flow_label: s.initiator_flow_label,
        initiator_birthday: s.initiator_birthday,
        responder_birthday: s.responder_birthday,
        nonce: s.initiator_nonce,
        init_src: &s.init_src,
        init_dst: &s.init_dst,
        aid_initiator: &echo.aid_initiator,
        aid_responder: &echo.aid_responder,
        sets: [echo.lsl_initiator, echo.lsr_responder, echo.lsl_responder],
    };
    keyed_mac(key, &fields)
        .verify_truncated_left(&s.mac)
        .map_err(|_| CcError::BadMac)?;
    if policy.check_addresses {
        if *ccr_src != echo.aid_initiator && !echo.lsl_initiator.contains(ccr_src) {
            return Err(CcError::SourceNotInLsl);
        }
        if *ccr_dst != echo.aid_responder && !echo.lsl_responder.contains(ccr_dst) {
            return Err(CcError::DestinationNotInLsl);
        }
    }
    Ok(CcVerified {
        key_serial: key.serial,
        age_secs,
        aid_was_locator: s.init_src == echo.aid_initiator,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::m6::{Cc, IcmpTypes, Message, Packet, Repr};

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn secret(b: u8) -> [u8; SECRET_LEN] {
        let mut s = [0u8; SECRET_LEN];
        for (i, x) in s.iter_mut().enumerate() {
            *x = b.wrapping_add(i as u8);
        }
        s
    }

    struct Sets {
        lsl_i: Vec<Ipv6Addr>,
        lsr_r: Vec<Ipv6Addr>,
        lsl_r: Vec<Ipv6Addr>,
    }

    fn sets() -> Sets {
        Sets {
            lsl_i: vec![a("2001:db8:1::a"), a("2001:db8:3::a")],
            lsr_r: vec![a("2001:db8:2::b")],
            lsl_r: vec![a("2001:db8:2::b"), a("2001:db8:4::b")],
        }
    }

    fn input(s: &Sets) -> CcInput<'_> {
        CcInput {
            init_src: a("2001:db8:1::a"),
            init_dst: a("2001:db8:2::b"),
            aid_initiator: a("2001:db8:1::a"),
            aid_responder: a("2001:db8:2::b"),
            initiator_nonce: 0x0102_0304_0506_0708,
            initiator_flow_label: FlowLabel::new(0x12345).unwrap(),
            initiator_birthday: 1000,
            responder_birthday: 5,
            ulp_discarded: true,
            lsl_initiator: Locators::from_addrs(&s.lsl_i),
            lsr_responder: Locators::from_addrs(&s.lsr_r),
            lsl_responder: Locators::from_addrs(&s.lsl_r),
        }
    }

    fn keys() -> CcKeyring {
        CcKeyring::new(CcKey::new(7, &secret(0)))
    }

    fn echo<'a>(st: CcState, i: &CcInput<'a>) -> CcEcho<'a> {
        CcEcho {
            state: st,
            aid_initiator: i.aid_initiator,
            aid_responder: i.aid_responder,
            lsl_initiator: i.lsl_initiator,
            lsr_responder: i.lsr_responder,
            lsl_responder: i.lsl_responder,
        }
    }

    const NOW: u32 = 0x1000;

    fn ok(k: &CcKeyring, e: &CcEcho<'_>, now: u32) -> Result<CcVerified, CcError> {
        check(
            k,
            e,
            &a("2001:db8:3::a"),
            &a("2001:db8:4::b"),
            now,
            &CcPolicy::default(),
        )
    }

    /// Known answer computed independently with Python's hmac module over the construction
    /// in docs/protocol.md.
    #[test]
    fn known_answer() {
        let s = sets();
        let st = generate(&keys(), &input(&s), NOW);
        let want: [u8; 16] = [
            0x1f, 0x9a, 0x4c, 0x9b, 0x78, 0xca, 0xf1, 0xaa, 0x18, 0x43, 0x00, 0x0a, 0xed, 0x36,
            0xe2, 0x59,
        ];
        assert_eq!(st.mac, want);
        assert_eq!(st.key_serial, 7);
        assert_eq!(st.timestamp, NOW);
        assert!(st.ulp_discarded);
    }

    #[test]
    fn generate_then_check() {
        let s = sets();
        let i = input(&s);
        let k = keys();
        let st = generate(&k, &i, NOW);
        let v = ok(&k, &echo(st, &i), NOW + 3).unwrap();
        assert_eq!(
            v,
            CcVerified {
                key_serial: 7,
                age_secs: 3,
                aid_was_locator: true
            }
        );
        let mut i2 = i;
        i2.init_src = a("2001:db8:3::a");
        let st = generate(&k, &i2, NOW);
        assert!(!ok(&k, &echo(st, &i2), NOW).unwrap().aid_was_locator);
    }

    #[test]
    fn every_field_is_covered() {
        let s = sets();
        let i = input(&s);
        let k = keys();
        let st = generate(&k, &i, NOW);
        let other = [a("2001:db8:9::9")];
        let mut tampered: Vec<CcEcho<'_>> = Vec::new();
        let e = echo(st, &i);
        let mut t = e;
        t.state.ulp_discarded = false;
        tampered.push(t);
        let mut t = e;
        t.state.initiator_flow_label = FlowLabel::new(0x12344).unwrap();
        tampered.push(t);
        let mut t = e;
        t.state.initiator_birthday ^= 1;
        tampered.push(t);
        let mut t = e;
        t.state.responder_birthday ^= 1;
        tampered.push(t);
        let mut t = e;
        t.state.initiator_nonce ^= 1;
        tampered.push(t);
        let mut t = e;
        t.state.init_src = other[0];
        tampered.push(t);
        let mut t = e;
        t.state.init_dst = other[0];
        tampered.push(t);
        let mut t = e;
        t.state.timestamp += 1;
        tampered.push(t);
        let mut t = e;
        t.state.mac[15] ^= 1;
        tampered.push(t);
        let mut t = e;
        t.aid_initiator = a("2001:db8:3::a");
        tampered.push(t);
        let mut t = e;
        t.aid_responder = a("2001:db8:4::b");
        tampered.push(t);
        let mut t = e;
        t.lsl_initiator = Locators::from_addrs(&s.lsl_i[..1]);
        tampered.push(t);
        let mut t = e;
        t.lsr_responder = Locators::from_addrs(&other);
        tampered.push(t);
        let mut t = e;
        t.lsl_responder = Locators::from_addrs(&s.lsl_r[1..]);
        tampered.push(t);
        // Moving a locator from one set to the next must not keep the MAC (counts are
        // covered).
        let all = [s.lsl_i.clone(), s.lsr_r.clone()].concat();
        let mut t = e;
        t.lsl_initiator = Locators::from_addrs(&all);
        t.lsr_responder = Locators::from_addrs(&[]);
        tampered.push(t);
        for (n, t) in tampered.iter().enumerate() {
            assert_eq!(ok(&k, t, NOW + 1).unwrap_err(), CcError::BadMac, "case {n}");
        }
        assert!(ok(&k, &e, NOW + 1).is_ok());
    }

    #[test]
    fn lifetime_and_skew() {
        let s = sets();
        let i = input(&s);
        let k = keys();
        let e = echo(generate(&k, &i, NOW), &i);
        let life = CcPolicy::default().lifetime_secs;
        assert!(ok(&k, &e, NOW + life).is_ok());
        assert_eq!(ok(&k, &e, NOW + life + 1).unwrap_err(), CcError::Expired);
        assert_eq!(ok(&k, &e, NOW - 2).unwrap().age_secs, 0);
        assert_eq!(ok(&k, &e, NOW - 3).unwrap_err(), CcError::FromFuture);
        // Wrapping clock.
        let e = echo(generate(&k, &i, u32::MAX - 1), &i);
        assert_eq!(ok(&k, &e, 5).unwrap().age_secs, 7);
    }

    #[test]
    fn rotation_accepts_previous_only() {
        let s = sets();
        let i = input(&s);
        let mut k = keys();
        let e = echo(generate(&k, &i, NOW), &i);
        k.rotate(&secret(1));
        assert_eq!(k.current().serial(), 8);
        assert_eq!(k.previous().unwrap().serial(), 7);
        assert_eq!(ok(&k, &e, NOW).unwrap().key_serial, 7);
        let e8 = echo(generate(&k, &i, NOW), &i);
        assert_eq!(e8.state.key_serial, 8);
        assert_eq!(ok(&k, &e8, NOW).unwrap().key_serial, 8);
        k.rotate(&secret(2));
        assert_eq!(ok(&k, &e, NOW).unwrap_err(), CcError::UnknownSerial);
        assert!(ok(&k, &e8, NOW).is_ok());
        // Same serial, different secret (e.g. after a restart): the MAC fails.
        let other = CcKeyring::new(CcKey::new(7, &secret(9)));
        assert_eq!(ok(&other, &e, NOW).unwrap_err(), CcError::BadMac);
        assert!(format!("{:?}", k.current()).contains("serial"));
    }

    #[test]
    fn addresses_must_match_the_state() {
        let s = sets();
        let i = input(&s);
        let k = keys();
        let e = echo(generate(&k, &i, NOW), &i);
        let p = CcPolicy::default();
        let stranger = a("2001:db8:66::1");
        assert!(check(&k, &e, &i.aid_initiator, &i.aid_responder, NOW, &p).is_ok());
        assert_eq!(
            check(&k, &e, &stranger, &i.aid_responder, NOW, &p).unwrap_err(),
            CcError::SourceNotInLsl
        );
        assert_eq!(
            check(&k, &e, &i.aid_initiator, &stranger, NOW, &p).unwrap_err(),
            CcError::DestinationNotInLsl
        );
        let lax = CcPolicy {
            check_addresses: false,
            ..p
        };
        assert!(check(&k, &e, &stranger, &stranger, NOW, &lax).is_ok());
    }

    /// Reads the echo from a CCR's octets. That it allocates nothing is checked with a
    /// counting global allocator in `proto/tests/cc_no_alloc.rs` (a global allocator is per
    /// binary, so it cannot live among these unit tests).
    #[test]
    fn echo_from_packet_without_allocation() {
        let s = sets();
        let i = input(&s);
        let k = keys();
        let st = generate(&k, &i, NOW);
        let ccr = Repr {
            rewrite_ok: true,
            nonce: 99,
            message: Message::Ccr(Cc {
                aid_initiator: i.aid_initiator,
                aid_responder: i.aid_responder,
                lsl_initiator: s.lsl_i.clone(),
                lsr_responder: s.lsr_r.clone(),
                lsl_responder: s.lsl_r.clone(),
                state: st,
            }),
            piggyback: None,
        };
        let bytes = ccr
            .to_bytes(&i.aid_initiator, &i.aid_responder, &IcmpTypes::default())
            .unwrap();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        let e = CcEcho::from_packet(&p).unwrap();
        assert_eq!(e.lsl_initiator, Locators::from_addrs(&s.lsl_i));
        assert!(ok(&k, &e, NOW).is_ok());
        if let Message::Ccr(cc) = &ccr.message {
            assert!(ok(&k, &cc.echo(), NOW).is_ok());
        }
        // A message without TLVs is not a CC.
        let empty = [200u8, 1, 0, 0, 59, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let p = Packet::new_checked(&empty[..]).unwrap();
        assert_eq!(
            CcEcho::from_packet(&p).unwrap_err(),
            WireError::MissingTlv(crate::wire::TlvType::Aids)
        );
    }
}
