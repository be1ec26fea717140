//! The IPv6 fixed header (RFC 8200 section 3).

use super::{addr16, be16, put, Error};

pub const HEADER_LEN: usize = 40;
/// The minimum link MTU (RFC 8200 section 5); ICMPv6 errors never exceed it.
pub const MIN_MTU: usize = 1280;

pub mod proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
}

mod field {
    pub const VER_TC_FL: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// A view of the fixed header at the start of `buffer`.
#[derive(Debug)]
pub struct Header<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// A view over `buffer`, which must hold the 40-byte header (the version is not checked:
    /// callers decide what a wrong version means).
    pub fn new_checked(buffer: T) -> Result<Header<T>, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Header { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.b().get(field::VER_TC_FL).map_or(0, |v| v >> 4)
    }

    pub fn traffic_class(&self) -> u8 {
        let w = be16(self.b(), field::VER_TC_FL).unwrap_or_default();
        ((w >> 4) & 0xff) as u8
    }

    pub fn flow_label(&self) -> u32 {
        let hi = be16(self.b(), field::VER_TC_FL).unwrap_or_default();
        let lo = be16(self.b(), field::VER_TC_FL + 2).unwrap_or_default();
        ((u32::from(hi) & 0xf) << 16) | u32::from(lo)
    }

    pub fn payload_len(&self) -> u16 {
        be16(self.b(), field::PAYLOAD_LEN).unwrap_or_default()
    }

    pub fn next_header(&self) -> u8 {
        self.b()
            .get(field::NEXT_HEADER)
            .copied()
            .unwrap_or_default()
    }

    pub fn hop_limit(&self) -> u8 {
        self.b().get(field::HOP_LIMIT).copied().unwrap_or_default()
    }

    pub fn src_addr(&self) -> [u8; 16] {
        addr16(self.b(), field::SRC).unwrap_or_default()
    }

    pub fn dst_addr(&self) -> [u8; 16] {
        addr16(self.b(), field::DST).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Version 6, the given traffic class and flow label.
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        put(self.buffer.as_mut(), field::VER_TC_FL, &w.to_be_bytes());
    }

    pub fn set_payload_len(&mut self, len: u16) {
        put(self.buffer.as_mut(), field::PAYLOAD_LEN, &len.to_be_bytes());
    }

    pub fn set_next_header(&mut self, nh: u8) {
        put(self.buffer.as_mut(), field::NEXT_HEADER, &[nh]);
    }

    pub fn set_hop_limit(&mut self, hl: u8) {
        put(self.buffer.as_mut(), field::HOP_LIMIT, &[hl]);
    }

    pub fn set_src_addr(&mut self, a: [u8; 16]) {
        put(self.buffer.as_mut(), field::SRC, &a);
    }

    pub fn set_dst_addr(&mut self, a: [u8; 16]) {
        put(self.buffer.as_mut(), field::DST, &a);
    }
}

/// An owned fixed header, for building packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub next_header: u8,
    pub payload_len: u16,
    pub hop_limit: u8,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(h: &Header<T>) -> Result<Repr, Error> {
        if h.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src: h.src_addr(),
            dst: h.dst_addr(),
            next_header: h.next_header(),
            payload_len: h.payload_len(),
            hop_limit: h.hop_limit(),
        })
    }

    /// Writes the header (traffic class and flow label zero) into the first 40 bytes of
    /// `out`; false if `out` is shorter.
    pub fn emit(&self, out: &mut [u8]) -> bool {
        let Ok(mut h) = Header::new_checked(out) else {
            return false;
        };
        h.set_version_tc_flow(0, 0);
        h.set_payload_len(self.payload_len);
        h.set_next_header(self.next_header);
        h.set_hop_limit(self.hop_limit);
        h.set_src_addr(self.src);
        h.set_dst_addr(self.dst);
        true
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static PACKET_BYTES: [u8; 40] = [
        0x60, 0x12, 0x34, 0x56, // version 6, tc 0x01, flow 0x23456
        0x00, 0x08, 0x11, 0x40, // payload 8, UDP, hop limit 64
        0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // 2001:db8:1::10
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // 2001:db8::1
    ];

    #[test]
    fn fields() {
        let h = Header::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(h.version(), 6);
        assert_eq!(h.traffic_class(), 0x01);
        assert_eq!(h.flow_label(), 0x23456);
        assert_eq!(h.payload_len(), 8);
        assert_eq!(h.next_header(), proto::UDP);
        assert_eq!(h.hop_limit(), 64);
        assert_eq!(h.src_addr()[15], 0x10);
        assert_eq!(h.dst_addr()[15], 0x01);
        assert_eq!(
            Header::new_checked(&PACKET_BYTES[..39]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn repr_round_trip() {
        let h = Header::new_checked(&PACKET_BYTES[..]).unwrap();
        let r = Repr::parse(&h).unwrap();
        let mut out = [0u8; 40];
        assert!(r.emit(&mut out));
        let mut expect = PACKET_BYTES;
        expect[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
        assert_eq!(out, expect);
        assert!(!r.emit(&mut out[..39]));
        let mut bad = PACKET_BYTES;
        bad[0] = 0x40;
        assert_eq!(
            Repr::parse(&Header::new_checked(&bad[..]).unwrap()),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 40];
        let mut h = Header::new_checked(&mut b[..]).unwrap();
        h.set_version_tc_flow(0x01, 0x23456);
        h.set_hop_limit(7);
        assert_eq!(h.flow_label(), 0x23456);
        assert_eq!(h.traffic_class(), 1);
        assert_eq!(h.hop_limit(), 7);
        assert_eq!(&b[0..4], &[0x60, 0x12, 0x34, 0x56]);
    }
}
