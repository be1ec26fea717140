#!/usr/bin/env bash
# Every test of the project: formatting and lints, then the whole workspace under nextest
# (unit, property, golden-vector, DPDK with real EAL, DNS against a real server, and the
# end-to-end lab in network namespaces). Prints nextest's summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo doc (broken intra-doc links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
echo "== cargo nextest run"
# The lab and DPDK tests need root and hugepages; `make setup` provides both.
cargo nextest run --workspace --no-fail-fast --cargo-quiet "$@"
