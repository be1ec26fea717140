#!/usr/bin/env python3
"""Independent decoder of the M6 golden vectors (proto/tests/vectors/).

Every vector is a pair: NAME.hex (the octets, hex, whitespace ignored) and NAME.json (the
expected fields, written by hand from docs/protocol.md). For each pair this script

  * decodes the octets with its own struct-based decoder (no Rust involved),
  * has scapy compute the ICMPv6 checksum over the IPv6 pseudo-header and compares it with
    the checksum in the octets,
  * compares every decoded field with the description,
  * for CC/CCR vectors that name a test key, recomputes the HMAC-SHA256/128 of the CC state
    with Python's hmac module,
  * re-encodes the description and compares it with the octets,

and prints one line per vector. Exit status: 0 all good, 1 a mismatch, 2 scapy missing.

    decode_vectors.py [--dir DIR]          check every vector
    decode_vectors.py --write [--dir DIR]  (re)write NAME.hex from NAME.json, then check

The Rust test proto/tests/golden.rs compares the Rust emitter with the same .hex files, and
proto/tests/decode_vectors.rs runs this script.
"""

import argparse
import hashlib
import hmac
import ipaddress
import json
import os
import struct
import sys

try:
    from scapy.layers.inet6 import IPv6, ICMPv6Unknown
except ImportError:  # pragma: no cover - environment problem, not a vector problem
    sys.stderr.write(
        "decode_vectors: python3 cannot import scapy; `make setup` (scripts/setup.sh) "
        "installs python3-scapy\n"
    )
    sys.exit(2)

HEADER_LEN = 16
NO_NEXT_HEADER = 59
CODES = {1: "INIT", 2: "CC", 3: "CCR", 4: "CONF", 5: "UR", 6: "UA", 7: "UC", 8: "CLOSE", 9: "CLOSEACK"}
TLV_TYPES = {1: "AIDS", 2: "LOCATOR_SET", 3: "FLOW_LABEL", 4: "FLOW_LABEL_PAIR", 5: "BIRTHDAY", 6: "CC_STATE"}
TLV_CODES = {v: k for k, v in TLV_TYPES.items()}
SETS = {1: "LSL_FIRST", 2: "LSR_FIRST", 3: "LSL_SECOND", 4: "LSR_SECOND"}
SET_CODES = {v: k for k, v in SETS.items()}
MAC_LABEL = b"M6-CC-v1"


class Mismatch(Exception):
    pass


def addr(b):
    return str(ipaddress.IPv6Address(bytes(b)))


def packed(s):
    return ipaddress.IPv6Address(s).packed


def num(v):
    """JSON numbers may be written as ints or as "0x..." strings."""
    return int(v, 0) if isinstance(v, str) else int(v)


def canon(v):
    """Normalises a description value for comparison (addresses, hex numbers)."""
    if isinstance(v, dict):
        return {k: canon(x) for k, x in v.items()}
    if isinstance(v, list):
        return [canon(x) for x in v]
    if isinstance(v, str):
        if ":" in v:
            return str(ipaddress.IPv6Address(v))
        if v.startswith("0x"):
            return int(v, 16)
        return v.lower()
    return v


# ---------------------------------------------------------------------------- decoding


def decode_tlv(t, body):
    """Decodes one TLV (type t, the whole TLV octets) into the description's shape."""
    n = len(body)
    name = TLV_TYPES.get(t)
    if name is None:
        return {"type": "UNKNOWN", "raw": body.hex()}
    if name == "AIDS":
        if n != 40:
            raise Mismatch(f"AIDS TLV of {n} octets")
        return {"type": name, "first": addr(body[8:24]), "second": addr(body[24:40])}
    if name == "LOCATOR_SET":
        if n < 8 or (n - 8) % 16:
            raise Mismatch(f"LOCATOR_SET TLV of {n} octets")
        locs = [addr(body[i:i + 16]) for i in range(8, n, 16)]
        return {"type": name, "set": SETS.get(body[2], body[2]), "locators": locs}
    if name == "FLOW_LABEL":
        if n != 8:
            raise Mismatch(f"FLOW_LABEL TLV of {n} octets")
        return {"type": name, "flow_label": struct.unpack(">I", body[4:8])[0] & 0xFFFFF}
    if name == "FLOW_LABEL_PAIR":
        if n != 8:
            raise Mismatch(f"FLOW_LABEL_PAIR TLV of {n} octets")
        s = int.from_bytes(body[2:5], "big") & 0xFFFFF
        r = int.from_bytes(body[5:8], "big") & 0xFFFFF
        return {"type": name, "sender": s, "receiver": r}
    if name == "BIRTHDAY":
        if n != 8:
            raise Mismatch(f"BIRTHDAY TLV of {n} octets")
        return {"type": name, "birthday": struct.unpack(">I", body[4:8])[0]}
    if name == "CC_STATE":
        if n != 80:
            raise Mismatch(f"CC_STATE TLV of {n} octets")
        serial, ts, fl, bi, br = struct.unpack(">IIIII", body[4:24])
        (nonce,) = struct.unpack(">Q", body[24:32])
        return {
            "type": name,
            "ulp_discarded": bool(body[2] & 0x80),
            "key_serial": serial,
            "timestamp": ts,
            "initiator_flow_label": fl & 0xFFFFF,
            "initiator_birthday": bi,
            "responder_birthday": br,
            "initiator_nonce": nonce,
            "init_src": addr(body[32:48]),
            "init_dst": addr(body[48:64]),
            "mac": body[64:80].hex(),
        }
    raise AssertionError(name)


