//! (r) Adversarial inputs to `Ring`, `Port::from_rings`, `Mempool::with_private` and
//! `Mbuf::private`: every edge is either refused with a readable error or handled without
//! losing, duplicating or double-freeing an mbuf (pool counts checked after each step).
//!
//! One EAL per process, so one #[test]. Two of its checks pinned bugs found here: count 0
//! made a ring over no memory (enqueues wrote past it), and more than 16 TX rings overran
//! the ring PMD's fixed array (DPDK 22.11 checks only the RX count).
mod common;

use dpdk_bindings::{free_bulk, Error, Mbuf, Mempool, Port, PortConfig, Ring};

/// Unwraps an error and checks its message names everything in `words`.
fn expect_err<T: std::fmt::Debug>(r: Result<T, Error>, words: &[&str]) -> Error {
    let e = r.expect_err("must fail");
    let msg = e.to_string();
    eprintln!("error as expected: {msg}");
    for w in words {
        assert!(msg.contains(w), "{msg:?} should mention {w:?}");
    }
    e
}

/// `n` mbufs from `pool`, each tagged with `first + i` in its private area (8 bytes).
fn tagged(pool: &Mempool, first: u64, n: u64) -> Vec<Mbuf> {
    (first..first + n)
        .map(|t| {
            let mut m = Mbuf::from_slice(pool, &common::frame(t as usize)).expect("alloc");
            m.private_mut().copy_from_slice(&t.to_le_bytes());
            m
        })
        .collect()
}

fn tags(mbufs: &[Mbuf]) -> Vec<u64> {
    mbufs
        .iter()
        .map(|m| u64::from_le_bytes(m.private().try_into().expect("8-byte private area")))
        .collect()
}

fn small_cfg() -> PortConfig {
    PortConfig {
        rx_desc: 64,
        tx_desc: 64,
        ..PortConfig::default()
    }
}

