#!/usr/bin/python3
"""Sends COUNT UDP datagrams from SRC to DST carrying N Destination Options headers (8 octets
each, PadN) before the UDP header, with scapy. Run it in the lab's m6-lan namespace: it tests
that the router forwards transit packets whatever headers follow Hop-by-Hop (RFC 7045).

usage: destopts.py SRC DST N COUNT
"""
import sys

from scapy.all import IPv6, IPv6ExtHdrDestOpt, PadN, UDP, conf, send  # noqa: E402


def main() -> int:
    src, dst, n, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    conf.verb = 0
    pkt = IPv6(src=src, dst=dst)
    for _ in range(n):
        pkt = pkt / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")])
    pkt = pkt / UDP(sport=40000, dport=9) / b"m6-rfc7045"
    send(pkt, count=count, inter=0.05)
    print(f"sent {count} packets with {n} destination options headers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
