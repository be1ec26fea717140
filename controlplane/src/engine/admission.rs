//! Admission of DNS work triggered by traffic (seed 001 section 5.2; DESIGN.md section 6):
//! the destination cache is bounded, and the lookups that packets to unknown destinations
//! start are rate limited, so a scan of random destinations can neither grow the engine's
//! state without bound nor flood the resolver.
//!
//! The destination cache is the union of the discoveries in progress ("pending") and the
//! negative entries ("not M6 until T"); M6 destinations are contexts, bounded by the flow
//! label space of each host (section 3.2). When it is full, the oldest negative entries (in
//! insertion order, which with one negative TTL is also expiry order) make room: such a
//! destination is simply looked up again if it comes back. Pending discoveries are never
//! dropped, so if they fill the cache a new destination is refused and its traffic keeps
//! flowing as plain IPv6.

use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::time::Duration;

use super::Engine;

/// Token bucket and the insertion order of negative entries.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    tokens: Option<f64>,
    last: Duration,
    /// Negative entries in insertion order, with the `until` they were inserted with; an
    /// element whose entry was since replaced or expired is skipped when popped.
    order: VecDeque<(Ipv6Addr, Duration)>,
}

/// A token bucket: `rate` tokens per second up to `burst`, full at start.
#[derive(Debug, Default, Clone)]
pub(crate) struct TokenBucket {
    tokens: Option<f64>,
    last: Duration,
}

impl TokenBucket {
    /// Takes one token at `now` if there is one.
    pub(crate) fn take(&mut self, now: Duration, rate: u32, burst: u32) -> bool {
        let burst = f64::from(burst.max(1));
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = now;
        let tokens = (self.tokens.unwrap_or(burst) + elapsed * f64::from(rate)).min(burst);
        if tokens >= 1.0 {
            self.tokens = Some(tokens - 1.0);
            true
        } else {
            self.tokens = Some(tokens);
            false
        }
    }
}

impl Engine {
    /// Entries in the destination cache: discoveries in progress plus "not M6" entries.
    pub fn destination_cache_len(&self) -> usize {
        self.discoveries.len() + self.negative.len()
    }

    /// Whether traffic may start one more discovery now: a token of the lookup rate, then a
    /// free entry in the destination cache. The token is spent even when the cache refuses,
    /// so refusals cost no more work than admissions.
    pub(crate) fn admit_discovery(&mut self, now: Duration) -> bool {
        let cap = self.cfg.destination_cache_size.max(1);
        if !self.take_discovery_token(now) {
            return false;
        }
        self.destination_cache_len() < cap || self.evict_negative(cap - 1)
    }

    fn take_discovery_token(&mut self, now: Duration) -> bool {
        let rate = f64::from(self.cfg.discovery_per_second);
        let burst = f64::from(self.cfg.discovery_burst.max(1));
        let a = &mut self.admission;
        let elapsed = now.saturating_sub(a.last).as_secs_f64();
        a.last = now;
        let tokens = (a.tokens.unwrap_or(burst) + elapsed * rate).min(burst);
        if tokens >= 1.0 {
            a.tokens = Some(tokens - 1.0);
            true
        } else {
            a.tokens = Some(tokens);
            false
        }
    }

    /// Records "not M6 until `until`" for a peer AID within the cache bound (section 5.2
    /// negative caching).
    pub(crate) fn remember_not_m6(&mut self, aid_peer: Ipv6Addr, until: Duration) {
        let cap = self.cfg.destination_cache_size.max(1);
        if !self.negative.contains_key(&aid_peer) && self.destination_cache_len() >= cap {
            self.evict_negative(cap - 1);
        }
        if self.negative.contains_key(&aid_peer) || self.destination_cache_len() < cap {
            self.negative.insert(aid_peer, until);
            self.admission.order.push_back((aid_peer, until));
            // Stale elements (replaced or expired entries) are dropped now and then, so the
            // queue stays within a small multiple of the cache.
            if self.admission.order.len() > 2 * cap {
                let negative = &self.negative;
                self.admission
                    .order
                    .retain(|(a, u)| negative.get(a) == Some(u));
            }
        }
    }

    /// Drops the oldest negative entries until the cache holds at most `target`; false if
    /// pending discoveries alone are above it. Amortised O(1): each queued element is
    /// popped once.
    fn evict_negative(&mut self, target: usize) -> bool {
        while self.destination_cache_len() > target {
            let Some((aid, until)) = self.admission.order.pop_front() else {
                return false;
            };
            if self.negative.get(&aid) == Some(&until) {
                self.negative.remove(&aid);
            }
        }
        true
    }
}
