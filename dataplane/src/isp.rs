//! Whether each ISP can carry traffic now, with one owner.
//!
//! Three causes take an ISP out of service: the operator (`admin: down`), the link (carrier
//! lost, polled by the control thread), and its next hop (it stopped answering Neighbor
//! Discovery: [`crate::neighbor::owner`] reports it). [`IspOwner`] (the control thread) holds
//! them, logs every change with its cause, and publishes the combined state to the workers
//! through [`crate::tables`]; the egress stage reads [`IspLive::usable`].

use std::sync::Arc;

use crate::policy::{Policy, PolicyRule, MAX_ISPS};
use crate::site::Site;
use crate::tables::{Reader, Whole, Writer};
use proto::config::DampeningConfig;

/// One ISP's state as the workers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IspLive {
    pub admin_up: bool,
    pub link_up: bool,
    /// The next hop answers Neighbor Discovery (true while unknown).
    pub next_hop_up: bool,
    /// The health probes through it are answered (true without beacons).
    pub probes_up: bool,
    /// Held withdrawn by flap dampening.
    pub suppressed: bool,
    /// Drained by the operator: carries no rewritable or proxied flow, but still the
    /// traffic only it can carry (sources under its prefix).
    pub drained: bool,
}

impl IspLive {
    /// An ISP with every cause up.
    pub const UP: IspLive = IspLive {
        admin_up: true,
        link_up: true,
        next_hop_up: true,
        probes_up: true,
        suppressed: false,
        drained: false,
    };

    /// Whether the ISP may carry traffic.
    #[inline]
    pub fn usable(&self) -> bool {
        self.admin_up && self.link_up && self.next_hop_up && self.probes_up && !self.suppressed
    }

    /// Whether the ISP may take rewritable and proxied flows (usable and not drained).
    #[inline]
    pub fn eligible(&self) -> bool {
        self.usable() && !self.drained
    }

    /// The first cause that withdraws it, as logged and shown (`None`: usable).
    pub fn cause(&self) -> Option<&'static str> {
        [
            (!self.admin_up, "admin down"),
            (!self.link_up, "link down"),
            (!self.next_hop_up, "next hop down"),
            (!self.probes_up, "probes failing"),
            (self.suppressed, "dampened"),
        ]
        .into_iter()
        .find_map(|(c, w)| c.then_some(w))
    }
}

/// What the workers read: each ISP's state, the eligible ones as a mask, and the traffic
/// engineering policy.
#[derive(Clone, Debug)]
pub struct IspView {
    /// Each ISP's state, in configuration order.
    pub live: Vec<IspLive>,
    /// Bit i: ISP i is [`IspLive::eligible`].
    pub eligible: u64,
    /// Bit i: ISP i is [`IspLive::usable`].
    pub usable: u64,
    pub policy: Arc<Policy>,
}

/// The published table.
pub type IspTable = Whole<IspView>;

/// A health cause's penalty, decayed (RFC 2439 section 4.2, figure of merit).
#[derive(Clone, Copy, Debug, Default)]
struct Damping {
    penalty: f64,
    /// When `penalty` was last brought up to date (ns).
    at: u64,
}

/// The single writer of the ISP state.
pub struct IspOwner {
    names: Vec<String>,
    live: Vec<IspLive>,
    damping: Vec<Damping>,
    dampening: DampeningConfig,
    policy: Arc<Policy>,
    /// Withdrawals for a health cause, per ISP (a flap count for operators).
    withdrawals: Vec<u64>,
    writer: Writer<IspTable>,
}

impl IspOwner {
    /// Every ISP as configured (admin state from the file), every other cause up.
    pub fn new(site: &Site) -> IspOwner {
        let live: Vec<IspLive> = site
            .isps
            .iter()
            .map(|s| IspLive {
                admin_up: s.admin_up,
                ..IspLive::UP
            })
            .collect();
        let weights: Vec<u32> = site.isps.iter().map(|s| s.weight).collect();
        let policy = Arc::new(Policy::new(&weights, &site.policy));
        let view = view(&live, &policy);
        IspOwner {
            names: site.isps.iter().map(|s| s.name.clone()).collect(),
            damping: vec![Damping::default(); live.len()],
            dampening: site.health.dampening,
            withdrawals: vec![0; live.len()],
            writer: Writer::new(Whole(view), 64),
            policy,
            live,
        }
    }

    /// A reader for one more worker.
    pub fn reader(&mut self) -> Reader<IspTable> {
        self.writer.reader()
    }

    /// The state of ISP `isp`.
    pub fn get(&self, isp: usize) -> Option<IspLive> {
        self.live.get(isp).copied()
    }

    /// What the workers read now.
    pub fn view(&self) -> IspView {
        view(&self.live, &self.policy)
    }

