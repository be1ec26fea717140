//! The IPv6 extension header chain (RFC 8200 section 4), walked with a hard bound.
//!
//! Two walks. For a packet addressed to the router, [`walk`] finds the upper layer but must
//! not let a long chain cost unbounded work (RFC 7112, RFC 8504 section 5.3): it stops with
//! [`ChainError::TooMany`] past [`MAX_EXT_HEADERS`] headers or [`ChainError::TooLong`] past
//! [`MAX_EXT_BYTES`] bytes, and the router answers per RFC 8883. A transit packet is read
//! only as deep as classification needs ([`walk_transit`]): RFC 8200 section 4 and RFC 7045
//! forbid dropping it for headers the router does not have to read.

use super::ipv6::{proto, HEADER_LEN};

/// At most this many extension headers.
pub const MAX_EXT_HEADERS: usize = 8;
/// At most this many bytes of extension headers.
pub const MAX_EXT_BYTES: usize = 256;

/// Where the upper layer starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The upper-layer protocol, or [`proto::FRAGMENT`] for a non-first fragment (its upper
    /// layer is not in this packet), or [`proto::ESP`] (opaque).
    pub proto: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub offset: usize,
    /// Number of extension headers walked.
    pub headers: usize,
    /// The packet carries a fragment header.
    pub fragment: bool,
    /// Offset of the Fragment header from the start of the IPv6 header (0: none).
    pub frag_at: usize,
}

/// Why a walk stopped. Offsets are from the start of the IPv6 header, as ICMPv6 Parameter
/// Problem pointers are (RFC 4443 section 3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// More than [`MAX_EXT_HEADERS`] headers; `at` is the first one too many (RFC 8883
    /// section 3.1, "too many extension headers").
    TooMany { at: usize },
    /// More than [`MAX_EXT_BYTES`] bytes of headers; `at` is the header that crosses the
    /// limit (RFC 8883, "extension header chain too long").
    TooLong { at: usize },
    /// A header runs past the end of the packet.
    Truncated,
    /// A hop-by-hop options header somewhere other than first (RFC 8200 section 4.1);
    /// `pointer` is the Next Header field that names it.
    HopByHopNotFirst { pointer: usize },
}

/// Whether `nh` is an extension header this walk steps over.
#[inline]
pub fn is_extension(nh: u8) -> bool {
    matches!(
        nh,
        proto::HOP_BY_HOP
            | proto::ROUTING
            | proto::FRAGMENT
            | proto::AH
            | proto::DEST_OPTS
            | proto::MOBILITY
            | proto::HIP
            | proto::SHIM6
    )
}

/// Walks the chain of `packet` (the IPv6 packet from its fixed header to the end of its
/// payload) starting at the fixed header's next header `first`.
pub fn walk(packet: &[u8], first: u8) -> Result<Chain, ChainError> {
    let mut nh = first;
    let mut off = HEADER_LEN;
    // The Next Header field that named the current header.
    let mut nh_field = 6;
    let mut headers = 0usize;
    let mut fragment = false;
    let mut frag_at = 0;
    while is_extension(nh) {
        if nh == proto::HOP_BY_HOP && headers > 0 {
            return Err(ChainError::HopByHopNotFirst { pointer: nh_field });
        }
        headers += 1;
        if headers > MAX_EXT_HEADERS {
            return Err(ChainError::TooMany { at: off });
        }
        let (next, len_byte) = match packet.get(off..off + 2) {
            Some(&[a, b]) => (a, b),
            _ => return Err(ChainError::Truncated),
        };
        let len = match nh {
            proto::FRAGMENT => 8,
            proto::AH => (usize::from(len_byte) + 2) * 4,
            _ => (usize::from(len_byte) + 1) * 8,
        };
        if off + len > packet.len() {
            return Err(ChainError::Truncated);
        }
        if off + len - HEADER_LEN > MAX_EXT_BYTES {
            return Err(ChainError::TooLong { at: off });
        }
        if nh == proto::FRAGMENT {
            fragment = true;
            frag_at = off;
            // Fragment offset is the top 13 bits of bytes 2..4; a non-first fragment holds
            // no upper-layer header to classify.
            let frag_off = match packet.get(off + 2..off + 4) {
                Some(&[a, b]) => u16::from_be_bytes([a, b]) >> 3,
                _ => return Err(ChainError::Truncated),
            };
            if frag_off != 0 {
                return Ok(Chain {
                    proto: proto::FRAGMENT,
                    offset: off,
                    headers,
                    fragment,
                    frag_at,
                });
            }
        }
        nh = next;
        nh_field = off;
        off += len;
    }
    Ok(Chain {
        proto: nh,
        offset: off,
        headers,
        fragment,
        frag_at,
    })
}

