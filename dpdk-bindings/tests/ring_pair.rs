//! (a') Packets sent through a pair of net_ring ports arrive intact on the other port, and
//! no mbuf leaks.
//!
//! `--vdev=net_ring0` is a loopback (each queue's TX and RX share one ring), and DPDK 22.11
//! cannot cross two ports from the command line: with `nodeaction=NAME:0:CREATE|ATTACH` the
//! ethdev is named after NAME, so the ATTACH port fails with "Ethernet device with name
//! NAME already allocated", and even then both ports would share one ring for RX and TX.
//! So the test builds the pair the way `rte_eth_from_rings` is meant for: two rings, port A
//! transmits into the first and receives from the second, port B the other way round.
//! `Ring` and `Port::from_rings` are the bindings' safe API over them; the pool carries a
//! private area per mbuf, which travels with the packet through the rings untouched.
mod common;

use dpdk_bindings::{free_bulk, Mbuf, Mempool, Port, PortConfig, Ring, RxQueue, TxQueue};

const RING_SIZE: u32 = 1024;

fn port_from_rings(name: &str, rx: &Ring, tx: &Ring) -> Port {
    let port = Port::from_rings(name, &[rx], &[tx]).expect("rte_eth_from_rings");
    // The PMD names the device "net_ring_" + name.
    let by_name = Port::by_name(&format!("net_ring_{name}")).expect("the new port by name");
    assert_eq!(by_name, port);
    port
}

/// Frames `seqs`, each with its sequence number in the mbuf's private area.
fn frames(pool: &Mempool, seqs: std::ops::Range<usize>) -> Vec<Mbuf> {
    seqs.map(|s| {
        let mut m = Mbuf::from_slice(pool, &common::frame(s)).expect("alloc");
        m.private_mut().copy_from_slice(&(s as u64).to_le_bytes());
        m
    })
    .collect()
}

/// Sends frames `seqs` on `tx` and checks they all arrive on `rx`, byte for byte and in
/// order, and nothing comes back on `other_rx`.
fn send_and_check(
    pool: &Mempool,
    tx: &mut TxQueue,
    rx: &mut RxQueue,
    other_rx: &mut RxQueue,
    seqs: std::ops::Range<usize>,
) {
    let count = seqs.len();
    let first = seqs.start;
    let mut out = frames(pool, seqs);
    assert_eq!(tx.tx_burst(&mut out), count);
    assert!(out.is_empty(), "sent mbufs must leave the Vec");
    let mut nothing = Vec::new();
    assert_eq!(other_rx.rx_burst(&mut nothing, 64), 0, "not looped back");
    let mut got = Vec::with_capacity(count);
    assert_eq!(rx.rx_burst(&mut got, 256), count);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.nb_segs(), 1);
        assert_eq!(m.len(), m.pkt_len());
        assert_eq!(
            m.data(),
            common::frame(first + i).as_slice(),
            "packet {}",
            first + i
        );
        assert_eq!(
            m.private(),
            ((first + i) as u64).to_le_bytes(),
            "private area"
        );
    }
    free_bulk(&mut got);
}

#[test]
fn ring_pair_delivers_every_packet_intact_to_the_other_port_and_leaks_nothing() {
    let eal = common::eal(&[]);
    let pool =
        Mempool::with_private("pair_pool", 2047, 32, 8, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    let start = pool.avail_count();
    assert_eq!(start, 2047);

    let a_to_b = Ring::new("pair_a_to_b", RING_SIZE).expect("ring");
    let b_to_a = Ring::new("pair_b_to_a", RING_SIZE).expect("ring");
    assert!(
        Ring::new("pair_a_to_b", RING_SIZE).is_err(),
        "ring names are unique"
    );
    assert!(
        Ring::new("pair_odd", 1000).is_err(),
        "a ring's size is a power of two"
    );
    let a = port_from_rings("pair_a", &b_to_a, &a_to_b);
    let again = Port::from_rings("pair_a", &[&b_to_a], &[&a_to_b]);
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.to_string().contains("exists already")),
        "a ring port's name is refused a second time, saying why: {again:?}"
    );
    let b = port_from_rings("pair_b", &a_to_b, &b_to_a);
    assert_eq!(Port::count(), 2);
    assert_ne!(a.id(), b.id());
    let cfg = PortConfig {
        rx_desc: 256,
        tx_desc: 256,
        ..PortConfig::default()
    };
    for p in [&a, &b] {
        p.configure(&cfg, &pool).expect("configure");
        p.start().expect("start");
        assert!(p.link().up, "ring link is up once started");
    }
    let (mut a_rx, mut a_tx) = (a.rx_queue(0).expect("rx"), a.tx_queue(0).expect("tx"));
    let (mut b_rx, mut b_tx) = (b.rx_queue(0).expect("rx"), b.tx_queue(0).expect("tx"));

    // A -> B: full bursts and a partial one; then B -> A.
    send_and_check(&pool, &mut a_tx, &mut b_rx, &mut a_rx, 0..32);
    send_and_check(&pool, &mut a_tx, &mut b_rx, &mut a_rx, 32..64);
    send_and_check(&pool, &mut a_tx, &mut b_rx, &mut a_rx, 64..81);
    assert_eq!(pool.avail_count(), start);
    send_and_check(&pool, &mut b_tx, &mut a_rx, &mut b_rx, 1000..1050);
    assert_eq!(pool.avail_count(), start);

    // More than the ring holds: A sends what fits, B receives all of it in order, then
    // the rest.
    let total = 1100;
    let mut out = frames(&pool, 0..total);
    let sent = a_tx.tx_burst(&mut out);
    assert!(
        sent > 0 && sent < total,
        "ring of 1024 takes part of 1100, took {sent}"
    );
    assert_eq!(out.len(), total - sent);
    let mut received = Vec::with_capacity(256);
    let mut got = 0;
    while got < sent {
        let n = b_rx.rx_burst(&mut received, 256);
        assert!(n > 0, "ring drained early at {got} of {sent}");
        for (i, m) in received.iter().enumerate() {
            assert_eq!(m.data(), common::frame(got + i).as_slice());
        }
        got += n;
        free_bulk(&mut received);
    }
    assert_eq!(a_tx.tx_burst(&mut out), total - sent);
    assert_eq!(b_rx.rx_burst(&mut received, 256), total - sent);
    assert_eq!(received[0].data(), common::frame(sent).as_slice());
    free_bulk(&mut received);
    assert_eq!(a_rx.rx_burst(&mut received, 256), 0);
    assert_eq!(pool.avail_count(), start, "every mbuf is back");

    let (sa, sb) = (a.stats().expect("stats"), b.stats().expect("stats"));
    let a_sent = (81 + total) as u64;
    assert_eq!(
        (sa.opackets, sb.ipackets),
        (a_sent, a_sent),
        "{sa:?} {sb:?}"
    );
    assert_eq!((sb.opackets, sa.ipackets), (50, 50), "{sa:?} {sb:?}");

    drop((a_rx, a_tx, b_rx, b_tx));
    for p in [&a, &b] {
        p.stop().expect("stop");
        p.close().expect("close");
    }
    // Both ports are closed, so dropping the rings frees them (with a packet left in one),
    // and nothing holds EAL any more.
    let mut left = frames(&pool, 0..1);
    assert_eq!(a_to_b.enqueue_burst(&mut left), 1);
    assert_eq!(a_to_b.len(), 1);
    drop((a_to_b, b_to_a));
    assert_eq!(
        pool.avail_count(),
        start,
        "the ring's packet was freed with it"
    );
    drop(pool);
    eal.cleanup().expect("pool freed, nothing holds EAL");
}
