//! Shared EAL setup for the integration tests. EAL can be initialised once per process, so
//! each test file holds exactly one #[test] (nextest runs each in its own process).
#![allow(dead_code)]

use dpdk_bindings::Eal;

/// EAL options for tests: no PCI scan, hugepage memory not backed by files (so parallel
/// test processes do not collide), main lcore on CPU 0, a small preallocated heap.
pub const BASE_ARGS: &[&str] = &[
    "--in-memory",
    "--no-pci",
    "--no-telemetry",
    "-l",
    "0",
    "-m",
    "64",
    "--log-level=error",
];

/// Initialises EAL with `extra` (vdevs) or fails the test with the reason: a machine
/// without free hugepages must not pass silently.
pub fn eal(extra: &[&str]) -> Eal {
    let args: Vec<&str> = BASE_ARGS.iter().chain(extra).copied().collect();
    Eal::init(&args).unwrap_or_else(|e| {
        let huge = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("HugePages_"))
            .collect::<Vec<_>>()
            .join(", ");
        panic!(
            "EAL init failed: {e}\n(these tests need root and free 2 MiB hugepages on a \
             mounted hugetlbfs; /proc/meminfo: {huge})"
        )
    })
}

/// A test frame whose length and bytes depend on `seq`, so reordering or corruption shows.
pub fn frame(seq: usize) -> Vec<u8> {
    let len = 60 + (seq * 37) % 1455; // 60..=1514
    (0..len).map(|i| (i * 7 + seq * 13) as u8).collect()
}
