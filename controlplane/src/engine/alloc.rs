//! Cryptographic randomness (seedable for replay) and per-host flow label allocation.

use std::collections::HashMap;
use std::time::Duration;

use super::FlowLabel;

/// The engine's random generator: ChaCha20 (`rand_chacha::ChaCha20Rng`), a CSPRNG.
///
/// Nonces (section 7.2 "random \[RANDOM\] nonce"), F(local) and CC key material must be
/// unpredictable even to an attacker who has seen earlier outputs, so a non-cryptographic
/// generator (SplitMix64 and the like, whose output is invertible) is not acceptable: one
/// observed nonce would reveal every later nonce and flow label. The daemon seeds the
/// generator from the operating system ([`Rng::from_os`]); the tests and the simulation seed
/// it from a number ([`Rng::new`]) so a run replays exactly (docs/protocol.md section 10).
#[derive(Debug, Clone)]
pub struct Rng {
    inner: rand_chacha::ChaCha20Rng,
}

impl Rng {
    /// A deterministic generator starting from `seed` (tests and simulation only: a 64-bit
    /// seed is expanded to a 256-bit ChaCha key with `SeedableRng::seed_from_u64`).
    pub fn new(seed: u64) -> Rng {
        use rand_core::SeedableRng;
        Rng {
            inner: rand_chacha::ChaCha20Rng::seed_from_u64(seed),
        }
    }

