//! The Internet checksum (RFC 1071) with the IPv6 pseudo-header (RFC 8200 section 8.1), as
//! pure functions over bytes and addresses: the one implementation of the workspace, used by
//! the M6 wire code here and by the dataplane's per-packet path (as `dataplane::net::checksum`).
//!
//! Two sets of entry points share one accumulator ([`add`]):
//!
//! - over `&[u8; 16]` addresses and a 64-bit accumulator, for the dataplane, which holds
//!   addresses as octets: [`add`], [`fold64`], [`pseudo_header`], [`compute`], [`verify`],
//!   [`update_for_address_octets`];
//! - over [`Ipv6Addr`] and a 32-bit accumulator, for the M6 wire code: [`sum_bytes`],
//!   [`fold`], [`pseudo_header_sum`], [`upper_layer_checksum`], [`icmpv6_checksum`],
//!   [`icmpv6_verify`], [`update_for_address`].
//!
//! An unfolded sum (of either width) is only meaningful through its fold: two sums of the
//! same data fold to the same 16 bits, whatever the word size the accumulator used.
//!
//! The M6 control messages are ICMPv6, so their checksum covers the IPv6 source and
//! destination: a router that rewrites the source locator of a type-200 control message must
//! fix the checksum, which [`update_for_address`] does incrementally (RFC 1624).

use core::net::Ipv6Addr;

/// IPv6 next-header value of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// One's-complement addition of two 64-bit words (end-around carry). Never overflows.
#[inline(always)]
fn add_word(acc: u64, word: u64) -> u64 {
    let (sum, carry) = acc.overflowing_add(word);
    // With a carry, `sum` is at most 2^64 - 2, so adding it back cannot overflow.
    sum + u64::from(carry)
}

/// Adds `data` to a running one's-complement sum `acc`, as big-endian 16-bit words (an odd
/// last byte is padded with zero); not folded.
///
/// The sum is kept in 64-bit one's complement, 8 bytes per step (in two independent chains,
/// so that one step does not wait for the carry of the previous one): since 2^16 - 1
/// divides 2^64 - 1, folding it ([`fold64`]) gives the sum of the 16-bit words, for any
/// length and any `acc` (no overflow, no panic).
#[inline]
pub fn add(acc: u64, data: &[u8]) -> u64 {
    let (mut a0, mut a1) = (acc, 0u64);
    let mut pairs = data.chunks_exact(16);
    for p in &mut pairs {
        // `chunks_exact(16)` yields 16-byte slices only: the conversion cannot fail.
        if let Ok(p) = <[u8; 16]>::try_from(p) {
            let v = u128::from_be_bytes(p);
            a0 = add_word(a0, (v >> 64) as u64);
            a1 = add_word(a1, v as u64);
        }
    }
    let rest = match pairs.remainder() {
        [a, b, c, d, e, f, g, h, rest @ ..] => {
            a0 = add_word(a0, u64::from_be_bytes([*a, *b, *c, *d, *e, *f, *g, *h]));
            rest
        }
        rest => rest,
    };
    if !rest.is_empty() {
        a1 = add_word(a1, tail_word(rest));
    }
    add_word(a0, a1)
}

/// The last 0 to 7 bytes of the data as one word to add. The bytes start on an 8-byte
/// boundary, so each 16-bit word keeps its byte order; the words may move within the 64
/// bits, which changes nothing once folded (2^16 = 1 modulo 2^16 - 1).
#[inline(always)]
fn tail_word(rest: &[u8]) -> u64 {
    let (w4, rest) = match rest {
        [a, b, c, d, rest @ ..] => (u32::from_be_bytes([*a, *b, *c, *d]), rest),
        rest => (0, rest),
    };
    let (w2, rest) = match rest {
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
        rest => (0, rest),
    };
    // At most one byte is left: the high half of a 16-bit word padded with zero.
    let w1 = rest.first().map_or(0, |b| u16::from(*b) << 8);
    (u64::from(w4) << 32) | (u64::from(w2) << 16) | u64::from(w1)
}

/// The unfolded sum of a 16-byte address.
#[inline(always)]
fn address_sum(addr: &[u8; 16]) -> u64 {
    let v = u128::from_be_bytes(*addr);
    add_word((v >> 64) as u64, v as u64)
}

/// Folds a 64-bit running sum (from [`add`]) to 32 bits, not complemented.
#[inline]
fn fold64_to_32(acc: u64) -> u32 {
    let (sum, carry) = ((acc >> 32) as u32).overflowing_add(acc as u32);
    sum + u32::from(carry)
}

