//! Neighbor Discovery messages (RFC 4861 sections 4.3, 4.4, 4.6.1).

use super::{addr16, icmpv6::msg_type, put, Error};

/// Type, code, checksum, reserved/flags and the target address.
pub const BASE_LEN: usize = 24;
/// One link-layer address option for Ethernet (RFC 2464 section 8): 8 bytes.
pub const LLADDR_OPT_LEN: usize = 8;
/// An NS or NA with one link-layer address option.
pub const WITH_LLADDR_LEN: usize = BASE_LEN + LLADDR_OPT_LEN;
/// ND messages must arrive with this hop limit (RFC 4861 sections 7.1.1, 7.1.2).
pub const HOP_LIMIT: u8 = 255;

pub mod option {
    pub const SOURCE_LLADDR: u8 = 1;
    pub const TARGET_LLADDR: u8 = 2;
}

/// Flags in byte 4 of a Neighbor Advertisement.
pub mod flags {
    pub const ROUTER: u8 = 0x80;
    pub const SOLICITED: u8 = 0x40;
    pub const OVERRIDE: u8 = 0x20;
}

/// The target address of an NS or NA (`msg` starts at the ICMPv6 type).
pub fn target(msg: &[u8]) -> Option<[u8; 16]> {
    addr16(msg, 8)
}

/// The R/S/O flags of an NA.
pub fn na_flags(msg: &[u8]) -> u8 {
    msg.get(4).copied().unwrap_or_default()
}

/// Walks the options after the base message and returns the first link-layer address
/// option of `kind`. Every option must have a non-zero length and fit (RFC 4861 sections
/// 7.1.1, 7.1.2: otherwise the whole message is discarded).
pub fn lladdr_option(options: &[u8], kind: u8) -> Result<Option<[u8; 6]>, Error> {
    let mut off = 0usize;
    let mut found = None;
    while off < options.len() {
        let (t, l) = match options.get(off..off + 2) {
            Some(&[t, l]) => (t, l),
            _ => return Err(Error::Truncated),
        };
        let len = usize::from(l) * 8;
        if len == 0 {
            return Err(Error::Malformed);
        }
        let Some(opt) = options.get(off..off + len) else {
            return Err(Error::Truncated);
        };
        if t == kind && found.is_none() {
            let mut mac = [0u8; 6];
            if let Some(m) = opt.get(2..8) {
                mac.copy_from_slice(m);
            }
            found = Some(mac);
        }
        off += len;
    }
    Ok(found)
}

/// Writes a Neighbor Solicitation for `target` with a source link-layer address option
/// into `out` (checksum left zero); returns its length, or 0 if `out` is too short.
pub fn emit_ns(out: &mut [u8], target: [u8; 16], source_mac: [u8; 6]) -> usize {
    let Some(m) = out.get_mut(..WITH_LLADDR_LEN) else {
        return 0;
    };
    m.fill(0);
    m[0] = msg_type::NEIGHBOR_SOLICIT;
    put(m, 8, &target);
    m[24] = option::SOURCE_LLADDR;
    m[25] = 1;
    put(m, 26, &source_mac);
    WITH_LLADDR_LEN
}

/// Writes a Neighbor Advertisement for `target` with `flags` and a target link-layer address
/// option into `out` (checksum left zero); returns its length, or 0 if `out` is too short.
pub fn emit_na(out: &mut [u8], target: [u8; 16], na_flags: u8, target_mac: [u8; 6]) -> usize {
    let Some(m) = out.get_mut(..WITH_LLADDR_LEN) else {
        return 0;
    };
    m.fill(0);
    m[0] = msg_type::NEIGHBOR_ADVERT;
    m[4] = na_flags;
    put(m, 8, &target);
    m[24] = option::TARGET_LLADDR;
    m[25] = 1;
    put(m, 26, &target_mac);
    WITH_LLADDR_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 1];

    #[test]
    fn ns_layout() {
        let mut b = [0xaau8; 40];
        assert_eq!(emit_ns(&mut b, T, [2, 0, 0, 0, 0, 9]), 32);
        assert_eq!(&b[0..8], &[135, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(target(&b), Some(T));
        assert_eq!(&b[24..32], &[1, 1, 2, 0, 0, 0, 0, 9]);
        assert_eq!(
            lladdr_option(&b[24..32], option::SOURCE_LLADDR),
            Ok(Some([2, 0, 0, 0, 0, 9]))
        );
        assert_eq!(lladdr_option(&b[24..32], option::TARGET_LLADDR), Ok(None));
        assert_eq!(emit_ns(&mut b[..31], T, [0; 6]), 0);
    }

    #[test]
    fn na_layout() {
        let mut b = [0u8; 32];
        assert_eq!(
            emit_na(
                &mut b,
                T,
                flags::ROUTER | flags::SOLICITED,
                [2, 0, 0, 0, 0, 1]
            ),
            32
        );
        assert_eq!(&b[0..8], &[136, 0, 0, 0, 0xc0, 0, 0, 0]);
        assert_eq!(na_flags(&b), 0xc0);
        assert_eq!(&b[24..32], &[2, 1, 2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn option_walk_rejects_zero_and_overlong() {
        assert_eq!(lladdr_option(&[], 1), Ok(None));
        assert_eq!(
            lladdr_option(&[1, 0, 0, 0, 0, 0, 0, 0], 1),
            Err(Error::Malformed)
        );
        assert_eq!(
            lladdr_option(&[1, 2, 0, 0, 0, 0, 0, 0], 1),
            Err(Error::Truncated)
        );
        assert_eq!(lladdr_option(&[1], 1), Err(Error::Truncated));
        // An unknown option first, then the one asked for.
        let opts = [14, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 3, 4, 5, 6];
        assert_eq!(lladdr_option(&opts, 1), Ok(Some([1, 2, 3, 4, 5, 6])));
    }
}
