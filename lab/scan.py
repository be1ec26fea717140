#!/usr/bin/python3
"""An Internet-side scan of a /64 for the lab (RFC 6583's threat): UDP datagrams to random
addresses in PREFIX::/64, as fast as one Python process sends them, for SECONDS seconds
(bounded: it stops by itself). Run it inside the lab's m6-inet namespace only; every target
is inside the lab's own site prefix. Prints "sent N in T s (R/s)".

usage: scan.py PREFIX SECONDS    e.g. scan.py 2001:db8:1:1 10
"""
import ipaddress
import random
import socket
import sys
import time


def main() -> int:
    prefix, seconds = sys.argv[1], float(sys.argv[2])
    if not 0 < seconds <= 60:
        print("scan.py: SECONDS must be in (0, 60]", file=sys.stderr)
        return 2
    base = int(ipaddress.IPv6Address(prefix + "::"))
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rng = random.Random(6583)
    payload = b"scan"
    sent = 0
    start = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        for _ in range(256):
            dst = str(ipaddress.IPv6Address(base | rng.getrandbits(64)))
            try:
                s.sendto(payload, (dst, 33434))
                sent += 1
            except OSError:
                pass
    took = time.monotonic() - start
    print(f"sent {sent} in {took:.1f} s ({sent / took:.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