/// Folds a 64-bit running sum (from [`add`] or [`pseudo_header`]) to 16 bits, not
/// complemented.
#[inline]
pub fn fold64(acc: u64) -> u16 {
    fold(fold64_to_32(acc))
}

/// The unfolded sum of the IPv6 pseudo-header for an upper-layer packet of `len` bytes and
/// protocol `next_header`: source, destination, length (32 bits) and next header (32 bits,
/// high 24 zero).
#[inline]
pub fn pseudo_header(src: &[u8; 16], dst: &[u8; 16], len: u32, next_header: u8) -> u64 {
    let addresses = add_word(address_sum(src), address_sum(dst));
    // Length and next header as one 64-bit word: `len`, then 0 0 0 `next_header`.
    add_word(addresses, (u64::from(len) << 32) | u64::from(next_header))
}

/// The checksum to store in an upper-layer header whose checksum field is zero in `msg`,
/// for a packet from `src` to `dst` with protocol `next_header`.
///
/// `msg.len()` is the upper-layer length; messages longer than `u32::MAX` do not exist in
/// IPv6 without jumbograms.
#[inline]
pub fn compute(src: &[u8; 16], dst: &[u8; 16], next_header: u8, msg: &[u8]) -> u16 {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    !fold64(add(pseudo_header(src, dst, len, next_header), msg))
}

/// Whether `msg` (checksum field as received) carries a correct checksum for a packet from
/// `src` to `dst` with protocol `next_header`.
#[inline]
pub fn verify(src: &[u8; 16], dst: &[u8; 16], next_header: u8, msg: &[u8]) -> bool {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    fold64(add(pseudo_header(src, dst, len, next_header), msg)) == 0xffff
}

/// Incremental update (RFC 1624, eqn. 3) of a checksum whose pseudo-header address changed
/// from `old` to `new`: `HC' = ~(~HC + ~m + m')` summed over the address words.
#[inline]
pub fn update_for_address_octets(checksum: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    // The one's complement of each 16-bit word of `old` is the bitwise not of its bytes.
    let acc = add_word(u64::from(!checksum), address_sum(&old.map(|b| !b)));
    !fold64(add_word(acc, address_sum(new)))
}

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last octet is padded
/// with zero), added to `initial`, not folded.
#[inline]
pub fn sum_bytes(initial: u32, data: &[u8]) -> u32 {
    fold64_to_32(add(u64::from(initial), data))
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
    fold64_to_32(pseudo_header(
        &src.octets(),
        &dst.octets(),
        length,
        next_header,
    ))
}

/// The checksum to store in an upper-layer header: complement of the folded sum over the
/// pseudo-header and `data`, with the checksum field in `data` already zero.
///
/// `data.len()` is the upper-layer length; messages longer than `u32::MAX` do not exist in
/// IPv6 without jumbograms.
#[inline]
pub fn upper_layer_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, data: &[u8]) -> u16 {
    compute(&src.octets(), &dst.octets(), next_header, data)
}

/// The ICMPv6 checksum of `msg` (the whole ICMPv6 message starting at the type octet, with
/// the checksum field zero).
#[inline]
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    compute(&src.octets(), &dst.octets(), IPPROTO_ICMPV6, msg)
}

