//! A bounded, seeded fuzz run of every fuzz target's body on the stable toolchain
//! (docs/fuzzing.md). cargo-fuzz needs nightly; this runs the same functions
//! (`proto::wire::fuzz_entry`) on random and mutated inputs derived from the golden vectors,
//! a few thousand per target, in well under 20 s, and fails on any panic.
//!
//! `M6_FUZZ_SMOKE_ITERS` changes the iteration count, `M6_FUZZ_SMOKE_SEED` the seed.

use std::path::Path;
use std::time::{Duration, Instant};

use proto::cc::CcEcho;
use proto::wire::fuzz_entry;
use proto::wire::m6::{IcmpTypes, Packet, Repr};

/// splitmix64: tiny, seeded, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "hex") {
            let text = std::fs::read_to_string(&p).unwrap();
            let digits: String = text.split_whitespace().collect();
            let b: Vec<u8> = (0..digits.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
                .collect();
            out.push(b);
        }
    }
    assert!(!out.is_empty());
    out
}

/// One structure-aware mutation of `b`.
fn mutate(rng: &mut Rng, b: &mut Vec<u8>) {
    match rng.below(10) {
        0 => {
            if !b.is_empty() {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            if !b.is_empty() {
                let i = rng.below(b.len());
                b[i] = rng.byte();
            }
        }
        2 => {
            let n = rng.below(b.len() + 1);
            b.truncate(n);
        }
        3 => {
            let i = rng.below(b.len() + 1);
            let n = 1 + rng.below(16);
            let extra = rng.bytes(n);
            b.splice(i..i, extra);
        }
        4 => {
            if !b.is_empty() {
                let i = rng.below(b.len());
                let n = 1 + rng.below(16);
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
        }
        5 => {
            // Interesting values in the length octets of the fixed part or of a TLV.
            let interesting = [0u8, 1, 2, 3, 5, 7, 8, 10, 0x7f, 0x80, 0xff];
            let v = interesting[rng.below(interesting.len())];
            let i = [1usize, 4, 5, 6, 7, 17, 18, 57, 65][rng.below(9)];
            if i < b.len() {
                b[i] = v;
            }
        }
        6 => {
            // Re-point the TLV area length at an 8-aligned spot inside the message.
            if b.len() >= 16 {
                let n = (rng.below(b.len() - 15) & !7) as u16;
                b[6..8].copy_from_slice(&n.to_be_bytes());
            }
        }
        7 => {
            // Duplicate an 8-octet aligned chunk of the TLV area (duplicate TLVs).
            if b.len() >= 24 {
                let i = 16 + (rng.below(b.len() - 16) & !7);
                let end = (i + 8 * (1 + rng.below(5))).min(b.len());
                let chunk = b[i..end].to_vec();
                b.splice(i..i, chunk.iter().copied());
                let n = u16::from_be_bytes([b[6], b[7]]).saturating_add(chunk.len() as u16);
                b[6..8].copy_from_slice(&n.to_be_bytes());
            }
        }
        8 => {
            // Code and next header.
            if b.len() > 4 {
                b[1] = rng.below(12) as u8;
                b[4] = [59u8, 41, 6, 17, 160, 0][rng.below(6)];
            }
        }
        _ => {
            let n = rng.below(64);
            b.extend(rng.bytes(n));
        }
    }
}

fn input_for(target: &str, rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let base = if rng.below(8) == 0 {
        let n = rng.below(300);
        rng.bytes(n)
    } else {
        // cc_echo wants CC/CCR messages (code 2 or 3) to start from.
        let pool: Vec<&Vec<u8>> = if target == "cc_echo" {
            seeds
                .iter()
                .filter(|s| matches!(s.get(1), Some(2 | 3)))
                .collect()
        } else {
            seeds.iter().collect()
        };
        let mut b = pool[rng.below(pool.len())].clone();
        let rounds = if rng.below(2) == 0 {
            1
        } else {
            1 + rng.below(4)
        };
        for _ in 0..rounds {
            mutate(rng, &mut b);
        }
        b
    };
    match target {
        "tlv_area" => base.get(16..).map(<[u8]>::to_vec).unwrap_or(base),
        "escape" => {
            let mut v = vec![rng.byte(), rng.byte()];
            if rng.below(2) == 0 {
                v[0] = 160;
                v[1] = 168;
            }
            let n = rng.below(24);
            let mut e = rng.bytes(n);
            if !e.is_empty() && rng.below(2) == 0 {
                e[0] = [6u8, 58, 44, 161, 175][rng.below(5)];
            }
            v.extend(e);
            v
        }
        "checksum" => {
            let mut v = rng.bytes(32);
            v.extend(base);
            v
        }
        _ => base,
    }
}

/// True if the input gets past parsing to the target's oracle (for the two targets that
/// have one), so the test can tell that the mutations are not all rejected early.
fn reaches_oracle(target: &str, input: &[u8]) -> bool {
    match target {
        "m6_message" => {
            let mut b = input.to_vec();
            if let Some(t) = b.first_mut() {
                *t = if *t & 1 == 0 { 200 } else { 201 };
            }
            if b.len() < 4 {
                return false;
            }
            let (s, d) = fuzz_entry::ADDRESSES;
            Packet::new_unchecked(&mut b[..]).fill_checksum(&s, &d);
            let p = Packet::new_unchecked(&b[..]);
            Repr::parse(&p, &s, &d, &IcmpTypes::default()).is_ok()
        }
        "cc_echo" => {
            let p = Packet::new_unchecked(input);
            p.check_len().is_ok() && CcEcho::from_packet(&p).is_ok()
        }
        _ => false,
    }
}

#[test]
fn fuzz_targets_survive_a_bounded_run() {
    let iters: usize = std::env::var("M6_FUZZ_SMOKE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("M6_FUZZ_SMOKE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x4d36_f022);
    // Whole run stays well below 20 s even in a debug build on a loaded 2-core machine.
    let budget = Duration::from_secs(15);
    let per_target = budget / fuzz_entry::TARGETS.len() as u32;
    let seeds = seeds();
    for (t, target) in fuzz_entry::TARGETS.iter().enumerate() {
        let mut rng = Rng(seed ^ (t as u64).wrapping_mul(0x1000_0000_01b3));
        let start = Instant::now();
        let mut ran = 0;
        let mut deep = 0;
        while ran < iters && start.elapsed() < per_target {
            let input = input_for(target, &mut rng, &seeds);
            deep += usize::from(reaches_oracle(target, &input));
            let r = std::panic::catch_unwind(|| fuzz_entry::run(target, &input));
            match r {
                Ok(known) => assert!(known, "no fuzz entry {target}"),
                Err(_) => panic!(
                    "fuzz target {target} panicked on input {:02x?} (seed {seed}, iteration {ran})",
                    input
                ),
            }
            ran += 1;
        }
        println!(
            "{target}: {ran} inputs in {:?}, {deep} reached the round-trip/MAC oracle",
            start.elapsed()
        );
        assert!(
            ran >= 500.min(iters),
            "{target}: only {ran} inputs ran within the budget"
        );
        if matches!(*target, "m6_message" | "cc_echo") {
            // The mutator must keep a fair share of inputs valid, or the oracles go untested.
            assert!(
                deep * 20 >= ran,
                "{target}: only {deep} of {ran} inputs parsed"
            );
        }
    }
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
    for t in fuzz_entry::TARGETS {
        let f = dir.join(format!("{t}.rs"));
        let src = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            src.contains(&format!("fuzz_entry::{t}(")),
            "{} does not call fuzz_entry::{t}",
            f.display()
        );
    }
    assert!(!fuzz_entry::run("no_such_target", &[]));
}