def decode_m6(msg):
    if len(msg) < HEADER_LEN:
        raise Mismatch(f"{len(msg)} octets: shorter than the fixed part")
    typ, code, cksum, nh, flags, tlv_len, nonce = struct.unpack(">BBHBBHQ", msg[:HEADER_LEN])
    if tlv_len % 8:
        raise Mismatch(f"TLV area length {tlv_len} not a multiple of 8")
    if HEADER_LEN + tlv_len > len(msg):
        raise Mismatch("TLV area runs past the message")
    area = msg[HEADER_LEN:HEADER_LEN + tlv_len]
    tlvs = []
    off = 0
    while off < len(area):
        if off + 2 > len(area):
            raise Mismatch("TLV header cut")
        t, units = area[off], area[off + 1]
        if units == 0 or off + units * 8 > len(area):
            raise Mismatch(f"TLV at {off} has bad length {units}")
        tlvs.append(decode_tlv(t, area[off:off + units * 8]))
        off += units * 8
    payload = msg[HEADER_LEN + tlv_len:]
    if nh == NO_NEXT_HEADER and payload:
        raise Mismatch("octets after the TLVs while next header is 59")
    return {
        "icmp_type": typ,
        "code": code,
        "message": CODES.get(code, f"UNKNOWN({code})"),
        "checksum": cksum,
        "next_header": nh,
        "flags": flags,
        "tlv_len": tlv_len,
        "nonce": nonce,
        "tlvs": tlvs,
        "payload": payload.hex(),
    }


def scapy_checksum(src, dst, msg):
    """The checksum scapy computes for this ICMPv6 message between src and dst."""
    pkt = IPv6(src=src, dst=dst) / ICMPv6Unknown(type=msg[0], code=msg[1], msgbody=bytes(msg[4:]))
    return struct.unpack(">H", bytes(pkt)[42:44])[0]


# ---------------------------------------------------------------------------- encoding


