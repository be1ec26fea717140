//! Fragmenting a packet the router itself sends (RFC 8200 section 4.5): a router never
//! fragments what it forwards (that gets Packet Too Big), but its own answers to a
//! reassembled datagram (an echo reply as large as the request) may exceed the link MTU.

use super::ipv6::{proto, HEADER_LEN};

/// Length of the Fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// Splits `packet` (an IPv6 packet with no extension headers: the fixed header, then the
/// upper layer) into fragments of at most `mtu` octets, each a complete IPv6 packet handed
/// to `out`, with Identification `id`. A packet that fits is handed over whole. Returns the
/// number of packets handed over: 0 if `packet` has no fixed header or `mtu` leaves no room
/// for 8 octets of data.
pub fn fragment(packet: &[u8], mtu: usize, id: u32, out: &mut impl FnMut(&[u8])) -> usize {
    let (Some(header), Some(payload)) = (packet.get(..HEADER_LEN), packet.get(HEADER_LEN..)) else {
        return 0;
    };
    if packet.len() <= mtu {
        out(packet);
        return 1;
    }
    // Every fragment but the last carries a multiple of 8 octets (RFC 8200 4.5).
    let room = mtu.saturating_sub(HEADER_LEN + FRAGMENT_HEADER_LEN) & !7;
    if room == 0 {
        return 0;
    }
    let next_header = header.get(6).copied().unwrap_or(proto::NO_NEXT);
    let mut buf = Vec::with_capacity(mtu);
    let mut n = 0;
    for (k, chunk) in payload.chunks(room).enumerate() {
        let offset = k * room;
        let more = offset + chunk.len() < payload.len();
        let field = ((offset / 8) as u16) << 3 | u16::from(more);
        buf.clear();
        buf.extend_from_slice(header);
        let plen = (FRAGMENT_HEADER_LEN + chunk.len()) as u16;
        if let Some(p) = buf.get_mut(4..7) {
            p.copy_from_slice(&[(plen >> 8) as u8, plen as u8, proto::FRAGMENT]);
        }
        buf.extend_from_slice(&[next_header, 0]);
        buf.extend_from_slice(&field.to_be_bytes());
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(chunk);
        out(&buf);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::reassembly::{Limits, Outcome, Reassembler};

    fn packet(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; HEADER_LEN];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((len - HEADER_LEN) as u16).to_be_bytes());
        p[6] = proto::ICMPV6;
        p[7] = 64;
        p[8] = 0x20;
        p[24] = 0x20;
        p[39] = 1;
        p.extend((HEADER_LEN..len).map(|i| i as u8));
        p
    }

    #[test]
    fn fragments_fit_and_reassemble_to_the_original() {
        for (len, mtu) in [(2048, 1500), (3000, 1280), (1500, 1500), (65_000, 1500)] {
            let p = packet(len);
            let mut frags = Vec::new();
            let n = fragment(&p, mtu, 0xdead_beef, &mut |f| frags.push(f.to_vec()));
            assert_eq!(n, frags.len());
            assert!(frags.iter().all(|f| f.len() <= mtu), "{len} {mtu}");
            if len <= mtu {
                assert_eq!(frags, vec![p.clone()]);
                continue;
            }
            // An independent implementation puts them back together.
            let mut r = Reassembler::new(Limits {
                max_bytes: 1 << 20,
                max_fragments: 100,
                ..Limits::default()
            });
            let mut done = None;
            for f in frags.iter().rev() {
                if let Outcome::Complete(v) = r.input(f, HEADER_LEN, 0) {
                    done = Some(v);
                }
            }
            assert_eq!(done, Some(p), "{len} {mtu}");
        }
    }

    #[test]
    fn nothing_for_nonsense() {
        assert_eq!(fragment(&[0; 10], 1500, 1, &mut |_| panic!()), 0);
        assert_eq!(fragment(&packet(2000), 50, 1, &mut |_| panic!()), 0);
    }
}