    /// Every ISP's name, in configuration order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The current policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Withdrawals of ISP `isp` for a health cause since start.
    pub fn withdrawals(&self, isp: usize) -> u64 {
        self.withdrawals.get(isp).copied().unwrap_or(0)
    }

    /// ISP `isp`'s dampening penalty at `now` (ns).
    pub fn penalty(&self, isp: usize, now: u64) -> f64 {
        self.damping.get(isp).map_or(0.0, |d| self.decayed(d, now))
    }

    /// Replaces the weights and rules (a reload); flows move only where the new ranking
    /// differs.
    pub fn set_policy(
        &mut self,
        weights: &[u32],
        rules: &[PolicyRule],
        dampening: DampeningConfig,
    ) {
        self.policy = Arc::new(Policy::new(weights, rules));
        self.dampening = dampening;
        self.publish();
    }

    /// Sets the link state at `now` (ns); returns a log line if it changed.
    pub fn set_link(&mut self, isp: usize, up: bool, now: u64) -> Option<String> {
        self.change(isp, |l| &mut l.link_up, up, "link", now)
    }

    /// Sets the administrative state; returns a log line if it changed.
    pub fn set_admin(&mut self, isp: usize, up: bool) -> Option<String> {
        self.change(isp, |l| &mut l.admin_up, up, "admin", 0)
    }

    /// Sets whether the next hop answers, at `now` (ns); returns a log line if it changed.
    pub fn set_next_hop(&mut self, isp: usize, up: bool, now: u64) -> Option<String> {
        self.change(isp, |l| &mut l.next_hop_up, up, "next hop", now)
    }

    /// Sets whether the health probes are answered, at `now` (ns); returns a log line if it
    /// changed.
    pub fn set_probes(&mut self, isp: usize, up: bool, now: u64) -> Option<String> {
        self.change(isp, |l| &mut l.probes_up, up, "probes", now)
    }

    /// Drains (`true`) or undrains ISP `isp`; returns a log line if it changed.
    pub fn set_drained(&mut self, isp: usize, drained: bool) -> Option<String> {
        let l = self.live.get_mut(isp)?;
        if l.drained == drained {
            return None;
        }
        l.drained = drained;
        self.publish();
        let name = self.names.get(isp).map_or("?", |n| n.as_str());
        Some(format!(
            "isp {name} {}",
            if drained { "drained" } else { "undrained" }
        ))
    }

    /// Releases ISPs whose dampening penalty has decayed below the reuse threshold at `now`
    /// (ns); returns the log lines.
    pub fn tick(&mut self, now: u64) -> Vec<String> {
        let mut lines = Vec::new();
        for i in 0..self.live.len() {
            if self.live[i].suppressed
                && self.decayed(&self.damping[i], now) < f64::from(self.dampening.reuse)
            {
                if let Some(line) = self.change(i, |l| &mut l.suppressed, true, "dampening", now) {
                    lines.push(line);
                }
            }
        }
        lines
    }

    /// Resends the table to workers that fell behind.
    pub fn flush(&mut self) -> usize {
        self.writer.flush()
    }

    fn publish(&mut self) {
        self.writer.publish(view(&self.live, &self.policy));
    }

    fn decayed(&self, d: &Damping, now: u64) -> f64 {
        let half_life = self.dampening.half_life_ms.max(1) as f64 * 1e6;
        d.penalty * 0.5f64.powf(now.saturating_sub(d.at) as f64 / half_life)
    }

    /// A withdrawal for a health cause at `now`: adds the penalty (capped so that a
    /// suppression lasts at most `max_suppress_ms`); returns whether it now suppresses.
    fn penalise(&mut self, isp: usize, now: u64) -> bool {
        let d = &self.dampening;
        let ceiling =
            f64::from(d.reuse) * 2f64.powf(d.max_suppress_ms as f64 / d.half_life_ms.max(1) as f64);
        let (enabled, penalty, suppress) = (d.enabled, f64::from(d.penalty), d.suppress);
        let Some(old) = self.damping.get(isp).copied() else {
            return false;
        };
        let p = (self.decayed(&old, now) + penalty).min(ceiling);
        self.damping[isp] = Damping {
            penalty: p,
            at: now,
        };
        enabled && p > f64::from(suppress)
    }

