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
