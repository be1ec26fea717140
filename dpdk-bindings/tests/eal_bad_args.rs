//! (d) A failed EAL init reports DPDK's reason and cannot be retried.
mod common;

use dpdk_bindings::{Eal, Error};

#[test]
fn eal_init_with_bad_args_fails_readably_once() {
    // Rejected before DPDK sees it: does not use up the process's one init.
    let e = Eal::init(&["--in-memory", "bad\0arg"]).expect_err("NUL");
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");

    let args = ["--in-memory", "--no-pci", "-l", "0", "--no-such-eal-option"];
    let e = Eal::init(&args).expect_err("unknown option");
    let msg = e.to_string();
    assert!(msg.starts_with("rte_eal_init (args: "), "{msg}");
    assert!(
        msg.contains("--no-such-eal-option") && msg.contains("errno"),
        "{msg}"
    );

    assert_eq!(
        Eal::init(common::BASE_ARGS).err(),
        Some(Error::InitFailedBefore)
    );
}