def encode_tlv(t):
    name = t["type"]
    if name == "UNKNOWN":
        return bytes.fromhex(t["raw"])
    code = TLV_CODES[name]
    if name == "AIDS":
        body = bytes(6) + packed(t["first"]) + packed(t["second"])
    elif name == "LOCATOR_SET":
        body = bytes([SET_CODES[t["set"]]]) + bytes(5) + b"".join(packed(a) for a in t["locators"])
    elif name == "FLOW_LABEL":
        body = bytes(2) + struct.pack(">I", num(t["flow_label"]))
    elif name == "FLOW_LABEL_PAIR":
        body = num(t["sender"]).to_bytes(3, "big") + num(t["receiver"]).to_bytes(3, "big")
    elif name == "BIRTHDAY":
        body = bytes(2) + struct.pack(">I", num(t["birthday"]))
    elif name == "CC_STATE":
        body = bytes([0x80 if t["ulp_discarded"] else 0, 0])
        body += struct.pack(
            ">IIIIIQ",
            num(t["key_serial"]),
            num(t["timestamp"]),
            num(t["initiator_flow_label"]),
            num(t["initiator_birthday"]),
            num(t["responder_birthday"]),
            num(t["initiator_nonce"]),
        )
        body += packed(t["init_src"]) + packed(t["init_dst"]) + bytes.fromhex(t["mac"])
    else:
        raise AssertionError(name)
    total = 2 + len(body)
    assert total % 8 == 0, (name, total)
    return bytes([code, total // 8]) + body


def encode_m6(v):
    area = b"".join(encode_tlv(t) for t in v["tlvs"])
    payload = bytes.fromhex(v["payload"])
    msg = struct.pack(">BBHBBHQ", v["icmp_type"], v["code"], 0, v["next_header"], v["flags"],
                      len(area), num(v["nonce"])) + area + payload
    c = scapy_checksum(v["ipv6_src"], v["ipv6_dst"], msg)
    return msg[:2] + struct.pack(">H", c) + msg[4:]


def encode_escape(v):
    return bytes([v["escape_next_header"], v["hdr_ext_len"]]) + bytes(6) + bytes.fromhex(v["payload"])


# ---------------------------------------------------------------------------- CC MAC


def cc_mac(key, state, aids, sets):
    m = MAC_LABEL + struct.pack(">II", num(state["key_serial"]), num(state["timestamp"]))
    m += bytes([0x80 if state["ulp_discarded"] else 0])
    m += struct.pack(">IIIQ", num(state["initiator_flow_label"]), num(state["initiator_birthday"]),
                     num(state["responder_birthday"]), num(state["initiator_nonce"]))
    m += packed(state["init_src"]) + packed(state["init_dst"])
    m += packed(aids["first"]) + packed(aids["second"])
    for name in ("LSL_FIRST", "LSR_SECOND", "LSL_SECOND"):
        locs = sets.get(name, [])
        m += struct.pack(">H", len(locs)) + b"".join(packed(a) for a in locs)
    return hmac.new(bytes.fromhex(key["secret"]), m, hashlib.sha256).digest()[:16].hex()


# ---------------------------------------------------------------------------- checking


def compare(path, got, want):
    if canon(got) != canon(want):
        raise Mismatch(f"{path}: decoded {got!r}, description says {want!r}")


def check_m6(v, octets):
    d = decode_m6(octets)
    want_ck = scapy_checksum(v["ipv6_src"], v["ipv6_dst"], octets[:2] + b"\0\0" + octets[4:])
    if d["checksum"] != want_ck:
        raise Mismatch(f"checksum 0x{d['checksum']:04x}, scapy computes 0x{want_ck:04x}")
    if "checksum" in v:
        compare("checksum", d["checksum"], v["checksum"])
    for k in ("icmp_type", "code", "message", "next_header", "flags", "nonce", "payload"):
        compare(k, d[k], v[k])
    if "tlv_len" in v:
        compare("tlv_len", d["tlv_len"], v["tlv_len"])
    if len(d["tlvs"]) != len(v["tlvs"]):
        raise Mismatch(f"{len(d['tlvs'])} TLVs decoded, {len(v['tlvs'])} described")
    for i, (g, w) in enumerate(zip(d["tlvs"], v["tlvs"])):
        compare(f"tlvs[{i}]", g, w)
    extra = ""
    if "cc_key" in v:
        state = next(t for t in d["tlvs"] if t["type"] == "CC_STATE")
        aids = next(t for t in d["tlvs"] if t["type"] == "AIDS")
        sets = {t["set"]: t["locators"] for t in d["tlvs"] if t["type"] == "LOCATOR_SET"}
        mac = cc_mac(v["cc_key"], state, aids, sets)
        compare("CC MAC (recomputed with hmac)", state["mac"], mac)
        extra = ", CC MAC recomputed"
    enc = encode_m6(v)
    if enc != octets:
        raise Mismatch(f"re-encoding the description gives {enc.hex()}")
    return f"{d['message']:<8} {len(octets):4} octets, checksum 0x{d['checksum']:04x} (scapy agrees){extra}"


def check_escape(v, octets):
    p1, p2, nh = v["p1"], v["p2"], v["ipv6_next_header"]
    if p1 <= nh < p1 + 8:
        rewrite_ok, k = True, nh - p1
    elif p2 <= nh < p2 + 8:
        rewrite_ok, k = False, nh - p2
    else:
        raise Mismatch(f"next header {nh} outside P1/P2")
    compare("rewrite_ok", rewrite_ok, v["rewrite_ok"])
    compare("k", k, v["k"])
    if k != 7:
        raise Mismatch("escape vector must use slot 7")
    if len(octets) < 8:
        raise Mismatch("escape header shorter than 8 octets")
    compare("escape_next_header", octets[0], v["escape_next_header"])
    compare("hdr_ext_len", octets[1], v["hdr_ext_len"])
    if any(octets[2:8]):
        raise Mismatch("reserved octets not zero")
    compare("payload", octets[(octets[1] + 1) * 8:].hex(), v["payload"])
    if encode_escape(v) != octets:
        raise Mismatch("re-encoding differs")
    return f"ESCAPE   {len(octets):4} octets, next header {nh} = P{'1' if rewrite_ok else '2'}+{k}, carries {octets[0]}"


def read_hex(path):
    with open(path) as f:
        return bytes.fromhex("".join(f.read().split()))


def write_hex(path, octets):
    h = octets.hex()
    with open(path, "w") as f:
        for i in range(0, len(h), 32):
            f.write(h[i:i + 32] + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=os.path.join(here, "..", "proto", "tests", "vectors"))
    ap.add_argument("--write", action="store_true", help="write NAME.hex from NAME.json first")
    args = ap.parse_args()
    names = sorted(f[:-5] for f in os.listdir(args.dir) if f.endswith(".json"))
    if not names:
        print(f"decode_vectors: no vectors in {args.dir}", file=sys.stderr)
        return 1
    failed = 0
    for name in names:
        with open(os.path.join(args.dir, name + ".json")) as f:
            v = json.load(f)
        hex_path = os.path.join(args.dir, name + ".hex")
        if args.write:
            write_hex(hex_path, encode_m6(v) if v["kind"] == "m6" else encode_escape(v))
        try:
            octets = read_hex(hex_path)
            if v["kind"] == "m6":
                line = check_m6(v, octets)
            elif v["kind"] == "escape":
                line = check_escape(v, octets)
            else:
                raise Mismatch(f"unknown kind {v['kind']!r}")
            print(f"ok       {name:<16} {line}")
        except (Mismatch, OSError, ValueError, KeyError, StopIteration) as e:
            failed += 1
            print(f"MISMATCH {name:<16} {type(e).__name__}: {e}")
    print(f"{len(names) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
