//! The Internet checksum (RFC 1071) and the IPv6 pseudo-header (RFC 8200 section 8.1).

/// Adds `data` to a running one's-complement sum, as big-endian 16-bit words (an odd last
/// byte is padded with zero). Sums 32-bit words: folding later gives the same result.
#[inline]
pub fn add(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pair = rest.chunks_exact(2);
    for w in &mut pair {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = pair.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// Folds a running sum to 16 bits (end-around carry).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The pseudo-header sum for an upper-layer packet of `len` bytes and protocol `next_header`.
#[inline]
pub fn pseudo_header(src: &[u8; 16], dst: &[u8; 16], len: u32, next_header: u8) -> u64 {
    let acc = add(0, src);
    let acc = add(acc, dst);
    acc + u64::from(len >> 16) + u64::from(len & 0xffff) + u64::from(next_header)
}

/// The checksum to store in an upper-layer header whose checksum field is zero in `msg`.
#[inline]
pub fn compute(src: &[u8; 16], dst: &[u8; 16], next_header: u8, msg: &[u8]) -> u16 {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    !fold(add(pseudo_header(src, dst, len, next_header), msg))
}

/// Whether `msg` (checksum field included) carries a correct checksum.
#[inline]
pub fn verify(src: &[u8; 16], dst: &[u8; 16], next_header: u8, msg: &[u8]) -> bool {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    fold(add(pseudo_header(src, dst, len, next_header), msg)) == 0xffff
}

#[cfg(test)]
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
    fn matches_naive_sum_at_every_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(fold(add(0, &data[..n])), naive(&data[..n]), "len {n}");
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            fold(add(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0xddf2
        );
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
}
