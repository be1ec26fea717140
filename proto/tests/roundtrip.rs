//! Property tests of the M6 wire code: every representation survives emit -> parse, the
//! parsers never panic on arbitrary or mutated bytes, and the CC construction verifies what it
//! makes and nothing else.

use std::net::Ipv6Addr;

use proptest::prelude::*;
use proto::cc::{self, CcEcho, CcInput, CcKey, CcKeyring, CcPolicy, Locators};
use proto::wire::data::{Escape, EscapeRepr, ProtoRanges};
use proto::wire::m6::{
    Cc, Close, Conf, FlowLabel, IcmpTypes, Init, Message, Packet, Piggyback, Repr, Ua, Uc, Ur,
    NO_NEXT_HEADER,
};
use proto::wire::tlv::CcState;
use proto::wire::{checksum, Error};

fn addr() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        any::<u128>().prop_map(Ipv6Addr::from),
        // Mostly documentation-prefix hosts, so sets share members now and then.
        (0u16..4, 0u16..4).prop_map(|(s, h)| Ipv6Addr::new(0x2001, 0xdb8, s, 0, 0, 0, 0, h)),
    ]
}

fn locs() -> impl Strategy<Value = Vec<Ipv6Addr>> {
    prop::collection::vec(addr(), 0..6)
}

fn fl() -> impl Strategy<Value = FlowLabel> {
    (0u32..=FlowLabel::MAX).prop_map(FlowLabel::new_truncated)
}

fn piggyback() -> impl Strategy<Value = Option<Piggyback>> {
    prop::option::of(
        (
            any::<u8>().prop_filter("not 59", |n| *n != NO_NEXT_HEADER),
            prop::collection::vec(any::<u8>(), 1..64),
        )
            .prop_map(|(next_header, data)| Piggyback { next_header, data }),
    )
}

fn cc_state() -> impl Strategy<Value = CcState> {
    (
        (any::<bool>(), any::<u32>(), any::<u32>(), fl()),
        (any::<u32>(), any::<u32>(), any::<u64>()),
        (addr(), addr(), any::<[u8; 16]>()),
    )
        .prop_map(|((d, ser, ts, f), (bi, br, n), (s, t, mac))| CcState {
            ulp_discarded: d,
            key_serial: ser,
            timestamp: ts,
            initiator_flow_label: f,
            initiator_birthday: bi,
            responder_birthday: br,
            initiator_nonce: n,
            init_src: s,
            init_dst: t,
            mac,
        })
}

fn cc_body() -> impl Strategy<Value = Cc> {
    (addr(), addr(), locs(), locs(), locs(), cc_state()).prop_map(|(i, r, a, b, c, state)| Cc {
        aid_initiator: i,
        aid_responder: r,
        lsl_initiator: a,
        lsr_responder: b,
        lsl_responder: c,
        state,
    })
}

fn close() -> impl Strategy<Value = Close> {
    (addr(), addr(), fl(), fl()).prop_map(|(s, r, fs, fr)| Close {
        aid_sender: s,
        aid_receiver: r,
        flow_label_sender: fs,
        flow_label_receiver: fr,
    })
}

/// Messages that may piggyback get an optional ULP packet.
fn message() -> impl Strategy<Value = (Message, bool)> {
    prop_oneof![
        (addr(), addr(), locs(), locs(), fl(), any::<u32>()).prop_map(|(i, r, a, b, f, bd)| (
            Message::Init(Init {
                aid_initiator: i,
                aid_responder: r,
                lsl_initiator: a,
                lsr_responder: b,
                flow_label: f,
                birthday: bd,
            }),
            true
        )),
        cc_body().prop_map(|c| (Message::Cc(c), true)),
        cc_body().prop_map(|c| (Message::Ccr(c), true)),
        (
            addr(),
            addr(),
            fl(),
            any::<u32>(),
            prop::option::of(locs()),
            prop::option::of(locs())
        )
            .prop_map(|(i, r, f, bd, a, b)| (
                Message::Conf(Conf {
                    aid_initiator: i,
                    aid_responder: r,
                    flow_label: f,
                    birthday: bd,
                    lsr_initiator: a,
                    lsl_responder: b,
                }),
                true
            )),
        (addr(), addr(), fl(), fl(), locs(), locs()).prop_map(|(s, r, fs, fr, a, b)| (
            Message::Ur(Ur {
                aid_sender: s,
                aid_receiver: r,
                flow_label_sender: fs,
                flow_label_receiver: fr,
                lsl_sender: a,
                lsr_receiver: b,
            }),
            false
        )),
        close().prop_map(|c| (
            Message::Ua(Ua {
                aid_sender: c.aid_sender,
                aid_receiver: c.aid_receiver,
                flow_label_sender: c.flow_label_sender,
                flow_label_receiver: c.flow_label_receiver,
            }),
            false
        )),
        (
            fl(),
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..80)
        )
            .prop_map(|(f, bd, pkt)| (
                Message::Uc(Uc {
                    flow_label: f,
                    birthday: bd,
                    invoking_packet: pkt,
                }),
                false
            )),
        close().prop_map(|c| (Message::Close(c), false)),
        close().prop_map(|c| (Message::CloseAck(c), false)),
    ]
}

