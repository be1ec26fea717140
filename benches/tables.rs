//! How workers should read the control thread's tables (issue 7 item 1: "replicas updated
//! between bursts, or an RCU publication: measure and choose"). Both read sides and both
//! write sides, measured side by side on the same table of N neighbors:
//!
//! - `read/replica`: a burst of 32 lookups in the worker's own replica
//!   (`dataplane::tables::Reader`, what the dataplane uses), after `sync()`;
//! - `read/rcu`: the same lookups through an `arc_swap::ArcSwap` guard taken once per burst
//!   (RCU publication of a shared, immutable table);
//! - `write/replica`: one change published to 2 workers' replicas and applied by both;
//! - `write/rcu`: the same change as copy-on-write of the whole table, then a swap.
//!
//! Run: `cargo bench -p dataplane --bench tables`. The ratios, not the absolute times, are
//! the result (docs/architecture.md, "tables").

use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use dataplane::neighbor::{Neighbor, NeighborOp, NeighborTable, Reach};
use dataplane::tables::{Table, Writer};

const BURST: usize = 32;

fn table(n: usize) -> NeighborTable {
    let mut t = NeighborTable::new(1, n);
    for i in 0..n as u128 {
        t.apply(&NeighborOp::Set {
            port: 0,
            ip: (0x2001_0db8_0001_0001u128 << 64) | i,
            neighbor: Neighbor {
                mac: [2, 0, 0, 0, 0, 1],
                reach: Reach::Reachable,
            },
        });
    }
    t
}

fn keys(n: usize) -> Vec<u128> {
    let mut x: u64 = 88172645463325252;
    (0..BURST)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (0x2001_0db8_0001_0001u128 << 64) | u128::from(x % n as u64)
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    for n in [1_000usize, 100_000] {
        let keys = keys(n);
        let mut w = Writer::new(table(n), 1024);
        let mut r = w.reader();
        let rcu = ArcSwap::from_pointee(table(n));
        let mut group = c.benchmark_group("read");
        group.bench_with_input(BenchmarkId::new("replica", n), &keys, |b, keys| {
            b.iter(|| {
                r.sync();
                let t = r.get();
                let mut hits = 0;
                for k in keys {
                    hits += usize::from(t.get(0, *k).is_some());
                }
                black_box(hits)
            })
        });
        group.bench_with_input(BenchmarkId::new("rcu", n), &keys, |b, keys| {
            b.iter(|| {
                let t = rcu.load();
                let mut hits = 0;
                for k in keys {
                    hits += usize::from(t.get(0, *k).is_some());
                }
                black_box(hits)
            })
        });
        group.finish();

        let mut group = c.benchmark_group("write");
        group.sample_size(10);
        let mut r2 = w.reader();
        let op = NeighborOp::Set {
            port: 0,
            ip: 7,
            neighbor: Neighbor {
                mac: [2, 0, 0, 0, 0, 2],
                reach: Reach::Stale,
            },
        };
        group.bench_with_input(BenchmarkId::new("replica", n), &op, |b, op| {
            b.iter(|| {
                w.publish(*op);
                r.sync();
                r2.sync();
            })
        });
        group.bench_with_input(BenchmarkId::new("rcu", n), &op, |b, op| {
            b.iter(|| {
                let mut copy = NeighborTable::clone(&rcu.load());
                copy.apply(op);
                rcu.store(Arc::new(copy));
            })
        });
        group.finish();
    }
}

criterion_group!(tables, benches);
criterion_main!(tables);
