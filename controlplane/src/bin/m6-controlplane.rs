//! `m6-controlplane`: the signaling daemon. Its engine is `controlplane::engine`; the
//! mio loop, the dataplane socket and the metrics endpoint are not wired up yet, so the
//! binary refuses to start rather than pretend to run.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "m6-controlplane: the daemon loop is not built yet; the signaling engine is tested \
         in the controlplane crate (cargo nextest run -p controlplane)"
    );
    ExitCode::from(2)
}
