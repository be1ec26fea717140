//! (b) net_null: TX frees what it takes, RX allocates from our pool, nothing leaks; also
//! multi-queue RSS configure and a registered worker thread.
mod common;

use dpdk_bindings::{
    lcore_id, thread_register, thread_unregister, Mbuf, Mempool, Port, PortConfig,
};

#[test]
fn null_pmd_tx_frees_rx_allocates_and_counts_return() {
    let eal = common::eal(&["--vdev=net_null0"]);
    assert_eq!(
        lcore_id(),
        Some(0),
        "EAL made the test thread the main lcore"
    );
    let pool = Mempool::new("null_pool", 1023, 32, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    let start = pool.avail_count();

    let port = Port::by_name("net_null0").expect("net_null0 exists");
    let cfg = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        rx_desc: 128,
        tx_desc: 128,
        rss: true,
        mtu: None,
    };
    port.configure(&cfg, &pool)
        .expect("configure 2 queues with RSS");
    port.start().expect("start");
    assert!(port.link().up);
    port.mac_addr().expect("mac");

    let mut tx = port.tx_queue(0).expect("tx queue");
    let mut rx = port.rx_queue(0).expect("rx queue");

    // TX of N returns N, and the null PMD frees them all.
    let n = 100;
    let mut out: Vec<Mbuf> = (0..n)
        .map(|s| Mbuf::from_slice(&pool, &common::frame(s)).expect("alloc"))
        .collect();
    assert_eq!(tx.tx_burst(&mut out), n);
    assert!(out.is_empty());
    assert_eq!(pool.avail_count(), start);

    // RX always yields a full burst of 64-byte packets allocated from our pool.
    let mut got = Vec::new();
    assert_eq!(rx.rx_burst(&mut got, 32), 32);
    assert_eq!(pool.in_use_count(), 32);
    assert!(got.iter().all(|m| m.len() == 64 && m.nb_segs() == 1));
    assert!(got
        .iter()
        .all(|m| m.port() == port.id() && m.rss_hash().is_none()));
    drop(got);
    assert_eq!(
        pool.avail_count(),
        start,
        "dropping received mbufs frees them"
    );

    let mut got = Vec::new();
    assert_eq!(rx.rx_burst(&mut got, 8), 8);
    dpdk_bindings::free_bulk(&mut got);
    assert!(got.is_empty());
    assert_eq!(pool.avail_count(), start);

    // A registered worker thread owns queue 1; its lcore cache is flushed before it leaves.
    let (mut rx1, mut tx1) = (
        port.rx_queue(1).expect("rx 1"),
        port.tx_queue(1).expect("tx 1"),
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(lcore_id(), None, "a plain thread is not an lcore");
            thread_register().expect("register");
            let id = lcore_id().expect("registered thread has an lcore id");
            assert_ne!(id, 0);
            let mut burst = Vec::with_capacity(32);
            for _ in 0..10 {
                assert_eq!(rx1.rx_burst(&mut burst, 32), 32);
                assert_eq!(tx1.tx_burst(&mut burst), 32);
            }
            pool.flush_local_cache();
            thread_unregister();
            assert_eq!(lcore_id(), None);
        });
    });
    assert_eq!(pool.avail_count(), start);

    let stats = port.stats().expect("stats");
    assert_eq!(stats.opackets, (n + 320) as u64, "{stats:?}");
    assert_eq!(stats.ipackets, 32 + 8 + 320, "{stats:?}");
    let xstats = port.xstats().expect("xstats");
    assert!(
        xstats
            .iter()
            .any(|(name, v)| name == "rx_good_packets" && *v == 360),
        "{xstats:?}"
    );

    drop((rx, tx, rx1, tx1));
    port.stop().expect("stop");
    port.close().expect("close");
    drop(pool);
    eal.cleanup().expect("pool freed, nothing holds EAL");
}
