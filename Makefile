# The front door. `make demo` and `make test` set the machine up first (idempotent).
.PHONY: setup build demo test lint fmt clean lab-down sim-soak bench bench-e2e bench-linux bench-knobs

setup:
	@bash scripts/setup.sh

build: setup
	cargo build --release --workspace

demo: setup
	cargo build --release -p dataplane --bin m6-dataplane -p controlplane --bin m6-controlplane --bin m6ctl
	bash scripts/demo.sh
	bash scripts/demo-twosite.sh

test: setup
	bash scripts/test.sh

# The signaling simulation on 100,000 fresh seeds (a random range unless M6_SIM_FIRST is
# given; the range is printed so a failure replays): `make sim-soak M6_SIM_SEEDS=1000000`.
sim-soak: setup
	M6_SIM_SEEDS=$${M6_SIM_SEEDS:-100000} M6_SIM_FIRST=$${M6_SIM_FIRST:-random} cargo test --release -p controlplane --test sim -- --nocapture

# Cycles per packet per class beside a same-run baseline (docs/performance.md). Not in CI;
# CI compiles the benchmarks (`make test` runs clippy --all-targets).
bench: setup
	cargo bench -p dataplane --bench classes

# The worker loop on ring ports against DPDK's io forwarding, per class and frame size,
# with 1 and 2 workers, latency at 50% load and loss after idle (docs/performance.md).
bench-e2e: setup
	cargo bench -p dataplane --bench e2e

# The lab forwarded by m6-dataplane, then by the Linux kernel with source-specific rules:
# TCP and 64-octet UDP, with the ratios.
bench-linux: setup
	cargo build --release -p dataplane --bin m6-dataplane
	bash scripts/bench-linux.sh

# bench-linux, plus m6-dataplane once per knob (af_packet options, busy polling, net_af_xdp).
bench-knobs: setup
	cargo build --release -p dataplane --bin m6-dataplane
	bash scripts/bench-linux.sh --knobs

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

lab-down:
	bash lab/topology.sh down

clean:
	cargo clean
