//! Extension headers of packets addressed to the router, processed as a destination must
//! (RFC 8200 sections 4.1 to 4.4): options by their action bits, the Jumbo Payload option's
//! rule (RFC 2675 section 3), routing headers with segments left (RFC 8200 section 4.4,
//! RFC 5095 section 3 for type 0), a misplaced Hop-by-Hop header, and chains longer than the
//! router reads (RFC 8883). Transit packets never come here (RFC 7045).
//!
//! The result is what to do with the packet: go on to its upper layer, drop it silently,
//! or drop it and answer with an ICMPv6 Parameter Problem of a given code and pointer
//! (an offset from the start of the IPv6 header, RFC 4443 section 3.4).

use super::classify::Parsed;
use crate::net::addr;
use crate::net::ext::{self, ChainError};
use crate::net::ipv6::{proto, HEADER_LEN};
use crate::stats::reasons;

reasons! {
    pub enum DropReason {
        /// An option whose action bits say "discard" (01), or (11) in a packet to a
        /// multicast address (RFC 8200 section 4.2).
        OptionDiscard = "option_discard",
        /// An unrecognized option with action bits 10 or 11: Parameter Problem code 2.
        OptionUnrecognized = "option_unrecognized",
        /// A Jumbo Payload option in a packet whose Payload Length is not zero (RFC 2675
        /// section 3): Parameter Problem code 0.
        JumboWithPayloadLength = "jumbo_with_payload_length",
        /// A Hop-by-Hop Options header not right after the IPv6 header (RFC 8200 section
        /// 4.1): Parameter Problem code 1.
        HopByHopNotFirst = "hbh_not_first",
        /// A routing header with segments left to a router that is not a segment router
        /// (type 0: RFC 5095 section 3; any other: RFC 8200 section 4.4): Parameter
        /// Problem code 0.
        RoutingHeader = "routing_header",
        /// More extension headers than the router reads for itself: RFC 8883 Parameter
        /// Problem code 8 (too many extension headers) or 7 (extension header chain too
        /// long).
        ChainTooLong = "ext_chain_too_long",
        /// An option runs past the end of its header.
        OptionTruncated = "option_truncated",
    }
}

/// ICMPv6 Parameter Problem codes (RFC 4443 section 3.4; RFC 8883 section 3, as IANA
/// registered them: 6 header too big, 7 chain too long, 8 too many headers).
pub mod code {
    pub const ERRONEOUS_FIELD: u8 = 0;
    pub const UNRECOGNIZED_NEXT_HEADER: u8 = 1;
    pub const UNRECOGNIZED_OPTION: u8 = 2;
    pub const CHAIN_TOO_LONG: u8 = 7;
    pub const TOO_MANY_HEADERS: u8 = 8;
}

/// Option types this router knows (RFC 8200 section 4.2, RFC 2675, RFC 2711).
mod opt {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    pub const ROUTER_ALERT: u8 = 5;
    pub const JUMBO: u8 = 0xc2;
}

/// What to do with a packet for the router after its extension headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the upper layer.
    Accept,
    /// Drop it, counted, without an answer.
    Drop(DropReason),
    /// Drop it and answer Parameter Problem `code` pointing at `pointer`.
    Problem {
        reason: DropReason,
        code: u8,
        pointer: u32,
    },
}

/// The verdict on the frame `frame` that classification summarised as `p` (a packet to the
/// router): the chain error classification found, or the walk of its headers.
pub fn verdict(p: &Parsed, frame: &[u8]) -> Verdict {
    match p.chain_error {
        Some(e) => chain_error(e),
        None => process(
            frame.get(p.l3()..p.end()).unwrap_or(&[]),
            addr::is_multicast(p.dst),
        ),
    }
}

/// The verdict for a chain error found by classification.
pub fn chain_error(e: ChainError) -> Verdict {
    match e {
        ChainError::TooMany { at } => Verdict::Problem {
            reason: DropReason::ChainTooLong,
            code: code::TOO_MANY_HEADERS,
            pointer: at as u32,
        },
        ChainError::TooLong { at } => Verdict::Problem {
            reason: DropReason::ChainTooLong,
            code: code::CHAIN_TOO_LONG,
            pointer: at as u32,
        },
        ChainError::HopByHopNotFirst { pointer } => Verdict::Problem {
            reason: DropReason::HopByHopNotFirst,
            code: code::UNRECOGNIZED_NEXT_HEADER,
            pointer: pointer as u32,
        },
        ChainError::Truncated => Verdict::Drop(DropReason::OptionTruncated),
    }
}

