//! `m6-controlplane`: the signaling daemon (`controlplane::daemon`): the M6 engine, DNS
//! verification and timers, joined to `m6-dataplane` through its channel socket. Runs until
//! SIGINT/SIGTERM. `m6ctl` asks it over its admin socket (`controlplane::admin`); Prometheus
//! metrics come with the operations issue.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use controlplane::config::ControlplaneConfig;
use controlplane::daemon::Daemon;

/// The command line.
#[derive(clap::Parser)]
#[command(
    name = "m6-controlplane",
    version,
    about = "The M6 border router's control plane: signaling, DNS verification, timers"
)]
struct Args {
    /// The control plane's YAML configuration (see configs/controlplane.yaml).
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long = "check")]
    check_only: bool,
}

fn main() -> ExitCode {
    // Usage errors exit with status 2, as configuration errors do.
    let Args {
        config: path,
        check_only,
    } = <Args as clap::Parser>::parse();
    let cfg = match ControlplaneConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("m6-controlplane: {e}");
            return ExitCode::from(2);
        }
    };
    if check_only {
        println!(
            "m6-controlplane: {}: configuration is valid",
            path.display()
        );
        return ExitCode::SUCCESS;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("m6-controlplane: cannot install a signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut poll = match mio::Poll::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("m6-controlplane: poll: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut daemon = match Daemon::new(&cfg, &poll) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("m6-controlplane: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    println!(
        "m6-controlplane: running (birthday {}, {} hosts), dataplane at {}",
        daemon.birthday,
        cfg.hosts.len(),
        daemon.socket_path().display()
    );
    if let Err(e) = daemon.run(&mut poll, &stop) {
        eprintln!("m6-controlplane: {e}");
        return ExitCode::FAILURE;
    }
    println!("m6-controlplane: stopped; {:?}", daemon.counters);
    ExitCode::SUCCESS
}
