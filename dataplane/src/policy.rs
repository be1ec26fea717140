//! Traffic engineering at one point (seed 002 section 2; DESIGN section 5): which ISP a
//! rewritable or proxied flow leaves through.
//!
//! - **Rules** (`policy:` in the configuration), first match on the destination: `prefer`
//!   some ISPs, `avoid` some, or use `only` some.
//! - **A weighted hash** of the flow over the ISPs the rule leaves eligible. The hash is
//!   rendezvous hashing (highest random weight) with weights, precomputed: each of
//!   [`SLOTS`] slots ranks every ISP by `weight / -ln(u)` where `u` is a per-(slot, ISP)
//!   pseudo-random number in (0, 1). A flow hashes to a slot and takes the first ISP of
//!   that slot's ranking that is eligible. So a flow keeps its ISP while that ISP is
//!   eligible; when one fails, only the flows it carried move (each to its slot's next
//!   choice, spread by weight over the rest), and they come back when it recovers. An ISP
//!   of weight 0 ranks last everywhere: a backup used only when no weighted ISP is
//!   eligible.
//!
//! The per-packet cost is one rule scan (a handful of prefixes), one mask and usually one
//! step into the ranking. The table is built by the control thread, which owns the
//! policy, and published with the ISP state ([`crate::isp::IspView`]), so a reload changes
//! it between bursts.

use crate::net::addr::Addr;
use crate::site::Masked;
pub use proto::config::{PolicyAction, PolicyRule};

/// Slots of the ranking table: a power of two; weights are met to about
/// `1 / sqrt(SLOTS)` of the traffic (under 2 %).
pub const SLOTS: usize = 4096;
/// ISPs a policy ranks (the width of its masks).
pub const MAX_ISPS: usize = 64;

#[derive(Clone, Debug)]
struct Rule {
    prefix: Masked,
    action: PolicyAction,
    isps: u64,
}

/// Rules and the ranking table for one set of weights.
#[derive(Clone, Debug)]
pub struct Policy {
    n: usize,
    /// `ranking[slot * n + k]`: the slot's k-th choice.
    ranking: Box<[u8]>,
    rules: Vec<Rule>,
    weights: Vec<u32>,
}

impl Policy {
    /// The policy for ISPs of `weights` (configuration order; the first [`MAX_ISPS`]
    /// count) and `rules` (ISP indices beyond them are ignored).
    pub fn new(weights: &[u32], rules: &[PolicyRule]) -> Policy {
        let n = weights.len().min(MAX_ISPS);
        let mut ranking = Vec::with_capacity(SLOTS * n);
        let mut order: Vec<(f64, usize)> = Vec::with_capacity(n);
        for slot in 0..SLOTS {
            order.clear();
            for (i, &w) in weights.iter().take(n).enumerate() {
                let u = unit(slot as u64, i as u64);
                order.push((f64::from(w) / -u.ln(), i));
            }
            // Highest score first; equal scores (weight 0) in configuration order.
            order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            ranking.extend(order.iter().map(|&(_, i)| i as u8));
        }
        let rules = rules
            .iter()
            .map(|r| Rule {
                prefix: Masked::new(&r.prefix),
                action: r.action,
                isps: r
                    .isps
                    .iter()
                    .filter(|&&i| i < n)
                    .fold(0u64, |m, &i| m | 1 << i),
            })
            .collect();
        Policy {
            n,
            ranking: ranking.into_boxed_slice(),
            rules,
            weights: weights.iter().take(n).copied().collect(),
        }
    }

    /// The weights this policy was built for.
    pub fn weights(&self) -> &[u32] {
        &self.weights
    }

    /// The ISPs a flow to `dst` may use, given the `eligible` ones (bit i: ISP i), after
    /// the first rule matching `dst`.
    #[inline]
    pub fn allowed(&self, eligible: u64, dst: Addr) -> u64 {
        let Some(r) = self.rules.iter().find(|r| r.prefix.contains(dst)) else {
            return eligible;
        };
        match r.action {
            PolicyAction::Only => eligible & r.isps,
            PolicyAction::Prefer if eligible & r.isps != 0 => eligible & r.isps,
            PolicyAction::Avoid if eligible & !r.isps != 0 => eligible & !r.isps,
            PolicyAction::Prefer | PolicyAction::Avoid => eligible,
        }
    }

    /// The ISP for a flow of `hash` among `allowed` (bit i: ISP i): the first of its
    /// slot's ranking that is allowed; `None` when none is.
    #[inline]
    pub fn rank(&self, allowed: u64, hash: u64) -> Option<usize> {
        if allowed == 0 {
            return None;
        }
        let slot = (hash as usize) & (SLOTS - 1);
        let order = self.ranking.get(slot * self.n..(slot + 1) * self.n)?;
        order
            .iter()
            .map(|&i| usize::from(i))
            .find(|&i| allowed >> i & 1 == 1)
    }

    /// [`Self::allowed`] then [`Self::rank`].
    #[inline]
    pub fn choose(&self, eligible: u64, dst: Addr, hash: u64) -> Option<usize> {
        self.rank(self.allowed(eligible, dst), hash)
    }
}

