//! Golden vectors: proto/tests/vectors/NAME.json describes a message field by field (written
//! from docs/protocol.md), NAME.hex holds its octets. The Rust emitter must produce exactly
//! those octets and the parser must read back exactly those fields. scripts/decode_vectors.py
//! checks the same files with an independent decoder and scapy (tests/decode_vectors.rs).

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use proto::cc::{self, CcInput, CcKey, CcKeyring, CcPolicy, Locators};
use proto::wire::data::{Escape, EscapeRepr, ProtoRanges};
use proto::wire::m6::{
    Cc, Close, Conf, FlowLabel, IcmpTypes, Init, Message, Packet, Piggyback, Repr, Ua, Uc, Ur,
    NEXT_HEADER_IPV6, NO_NEXT_HEADER,
};
use proto::wire::tlv::CcState;
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn read_hex(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let digits: String = text.split_whitespace().collect();
    unhex(&digits)
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() & 1 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn num(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().expect("unsigned"),
        Value::String(s) => {
            u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex number")
        }
        _ => panic!("not a number: {v}"),
    }
}

fn addr(v: &Value) -> Ipv6Addr {
    v.as_str()
        .expect("address string")
        .parse()
        .expect("IPv6 address")
}

fn fl(v: &Value) -> FlowLabel {
    FlowLabel::new(num(v) as u32).expect("20-bit flow label")
}

fn locs(v: &Value) -> Vec<Ipv6Addr> {
    v.as_array().expect("list").iter().map(addr).collect()
}

fn mac(v: &Value) -> [u8; 16] {
    unhex(v.as_str().unwrap()).try_into().expect("16-octet MAC")
}

fn cc_state(t: &Value) -> CcState {
    CcState {
        ulp_discarded: t["ulp_discarded"].as_bool().unwrap(),
        key_serial: num(&t["key_serial"]) as u32,
        timestamp: num(&t["timestamp"]) as u32,
        initiator_flow_label: fl(&t["initiator_flow_label"]),
        initiator_birthday: num(&t["initiator_birthday"]) as u32,
        responder_birthday: num(&t["responder_birthday"]) as u32,
        initiator_nonce: num(&t["initiator_nonce"]),
        init_src: addr(&t["init_src"]),
        init_dst: addr(&t["init_dst"]),
        mac: mac(&t["mac"]),
    }
}

/// The TLVs of a description, by kind.
#[derive(Default)]
struct Tlvs {
    aids: Option<(Ipv6Addr, Ipv6Addr)>,
    sets: std::collections::BTreeMap<String, Vec<Ipv6Addr>>,
    flow_label: Option<FlowLabel>,
    pair: Option<(FlowLabel, FlowLabel)>,
    birthday: Option<u32>,
    cc_state: Option<CcState>,
}

fn tlvs(v: &Value) -> Tlvs {
    let mut t = Tlvs::default();
    for x in v["tlvs"].as_array().unwrap() {
        match x["type"].as_str().unwrap() {
            "AIDS" => t.aids = Some((addr(&x["first"]), addr(&x["second"]))),
            "LOCATOR_SET" => {
                t.sets
                    .insert(x["set"].as_str().unwrap().to_string(), locs(&x["locators"]));
            }
            "FLOW_LABEL" => t.flow_label = Some(fl(&x["flow_label"])),
            "FLOW_LABEL_PAIR" => t.pair = Some((fl(&x["sender"]), fl(&x["receiver"]))),
            "BIRTHDAY" => t.birthday = Some(num(&x["birthday"]) as u32),
            "CC_STATE" => t.cc_state = Some(cc_state(x)),
            "UNKNOWN" => {}
            other => panic!("unknown TLV name {other}"),
        }
    }
    t
}