    /// A generator keyed with 256 bits from the operating system (production).
    pub fn from_os() -> std::io::Result<Rng> {
        use rand_core::SeedableRng;
        Ok(Rng {
            inner: rand_chacha::ChaCha20Rng::try_from_os_rng()
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        rand_core::RngCore::next_u64(&mut self.inner)
    }

    /// Fills `buf` with random octets (CC key material).
    pub fn fill(&mut self, buf: &mut [u8]) {
        rand_core::RngCore::fill_bytes(&mut self.inner, buf);
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A uniform value in `0..n` (`n` > 0; returns 0 for `n` == 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: bias is below 2^-32 for the ranges used here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform duration in `0..=max`.
    pub fn duration_upto(&mut self, max: Duration) -> Duration {
        let ms = max.as_millis().min(u128::from(u64::MAX)) as u64;
        Duration::from_millis(self.below(ms.saturating_add(1)))
    }
}

/// Why a flow label is not free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Bound to a context in any state, CLOSING included.
    InUse,
    /// Released; not reused before this time so late packets of the old context cannot be
    /// taken for the new one.
    Quarantine(Duration),
}

/// F(local) allocation for one receiving host (seed 001 section 3.2: "unique per receiving
/// host", 20 bits).
///
/// A label is never handed out while a context (in any state, CLOSING included) holds it,
/// nor during a quarantine after release. Label 0 is never allocated: a zero flow label means
/// "no flow label" to every other IPv6 node (RFC 6437), so M6 data must not use it.
#[derive(Debug, Default, Clone)]
pub struct FlowLabels {
    slots: HashMap<u32, Slot>,
}

/// The largest 20-bit flow label.
pub const FLOW_LABEL_MAX: u32 = 0xf_ffff;

impl FlowLabels {
    /// Allocates a fresh label, random among the free ones; `None` when all 2^20 - 1 are
    /// taken or quarantined.
    pub fn allocate(&mut self, rng: &mut Rng, now: Duration) -> Option<FlowLabel> {
        // Random probes first: with the table far from full this almost always succeeds at
        // once, and random labels make off-path guessing of F(local) harder (section 13).
        for _ in 0..32 {
            let l = 1 + rng.below(u64::from(FLOW_LABEL_MAX)) as u32;
            if self.take(l, now) {
                return Some(FlowLabel::new_truncated(l));
            }
        }
        // Nearly full: scan from a random point.
        let start = 1 + rng.below(u64::from(FLOW_LABEL_MAX)) as u32;
        for i in 0..FLOW_LABEL_MAX {
            let l = 1 + (start - 1 + i) % FLOW_LABEL_MAX;
            if self.take(l, now) {
                return Some(FlowLabel::new_truncated(l));
            }
        }
        None
    }

    fn take(&mut self, l: u32, now: Duration) -> bool {
        match self.slots.get(&l) {
            Some(Slot::InUse) => false,
            Some(Slot::Quarantine(until)) if *until > now => false,
            _ => {
                self.slots.insert(l, Slot::InUse);
                true
            }
        }
    }

    /// Whether `label` is currently bound to a context.
    pub fn in_use(&self, label: FlowLabel) -> bool {
        matches!(self.slots.get(&label.value()), Some(Slot::InUse))
    }

    /// Releases `label`; it becomes allocatable again at `reusable_at`.
    pub fn release(&mut self, label: FlowLabel, reusable_at: Duration) {
        self.slots
            .insert(label.value(), Slot::Quarantine(reusable_at));
    }

    /// Drops expired quarantine entries (memory bound); called from time to time.
    pub fn expire(&mut self, now: Duration) {
        self.slots
            .retain(|_, s| !matches!(s, Slot::Quarantine(until) if *until <= now));
    }

    /// Number of labels bound to contexts.
    pub fn used(&self) -> usize {
        self.slots.values().filter(|s| **s == Slot::InUse).count()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert!(Rng::new(1).below(10) < 10);
        assert_eq!(Rng::new(1).below(0), 0);
    }

    /// Known answer: `Rng::new(seed)` is ChaCha20 keyed by `seed_from_u64(seed)`, not a
    /// SplitMix-style invertible generator.
    #[test]
    fn rng_is_chacha20() {
        use rand_core::{RngCore, SeedableRng};
        let mut ours = Rng::new(42);
        let mut reference = rand_chacha::ChaCha20Rng::seed_from_u64(42);
        for _ in 0..64 {
            assert_eq!(ours.next_u64(), reference.next_u64());
        }
        // Raw ChaCha20 known answer with the all-zero key and nonce (RFC 7539 2.3.2 style
        // test vector, block 0: 76 b8 e0 ad a0 f1 3d 90 ...).
        let mut zero = Rng {
            inner: rand_chacha::ChaCha20Rng::from_seed([0; 32]),
        };
        let mut b = [0u8; 8];
        zero.fill(&mut b);
        assert_eq!(b, [0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90]);
        // And the SplitMix64 step the old generator used does not predict the stream.
        let mut r = Rng::new(7);
        let a = r.next_u64();
        let b = r.next_u64();
        let splitmix = |mut z: u64| {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        assert_ne!(splitmix(7), a);
        assert_ne!(a, b);
        assert!(Rng::from_os().is_ok());
    }

    #[test]
    fn labels_are_unique_nonzero_20_bit() {
        let mut rng = Rng::new(1);
        let mut fl = FlowLabels::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5000 {
            let l = fl.allocate(&mut rng, Duration::ZERO).unwrap();
            assert!(l.value() != 0 && l.value() <= FLOW_LABEL_MAX);
            assert!(seen.insert(l.value()));
        }
        assert_eq!(fl.used(), 5000);
    }

    #[test]
    fn released_label_is_quarantined() {
        let mut rng = Rng::new(3);
        let mut fl = FlowLabels::default();
        let l = fl.allocate(&mut rng, Duration::ZERO).unwrap();
        fl.release(l, Duration::from_secs(10));
        assert!(!fl.in_use(l));
        assert!(!fl.take(l.value(), Duration::from_secs(9)));
        assert!(fl.take(l.value(), Duration::from_secs(10)));
    }

    #[test]
    fn exhaustion_returns_none_and_scan_finds_last_free() {
        let mut rng = Rng::new(5);
        let mut fl = FlowLabels::default();
        for l in 1..=FLOW_LABEL_MAX {
            if l != 777 {
                fl.slots.insert(l, Slot::InUse);
            }
        }
        assert_eq!(fl.allocate(&mut rng, Duration::ZERO).unwrap().value(), 777);
        assert!(fl.allocate(&mut rng, Duration::ZERO).is_none());
    }
}
