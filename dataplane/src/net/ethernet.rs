//! Ethernet II with at most one 802.1Q tag.

use super::{be16, mac6, put, Error};

pub const HEADER_LEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;
/// The longest link header the router accepts: Ethernet + one 802.1Q tag.
pub const MAX_HEADER_LEN: usize = HEADER_LEN + VLAN_TAG_LEN;

pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

mod field {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    /// Inner ethertype when the frame carries one 802.1Q tag.
    pub const VLAN_TCI: usize = 14;
    pub const INNER_ETHERTYPE: usize = 16;
}

/// A view of the MAC header of a frame.
#[derive(Debug)]
pub struct Frame<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// A view over `buffer`, which must hold at least the 14-byte header.
    pub fn new_checked(buffer: T) -> Result<Frame<T>, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Frame { buffer })
    }

    pub fn dst_addr(&self) -> [u8; 6] {
        mac6(self.buffer.as_ref(), field::DST.start).unwrap_or_default()
    }

    pub fn src_addr(&self) -> [u8; 6] {
        mac6(self.buffer.as_ref(), field::SRC.start).unwrap_or_default()
    }

    /// The outer ethertype (0x8100 for a tagged frame).
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst_addr(&mut self, mac: [u8; 6]) {
        put(self.buffer.as_mut(), field::DST.start, &mac);
    }

    pub fn set_src_addr(&mut self, mac: [u8; 6]) {
        put(self.buffer.as_mut(), field::SRC.start, &mac);
    }

    pub fn set_ethertype(&mut self, ethertype: u16) {
        put(
            self.buffer.as_mut(),
            field::ETHERTYPE,
            &ethertype.to_be_bytes(),
        );
    }
}

/// What the link header says about the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2 {
    /// The ethertype of the payload (the inner one for a tagged frame).
    pub ethertype: u16,
    /// 14, or 18 with a tag.
    pub header_len: usize,
    /// The 802.1Q tag control information, if the frame is tagged.
    pub vlan_tci: Option<u16>,
}

/// Reads the link header: Ethernet II and at most one 802.1Q tag. Stacked tags (QinQ or a
/// second 802.1Q) are `Unrecognized`.
pub fn parse(frame: &[u8]) -> Result<L2, Error> {
    let outer = be16(frame, field::ETHERTYPE).ok_or(Error::Truncated)?;
    match outer {
        ethertype::VLAN => {
            let tci = be16(frame, field::VLAN_TCI).ok_or(Error::Truncated)?;
            let inner = be16(frame, field::INNER_ETHERTYPE).ok_or(Error::Truncated)?;
            if inner == ethertype::VLAN || inner == ethertype::QINQ {
                return Err(Error::Unrecognized);
            }
            Ok(L2 {
                ethertype: inner,
                header_len: MAX_HEADER_LEN,
                vlan_tci: Some(tci),
            })
        }
        ethertype::QINQ => Err(Error::Unrecognized),
        other => Ok(L2 {
            ethertype: other,
            header_len: HEADER_LEN,
            vlan_tci: None,
        }),
    }
}

/// Writes a link header (`dst`, `src`, an optional tag, `ethertype`) at the start of `out`,
/// which must have room for it; returns the bytes written (0 if it did not fit).
pub fn emit(
    out: &mut [u8],
    dst: [u8; 6],
    src: [u8; 6],
    vlan_tci: Option<u16>,
    ethertype: u16,
) -> usize {
    let len = if vlan_tci.is_some() {
        MAX_HEADER_LEN
    } else {
        HEADER_LEN
    };
    let Some(h) = out.get_mut(..len) else {
        return 0;
    };
    h[0..6].copy_from_slice(&dst);
    h[6..12].copy_from_slice(&src);
    match vlan_tci {
        Some(tci) => {
            h[12..14].copy_from_slice(&ethertype::VLAN.to_be_bytes());
            h[14..16].copy_from_slice(&tci.to_be_bytes());
            h[16..18].copy_from_slice(&ethertype.to_be_bytes());
        }
        None => h[12..14].copy_from_slice(&ethertype.to_be_bytes()),
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    static UNTAGGED: [u8; 14] = [
        0x02, 0, 0, 0, 0, 0x01, // dst
        0x02, 0, 0, 0, 0, 0x02, // src
        0x86, 0xdd,
    ];

    static TAGGED: [u8; 18] = [
        0x02, 0, 0, 0, 0, 0x01, // dst
        0x02, 0, 0, 0, 0, 0x02, // src
        0x81, 0x00, 0x00, 0x64, // VLAN 100
        0x86, 0xdd,
    ];

    #[test]
    fn fields() {
        let f = Frame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.src_addr(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.ethertype(), ethertype::IPV6);
        assert_eq!(
            Frame::new_checked(&UNTAGGED[..13]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn setters() {
        let mut b = UNTAGGED;
        let mut f = Frame::new_checked(&mut b[..]).unwrap();
        f.set_dst_addr([9; 6]);
        f.set_src_addr([8; 6]);
        f.set_ethertype(ethertype::IPV4);
        assert_eq!(&b[..], &[9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 0x08, 0x00]);
    }

    #[test]
    fn parse_untagged_and_tagged() {
        assert_eq!(
            parse(&UNTAGGED).unwrap(),
            L2 {
                ethertype: ethertype::IPV6,
                header_len: 14,
                vlan_tci: None
            }
        );
        assert_eq!(
            parse(&TAGGED).unwrap(),
            L2 {
                ethertype: ethertype::IPV6,
                header_len: 18,
                vlan_tci: Some(100)
            }
        );
        for n in 0..TAGGED.len() {
            if n < 14 {
                assert_eq!(parse(&TAGGED[..n]), Err(Error::Truncated), "{n}");
            }
        }
        assert_eq!(parse(&TAGGED[..17]), Err(Error::Truncated));
    }

    #[test]
    fn stacked_tags_are_refused() {
        let mut b = TAGGED;
        b[16..18].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(parse(&b), Err(Error::Unrecognized));
        b[12..14].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(parse(&b), Err(Error::Unrecognized));
    }

    #[test]
    fn emit_round_trip() {
        let mut out = [0u8; 18];
        assert_eq!(
            emit(
                &mut out,
                [2, 0, 0, 0, 0, 1],
                [2, 0, 0, 0, 0, 2],
                Some(100),
                ethertype::IPV6
            ),
            18
        );
        assert_eq!(out, TAGGED);
        let mut out = [0u8; 14];
        assert_eq!(
            emit(
                &mut out,
                [2, 0, 0, 0, 0, 1],
                [2, 0, 0, 0, 0, 2],
                None,
                ethertype::IPV6
            ),
            14
        );
        assert_eq!(out, UNTAGGED);
        assert_eq!(emit(&mut out, [0; 6], [0; 6], Some(1), 0), 0);
    }
}
