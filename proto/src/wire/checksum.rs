//! The Internet checksum (RFC 1071) with the IPv6 pseudo-header (RFC 8200 section 8.1), as
//! pure functions over bytes and addresses, usable by the dataplane.
//!
//! The M6 control messages are ICMPv6, so their checksum covers the IPv6 source and
//! destination: a router that rewrites the source locator of a type-200 control message must
//! fix the checksum, which [`update_for_address`] does incrementally (RFC 1624).

use core::net::Ipv6Addr;

/// IPv6 next-header value of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last octet is padded
/// with zero), added to `initial`, not folded.
#[inline]
pub fn sum_bytes(initial: u32, data: &[u8]) -> u32 {
    let mut acc = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        if let [a, b] = c {
            acc += u64::from(u16::from_be_bytes([*a, *b]));
        }
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold64(acc)
}

#[inline]
fn fold64(mut acc: u64) -> u32 {
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit one's-complement accumulator to 16 bits (not complemented).
#[inline]
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Unfolded sum of the IPv6 pseudo-header: source, destination, upper-layer packet length
/// (32 bits) and next header (32 bits, high 24 zero).
#[inline]
pub fn pseudo_header_sum(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> u32 {
    let mut acc = sum_bytes(0, &src.octets());
    acc = sum_bytes(acc, &dst.octets());
    acc = sum_bytes(acc, &length.to_be_bytes());
    sum_bytes(acc, &[0, 0, 0, next_header])
}

/// The checksum to store in an upper-layer header: complement of the folded sum over the
/// pseudo-header and `data`, with the checksum field in `data` already zero.
///
/// `data.len()` is the upper-layer length; messages longer than `u32::MAX` do not exist in
/// IPv6 without jumbograms.
#[inline]
pub fn upper_layer_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, data: &[u8]) -> u16 {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let acc = sum_bytes(pseudo_header_sum(src, dst, next_header, len), data);
    !fold(acc)
}

/// The ICMPv6 checksum of `msg` (the whole ICMPv6 message starting at the type octet, with
/// the checksum field zero).
#[inline]
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    upper_layer_checksum(src, dst, IPPROTO_ICMPV6, msg)
}

/// True if the ICMPv6 message `msg` (checksum field as received) verifies.
#[inline]
pub fn icmpv6_verify(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> bool {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    let acc = sum_bytes(pseudo_header_sum(src, dst, IPPROTO_ICMPV6, len), msg);
    fold(acc) == 0xffff
}

/// Incremental update (RFC 1624, eqn. 3) of a checksum whose pseudo-header address changed
/// from `old` to `new`: `HC' = ~(~HC + ~m + m')` summed over the eight 16-bit words.
#[inline]
pub fn update_for_address(checksum: u16, old: &Ipv6Addr, new: &Ipv6Addr) -> u16 {
    let mut acc = u32::from(!checksum);
    for (o, n) in old.segments().iter().zip(new.segments().iter()) {
        acc += u32::from(!*o);
        acc += u32::from(*n);
    }
    !fold(acc)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_bytes(0, &data)), 0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum_bytes(0, &[0x12])), 0x1200);
        assert_eq!(fold(sum_bytes(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn icmpv6_echo_request_known_value() {
        // Echo request fe80::1 -> fe80::2, id 0x1234 seq 1, no data.
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "fe80::2".parse().unwrap();
        let mut msg = [128u8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01];
        let c = icmpv6_checksum(&src, &dst, &msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        assert!(icmpv6_verify(&src, &dst, &msg));
        // Independent computation: pseudo-header words + message words.
        let mut acc: u32 = 0xfe80 + 1 + 0xfe80 + 2 + 8 + 58;
        acc += (128 << 8) + 0x1234 + 1;
        assert_eq!(c, !fold(acc));
    }

    #[test]
    fn incremental_update_matches_full_recompute() {
        let src: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        let new_src: Ipv6Addr = "2001:db8:2::10".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8:99::1".parse().unwrap();
        let mut msg = vec![200u8, 1, 0, 0, 59, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        let c = icmpv6_checksum(&src, &dst, &msg);
        let c2 = update_for_address(c, &src, &new_src);
        msg[2..4].copy_from_slice(&c2.to_be_bytes());
        assert!(icmpv6_verify(&new_src, &dst, &msg));
        msg[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(c2, icmpv6_checksum(&new_src, &dst, &msg));
    }
}