fn repr_of(v: &Value) -> Repr {
    let t = tlvs(v);
    let aids = t
        .aids
        .unwrap_or((Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED));
    let set = |n: &str| t.sets.get(n).cloned().unwrap_or_default();
    let pair = t.pair.unwrap_or_default();
    let cc = || Cc {
        aid_initiator: aids.0,
        aid_responder: aids.1,
        lsl_initiator: set("LSL_FIRST"),
        lsr_responder: set("LSR_SECOND"),
        lsl_responder: set("LSL_SECOND"),
        state: t.cc_state.expect("CC_STATE"),
    };
    let close = Close {
        aid_sender: aids.0,
        aid_receiver: aids.1,
        flow_label_sender: pair.0,
        flow_label_receiver: pair.1,
    };
    let payload = unhex(v["payload"].as_str().unwrap());
    let nh = num(&v["next_header"]) as u8;
    let message = match v["message"].as_str().unwrap() {
        "INIT" => Message::Init(Init {
            aid_initiator: aids.0,
            aid_responder: aids.1,
            lsl_initiator: set("LSL_FIRST"),
            lsr_responder: set("LSR_SECOND"),
            flow_label: t.flow_label.unwrap(),
            birthday: t.birthday.unwrap(),
        }),
        "CC" => Message::Cc(cc()),
        "CCR" => Message::Ccr(cc()),
        "CONF" => Message::Conf(Conf {
            aid_initiator: aids.0,
            aid_responder: aids.1,
            flow_label: t.flow_label.unwrap(),
            birthday: t.birthday.unwrap(),
            lsr_initiator: t.sets.get("LSR_FIRST").cloned(),
            lsl_responder: t.sets.get("LSL_SECOND").cloned(),
        }),
        "UR" => Message::Ur(Ur {
            aid_sender: aids.0,
            aid_receiver: aids.1,
            flow_label_sender: pair.0,
            flow_label_receiver: pair.1,
            lsl_sender: set("LSL_FIRST"),
            lsr_receiver: set("LSR_SECOND"),
        }),
        "UA" => Message::Ua(Ua {
            aid_sender: aids.0,
            aid_receiver: aids.1,
            flow_label_sender: pair.0,
            flow_label_receiver: pair.1,
        }),
        "UC" => {
            assert!(nh == NEXT_HEADER_IPV6 || nh == NO_NEXT_HEADER);
            Message::Uc(Uc {
                flow_label: t.flow_label.unwrap(),
                birthday: t.birthday.unwrap(),
                invoking_packet: payload.clone(),
            })
        }
        "CLOSE" => Message::Close(close),
        "CLOSEACK" => Message::CloseAck(close),
        other => panic!("unknown message {other}"),
    };
    let piggyback =
        (nh != NO_NEXT_HEADER && !matches!(message, Message::Uc(_))).then_some(Piggyback {
            next_header: nh,
            data: payload,
        });
    Repr {
        rewrite_ok: num(&v["icmp_type"]) == 200,
        nonce: num(&v["nonce"]),
        message,
        piggyback,
    }
}

fn check_cc_key(v: &Value, repr: &Repr) {
    let Some(key) = v.get("cc_key") else { return };
    let secret: [u8; 32] = unhex(key["secret"].as_str().unwrap()).try_into().unwrap();
    let keys = CcKeyring::new(CcKey::new(num(&key["serial"]) as u32, &secret));
    let (Message::Cc(c) | Message::Ccr(c)) = &repr.message else {
        panic!("cc_key on a message that is not CC/CCR")
    };
    let input = CcInput {
        init_src: c.state.init_src,
        init_dst: c.state.init_dst,
        aid_initiator: c.aid_initiator,
        aid_responder: c.aid_responder,
        initiator_nonce: c.state.initiator_nonce,
        initiator_flow_label: c.state.initiator_flow_label,
        initiator_birthday: c.state.initiator_birthday,
        responder_birthday: c.state.responder_birthday,
        ulp_discarded: c.state.ulp_discarded,
        lsl_initiator: Locators::from_addrs(&c.lsl_initiator),
        lsr_responder: Locators::from_addrs(&c.lsr_responder),
        lsl_responder: Locators::from_addrs(&c.lsl_responder),
    };
    assert_eq!(
        cc::generate(&keys, &input, c.state.timestamp),
        c.state,
        "cc::generate differs from the vector"
    );
    cc::check(
        &keys,
        &c.echo(),
        &c.aid_initiator,
        &c.aid_responder,
        c.state.timestamp + 1,
        &CcPolicy::default(),
    )
    .expect("vector's CC state checks");
}

fn check_m6(name: &str, v: &Value, octets: &[u8]) -> u8 {
    let src = addr(&v["ipv6_src"]);
    let dst = addr(&v["ipv6_dst"]);
    let types = IcmpTypes::default();
    let repr = repr_of(v);
    let p = Packet::new_checked(octets).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(p.msg_type(), num(&v["icmp_type"]) as u8, "{name}: type");
    assert_eq!(p.msg_code(), num(&v["code"]) as u8, "{name}: code");
    assert_eq!(p.checksum(), num(&v["checksum"]) as u16, "{name}: checksum");
    assert_eq!(p.flags(), num(&v["flags"]) as u8, "{name}: flags");
    assert_eq!(
        u64::from(p.tlv_len()),
        num(&v["tlv_len"]),
        "{name}: tlv_len"
    );
    let parsed = Repr::parse(&p, &src, &dst, &types).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        parsed, repr,
        "{name}: parsed fields differ from the description"
    );
    if v["emit_matches"].as_bool().unwrap_or(true) {
        let emitted = repr.to_bytes(&src, &dst, &types).unwrap();
        assert_eq!(
            hex(&emitted),
            hex(octets),
            "{name}: emit differs from the vector"
        );
    }
    check_cc_key(v, &repr);
    p.msg_code()
}

