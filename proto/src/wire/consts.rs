//! Every M6 protocol constant with its default (docs/protocol.md section "Constants").
//!
//! Values marked "configurable" are defaults that the YAML configuration may override; the
//! others are fixed by the wire format.

use core::time::Duration;

/// ICMPv6 type of M6 control messages that routers may rewrite (RFC 4443 private
/// experimentation value; configurable).
pub const ICMP_TYPE_REWRITE_OK: u8 = 200;
/// ICMPv6 type of M6 control messages that routers must not rewrite (configurable).
pub const ICMP_TYPE_NO_REWRITE: u8 = 201;

/// First protocol number of the "rewrite ok" data range (seed 001 section 6; configurable).
pub const P1_DEFAULT: u8 = 160;
/// First protocol number of the "no rewrite" data range (configurable).
pub const P2_DEFAULT: u8 = 168;

/// Initial retransmission timer of INIT, CCR, UR and CLOSE (seed 001 section 7.10).
pub const INITIAL_RETRANSMIT: Duration = Duration::from_secs(4);
/// Each retransmission timer is multiplied by a uniform random factor in
/// `[1 - RETRANSMIT_JITTER, 1 + RETRANSMIT_JITTER]` (7.10 "some randomness"; our choice).
pub const RETRANSMIT_JITTER: f64 = 0.25;
/// Retransmissions (binary exponential backoff) stop after this long, and a context on which
/// nothing was received for this long starts closing (7.10: "suggested 5 or 15 minutes"; we
/// take 15 so that it matches MAX_BIRTHDAY_INCR at one reboot per second, 7.14).
pub const CONTEXT_IDLE_TIME: Duration = Duration::from_secs(15 * 60);
/// X of appendix A: no packet received for X -> CLOSING; CLOSE retransmitted for X.
pub const CLOSE_TIMER_X: Duration = CONTEXT_IDLE_TIME;
/// Largest accepted birthday-counter increase in a UC (7.12, 7.14).
pub const MAX_BIRTHDAY_INCR: u32 = 900;

/// How long a CC state stays acceptable in a CCR, measured on the responder's clock (our
/// choice: covers the INIT->CC->CCR round trip plus five CCR retransmissions 4+8+16+32+64 s
/// at the jitter's lower bound; an initiator that gets no CONF for longer restarts with INIT).
pub const CC_LIFETIME: Duration = Duration::from_secs(120);
/// Timestamps up to this far in the responder's future are accepted (clock steps between
/// lcores or boxes sharing the key).
pub const CC_MAX_FUTURE_SKEW: Duration = Duration::from_secs(2);
/// The per-host CC key is replaced (serial + 1) this often; current and previous keys are
/// accepted, so every CC stays checkable for at least this long (>= CC_LIFETIME).
pub const CC_KEY_ROTATION: Duration = Duration::from_secs(120);
/// Length of the CC per-host secret.
pub const CC_SECRET_LEN: usize = 32;
/// Length of the truncated CC MAC.
pub const CC_MAC_LEN: usize = 16;

/// At most this many UC messages per second leave one router (token bucket, burst
/// [`UC_RATE_BURST`]); RFC 4443 section 2.4 (f) asks for rate limiting of ICMPv6 errors.
pub const UC_RATE_PER_SEC: u32 = 100;
/// Burst of the UC token bucket.
pub const UC_RATE_BURST: u32 = 20;
/// Largest triggering packet copied into a UC so that the UC fits the IPv6 minimum MTU:
/// 1280 - 40 (IPv6) - 16 (fixed part) - 8 (Flow Label TLV) - 8 (Birthday TLV).
pub const UC_MAX_INVOKING_LEN: usize = 1280 - 40 - 16 - 8 - 8;

/// First retry of a DNS lookup that failed transiently (7.13: binary exponential backoff).
pub const DNS_RETRY_INITIAL: Duration = Duration::from_secs(2);
/// Longest DNS retry interval.
pub const DNS_RETRY_MAX: Duration = Duration::from_secs(300);

/// Private-use DNS RR type of the M6 capability marker (RFC 6895 section 3.1: 65280-65534).
pub const M6_RR_TYPE: u16 = 65280;

/// Locators per Locator Set TLV.
pub const MAX_LOCATORS_PER_SET: usize = super::tlv::MAX_LOCATORS;

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults docs/protocol.md promises (section "Constants").
    #[test]
    fn defaults_match_the_spec() {
        assert_eq!((ICMP_TYPE_REWRITE_OK, ICMP_TYPE_NO_REWRITE), (200, 201));
        assert_eq!((P1_DEFAULT, P2_DEFAULT), (160, 168));
        assert_eq!(INITIAL_RETRANSMIT, Duration::from_secs(4));
        assert_eq!(CONTEXT_IDLE_TIME, Duration::from_secs(900));
        assert_eq!(CLOSE_TIMER_X, CONTEXT_IDLE_TIME);
        assert_eq!(MAX_BIRTHDAY_INCR, 900);
        // 7.14: one reboot per second at most during X.
        assert_eq!(u64::from(MAX_BIRTHDAY_INCR), CLOSE_TIMER_X.as_secs());
        assert!(CC_KEY_ROTATION >= CC_LIFETIME);
        assert_eq!(M6_RR_TYPE, 65280);
        assert_eq!(UC_MAX_INVOKING_LEN, 1208);
        assert_eq!(MAX_LOCATORS_PER_SET, 127);
    }
}
