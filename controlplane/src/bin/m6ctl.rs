//! `m6ctl`: the admin CLI. It will speak to m6-controlplane's admin socket; until that
//! socket exists it says so instead of pretending.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("m6ctl: no control plane admin socket exists yet (m6-controlplane is not built)");
    ExitCode::from(2)
}
