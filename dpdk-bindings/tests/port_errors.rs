//! (c) Port and pool misuse returns readable errors, never a panic or UB.
mod common;

use dpdk_bindings::{Error, Mempool, Port, PortConfig};

fn expect_err<T: std::fmt::Debug>(r: Result<T, Error>, words: &[&str]) -> Error {
    let e = r.expect_err("must fail");
    let msg = e.to_string();
    eprintln!("error as expected: {msg}");
    for w in words {
        assert!(msg.contains(w), "{msg:?} should mention {w:?}");
    }
    e
}

#[test]
fn port_and_pool_misuse_returns_readable_errors() {
    let eal = common::eal(&["--vdev=net_ring0"]);

    // Names.
    let e = expect_err(
        Port::by_name("net_nonexistent7"),
        &["rte_eth_dev_get_port_by_name", "net_nonexistent7", "errno"],
    );
    assert!(e.errno().is_some());
    expect_err(Port::by_name("bad\0name"), &["NUL"]);
    expect_err(Port::from_id(31), &["rte_eth_dev_is_valid_port", "port 31"]);
    assert!(!Port::from_id(31).map(|p| p.link().up).unwrap_or(false));

    // Pools: DPDK's own validation, reported with rte_errno's text.
    let e = expect_err(
        Mempool::new("too_big_cache", 127, 4096, Mempool::DEFAULT_DATA_ROOM),
        &[
            "rte_pktmbuf_pool_create",
            "too_big_cache",
            "Invalid argument",
        ],
    );
    assert_eq!(e.errno(), Some(libc::EINVAL));
    let pool = Mempool::new("err_pool", 511, 0, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    let e = expect_err(
        Mempool::new("err_pool", 511, 0, Mempool::DEFAULT_DATA_ROOM),
        &["rte_pktmbuf_pool_create", "err_pool"],
    );
    assert_eq!(e.errno(), Some(libc::EEXIST));

    let port = Port::by_name("net_ring0").expect("port");
    expect_err(port.rx_queue(0), &["rte_eth_rx_burst", "not configured"]);

    // Configuration checked before DPDK sees it.
    let small = PortConfig {
        rx_desc: 64,
        tx_desc: 64,
        ..PortConfig::default()
    };
    let too_many = PortConfig {
        rx_queues: 64,
        ..small
    };
    expect_err(
        port.configure(&too_many, &pool),
        &["rte_eth_dev_configure", "net_ring0", "64 RX", "at most 16"],
    );
    let none = PortConfig {
        tx_queues: 0,
        ..small
    };
    expect_err(port.configure(&none, &pool), &["at least one"]);
    let tiny_pool = Mempool::new("tiny_room", 127, 0, 1024).expect("pool");
    expect_err(
        port.configure(&small, &tiny_pool),
        &["MTU 1500", "do not fit"],
    );

    // Queue handles: exist, one owner, and they pin the port's state.
    port.configure(&small, &pool).expect("configure");
    port.start().expect("start");
    expect_err(
        port.rx_queue(1),
        &["queue 1 does not exist", "1 configured"],
    );
    expect_err(port.tx_queue(7), &["queue 7 does not exist"]);
    let rx = port.rx_queue(0).expect("rx queue");
    expect_err(port.rx_queue(0), &["already has a handle"]);
    expect_err(
        port.stop(),
        &["rte_eth_dev_stop", "live queue handles", "rx0"],
    );
    expect_err(port.configure(&small, &pool), &["live queue handles"]);
    expect_err(port.close(), &["rte_eth_dev_close", "live queue handles"]);
    drop(rx);
    let again = port
        .rx_queue(0)
        .expect("handle can be taken again after drop");
    drop(again);

    expect_err(
        port.configure(&small, &pool),
        &["rte_eth_dev_configure", "is started"],
    );
    let rx = port
        .rx_queue(0)
        .expect("a refused configure leaves the port usable");
    drop(rx);

    // DPDK's own refusal, with its errno text: close needs a stopped port.
    let e = expect_err(
        port.close(),
        &["rte_eth_dev_close (port 0 (net_ring0))", "errno"],
    );
    assert_eq!(e.errno(), Some(libc::EINVAL), "{e}");

    port.stop().expect("stop");
    port.close().expect("close");
    expect_err(port.name(), &["rte_eth_dev_get_name_by_port"]);
    expect_err(Port::by_name("net_ring0"), &["net_ring0"]);
    assert!(!port.link().up, "a closed port reads as down");

    drop((pool, tiny_pool));
    eal.cleanup().expect("everything released");
}
