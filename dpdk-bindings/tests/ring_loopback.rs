//! (a) Packets sent through a net_ring port arrive intact and no mbuf leaks.
mod common;

use dpdk_bindings::{Mbuf, Mempool, Port, PortConfig};

/// net_ring0 created from `--vdev` is a loopback: TX queue i enqueues to the same ring that
/// RX queue i dequeues from. The ring PMD hands over the very mbufs, so this checks that our
/// ownership transfer (tx_burst forgets, rx_burst adopts) neither leaks nor double-frees.
#[test]
fn ring_loopback_delivers_every_packet_intact_and_leaks_nothing() {
    let eal = common::eal(&["--vdev=net_ring0"]);
    let pool = Mempool::new("ring_pool", 2047, 32, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    let start = pool.avail_count();
    assert_eq!(start, 2047);

    let port = Port::by_name("net_ring0").expect("net_ring0 exists");
    assert_eq!(port.name().expect("name"), "net_ring0");
    assert_eq!(Port::count(), 1);
    let cfg = PortConfig {
        rx_desc: 256,
        tx_desc: 256,
        ..PortConfig::default()
    };
    port.configure(&cfg, &pool).expect("configure");
    port.start().expect("start");
    assert!(port.link().up, "ring link is up once started");
    let mut rx = port.rx_queue(0).expect("rx queue");
    let mut tx = port.tx_queue(0).expect("tx queue");

    // Full bursts and a partial one.
    let mut seq = 0;
    let mut received = Vec::with_capacity(64);
    for count in [32, 32, 17] {
        let mut out: Vec<Mbuf> = (seq..seq + count)
            .map(|s| Mbuf::from_slice(&pool, &common::frame(s)).expect("alloc"))
            .collect();
        assert_eq!(tx.tx_burst(&mut out), count);
        assert!(out.is_empty(), "sent mbufs must leave the Vec");
        assert_eq!(
            pool.in_use_count() as usize,
            count,
            "the ring holds the sent mbufs"
        );

        assert_eq!(rx.rx_burst(&mut received, 64), count);
        for (i, m) in received.iter().enumerate() {
            assert_eq!(m.nb_segs(), 1);
            // The ring PMD passes our mbuf through untouched: no input port, no RSS hash.
            assert_eq!(
                m.port(),
                u16::MAX,
                "RTE_MBUF_PORT_INVALID from rte_pktmbuf_reset"
            );
            assert_eq!(m.rss_hash(), None);
            assert_eq!(m.len(), m.pkt_len());
            assert_eq!(
                m.data(),
                common::frame(seq + i).as_slice(),
                "packet {}",
                seq + i
            );
        }
        received.clear();
        seq += count;
        assert_eq!(pool.avail_count(), start);
    }
    assert_eq!(
        rx.rx_burst(&mut received, 64),
        0,
        "nothing left in the ring"
    );

    // More than the ring holds: tx_burst sends what fits and leaves the rest, in order.
    let total = 1100;
    let mut out: Vec<Mbuf> = (0..total)
        .map(|s| Mbuf::from_slice(&pool, &common::frame(s)).expect("alloc"))
        .collect();
    let sent = tx.tx_burst(&mut out);
    eprintln!(
        "tx_burst of {total} into the ring: {sent} sent, {} left",
        out.len()
    );
    assert!(
        sent > 0 && sent < total,
        "ring of 1024 takes part of 1100, took {sent}"
    );
    assert_eq!(out.len(), total - sent);
    assert_eq!(
        out[0].data(),
        common::frame(sent).as_slice(),
        "unsent stay in order"
    );
    let mut got = 0;
    while got < sent {
        let n = rx.rx_burst(&mut received, 256);
        assert!(n > 0, "ring drained early at {got} of {sent}");
        for (i, m) in received.iter().enumerate() {
            assert_eq!(m.data(), common::frame(got + i).as_slice());
        }
        got += n;
        dpdk_bindings::free_bulk(&mut received);
    }
    // Retry the rest.
    assert_eq!(tx.tx_burst(&mut out), total - sent);
    assert_eq!(rx.rx_burst(&mut received, 256), total - sent);
    assert_eq!(received[0].data(), common::frame(sent).as_slice());
    received.clear();
    assert_eq!(pool.avail_count(), start, "every mbuf is back");

    let stats = port.stats().expect("stats");
    let packets = (81 + total) as u64;
    assert_eq!(
        (stats.opackets, stats.ipackets),
        (packets, packets),
        "{stats:?}"
    );

    drop((rx, tx));
    port.stop().expect("stop");
    port.close().expect("close");
    drop(pool);
    eal.cleanup().expect("pool freed, nothing holds EAL");
}
