//! `m6-controlplane`: the signaling daemon. Its engine (`controlplane::engine`) and DNS
//! service (`controlplane::dns`) are built and tested; the mio loop that joins them to the
//! dataplane socket and the metrics endpoint is not, so today the binary only checks its
//! configuration and refuses to run rather than pretend to.

use std::path::PathBuf;
use std::process::ExitCode;

use controlplane::config::ControlplaneConfig;

const USAGE: &str = "usage: m6-controlplane --config FILE [--check]";

fn main() -> ExitCode {
    let mut config = None;
    let mut check_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => config = args.next().map(PathBuf::from),
            "--check" => check_only = true,
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = config else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if let Err(e) = ControlplaneConfig::load(&path) {
        eprintln!("m6-controlplane: {e}");
        return ExitCode::from(2);
    }
    if check_only {
        println!(
            "m6-controlplane: {}: configuration is valid",
            path.display()
        );
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "m6-controlplane: the daemon loop is not built yet; the signaling engine and the DNS \
         service are tested in the controlplane crate (cargo nextest run -p controlplane)"
    );
    ExitCode::from(2)
}