fn repr() -> impl Strategy<Value = Repr> {
    (message(), any::<bool>(), any::<u64>(), piggyback()).prop_map(
        |((message, may_pb), rewrite_ok, nonce, pb)| Repr {
            rewrite_ok,
            nonce: if matches!(message, Message::Uc(_)) {
                0
            } else {
                nonce
            },
            message,
            piggyback: if may_pb { pb } else { None },
        },
    )
}

fn types() -> impl Strategy<Value = IcmpTypes> {
    prop_oneof![
        Just(IcmpTypes::default()),
        (any::<u8>(), any::<u8>())
            .prop_filter("distinct", |(a, b)| a != b)
            .prop_map(|(a, b)| IcmpTypes {
                rewrite_ok: a,
                no_rewrite: b
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn repr_emit_parse_roundtrip(r in repr(), src in addr(), dst in addr(), t in types()) {
        let bytes = r.to_bytes(&src, &dst, &t).unwrap();
        prop_assert_eq!(bytes.len(), r.buffer_len());
        let p = Packet::new_checked(&bytes[..]).unwrap();
        prop_assert!(p.verify_checksum(&src, &dst));
        prop_assert_eq!(usize::from(p.tlv_len()) % 8, 0);
        prop_assert_eq!(p.msg_code(), r.message.code() as u8);
        let back = Repr::parse(&p, &src, &dst, &t).unwrap();
        prop_assert_eq!(back, r);
    }

    #[test]
    fn any_single_bit_flip_fails_the_checksum(r in repr(), src in addr(), dst in addr(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let t = IcmpTypes::default();
        let mut bytes = r.to_bytes(&src, &dst, &t).unwrap();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // A single flipped bit always breaks the one's-complement checksum.
        let p = Packet::new_unchecked(&bytes[..]);
        prop_assert!(Repr::parse(&p, &src, &dst, &t).is_err());
    }

    #[test]
    fn parse_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400), src in addr(), dst in addr()) {
        let t = IcmpTypes::default();
        let p = Packet::new_unchecked(&bytes[..]);
        let _ = Repr::parse(&p, &src, &dst, &t);
        let _ = Repr::parse_unchecksummed(&p, &t);
        let _ = p.tlvs().count();
        let _ = p.payload();
        let _ = CcEcho::from_packet(&p);
    }

    #[test]
    fn parse_mutated_messages_never_panics(r in repr(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let t = IcmpTypes::default();
        let src = Ipv6Addr::LOCALHOST;
        let mut bytes = r.to_bytes(&src, &src, &t).unwrap();
        for (i, v) in edits {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        Packet::new_unchecked(&mut bytes[..]).fill_checksum(&src, &src);
        let p = Packet::new_unchecked(&bytes[..]);
        if let Ok(parsed) = Repr::parse(&p, &src, &src, &t) {
            // Whatever parses re-emits and parses back identically.
            let again = parsed.to_bytes(&src, &src, &t).unwrap();
            let p2 = Packet::new_checked(&again[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p2, &src, &src, &t).unwrap(), parsed);
        }
    }

    #[test]
    fn escape_roundtrip(nh in any::<u8>(), p1 in 0u8..=248, p2 in 0u8..=248) {
        let Ok(ranges) = ProtoRanges::new(p1, p2) else { return Ok(()) };
        let r = EscapeRepr { next_header: nh };
        let mut buf = [0u8; 8];
        r.emit(&mut Escape::new_unchecked(&mut buf[..]));
        let e = Escape::new_checked(&buf[..]).unwrap();
        match EscapeRepr::parse(&e, &ranges) {
            Ok(back) => prop_assert_eq!(back, r),
            Err(err) => {
                prop_assert_eq!(err, Error::Inconsistent);
                prop_assert!(ranges.is_m6(nh));
            }
        }
        let enc = ranges.encode(nh, p1 % 2 == 0);
        let c = ranges.classify(enc.next_header).unwrap();
        match c.protocol() {
            Some(proto) => { prop_assert_eq!(proto, nh); prop_assert!(enc.escape.is_none()); }
            None => { prop_assert!(c.is_escape()); prop_assert_eq!(enc.escape, Some(r)); }
        }
    }

    #[test]
    fn escape_parse_arbitrary(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(e) = Escape::new_checked(&bytes[..]) {
            let _ = EscapeRepr::parse(&e, &ProtoRanges::default());
            prop_assert!(e.header_len() <= bytes.len());
        }
    }

    #[test]
    fn checksum_incremental_equals_full(msg in prop::collection::vec(any::<u8>(), 4..200), a in addr(), b in addr(), d in addr()) {
        let mut m = msg.clone();
        m[2] = 0; m[3] = 0;
        let c = checksum::icmpv6_checksum(&a, &d, &m);
        let full = checksum::icmpv6_checksum(&b, &d, &m);
        let inc = checksum::update_for_address(c, &a, &b);
        // Equal as one's-complement numbers (0x0000 and 0xffff are both zero).
        prop_assert!(inc == full || (inc == 0xffff && full == 0) || (inc == 0 && full == 0xffff));
        m[2..4].copy_from_slice(&inc.to_be_bytes());
        prop_assert!(checksum::icmpv6_verify(&b, &d, &m));
    }

    #[test]
    fn cc_generate_check_roundtrip(
        s in any::<[u8; 32]>(), serial in any::<u32>(), ts in any::<u32>(), age in 0u32..=120,
        i in addr(), r in addr(), li in locs(), lr in locs(), ll in locs(),
        f in fl(), n in any::<u64>(), bi in any::<u32>(), br in any::<u32>(), d in any::<bool>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let keys = CcKeyring::new(CcKey::new(serial, &s));
        let input = CcInput {
            init_src: i, init_dst: r, aid_initiator: i, aid_responder: r,
            initiator_nonce: n, initiator_flow_label: f, initiator_birthday: bi,
            responder_birthday: br, ulp_discarded: d,
            lsl_initiator: Locators::from_addrs(&li), lsr_responder: Locators::from_addrs(&lr),
            lsl_responder: Locators::from_addrs(&ll),
        };
        let state = cc::generate(&keys, &input, ts);
        // Through the wire: a CCR carrying the state, parsed back zero-copy.
        let ccr = Repr {
            rewrite_ok: true,
            nonce: n ^ 1,
            message: Message::Ccr(Cc {
                aid_initiator: i, aid_responder: r,
                lsl_initiator: li.clone(), lsr_responder: lr.clone(), lsl_responder: ll.clone(),
                state,
            }),
            piggyback: None,
        };
        let mut bytes = ccr.to_bytes(&i, &r, &IcmpTypes::default()).unwrap();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        let echo = CcEcho::from_packet(&p).unwrap();
        let v = cc::check(&keys, &echo, &i, &r, ts.wrapping_add(age), &CcPolicy::default()).unwrap();
        prop_assert_eq!(v.age_secs, age);
        prop_assert!(v.aid_was_locator);
        // Flip one bit of the TLV area: parse fails, or the check does.
        let tlv_end = 16 + usize::from(p.tlv_len());
        let at = 16 + flip.index(tlv_end - 16);
        bytes[at] ^= 0x01;
        let p = Packet::new_unchecked(&bytes[..]);
        if let Ok(echo) = CcEcho::from_packet(&p) {
            let lax = CcPolicy { check_addresses: false, ..CcPolicy::default() };
            if cc::check(&keys, &echo, &i, &r, ts, &lax).is_ok() {
                // Only a reserved bit can change without effect: everything covered by the
                // MAC must be what was generated.
                prop_assert_eq!(echo.state, state);
                prop_assert_eq!((echo.aid_initiator, echo.aid_responder), (i, r));
                prop_assert_eq!(echo.lsl_initiator, Locators::from_addrs(&li));
                prop_assert_eq!(echo.lsr_responder, Locators::from_addrs(&lr));
                prop_assert_eq!(echo.lsl_responder, Locators::from_addrs(&ll));
            }
        }
    }
}
