//! (d) EAL initialises once per process, and is unusable after cleanup.
mod common;

use dpdk_bindings::{lcore_id, thread_register, Eal, Error, Mempool, Port};

#[test]
fn eal_initialises_once_and_refuses_use_after_cleanup() {
    let eal = common::eal(&[]);
    assert_eq!(lcore_id(), Some(0));
    assert_eq!(Port::count(), 0, "--no-pci and no vdev: no ports");

    let second = Eal::init(common::BASE_ARGS);
    assert_eq!(second.as_ref().err(), Some(&Error::AlreadyInitialized));
    assert!(second
        .expect_err("second init")
        .to_string()
        .contains("one init per process"));

    // A live pool keeps EAL from being cleaned up under it.
    let pool = Mempool::new("once_pool", 255, 0, Mempool::DEFAULT_DATA_ROOM).expect("pool");
    let m = pool.alloc().expect("mbuf");
    std::thread::scope(|s| {
        s.spawn(|| {
            thread_register().expect("register");
            assert!(lcore_id().is_some_and(|id| id != 0));
            // Registering twice keeps the same lcore id.
            let id = lcore_id();
            thread_register().expect("register again");
            assert_eq!(lcore_id(), id);
            dpdk_bindings::thread_unregister();
        });
    });
    drop(m);
    drop(pool);
    eal.cleanup().expect("cleanup");

    assert_eq!(
        Mempool::new("after", 255, 0, Mempool::DEFAULT_DATA_ROOM).err(),
        Some(Error::EalNotRunning)
    );
    assert_eq!(Port::by_name("x").err(), Some(Error::EalNotRunning));
    assert_eq!(thread_register(), Err(Error::EalNotRunning));
    assert_eq!(Port::count(), 0);
    assert_eq!(
        Eal::init(common::BASE_ARGS).err(),
        Some(Error::AlreadyInitialized),
        "no re-init after cleanup either"
    );
}