    fn change(
        &mut self,
        isp: usize,
        field: impl Fn(&mut IspLive) -> &mut bool,
        up: bool,
        cause: &str,
        now: u64,
    ) -> Option<String> {
        let l = self.live.get_mut(isp)?;
        let was = l.usable();
        let f = field(l);
        // `suppressed` is the one field whose "up" is false.
        let value = if cause == "dampening" { !up } else { up };
        if *f == value {
            return None;
        }
        *f = value;
        let mut now_usable = l.usable();
        let health = matches!(cause, "link" | "next hop" | "probes");
        let mut damped = false;
        if health && !up && (was || self.live[isp].suppressed) {
            // A flap: counted while suppressed too, which holds a flapping ISP down
            // (RFC 2439 section 4.2).
            if was {
                if let Some(w) = self.withdrawals.get_mut(isp) {
                    *w += 1;
                }
            }
            if self.penalise(isp, now) && !self.live[isp].suppressed {
                self.live[isp].suppressed = true;
                damped = true;
            }
        } else if !was && now_usable && health && self.dampening.enabled {
            // Recovering: still suppressed if the penalty has not decayed to the reuse
            // threshold.
            let p = self.penalty(isp, now);
            if p > f64::from(self.dampening.suppress) {
                self.live[isp].suppressed = true;
                now_usable = false;
                damped = true;
            }
        }
        self.publish();
        let name = self.names.get(isp).map_or("?", |n| n.as_str());
        let word = |b: bool| if b { "up" } else { "down" };
        let what = if cause == "dampening" {
            "dampening released".to_string()
        } else {
            format!("{cause} {}", word(up))
        };
        let tail = if damped {
            format!(
                ", dampened: penalty {:.0} over {}",
                self.penalty(isp, now),
                self.dampening.suppress
            )
        } else {
            String::new()
        };
        Some(if was != now_usable {
            format!(
                "isp {name} {} ({what}{tail})",
                if now_usable { "restored" } else { "withdrawn" },
            )
        } else {
            format!(
                "isp {name}: {what} (still {}{tail})",
                if now_usable { "usable" } else { "withdrawn" }
            )
        })
    }
}

fn view(live: &[IspLive], policy: &Arc<Policy>) -> IspView {
    let mask = |f: fn(&IspLive) -> bool| {
        live.iter()
            .take(MAX_ISPS)
            .enumerate()
            .filter(|(_, l)| f(l))
            .fold(0u64, |m, (i, _)| m | 1 << i)
    };
    IspView {
        live: live.to_vec(),
        eligible: mask(IspLive::eligible),
        usable: mask(IspLive::usable),
        policy: Arc::clone(policy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::two_isp_site;

    #[test]
    fn changes_are_published_and_logged_with_their_cause() {
        let mut o = IspOwner::new(&two_isp_site());
        let mut r = o.reader();
        assert!(r.get().0.live.iter().all(|l| l.usable()));
        assert_eq!(r.get().0.eligible, 0b11);
        assert_eq!(o.set_link(0, true, 0), None, "no change, no log");
        assert_eq!(
            o.set_next_hop(0, false, 0).as_deref(),
            Some("isp isp1 withdrawn (next hop down)")
        );
        assert_eq!(
            o.set_link(0, false, 0).as_deref(),
            Some("isp isp1: link down (still withdrawn)")
        );
        r.sync();
        assert!(!r.get().0.live[0].usable());
        assert!(r.get().0.live[1].usable());
        assert_eq!(r.get().0.eligible, 0b10);
        o.set_next_hop(0, true, 0);
        assert_eq!(
            o.set_link(0, true, 0).as_deref(),
            Some("isp isp1 restored (link up)")
        );
        r.sync();
        assert!(r.get().0.live[0].usable());
        assert_eq!(o.set_admin(7, false), None);
        assert_eq!(o.set_drained(1, true).as_deref(), Some("isp isp2 drained"));
        r.sync();
        assert!(r.get().0.live[1].usable() && !r.get().0.live[1].eligible());
        assert_eq!(r.get().0.eligible, 0b01);
    }

    const S: u64 = 1_000_000_000;

    /// A link flapping every second is withdrawn three times with the defaults (penalty
    /// 1000, suppress 2000, half-life 15 s), then held down while it flaps, and released
    /// once the penalty decays below 750.
    #[test]
    fn a_flapping_isp_is_dampened_then_released() {
        let mut o = IspOwner::new(&two_isp_site());
        let mut withdrawn = 0;
        for k in 0..60u64 {
            if let Some(l) = o.set_link(0, false, k * S) {
                withdrawn += usize::from(l.contains("withdrawn ("));
            }
            o.set_link(0, true, k * S + S / 2);
            o.tick(k * S + S / 2);
        }
        assert_eq!(withdrawn, 3, "withdrawn before suppression");
        assert_eq!(o.withdrawals(0), 3);
        let l = o.get(0).unwrap();
        assert!(l.link_up && l.suppressed && !l.usable());
        // Capped at reuse * 2^(60/15) = 12000: released within max_suppress (60 s).
        let mut t = 60 * S;
        while o.get(0).unwrap().suppressed {
            o.tick(t);
            t += S / 10;
            assert!(t < 121 * S, "still suppressed at {t}");
        }
        assert!(t > 100 * S, "released after {} s", t / S);
        assert!(o.get(0).unwrap().usable());
        // Admin changes never count.
        o.set_admin(1, false);
        o.set_admin(1, true);
        assert_eq!(o.withdrawals(1), 0);
    }
}
