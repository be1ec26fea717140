# The front door. `make demo` and `make test` set the machine up first (idempotent).
.PHONY: setup build demo test lint fmt clean lab-down

setup:
	@bash scripts/setup.sh

build: setup
	cargo build --release --workspace

demo: setup
	cargo build --release -p dataplane --bin m6-dataplane
	bash scripts/demo.sh

test: setup
	bash scripts/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

lab-down:
	bash lab/topology.sh down

clean:
	cargo clean