#[test]
fn rings_ring_ports_and_private_areas_survive_adversarial_inputs() {
    let eal = common::eal(&[]);
    // No per-lcore cache, so avail_count is exact at every step.
    let pool = Mempool::with_private("adv_pool", 1023, 0, 8, Mempool::DEFAULT_DATA_ROOM)
        .expect("pool with an 8-byte private area");
    let start = pool.avail_count();
    assert_eq!(start, 1023);

    // ---- Mempool::with_private sizes and Mbuf::private ----------------------------------
    let plain = Mempool::with_private("adv_priv0", 63, 0, 0, Mempool::DEFAULT_DATA_ROOM)
        .expect("private area 0 is the plain pool");
    let mut m = plain.alloc().expect("alloc");
    assert!(m.private().is_empty(), "no private area without priv_size");
    assert!(m.private_mut().is_empty());
    drop(m);
    let plain_new = Mempool::new("adv_plain", 63, 0, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    assert!(plain_new.alloc().expect("alloc").private().is_empty());
    for bad in [7u16, 1, 4, 65535] {
        let e = expect_err(
            Mempool::with_private("adv_priv_bad", 63, 0, bad, Mempool::DEFAULT_DATA_ROOM),
            &[
                "rte_pktmbuf_pool_create",
                "adv_priv_bad",
                &format!("private area {bad}"),
            ],
        );
        assert_eq!(e.errno(), Some(libc::EINVAL), "priv_size {bad}");
    }
    // The largest legal private area (65528, a multiple of 8 in a u16): the whole area is
    // writable and ends before the packet buffer.
    let huge = Mempool::with_private("adv_priv_max", 15, 0, 65528, Mempool::DEFAULT_DATA_ROOM)
        .expect("priv_size 65528");
    let frame = common::frame(3);
    let mut m = Mbuf::from_slice(&huge, &frame).expect("alloc");
    assert_eq!(m.private().len(), 65528);
    m.private_mut().fill(0xa5);
    let priv_end = m.private().as_ptr_range().end;
    let buf_start = m.data().as_ptr().wrapping_sub(m.headroom());
    assert!(priv_end <= buf_start, "private area overlaps the buffer");
    assert_eq!(
        m.data(),
        frame.as_slice(),
        "filling the private area left data intact"
    );
    assert!(m.private().iter().all(|&b| b == 0xa5));
    drop(m);
    assert_eq!(huge.avail_count(), 15);

    // ---- Ring names ---------------------------------------------------------------------
    let r28 = Ring::new(&"n".repeat(28), 64).expect("28-byte name is the documented limit");
    for len in [29, 40] {
        let name = "n".repeat(len);
        let e = expect_err(Ring::new(&name, 64), &["rte_ring_create", &name]);
        assert_eq!(e.errno(), Some(libc::ENAMETOOLONG), "{len}-byte name");
    }
    expect_err(Ring::new("nul\0ring", 64), &["rte_ring_create", "NUL"]);
    let e = expect_err(Ring::new(&"n".repeat(28), 64), &["rte_ring_create"]);
    assert_eq!(e.errno(), Some(libc::EEXIST));
    // Surprising but not unsound: DPDK takes an empty name, and a pool's internal ring
    // ("MP_" + pool name) occupies that ring name.
    let empty = Ring::new("", 64).expect("DPDK accepts an empty ring name");
    let e = expect_err(Ring::new("MP_adv_pool", 64), &["rte_ring_create"]);
    assert_eq!(e.errno(), Some(libc::EEXIST));
    drop((r28, empty));
    // Freed rings give their names back.
    drop(Ring::new(&"n".repeat(28), 64).expect("name free again after drop"));

    // ---- Ring counts ----------------------------------------------------------------------
    for bad in [3u32, 1000, (1 << 31) + 1, u32::MAX] {
        expect_err(
            Ring::new("adv_bad_count", bad),
            &["rte_ring_create", "adv_bad_count", "power of two"],
        );
    }
    // A power of two beyond DPDK's largest ring: DPDK's EINVAL.
    let e = expect_err(
        Ring::new("adv_bad_count", 1 << 31),
        &["rte_ring_create", "adv_bad_count"],
    );
    assert_eq!(e.errno(), Some(libc::EINVAL), "count 2^31");
    // (No probe of ENOMEM: asking for gigabytes of slots makes EAL take every free hugepage
    // for a moment, and the test processes running beside this one fail.)
    // count 0: DPDK calls it a power of two and makes a ring over no memory; refused.
    expect_err(
        Ring::new("adv_zero", 0),
        &["rte_ring_create", "adv_zero", "power of two"],
    );
    // count 1: DPDK would make a ring that holds nothing; refused as useless.
    expect_err(
        Ring::new("adv_one", 1),
        &["rte_ring_create", "adv_one", "2 or more"],
    );
    let mut v = tagged(&pool, 0, 3);
    // count 2: exactly one slot.
    let two = Ring::new("adv_two", 2).expect("count 2");
    assert_eq!(two.enqueue_burst(&mut v), 1);
    assert_eq!(tags(&v), [1, 2]);
    assert_eq!(two.len(), 1);
    assert_eq!(two.enqueue_burst(&mut v), 0, "full");
    assert_eq!(tags(&v), [1, 2]);
    free_bulk(&mut v);
    drop(two); // the one mbuf in it is freed with it
    assert_eq!(pool.avail_count(), start, "ring drop freed its mbuf, once");

    // ---- enqueue/dequeue edges ----------------------------------------------------------
    let r = Ring::new("adv_r8", 8).expect("8 slots, 7 usable");
    let mut nothing: Vec<Mbuf> = Vec::new();
    assert_eq!(r.enqueue_burst(&mut nothing), 0);
    assert!(nothing.is_empty());
    let mut nothing_cap: Vec<Mbuf> = Vec::with_capacity(4);
    assert_eq!(r.enqueue_burst(&mut nothing_cap), 0);
    assert_eq!(r.len(), 0);
    let mut out = Vec::new();
    assert_eq!(r.dequeue_burst(&mut out, 0), 0);
    assert_eq!(r.dequeue_burst(&mut out, usize::MAX), 0, "empty ring");
    assert!(out.is_empty());
    // Into a full ring: the first 7 go, 3 stay in order.
    let mut v = tagged(&pool, 100, 10);
    assert_eq!(r.enqueue_burst(&mut v), 7);
    assert_eq!(tags(&v), [107, 108, 109]);
    assert_eq!(r.len(), 7);
    assert_eq!(r.enqueue_burst(&mut v), 0, "full ring takes none");
    assert_eq!(v.len(), 3);
    assert_eq!(pool.in_use_count(), 10);
    // Dequeue appends after what `out` holds, max 0 takes nothing.
    let mut out = tagged(&pool, 900, 2);
    assert_eq!(r.dequeue_burst(&mut out, 0), 0);
    assert_eq!(out.len(), 2);
    assert_eq!(r.dequeue_burst(&mut out, 3), 3);
    assert_eq!(tags(&out), [900, 901, 100, 101, 102]);
    assert_eq!(r.dequeue_burst(&mut out, usize::MAX), 4);
    assert_eq!(tags(&out), [900, 901, 100, 101, 102, 103, 104, 105, 106]);
    for (m, t) in out[2..].iter().zip(100..) {
        assert_eq!(m.data(), common::frame(t).as_slice(), "frame {t} intact");
    }
    assert_eq!(r.enqueue_burst(&mut v), 3, "room again");
    assert!(v.is_empty());
    assert_eq!(r.dequeue_burst(&mut out, 1), 1);
    assert_eq!(tags(&out[out.len() - 1..]), [107]);
    free_bulk(&mut out);
    assert_eq!(r.len(), 2);
    drop(r);
    assert_eq!(pool.avail_count(), start, "two mbufs freed with the ring");

    // One dequeue_burst returns at most 65535, whatever `max` says.
    let many = Mempool::new("adv_many", 70_000, 0, 256).expect("many small mbufs");
    let big = Ring::new("adv_big", 1 << 17).expect("2^17 slots");
    let mut v = Vec::new();
    assert!(many.alloc_bulk(&mut v, 70_000));
    assert_eq!(big.enqueue_burst(&mut v), 70_000);
    assert_eq!(big.len(), 70_000);
    let mut out = Vec::new();
    assert_eq!(big.dequeue_burst(&mut out, usize::MAX), 65_535);
    assert_eq!(big.dequeue_burst(&mut out, 100_000), 4465);
    assert_eq!(out.len(), 70_000);
    assert_eq!(big.enqueue_burst(&mut out), 70_000, "and back");
    drop(big);
    assert_eq!(
        many.avail_count(),
        70_000,
        "dropping a ring of 70000 frees them all"
    );

    // Several producers and a consumer on one shared ring (Ring is Sync): nothing lost or
    // duplicated, each producer's packets in its own order.
    let shared = Ring::new("adv_mpmc", 256).expect("ring");
    let per = 3000u64;
    let received = std::thread::scope(|s| {
        for p in 0..2u64 {
            let (shared, pool) = (&shared, &pool);
            s.spawn(move || {
                let mut sent = 0;
                while sent < per {
                    let n = (per - sent).min(32);
                    let mut v = tagged(pool, (p << 32) | sent, n);
                    while !v.is_empty() {
                        shared.enqueue_burst(&mut v);
                        std::hint::spin_loop();
                    }
                    sent += n;
                }
            });
        }
        let mut seen = [0u64; 2];
        let mut out = Vec::new();
        let mut total = 0;
        while total < 2 * per {
            let n = shared.dequeue_burst(&mut out, 64);
            for t in tags(&out) {
                let (p, seq) = ((t >> 32) as usize, t & 0xffff_ffff);
                assert_eq!(seq, seen[p], "producer {p} in order");
                seen[p] += 1;
            }
            total += n as u64;
            free_bulk(&mut out);
        }
        total
    });
    assert_eq!(received, 2 * per);
    assert!(shared.is_empty());
    assert_eq!(pool.avail_count(), start);

    // ---- Port::from_rings ---------------------------------------------------------------
    let a = Ring::new("adv_a", 64).expect("ring");
    let b = Ring::new("adv_b", 64).expect("ring");
    for (rx, tx) in [
        (&[][..], &[&a][..]),
        (&[&a][..], &[][..]),
        (&[][..], &[][..]),
    ] {
        expect_err(
            Port::from_rings("adv_empty", rx, tx),
            &[
                "rte_eth_from_rings",
                "adv_empty",
                "expected 1 to 16 RX and 1 to 16 TX",
            ],
        );
    }
    assert!(
        Port::by_name("net_ring_adv_empty").is_err(),
        "nothing half made"
    );
    expect_err(Port::from_rings("nul\0port", &[&a], &[&a]), &["NUL"]);
    // DPDK names the device "net_ring_" + name in a 29-byte buffer: 19 bytes at most, said
    // before DPDK is asked.
    let long = "p".repeat(20);
    expect_err(
        Port::from_rings(&long, &[&a], &[&a]),
        &["rte_eth_from_rings", &long, "at most 19"],
    );
    // More than 16 RX or TX rings: refused before DPDK (which checks only RX, and writes
    // the 17th TX ring past the PMD's array).
    let seventeen: Vec<&Ring> = std::iter::repeat_n(&a, 17).collect();
    expect_err(
        Port::from_rings("adv_rx17", &seventeen, &[&a]),
        &["rte_eth_from_rings", "adv_rx17", "expected 1 to 16"],
    );
    expect_err(
        Port::from_rings("adv_tx17", &[&a], &seventeen),
        &["rte_eth_from_rings", "adv_tx17", "expected 1 to 16"],
    );
    let sixteen: Vec<&Ring> = std::iter::repeat_n(&b, 16).collect();
    let p16 = Port::from_rings("adv_16", &sixteen, &sixteen).expect("16 and 16 is the limit");
    assert_eq!(
        p16.mac_addr().expect("mac"),
        [0; 6],
        "MAC untouched by the 16th TX ring"
    );

    // The same ring as RX and TX: a loopback port.
    let name19 = "l".repeat(19);
    let lo = Port::from_rings(&name19, &[&a], &[&a]).expect("19-byte name, one ring both ways");
    assert_eq!(
        Port::by_name(&format!("net_ring_{name19}")).expect("by name"),
        lo
    );
    expect_err(
        Port::from_rings(&name19, &[&b], &[&b]),
        &["rte_eth_from_rings", "exists already"],
    );
    lo.configure(&small_cfg(), &pool).expect("configure");
    lo.start().expect("start");
    {
        let (mut rxq, mut txq) = (lo.rx_queue(0).expect("rx"), lo.tx_queue(0).expect("tx"));
        let mut v = tagged(&pool, 200, 70);
        assert_eq!(txq.tx_burst(&mut v), 63, "the ring holds 63");
        assert_eq!(tags(&v), (263..270).collect::<Vec<_>>());
        assert_eq!(a.len(), 63);
        // The test's own dequeue and the port's RX share the ring (MC): either may take.
        let mut got = Vec::new();
        assert_eq!(a.dequeue_burst(&mut got, 3), 3);
        assert_eq!(rxq.rx_burst(&mut got, 256), 60);
        assert_eq!(tags(&got), (200..263).collect::<Vec<_>>());
        free_bulk(&mut got);

        // Dropping the ring while the port is open keeps it: the port still works.
        drop(a);
        assert_eq!(txq.tx_burst(&mut v), 7);
        assert_eq!(rxq.rx_burst(&mut got, 256), 7);
        assert_eq!(tags(&got), (263..270).collect::<Vec<_>>());
        for (m, t) in got.iter().zip(263..) {
            assert_eq!(m.data(), common::frame(t).as_slice());
        }
        free_bulk(&mut got);
        // Leave 5 in the (now unreachable) ring when the port closes.
        let mut v = tagged(&pool, 300, 5);
        assert_eq!(txq.tx_burst(&mut v), 5);
    }
    assert_eq!(pool.in_use_count(), 5);
    lo.stop().expect("stop");
    lo.close().expect("close");
    // The ring outlives its port (documented): its 5 mbufs are leaked for the process, never
    // freed twice (the count would grow past `start`).
    assert_eq!(
        pool.in_use_count(),
        5,
        "leaked, not freed, not double-freed"
    );
    assert_eq!(pool.avail_count(), start - 5);
    // ... and its name stays taken.
    let e = expect_err(Ring::new("adv_a", 64), &["rte_ring_create"]);
    assert_eq!(e.errno(), Some(libc::EEXIST));
    // After close, the port id is gone, but the device name stays taken for the process
    // (documented), and the refusal says why.
    assert!(lo.name().is_err(), "closed port's id is gone");
    expect_err(
        Port::from_rings(&name19, &[&b], &[&b]),
        &["rte_eth_from_rings", &name19, "exists already or did"],
    );

    // Surprising: a stale Port (closed) silently aliases the next port that reuses its id.
    // (DPDK hands out the lowest free id.)
    let reused = Port::from_rings("adv_reuse", &[&b], &[&b]).expect("port");
    assert_eq!(reused.id(), lo.id(), "id reused");
    assert_eq!(
        lo.name().expect("stale handle reaches the new port"),
        "net_ring_adv_reuse"
    );

    // A ring whose port was closed is freed with its mbufs on drop.
    let c = Ring::new("adv_c", 64).expect("ring");
    let pc = Port::from_rings("adv_c", &[&c], &[&c]).expect("port");
    pc.configure(&small_cfg(), &pool).expect("configure");
    pc.start().expect("start");
    {
        let mut txq = pc.tx_queue(0).expect("tx");
        let mut v = tagged(&pool, 400, 4);
        assert_eq!(txq.tx_burst(&mut v), 4);
    }
    pc.stop().expect("stop");
    pc.close().expect("close");
    assert_eq!(
        c.len(),
        4,
        "closing the port left the ring and its mbufs alone"
    );
    drop(c);
    assert_eq!(
        pool.in_use_count(),
        5,
        "c's 4 mbufs freed; only the 5 of the leaked ring"
    );
    drop(Ring::new("adv_c", 64).expect("freed ring's name free again"));

    // Other pools were never touched by the leak.
    assert_eq!(plain.avail_count(), 63);
    assert_eq!(plain_new.avail_count(), 63);
    // p16 and reused are never closed, and the leaked ring kept its lease: EAL stays up.
    drop((b, p16, reused, plain, plain_new, huge, many, pool));
    expect_err(eal.cleanup(), &["rte_eal_cleanup"]);
}