/// Processes the extension headers of `packet` (from its IPv6 header to the end of its
/// payload; the chain was already walked within bounds by classification), addressed to
/// the router at a multicast address or not.
pub fn process(packet: &[u8], multicast_dst: bool) -> Verdict {
    let Some(&first) = packet.get(6) else {
        return Verdict::Drop(DropReason::OptionTruncated);
    };
    let payload_len = packet
        .get(4..6)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let mut nh = first;
    let mut off = HEADER_LEN;
    let mut headers = 0;
    while ext::is_extension(nh) && headers < ext::MAX_EXT_HEADERS {
        headers += 1;
        let (Some(&next), Some(&len_byte)) = (packet.get(off), packet.get(off + 1)) else {
            return Verdict::Drop(DropReason::OptionTruncated);
        };
        let len = match nh {
            proto::FRAGMENT => 8,
            proto::AH => (usize::from(len_byte) + 2) * 4,
            _ => (usize::from(len_byte) + 1) * 8,
        };
        let Some(header) = packet.get(off..off + len) else {
            return Verdict::Drop(DropReason::OptionTruncated);
        };
        match nh {
            proto::HOP_BY_HOP | proto::DEST_OPTS => {
                let v = options(header, off, payload_len, multicast_dst);
                if v != Verdict::Accept {
                    return v;
                }
            }
            proto::ROUTING => {
                let Some(&segments_left) = header.get(3) else {
                    return Verdict::Drop(DropReason::OptionTruncated);
                };
                // This router implements no routing type, so any with segments left is
                // an erroneous Routing Type field.
                if segments_left > 0 {
                    return Verdict::Problem {
                        reason: DropReason::RoutingHeader,
                        code: code::ERRONEOUS_FIELD,
                        pointer: (off + 2) as u32,
                    };
                }
            }
            // Fragments go to reassembly; AH, ESP and the rest are the upper layer's.
            _ => return Verdict::Accept,
        }
        nh = next;
        off += len;
    }
    Verdict::Accept
}