/// How far a transit router reads (RFC 8200 section 4, RFC 7045): the fixed header and a
/// Hop-by-Hop Options header if there is one, so that the value after it (where an M6
/// protocol number or ICMPv6 type sits, seed 001 section 3) can be classified. Headers after
/// it are never walked, so no number of them makes a transit packet drop. The result's
/// `proto` may be an extension header; `fragment` is always false.
pub fn walk_transit(packet: &[u8], first: u8) -> Result<Chain, ChainError> {
    if first != proto::HOP_BY_HOP {
        return Ok(Chain {
            proto: first,
            offset: HEADER_LEN,
            headers: 0,
            fragment: false,
            frag_at: 0,
        });
    }
    let (next, len_byte) = match packet.get(HEADER_LEN..HEADER_LEN + 2) {
        Some(&[a, b]) => (a, b),
        _ => return Err(ChainError::Truncated),
    };
    let end = HEADER_LEN + (usize::from(len_byte) + 1) * 8;
    if end > packet.len() {
        return Err(ChainError::Truncated);
    }
    Ok(Chain {
        proto: next,
        offset: end,
        headers: 1,
        fragment: false,
        frag_at: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(chain: &[(u8, Vec<u8>)], last: u8) -> (Vec<u8>, u8) {
        // Returns the packet bytes and the first next-header value.
        let mut p = vec![0u8; HEADER_LEN];
        for (i, (_, body)) in chain.iter().enumerate() {
            let next = chain.get(i + 1).map_or(last, |c| c.0);
            let mut h = body.clone();
            h[0] = next;
            p.extend_from_slice(&h);
        }
        let first = chain.first().map_or(last, |c| c.0);
        (p, first)
    }

    fn opts(len8: usize) -> Vec<u8> {
        let mut v = vec![0u8; len8 * 8];
        v[1] = (len8 - 1) as u8;
        v
    }

    #[test]
    fn no_extension_headers() {
        let p = [0u8; 48];
        assert_eq!(
            walk(&p, proto::UDP),
            Ok(Chain {
                proto: proto::UDP,
                offset: 40,
                headers: 0,
                fragment: false,
                frag_at: 0
            })
        );
    }

    #[test]
    fn hop_by_hop_dest_opts_then_icmp() {
        let (mut p, first) = packet(&[(0, opts(1)), (60, opts(2))], proto::ICMPV6);
        p.extend_from_slice(&[128, 0, 0, 0]);
        assert_eq!(
            walk(&p, first),
            Ok(Chain {
                proto: proto::ICMPV6,
                offset: 40 + 8 + 16,
                headers: 2,
                fragment: false,
                frag_at: 0
            })
        );
    }

    #[test]
    fn first_fragment_is_walked_through_later_ones_stop() {
        let (p, first) = packet(&[(44, vec![0; 8])], proto::UDP);
        assert_eq!(walk(&p, first).unwrap().proto, proto::UDP);
        assert!(walk(&p, first).unwrap().fragment);
        let (mut p, first) = packet(&[(44, vec![0; 8])], proto::UDP);
        p[42] = 0x01; // offset 32 (in 8-octet units)
        let c = walk(&p, first).unwrap();
        assert_eq!((c.proto, c.offset, c.fragment), (proto::FRAGMENT, 40, true));
    }

    #[test]
    fn authentication_header_length_is_in_4_octet_units() {
        let mut ah = vec![0u8; 24];
        ah[1] = 4; // (4 + 2) * 4 = 24
        let (p, first) = packet(&[(51, ah)], proto::TCP);
        assert_eq!(walk(&p, first).unwrap().offset, 64);
    }

    #[test]
    fn bounds() {
        let chain: Vec<(u8, Vec<u8>)> = (0..MAX_EXT_HEADERS).map(|_| (60, opts(1))).collect();
        let (p, first) = packet(&chain, proto::UDP);
        assert_eq!(walk(&p, first).unwrap().headers, MAX_EXT_HEADERS);
        let chain: Vec<(u8, Vec<u8>)> = (0..=MAX_EXT_HEADERS).map(|_| (60, opts(1))).collect();
        let (p, first) = packet(&chain, proto::UDP);
        assert_eq!(
            walk(&p, first),
            Err(ChainError::TooMany {
                at: 40 + 8 * MAX_EXT_HEADERS
            })
        );
        let chain: Vec<(u8, Vec<u8>)> = (0..20).map(|_| (60, opts(1))).collect();
        let (p, first) = packet(&chain, proto::UDP);
        assert!(matches!(walk(&p, first), Err(ChainError::TooMany { .. })));
        // Two headers of 136 bytes: within the count, over the byte budget.
        let (p, first) = packet(&[(60, opts(17)), (60, opts(17))], proto::UDP);
        assert_eq!(walk(&p, first), Err(ChainError::TooLong { at: 40 + 136 }));
        // A transit walk reads only the hop-by-hop header, whatever follows.
        let chain: Vec<(u8, Vec<u8>)> = std::iter::once((0, opts(1)))
            .chain((0..128).map(|_| (60, opts(1))))
            .collect();
        let (p, first) = packet(&chain, proto::UDP);
        let c = walk_transit(&p, first).unwrap();
        assert_eq!((c.proto, c.offset), (60, 48));
        assert_eq!(walk_transit(&p[..45], first), Err(ChainError::Truncated));
        assert_eq!(walk_transit(&p, 17).unwrap().offset, 40);
    }

    #[test]
    fn truncated_and_misplaced() {
        let (p, first) = packet(&[(60, opts(2))], proto::UDP);
        for n in 40..p.len() {
            assert_eq!(walk(&p[..n], first), Err(ChainError::Truncated), "{n}");
        }
        let (p, first) = packet(&[(60, opts(1)), (0, opts(1))], proto::UDP);
        // The dest opts header's Next Header field (offset 40) names the second one.
        assert_eq!(
            walk(&p, first),
            Err(ChainError::HopByHopNotFirst { pointer: 40 })
        );
    }
}
