//! ICMPv6 (RFC 4443): the common header and the checksum.

use super::{be16, checksum, ipv6::proto, put, Error};

/// Type, code, checksum and the 4-byte first word of the body (identifier and sequence of an
/// echo, the unused word of an error, the flags of an NA).
pub const HEADER_LEN: usize = 8;

pub mod msg_type {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    pub const REDIRECT: u8 = 137;
    /// M6 control, rewrite ok (DESIGN section 7; RFC 4443 private experimentation type).
    pub const M6_CONTROL_REWRITE: u8 = 200;
    /// M6 control, no rewrite.
    pub const M6_CONTROL_NO_REWRITE: u8 = 201;
}

/// Codes of destination unreachable (RFC 4443 section 3.1).
pub mod unreachable {
    pub const NO_ROUTE: u8 = 0;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const BEYOND_SCOPE: u8 = 2;
    pub const ADDRESS: u8 = 3;
    pub const PORT: u8 = 4;
    /// "Source address failed ingress/egress policy": what a host gets when the ISP that
    /// owns its source prefix cannot be used (seed 000 sections 5.1, 5.2).
    pub const SOURCE_POLICY: u8 = 5;
    pub const REJECT_ROUTE: u8 = 6;
}

/// Error messages are types 0..127 (RFC 4443 section 2.1).
#[inline]
pub fn is_error(msg_type: u8) -> bool {
    msg_type < 128
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
}

/// A whole IPv6 packet carrying ICMPv6 message `msg` (type first, checksum filled) from
/// `src` to `dst` with `hop_limit`: what the control thread originates (health probes,
/// Router Advertisements).
pub fn packet(src: [u8; 16], dst: [u8; 16], hop_limit: u8, msg: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; super::ipv6::HEADER_LEN + msg.len()];
    let repr = super::ipv6::Repr {
        src,
        dst,
        next_header: proto::ICMPV6,
        payload_len: u16::try_from(msg.len()).unwrap_or(u16::MAX),
        hop_limit,
    };
    repr.emit(&mut p);
    if let Some(m) = p.get_mut(super::ipv6::HEADER_LEN..) {
        m.copy_from_slice(msg);
        if let Ok(mut m) = Message::new_checked(m) {
            m.fill_checksum(&src, &dst);
        }
    }
    p
}

/// A view of an ICMPv6 message (the whole message: the checksum covers all of it).
#[derive(Debug)]
pub struct Message<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// A view over `buffer`, which must hold the 4-byte type/code/checksum.
    pub fn new_checked(buffer: T) -> Result<Message<T>, Error> {
        if buffer.as_ref().len() < 4 {
            return Err(Error::Truncated);
        }
        Ok(Message { buffer })
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer
            .as_ref()
            .get(field::TYPE)
            .copied()
            .unwrap_or_default()
    }

    pub fn code(&self) -> u8 {
        self.buffer
            .as_ref()
            .get(field::CODE)
            .copied()
            .unwrap_or_default()
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM).unwrap_or_default()
    }

    /// Whether the checksum is right for a message from `src` to `dst`.
    pub fn verify_checksum(&self, src: &[u8; 16], dst: &[u8; 16]) -> bool {
        checksum::verify(src, dst, proto::ICMPV6, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Message<T> {
    pub fn set_msg_type(&mut self, t: u8) {
        put(self.buffer.as_mut(), field::TYPE, &[t]);
    }

    pub fn set_code(&mut self, c: u8) {
        put(self.buffer.as_mut(), field::CODE, &[c]);
    }

    pub fn set_checksum(&mut self, c: u16) {
        put(self.buffer.as_mut(), field::CHECKSUM, &c.to_be_bytes());
    }

    /// Computes and stores the checksum for a message from `src` to `dst`.
    pub fn fill_checksum(&mut self, src: &[u8; 16], dst: &[u8; 16]) {
        self.set_checksum(0);
        let c = checksum::compute(src, dst, proto::ICMPV6, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An echo request from 2001:db8::1 to 2001:db8::2, id 0x1234 seq 1, payload "hi",
    // checksum computed by hand: 0x8000 + 0x1234 + 0x0001 + 0x6869 + pseudo-header.
    const SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    #[test]
    fn fields_and_checksum() {
        let mut b = [128u8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, b'h', b'i'];
        let mut m = Message::new_checked(&mut b[..]).unwrap();
        m.fill_checksum(&SRC, &DST);
        assert_eq!(m.msg_type(), msg_type::ECHO_REQUEST);
        assert_eq!(m.code(), 0);
        // pseudo: 2001+0db8+0001 + 2001+0db8+0002 + 000a + 003a; body: 8000+0000+1234+0001+6869
        let sum: u32 = 0x2001
            + 0x0db8
            + 0x0001
            + 0x2001
            + 0x0db8
            + 0x0002
            + 0x000a
            + 0x003a
            + 0x8000
            + 0x1234
            + 0x0001
            + 0x6869;
        let folded = (sum & 0xffff) + (sum >> 16);
        assert_eq!(m.checksum(), !(folded as u16));
        assert!(m.verify_checksum(&SRC, &DST));
        assert!(!m.verify_checksum(&DST, &DST));
        assert!(Message::new_checked(&b[..3]).is_err());
    }

    #[test]
    fn error_types() {
        assert!(is_error(msg_type::DST_UNREACHABLE));
        assert!(is_error(127));
        assert!(!is_error(msg_type::ECHO_REQUEST));
        assert!(!is_error(msg_type::M6_CONTROL_REWRITE));
    }
}
