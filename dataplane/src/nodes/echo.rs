//! Echo requests to the router's own addresses, answered in place (RFC 4443 section 4.2).

use super::classify::Parsed;
use crate::buf::PacketBuf;
use crate::net::addr::{self, Addr};
use crate::net::ethernet::{self, ethertype};
use crate::net::icmpv6::{self, msg_type};
use crate::net::ipv6::{self, proto};
use crate::stats::reasons;

/// Hop limit of the replies (Linux's default).
pub const REPLY_HOP_LIMIT: u8 = 64;

reasons! {
    pub enum DropReason {
        /// Shorter than the 8-byte echo header.
        Truncated = "echo_truncated",
        BadChecksum = "echo_bad_checksum",
        /// From the unspecified address: nobody to answer.
        BadSource = "echo_bad_source",
        /// The reply would leave through the ISP that owns its source address, and that ISP
        /// is down (a reply through another ISP would fail its ingress filter).
        OwnerIspDown = "echo_owner_isp_down",
    }
}

/// Turns the echo request in `buf` into the reply from `reply_src` (the address the
/// request was sent to, or for a subnet-router anycast address the router's unicast
/// address in that subnet), addressed at the link layer to the request's sender from
/// `port_mac` (the port it came in on; the pipeline may route it elsewhere). Extension
/// headers of the request are not copied.
pub fn reply<B: PacketBuf>(
    buf: &mut B,
    p: &Parsed,
    port_mac: [u8; 6],
    reply_src: Addr,
) -> Result<(), DropReason> {
    if addr::is_unspecified(p.src) {
        return Err(DropReason::BadSource);
    }
    let l3 = p.l3();
    let l4 = p.l4();
    let end = p.end();
    let icmp_len = end.saturating_sub(l4);
    if icmp_len < icmpv6::HEADER_LEN {
        return Err(DropReason::Truncated);
    }
    let src = addr::to_bytes(p.src);
    let dst = addr::to_bytes(p.dst);
    let from = addr::to_bytes(reply_src);
    let data = buf.data_mut();
    let Some(msg) = data.get(l4..end) else {
        return Err(DropReason::Truncated);
    };
    if !icmpv6::Message::new_checked(msg).is_ok_and(|m| m.verify_checksum(&src, &dst)) {
        return Err(DropReason::BadChecksum);
    }
    // Drop any extension headers: the message moves up to right after the fixed header.
    let new_l4 = l3 + ipv6::HEADER_LEN;
    if l4 != new_l4 {
        data.copy_within(l4..end, new_l4);
    }
    let new_end = new_l4 + icmp_len;
    ethernet::emit(data, p.src_mac, port_mac, p.vlan_tci, ethertype::IPV6);
    if let Some(ip) = data.get_mut(l3..new_end) {
        if let Ok(mut h) = ipv6::Header::new_checked(&mut ip[..]) {
            h.set_payload_len(u16::try_from(icmp_len).unwrap_or(u16::MAX));
            h.set_next_header(proto::ICMPV6);
            h.set_hop_limit(REPLY_HOP_LIMIT);
            h.set_src_addr(from);
            h.set_dst_addr(src);
        }
        if let Some(msg) = ip.get_mut(ipv6::HEADER_LEN..) {
            if let Ok(mut m) = icmpv6::Message::new_checked(msg) {
                m.set_msg_type(msg_type::ECHO_REPLY);
                m.fill_checksum(&from, &src);
            }
        }
    }
    buf.truncate(new_end);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::nodes::classify::{classify, Disposition};
    use crate::site::SiteTables;
    use crate::testpkt::*;

    fn parse(f: &[u8]) -> (VecBuf, Parsed) {
        let t = SiteTables::new(&two_isp_site());
        let mut b = VecBuf::new(f);
        let (_, d, p) = classify(&mut b, &t, 0);
        assert_eq!(d, Disposition::Local);
        (b, p)
    }

    #[test]
    fn reply_bytes() {
        let req = echo_request(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:1:1::1",
            b"ping",
        );
        let (mut b, p) = parse(&req);
        reply(&mut b, &p, LAN_MAC, p.dst).unwrap();
        let want = icmp_frame(
            HOST_MAC,
            LAN_MAC,
            "2001:db8:1:1::1",
            "2001:db8:1:1::10",
            64,
            129,
            0,
            &[0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'],
        );
        assert_eq!(b.to_vec(), want);
    }

    #[test]
    fn extension_headers_are_dropped_from_the_reply() {
        let mut body = vec![128, 0, 0, 0, 0x12, 0x34, 0, 1];
        let (s, d) = (
            ip("2001:db8:1:1::10").octets(),
            ip("2001:db8:1:1::1").octets(),
        );
        let c = crate::net::checksum::compute(&s, &d, 58, &body);
        body[2..4].copy_from_slice(&c.to_be_bytes());
        let mut payload = vec![58, 0, 1, 4, 0, 0, 0, 0];
        payload.extend_from_slice(&body);
        let req = ip_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:1:1::1",
            64,
            60,
            &payload,
        );
        let (mut b, p) = parse(&req);
        reply(&mut b, &p, LAN_MAC, p.dst).unwrap();
        let want = icmp_frame(
            HOST_MAC,
            LAN_MAC,
            "2001:db8:1:1::1",
            "2001:db8:1:1::10",
            64,
            129,
            0,
            &[0x12, 0x34, 0, 1],
        );
        assert_eq!(b.to_vec(), want);
    }

    #[test]
    fn bad_checksum_and_truncated() {
        let req = echo_request(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:1:1::1",
            b"ping",
        );
        let (mut b, p) = parse(&with(&req, req.len() - 1, b'x'));
        assert_eq!(
            reply(&mut b, &p, LAN_MAC, p.dst),
            Err(DropReason::BadChecksum)
        );
        let short = icmp_frame(
            LAN_MAC,
            HOST_MAC,
            "2001:db8:1:1::10",
            "2001:db8:1:1::1",
            64,
            128,
            0,
            &[0, 0],
        );
        let (mut b, p) = parse(&short);
        assert_eq!(
            reply(&mut b, &p, LAN_MAC, p.dst),
            Err(DropReason::Truncated)
        );
    }
}