fn check_escape(name: &str, v: &Value, octets: &[u8]) {
    let ranges = ProtoRanges::new(num(&v["p1"]) as u8, num(&v["p2"]) as u8).unwrap();
    let c = ranges.classify(num(&v["ipv6_next_header"]) as u8).unwrap();
    assert_eq!(c.rewrite_ok, v["rewrite_ok"].as_bool().unwrap(), "{name}");
    assert_eq!(u64::from(c.k), num(&v["k"]), "{name}");
    let e = Escape::new_checked(octets).unwrap();
    let r = EscapeRepr::parse(&e, &ranges).unwrap();
    assert_eq!(u64::from(r.next_header), num(&v["escape_next_header"]));
    assert_eq!(hex(e.payload()), v["payload"].as_str().unwrap());
    let enc = ranges.encode(r.next_header, c.rewrite_ok);
    assert_eq!(enc.escape, Some(r));
    let mut out = [0u8; 8];
    r.emit(&mut Escape::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &octets[..8], "{name}: emit differs");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn golden_vectors_match_emit_and_parse() {
    let mut names: Vec<_> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json").then_some(p)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 10, "vectors missing");
    let mut codes = BTreeSet::new();
    for json in names {
        let name = json.file_stem().unwrap().to_string_lossy().to_string();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let octets = read_hex(&json.with_extension("hex"));
        match v["kind"].as_str().unwrap() {
            "m6" => {
                codes.insert(check_m6(&name, &v, &octets));
            }
            "escape" => check_escape(&name, &v, &octets),
            k => panic!("{name}: unknown kind {k}"),
        }
    }
    assert_eq!(
        codes.into_iter().collect::<Vec<_>>(),
        (1..=9).collect::<Vec<u8>>(),
        "every message code needs a vector"
    );
}

/// Negative vectors: proto/tests/vectors/invalid/NAME.hex is a malformed message (derived
/// from a valid vector), NAME.json names the error the receive path must give for it
/// (`error`, the `proto::wire::Error` variant as `Debug` prints it). The receive path is the
/// dataplane's: `Packet::new_checked`, then `Repr::parse` (length, TLVs, checksum). Each
/// vector's valid parent (`derived_from`) must still parse, so the defect is the only one.
#[test]
fn golden_negative_vectors_are_rejected_with_the_expected_error() {
    let dir = vectors_dir().join("invalid");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json").then_some(p)
        })
        .collect();
    names.sort();
    let mut errors = BTreeSet::new();
    for json in &names {
        let name = json.file_stem().unwrap().to_string_lossy().to_string();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        assert_eq!(v["kind"].as_str(), Some("m6_invalid"), "{name}: kind");
        let octets = read_hex(&json.with_extension("hex"));
        let src = addr(&v["ipv6_src"]);
        let dst = addr(&v["ipv6_dst"]);
        let want = v["error"].as_str().expect("error");
        let got = Packet::new_checked(&octets[..])
            .and_then(|p| Repr::parse(&p, &src, &dst, &IcmpTypes::default()));
        match got {
            Ok(r) => panic!("{name}: parsed as {r:?}, want {want}"),
            Err(e) => assert_eq!(format!("{e:?}"), want, "{name}: {e}"),
        }
        // The vector really is its valid parent with a defect: the parent still parses.
        let parent = v["derived_from"].as_str().expect("derived_from");
        let pv = read_hex(&vectors_dir().join(format!("{parent}.hex")));
        let p = Packet::new_checked(&pv[..]).unwrap_or_else(|e| panic!("{name}: {parent}: {e}"));
        Repr::parse(&p, &src, &dst, &IcmpTypes::default())
            .unwrap_or_else(|e| panic!("{name}: parent {parent}: {e}"));
        errors.insert(want.to_string());
    }
    let required = ["BadChecksum", "BadLength", "Misaligned", "Truncated"];
    for e in required {
        assert!(errors.contains(e), "no negative vector for {e}: {errors:?}");
    }
}