/// True if the ICMPv6 message `msg` (checksum field as received) verifies.
#[inline]
pub fn icmpv6_verify(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> bool {
    verify(&src.octets(), &dst.octets(), IPPROTO_ICMPV6, msg)
}

/// Incremental update (RFC 1624, eqn. 3) of a checksum whose pseudo-header address changed
/// from `old` to `new`: `HC' = ~(~HC + ~m + m')` summed over the eight 16-bit words.
#[inline]
pub fn update_for_address(checksum: u16, old: &Ipv6Addr, new: &Ipv6Addr) -> u16 {
    update_for_address_octets(checksum, &old.octets(), &new.octets())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Reference implementation: 16-bit words, one at a time.
    fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            s += u32::from(w);
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_bytes(0, &data)), 0xddf2);
        assert_eq!(fold64(add(0, &data)), 0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum_bytes(0, &[0x12])), 0x1200);
        assert_eq!(fold(sum_bytes(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn matches_naive_sum_at_every_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(fold64(add(0, &data[..n])), naive(&data[..n]), "len {n}");
            assert_eq!(fold(sum_bytes(0, &data[..n])), naive(&data[..n]), "len {n}");
            // Also from every alignment of the start.
            assert_eq!(fold64(add(0, &data[n..])), naive(&data[n..]), "from {n}");
        }
    }

    #[test]
    fn carries_and_zero() {
        // All-ones data carries out of every word; the sum of 0xffff words stays 0xffff
        // (one's-complement "negative zero"), and empty or all-zero data sums to 0.
        for n in 0..40 {
            let ones = vec![0xffu8; n];
            let want = naive(&ones);
            assert_eq!(fold64(add(0, &ones)), want, "len {n}");
            assert_eq!(
                fold64(add(u64::MAX, &ones)),
                naive(&[&[0xff; 8][..], &ones].concat())
            );
            assert_eq!(
                fold(sum_bytes(u32::MAX, &ones)),
                fold64(add(u64::from(u32::MAX), &ones))
            );
            assert_eq!(fold64(add(0, &vec![0u8; n])), 0);
        }
        // A running sum may be continued with more data at any even offset.
        let data: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(151)).collect();
        for split in (0..data.len()).step_by(2) {
            let acc = add(add(0, &data[..split]), &data[split..]);
            assert_eq!(fold64(acc), naive(&data), "split {split}");
            let acc = sum_bytes(sum_bytes(0, &data[..split]), &data[split..]);
            assert_eq!(fold(acc), naive(&data), "split {split}");
        }
    }

    #[test]
    fn compute_then_verify() {
        let src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let mut msg = [128u8, 0, 0, 0, 0x12, 0x34, 0, 1, 0xaa];
        let c = compute(&src, &dst, 58, &msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        assert!(verify(&src, &dst, 58, &msg));
        msg[8] ^= 1;
        assert!(!verify(&src, &dst, 58, &msg));
    }

    #[test]
    fn pseudo_header_words() {
        // fe80::1 -> fe80::2, 0x12345 bytes of protocol 17: every 16-bit word of the
        // pseudo-header, summed by hand.
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "fe80::2".parse().unwrap();
        let want = fold(0xfe80 + 1 + 0xfe80 + 2 + 0x0001 + 0x2345 + 17);
        assert_eq!(fold(pseudo_header_sum(&src, &dst, 17, 0x12345)), want);
        assert_eq!(
            fold64(pseudo_header(&src.octets(), &dst.octets(), 0x12345, 17)),
            want
        );
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
        // The octet entry points agree with the address ones.
        assert_eq!(
            c,
            compute(
                &src.octets(),
                &dst.octets(),
                IPPROTO_ICMPV6,
                &[128, 0, 0, 0, 0x12, 0x34, 0, 1]
            )
        );
        assert!(verify(&src.octets(), &dst.octets(), IPPROTO_ICMPV6, &msg));
    }

    #[test]
    fn incremental_update_matches_full_recompute() {
        let src: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        let new_src: Ipv6Addr = "2001:db8:2::10".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8:99::1".parse().unwrap();
        let mut msg = vec![200u8, 1, 0, 0, 59, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        let c = icmpv6_checksum(&src, &dst, &msg);
        let c2 = update_for_address(c, &src, &new_src);
        assert_eq!(
            c2,
            update_for_address_octets(c, &src.octets(), &new_src.octets())
        );
        msg[2..4].copy_from_slice(&c2.to_be_bytes());
        assert!(icmpv6_verify(&new_src, &dst, &msg));
        msg[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(c2, icmpv6_checksum(&new_src, &dst, &msg));
    }

    #[test]
    fn incremental_update_matches_rfc1624_word_by_word() {
        // The previous 16-bit-word formulation of eqn. 3, for addresses with all-zero and
        // all-one words (the one's-complement zeros).
        fn word_by_word(checksum: u16, old: &Ipv6Addr, new: &Ipv6Addr) -> u16 {
            let mut acc = u32::from(!checksum);
            for (o, n) in old.segments().iter().zip(new.segments().iter()) {
                acc += u32::from(!*o);
                acc += u32::from(*n);
            }
            !fold(acc)
        }
        let addrs: [Ipv6Addr; 5] = [
            Ipv6Addr::UNSPECIFIED,
            Ipv6Addr::from([0xff; 16]),
            "2001:db8:1::10".parse().unwrap(),
            "ffff::1".parse().unwrap(),
            "fe80::ffff:0:ffff".parse().unwrap(),
        ];
        for c in [0u16, 1, 0x1234, 0xfffe, 0xffff] {
            for a in &addrs {
                for b in &addrs {
                    assert_eq!(
                        update_for_address(c, a, b),
                        word_by_word(c, a, b),
                        "{c:#x} {a} {b}"
                    );
                }
            }
        }
    }
}
