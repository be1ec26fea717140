//! Generates the raw bindings (`sys`) and builds the C shim against the system libdpdk.
//!
//! Both bindgen and the shim get pkg-config's full cflags (`-include rte_config.h`, `-march`):
//! without them rte_memcpy.h and the vector code in rte_ethdev.h do not compile
//! (DPDK-NOTES item 2). Linking is shared, so the PMDs load as plugins (item 4).

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Functions this crate calls: DPDK's real exported symbols plus the shim's `m6_*` wrappers.
const FUNCTIONS: &[&str] = &[
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_thread_register",
    "rte_thread_unregister",
    "rte_strerror",
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_pktmbuf_free_bulk",
    "rte_eth_dev_count_avail",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_dev_socket_id",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_promiscuous_enable",
    "rte_eth_promiscuous_disable",
    "rte_eth_macaddr_get",
    "rte_eth_link_get_nowait",
    "rte_eth_stats_get",
    "rte_eth_xstats_get",
    "rte_eth_xstats_get_names",
    "rte_ring_create",
    "rte_ring_free",
    "rte_eth_from_rings",
    "m6_.*",
];

/// Types reached from the allowlisted signatures that we never look inside. Making them
/// opaque keeps bindgen away from packed-and-aligned structs (E0588, DPDK-NOTES item 3) and
/// from internals (mempool, device, bus) whose layout we must not depend on.
const OPAQUE: &[&str] = &[
    "rte_mempool",
    "rte_mempool_.*",
    "rte_ring",
    "rte_ring_.*",
    "rte_device",
    "rte_mbuf_ext_shared_info",
    "rte_l2tpv2_.*",
    "rte_gtp_.*",
    "rte_arp_.*",
    "rte_ether_hdr",
    "rte_vlan_hdr",
];

fn pkg_config(arg: &str) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args([arg, "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run pkg-config (install pkg-config): {e}"));
    assert!(
        out.status.success(),
        "pkg-config {arg} libdpdk failed (install libdpdk-dev): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pkg-config output holds no quoted arguments for libdpdk, so whitespace splitting is exact.
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-changed=src/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let cflags = pkg_config("--cflags");
    let version = pkg_config("--modversion").join("");
    assert!(
        version.starts_with("22.11"),
        "dpdk-bindings is written and layout-tested against DPDK 22.11, found {version}"
    );

    // C shim for DPDK's static inline functions.
    let mut build = cc::Build::new();
    build
        .file("src/shim.c")
        .include("src")
        .opt_level(3)
        .warnings(true);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("m6shim");

    // Link flags: shared libdpdk. `-l`/`-L` propagate to every binary that depends on this
    // crate; the only other flag, `-Wl,--as-needed`, is rustc's default already.
    for flag in pkg_config("--libs") {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    }
    // rte_eth_from_rings lives in the ring PMD, a driver library pkg-config does not list.
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");

    let mut builder = bindgen::Builder::default()
        .header("src/shim.h")
        .clang_args(&cflags)
        .clang_arg("-Isrc")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .layout_tests(true)
        .derive_default(true)
        .prepend_enum_name(false)
        .generate_comments(false)
        .allowlist_recursively(true);
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for t in [
        "rte_mbuf",
        "rte_eth_conf",
        "rte_eth_dev_info",
        "rte_eth_link",
        "rte_eth_stats",
    ] {
        builder = builder.allowlist_type(t);
    }
    for v in [
        "m6_.*",
        "RTE_PKTMBUF_HEADROOM",
        "RTE_ETH_NAME_MAX_LEN",
        "RTE_ETH_MQ_RX_.*",
        "RTE_MBUF_F_RX_RSS_HASH",
        "LCORE_ID_ANY",
        "SOCKET_ID_ANY",
        "RTE_PMD_RING_MAX_RX_RINGS",
        "RTE_PMD_RING_MAX_TX_RINGS",
    ] {
        builder = builder.allowlist_var(v);
    }
    for t in OPAQUE {
        builder = builder.opaque_type(t);
    }
    let bindings = builder
        .generate()
        .expect("bindgen failed over src/shim.h and the DPDK headers");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("cannot write bindings.rs");
}