/// The options of one Hop-by-Hop or Destination Options header starting at `base`.
fn options(header: &[u8], base: usize, payload_len: u16, multicast_dst: bool) -> Verdict {
    let mut i = 2;
    while let Some(&t) = header.get(i) {
        if t == opt::PAD1 {
            i += 1;
            continue;
        }
        let Some(&len) = header.get(i + 1) else {
            return Verdict::Drop(DropReason::OptionTruncated);
        };
        let end = i + 2 + usize::from(len);
        if end > header.len() {
            return Verdict::Drop(DropReason::OptionTruncated);
        }
        let pointer = (base + i) as u32;
        match t {
            opt::PADN | opt::ROUTER_ALERT => {}
            opt::JUMBO => {
                if payload_len != 0 {
                    return Verdict::Problem {
                        reason: DropReason::JumboWithPayloadLength,
                        code: code::ERRONEOUS_FIELD,
                        pointer,
                    };
                }
            }
            _ => match t >> 6 {
                0 => {}
                1 => return Verdict::Drop(DropReason::OptionDiscard),
                2 => {
                    return Verdict::Problem {
                        reason: DropReason::OptionUnrecognized,
                        code: code::UNRECOGNIZED_OPTION,
                        pointer,
                    }
                }
                _ if multicast_dst => return Verdict::Drop(DropReason::OptionDiscard),
                _ => {
                    return Verdict::Problem {
                        reason: DropReason::OptionUnrecognized,
                        code: code::UNRECOGNIZED_OPTION,
                        pointer,
                    }
                }
            },
        }
        i = end;
    }
    Verdict::Accept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv6 header (payload length from the rest) followed by `rest`, first next header `nh`.
    fn packet(nh: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(rest.len() as u16).to_be_bytes());
        p[6] = nh;
        p.extend_from_slice(rest);
        p
    }

    /// An 8-octet options header with next header `next` and one option `t` of 4 bytes.
    fn opts(next: u8, t: u8) -> Vec<u8> {
        vec![next, 0, t, 4, 0, 0, 0, 0]
    }

    #[test]
    fn option_action_bits() {
        // 00: skipped.
        let p = packet(0, &[&opts(58, 0x1e)[..], &[128, 0, 0, 0]].concat());
        assert_eq!(process(&p, false), Verdict::Accept);
        // 01: discarded silently.
        let p = packet(60, &[&opts(58, 0x5e)[..], &[128, 0, 0, 0]].concat());
        assert_eq!(process(&p, false), Verdict::Drop(DropReason::OptionDiscard));
        // 10: Parameter Problem code 2 at the option type, multicast or not.
        for mc in [false, true] {
            let p = packet(0, &[&opts(58, 0x9e)[..], &[128, 0, 0, 0]].concat());
            assert_eq!(
                process(&p, mc),
                Verdict::Problem {
                    reason: DropReason::OptionUnrecognized,
                    code: 2,
                    pointer: 42
                }
            );
        }
        // 11: Parameter Problem only when not multicast.
        let p = packet(60, &[&opts(58, 0xde)[..], &[128, 0, 0, 0]].concat());
        assert_eq!(
            process(&p, false),
            Verdict::Problem {
                reason: DropReason::OptionUnrecognized,
                code: 2,
                pointer: 42
            }
        );
        assert_eq!(process(&p, true), Verdict::Drop(DropReason::OptionDiscard));
        // In a second header, after PadN and Pad1: the pointer counts from the IPv6 header.
        let second = vec![58, 0, 1, 0, 0, 0x9e, 0, 0];
        let p = packet(0, &[&opts(60, 0x1e)[..], &second, &[128, 0, 0, 0]].concat());
        assert_eq!(
            process(&p, false),
            Verdict::Problem {
                reason: DropReason::OptionUnrecognized,
                code: 2,
                pointer: 48 + 5
            }
        );
    }

    #[test]
    fn jumbo_with_a_payload_length_is_a_problem() {
        let hbh = [58, 0, 0xc2, 4, 0, 1, 0, 0];
        let p = packet(0, &[&hbh[..], &[128, 0, 0, 0]].concat());
        assert_eq!(
            process(&p, false),
            Verdict::Problem {
                reason: DropReason::JumboWithPayloadLength,
                code: 0,
                pointer: 42
            }
        );
    }

    #[test]
    fn routing_header_with_segments_left() {
        // Type 0, segments left 1, one address.
        let mut rh = vec![58, 2, 0, 1, 0, 0, 0, 0];
        rh.extend_from_slice(&[0; 16]);
        let p = packet(43, &[&rh[..], &[128, 0, 0, 0]].concat());
        assert_eq!(
            process(&p, false),
            Verdict::Problem {
                reason: DropReason::RoutingHeader,
                code: 0,
                pointer: 42
            }
        );
        // Segments left 0: ignored (RFC 8200 4.4).
        rh[3] = 0;
        let p = packet(43, &[&rh[..], &[128, 0, 0, 0]].concat());
        assert_eq!(process(&p, false), Verdict::Accept);
    }

    #[test]
    fn chain_errors_map_to_rfc_8883_and_4443_codes() {
        assert_eq!(
            chain_error(ChainError::TooMany { at: 104 }),
            Verdict::Problem {
                reason: DropReason::ChainTooLong,
                code: 8,
                pointer: 104
            }
        );
        assert_eq!(
            chain_error(ChainError::HopByHopNotFirst { pointer: 40 }),
            Verdict::Problem {
                reason: DropReason::HopByHopNotFirst,
                code: 1,
                pointer: 40
            }
        );
    }

    #[test]
    fn truncations_never_panic() {
        let p = packet(0, &[&opts(58, 0x9e)[..], &[128, 0, 0, 0]].concat());
        for n in 0..p.len() {
            let _ = process(&p[..n], false);
        }
        // An option longer than its header.
        let p = packet(0, &[58, 0, 0x1e, 9, 0, 0, 0, 0]);
        assert_eq!(
            process(&p, false),
            Verdict::Drop(DropReason::OptionTruncated)
        );
    }
}
