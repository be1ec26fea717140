//! Traffic addressed to the router itself: hands Neighbor Discovery to [`super::nd`], echo
//! requests to [`super::echo`], echo replies (health probes' answers) to
//! [`crate::health`] and Router Solicitations to [`crate::ra`], through the control
//! thread; M6 control goes to the control plane before this; everything else is dropped.

use super::classify::Parsed;
use crate::net::addr;
use crate::net::icmpv6::msg_type;
use crate::net::ipv6::proto;
use crate::stats::reasons;

reasons! {
    pub enum DropReason {
        /// To one of the router's addresses, but nothing here answers it (TCP, UDP, other
        /// ICMPv6, fragments: the router does not reassemble).
        ToRouterUnhandled = "to_router_unhandled",
        /// A Router Solicitation that RFC 4861 section 6.1.1 discards, or one on a router
        /// that sends no advertisements.
        BadRouterSolicitation = "bad_router_solicitation",
        /// An echo reply that answers no health probe.
        EchoReplyNotOurs = "echo_reply_not_ours",
        /// A report for the control thread (probe reply, solicitation) over the burst's
        /// budget.
        ReportsOverBudget = "reports_over_budget",
    }
}

/// Which local handler takes the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    Nd,
    Echo,
    /// An echo reply: perhaps a health probe's answer.
    EchoReply,
    RouterSolicitation,
}

pub fn dispatch(p: &Parsed) -> Result<Handler, DropReason> {
    // RFC 6980: ND must not be fragmented; the router does not reassemble anything else.
    if p.fragment || p.l4_proto != proto::ICMPV6 {
        return Err(DropReason::ToRouterUnhandled);
    }
    match p.icmp_type {
        Some(msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT) => Ok(Handler::Nd),
        Some(msg_type::ECHO_REQUEST) if !addr::is_multicast(p.dst) => Ok(Handler::Echo),
        Some(msg_type::ECHO_REPLY) if !addr::is_multicast(p.dst) => Ok(Handler::EchoReply),
        Some(msg_type::ROUTER_SOLICIT) => Ok(Handler::RouterSolicitation),
        _ => Err(DropReason::ToRouterUnhandled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_by_type() {
        let mut p = Parsed {
            l4_proto: proto::ICMPV6,
            icmp_type: Some(135),
            dst: 1 << 64,
            ..Parsed::default()
        };
        assert_eq!(dispatch(&p), Ok(Handler::Nd));
        p.icmp_type = Some(128);
        assert_eq!(dispatch(&p), Ok(Handler::Echo));
        p.fragment = true;
        assert_eq!(dispatch(&p), Err(DropReason::ToRouterUnhandled));
        p.fragment = false;
        p.icmp_type = Some(129);
        assert_eq!(dispatch(&p), Ok(Handler::EchoReply));
        p.icmp_type = Some(130);
        assert_eq!(dispatch(&p), Err(DropReason::ToRouterUnhandled));
        p.l4_proto = proto::TCP;
        assert_eq!(dispatch(&p), Err(DropReason::ToRouterUnhandled));
    }
}