/// A pseudo-random number in (0, 1) for (slot, ISP), fixed for ever (splitmix64), so that
/// every worker and every restart ranks alike.
fn unit(slot: u64, isp: u64) -> f64 {
    let mut z = slot
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(isp.wrapping_mul(0xd1b5_4a32_d192_ed03))
        .wrapping_add(0x632b_e59b_d9b4_e019);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::addr;
    use crate::nodes::rewrite::flow_hash;

    const FLOWS: u32 = 100_000;

    fn a(s: &str) -> Addr {
        addr::from_std(&s.parse().unwrap())
    }

    fn hashes() -> impl Iterator<Item = u64> {
        let (src, dst) = (a("2001:db8:1:1::10"), a("2001:db8:99::1"));
        (0..FLOWS).map(move |f| flow_hash(src + u128::from(f % 7), dst, f))
    }

    fn shares(p: &Policy, eligible: u64) -> Vec<f64> {
        let mut n = vec![0u32; p.n];
        for h in hashes() {
            n[p.choose(eligible, 0, h).unwrap()] += 1;
        }
        n.iter().map(|&c| f64::from(c) / f64::from(FLOWS)).collect()
    }

    /// Weights are met within 2 percentage points over 100,000 flows.
    #[test]
    fn weights_are_met_within_two_points() {
        for weights in [vec![1, 1], vec![3, 1], vec![1, 2, 5], vec![10, 0, 10]] {
            let p = Policy::new(&weights, &[]);
            let total: u32 = weights.iter().sum();
            let got = shares(&p, (1 << weights.len()) - 1);
            for (i, &w) in weights.iter().enumerate() {
                let want = f64::from(w) / f64::from(total);
                assert!(
                    (got[i] - want).abs() < 0.02,
                    "weights {weights:?}: ISP {i} got {:.3}, want {want:.3}",
                    got[i]
                );
            }
        }
    }

    /// A flow keeps its ISP; when one ISP fails only its flows move, spread over the rest
    /// by weight; when it recovers they come back.
    #[test]
    fn only_the_failed_isps_flows_move() {
        let p = Policy::new(&[1, 2, 1], &[]);
        let all = 0b111;
        let before: Vec<usize> = hashes().map(|h| p.choose(all, 0, h).unwrap()).collect();
        let again: Vec<usize> = hashes().map(|h| p.choose(all, 0, h).unwrap()).collect();
        assert_eq!(before, again, "sticky");
        let without_1: Vec<usize> = hashes().map(|h| p.choose(0b101, 0, h).unwrap()).collect();
        let mut moved = [0u32; 3];
        for (b, a) in before.iter().zip(&without_1) {
            if b != a {
                assert_eq!(*b, 1, "a flow of a healthy ISP moved");
                moved[*a] += 1;
            } else {
                assert_ne!(*a, 1);
            }
        }
        let carried = before.iter().filter(|&&i| i == 1).count() as u32;
        assert_eq!(moved[0] + moved[2], carried, "every flow of ISP 1 moved");
        let ratio = f64::from(moved[0]) / f64::from(carried);
        assert!((ratio - 0.5).abs() < 0.02, "spread 1:1, got {ratio:.3}");
        let back: Vec<usize> = hashes().map(|h| p.choose(all, 0, h).unwrap()).collect();
        assert_eq!(before, back, "recovery restores every flow");
    }

    #[test]
    fn weight_zero_is_a_backup() {
        let p = Policy::new(&[0, 1], &[]);
        assert!(hashes().all(|h| p.choose(0b11, 0, h) == Some(1)));
        assert!(hashes().all(|h| p.choose(0b01, 0, h) == Some(0)));
        assert_eq!(p.choose(0, 0, 7), None);
    }

    #[test]
    fn rules_match_first_and_hold_under_the_hash() {
        let rule = |prefix: &str, action, isps: Vec<usize>| PolicyRule {
            prefix: prefix.parse().unwrap(),
            action,
            isps,
        };
        let p = Policy::new(
            &[3, 1, 1],
            &[
                rule("2001:db8:3::/48", PolicyAction::Only, vec![1]),
                rule("2001:db8::/32", PolicyAction::Avoid, vec![0]),
                rule("2001:db9::/32", PolicyAction::Prefer, vec![2]),
            ],
        );
        let (x, other, pref) = (a("2001:db8:3::5"), a("2001:db8:77::1"), a("2001:db9::1"));
        for h in hashes() {
            assert_eq!(p.choose(0b111, x, h), Some(1), "only: first match wins");
            assert_eq!(p.choose(0b101, x, h), None, "only, none eligible");
            assert_ne!(p.choose(0b111, other, h), Some(0), "avoid");
            assert_eq!(p.choose(0b001, other, h), Some(0), "avoid, nothing else");
            assert_eq!(p.choose(0b111, pref, h), Some(2), "prefer");
            assert!(p.choose(0b011, pref, h).is_some(), "prefer, preferred down");
        }
    }
}
