#!/usr/bin/python3
"""Lab helper for the two-site tests (issue 8).

  m6frames.py send IFACE FILE   send the frames of FILE (each a 2-octet big-endian length,
                                then the Ethernet frame) on IFACE as fast as a raw socket
                                takes them; prints "sent N frames in S s"
  m6frames.py codes PCAP        one line per IPv6 packet of PCAP (a tcpdump capture):
                                "SECONDS SRC DST ICMPV6_TYPE CODE" (M6 control messages are
                                ICMPv6 types 200 and 201, their code names the message)
"""
import errno
import socket
import struct
import sys
import time


def send(iface, path):
    data = open(path, "rb").read()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    n, off, t0 = 0, 0, time.monotonic()
    while off + 2 <= len(data):
        (length,) = struct.unpack_from(">H", data, off)
        frame = data[off + 2 : off + 2 + length]
        off += 2 + length
        while True:
            try:
                s.send(frame)
                break
            except BlockingIOError:
                time.sleep(0.0001)
            except OSError as e:  # ENOBUFS: the qdisc is full; let it drain
                if e.errno != errno.ENOBUFS:
                    raise
                time.sleep(0.0001)
        n += 1
    print(f"sent {n} frames in {time.monotonic() - t0:.2f} s")


def codes(path):
    from scapy.all import rdpcap  # Debian's python3-scapy

    pkts = rdpcap(path)
    t0 = pkts[0].time if pkts else 0
    for p in pkts:
        raw = bytes(p)
        # Ethernet, IPv6 with ICMPv6 right after the fixed header (as the capture filter
        # asks); anything else is not an M6 control message we can name.
        if len(raw) < 56 or raw[12:14] != b"\x86\xdd" or raw[20] != 58:
            continue
        ip6 = raw[14:54]
        src = socket.inet_ntop(socket.AF_INET6, ip6[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, ip6[24:40])
        print(f"{float(p.time - t0):.6f} {src} {dst} {raw[54]} {raw[55]}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "codes":
        codes(sys.argv[2])
    else:
        sys.exit(__doc__)
