//! `m6ctl`: the admin CLI. It asks m6-controlplane over its admin socket
//! (`controlplane::admin`) and prints the answer as a table, or as JSON with `--json`:
//! `status`, `isp list|drain|undrain`, `neighbor list`, `context list|show`, `dns cache`,
//! `stats [--watch]`, `reload`; `config check FILE` and `completions SHELL` run locally.
//! Exit status: 0 done, 1 the daemon refused (its reason printed), 2 the daemon could not
//! be asked (not running, socket not permitted) or a usage or configuration error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use controlplane::admin;
use controlplane::config::{ControlplaneConfig, DEFAULT_ADMIN_SOCKET};
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "m6ctl",
    version,
    about = "Ask m6-controlplane what it and its dataplane are doing"
)]
struct Cli {
    /// The control plane's admin socket (its `admin_socket` setting).
    #[arg(long, global = true, default_value = DEFAULT_ADMIN_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: birthday, uptime, dataplane connection, table sizes, counters.
    Status,
    /// The ISPs: health, drains.
    Isp {
        #[command(subcommand)]
        command: IspCommand,
    },
    /// The dataplane's neighbor cache (RFC 4861 states).
    Neighbor {
        #[command(subcommand)]
        command: NeighborCommand,
    },
    /// Host-pair contexts.
    Context {
        #[command(subcommand)]
        command: ContextCommand,
    },
    /// The control plane's DNS cache.
    Dns {
        #[command(subcommand)]
        command: DnsCommand,
    },
    /// Rates per ISP and per class over one second (the dataplane's live counters).
    Stats {
        /// Print a new line of rates every second until interrupted.
        #[arg(long)]
        watch: bool,
        /// With --watch: stop after this many seconds.
        #[arg(long, requires = "watch")]
        count: Option<u32>,
    },
    /// Check a configuration file (dataplane or control plane) without touching anything.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Make the dataplane read its configuration file again and apply what may change live
    /// (weights, policy rules, probes, timers, RAs); the rest is refused with the reason.
    Reload,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum IspCommand {
    /// Every ISP as the dataplane reports it: usable or why not, drained, probe RTT,
    /// withdrawals.
    List,
    /// Move the ISP's rewritable and proxied flows to the other ISPs (none is dropped);
    /// traffic only it can carry (sources under its prefix) still goes through it.
    Drain { name: String },
    /// Let the ISP take flows again.
    Undrain { name: String },
}

#[derive(Subcommand)]
enum NeighborCommand {
    /// Every entry: port, address, link-layer address, state.
    List,
}

#[derive(Subcommand)]
enum ContextCommand {
    /// Every context installed in the dataplane.
    List {
        /// Only the contexts with this peer AID.
        #[arg(long)]
        peer: Option<std::net::Ipv6Addr>,
    },
    /// One context by its F(local) (decimal): locator sets, state.
    Show { flow_label: u32 },
}

#[derive(Subcommand)]
enum DnsCommand {
    /// Every cached answer with its remaining lifetime.
    Cache,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load FILE as m6-dataplane or m6-controlplane would (by its top-level keys).
    Check { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let request = match &cli.command {
        Command::Status => "status".to_string(),
        Command::Isp {
            command: IspCommand::List,
        } => "isps".to_string(),
        Command::Isp {
            command: IspCommand::Drain { name },
        } => format!("isp drain {name}"),
        Command::Isp {
            command: IspCommand::Undrain { name },
        } => format!("isp undrain {name}"),
        Command::Neighbor { .. } => "neighbors".to_string(),
        Command::Context {
            command: ContextCommand::List { .. },
        } => "contexts".to_string(),
        Command::Context {
            command: ContextCommand::Show { flow_label },
        } => format!("context {flow_label}"),
        Command::Dns { .. } => "dns cache".to_string(),
        Command::Stats { watch, count } => return stats(&cli, *watch, *count),
        Command::Reload => "reload".to_string(),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => return config_check(file),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "m6ctl", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
    };
    let mut answer = match ask(&cli, &request) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if let Command::Context {
        command: ContextCommand::List { peer: Some(p) },
    } = &cli.command
    {
        let p = p.to_string();
        if let Value::Array(v) = &mut answer {
            v.retain(|c| c.get("aid_peer").and_then(Value::as_str) == Some(p.as_str()));
        }
    }
    if cli.json {
        println!("{answer:#}");
        return ExitCode::SUCCESS;
    }
    match cli.command {
        Command::Status => print_status(&answer),
        Command::Context {
            command: ContextCommand::List { .. },
        } => print_contexts(&answer),
        Command::Context { .. } => print_context(&answer),
        Command::Isp {
            command: IspCommand::List,
        } => print_isps(&answer),
        Command::Isp { .. } => println!(
            "isp {} {}",
            s(&answer["isp"]),
            if answer["drained"].as_bool().unwrap_or(false) {
                "drained"
            } else {
                "undrained"
            }
        ),
        Command::Neighbor { .. } => print_neighbors(&answer),
        Command::Dns { .. } => print_dns(&answer),
        Command::Reload => println!("{}", s(&answer["message"])),
        Command::Stats { .. } | Command::Config { .. } | Command::Completions { .. } => {}
    }
    ExitCode::SUCCESS
}

/// Asks the daemon; on failure prints why and gives the exit code.
fn ask(cli: &Cli, request: &str) -> Result<Value, ExitCode> {
    let answer = admin::request(&cli.socket, request).map_err(|e| {
        eprintln!("m6ctl: {e}");
        ExitCode::from(2)
    })?;
    if let Some(e) = answer.get("error").and_then(Value::as_str) {
        eprintln!("m6ctl: m6-controlplane says: {e}");
        return Err(ExitCode::FAILURE);
    }
    Ok(answer)
}

fn config_check(file: &std::path::Path) -> ExitCode {
    let text = match proto::config::ConfigError::read(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("m6ctl: {e}");
            return ExitCode::from(2);
        }
    };
    // A dataplane file has `eal:` and `ports:`; anything else is read as a control plane's.
    let top: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with([' ', '#', '-']) && l.contains(':'))
        .filter_map(|l| l.split(':').next())
        .collect();
    let result = if top.contains(&"eal") || top.contains(&"ports") {
        proto::config::DataplaneConfig::from_yaml(file, &text)
            .map(|_| "an m6-dataplane configuration")
            .map_err(|e| e.to_string())
    } else {
        ControlplaneConfig::from_yaml(file, &text)
            .map(|_| "an m6-controlplane configuration")
            .map_err(|e| e.to_string())
    };
    match result {
        Ok(kind) => {
            println!("{}: valid, {kind}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("m6ctl: {e}");
            ExitCode::from(2)
        }
    }
}

/// The dataplane's counters by name, from one `stats` answer.
fn counters(a: &Value) -> BTreeMap<String, u64> {
    a["counters"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn stats(cli: &Cli, watch: bool, count: Option<u32>) -> ExitCode {
    let mut before = match ask(cli, "stats") {
        Ok(a) => a,
        Err(code) => return code,
    };
    let rounds = if watch { count.unwrap_or(u32::MAX) } else { 1 };
    for round in 0..rounds {
        // The dataplane sends its counters once a second: wait for a fresh set.
        std::thread::sleep(Duration::from_millis(1050));
        let after = match ask(cli, "stats") {
            Ok(a) => a,
            Err(code) => return code,
        };
        let (c0, c1) = (counters(&before), counters(&after));
        // Over the dataplane's own clock between its two readings.
        let clock = |c: &BTreeMap<String, u64>| c.get("clock.ns").copied().unwrap_or(0);
        let dt = (clock(&c1).saturating_sub(clock(&c0)) as f64 / 1e9).max(0.001);
        let rate = |k: &str| {
            c1.get(k)
                .copied()
                .unwrap_or(0)
                .saturating_sub(c0.get(k).copied().unwrap_or(0)) as f64
                / dt
        };
        let mut isps: Vec<String> = c1
            .keys()
            .filter_map(|k| {
                k.strip_prefix("isp.")?
                    .strip_suffix(".tx_packets")
                    .map(String::from)
            })
            .collect();
        isps.sort();
        let classes: Vec<String> = c1
            .keys()
            .filter_map(|k| k.strip_prefix("class.").map(String::from))
            .collect();
        if cli.json {
            let mut out = serde_json::Map::new();
            for i in &isps {
                out.insert(
                    format!("isp.{i}"),
                    serde_json::json!({
                        "tx_pps": rate(&format!("isp.{i}.tx_packets")),
                        "tx_bps": 8.0 * rate(&format!("isp.{i}.tx_bytes")),
                        "rx_pps": rate(&format!("isp.{i}.rx_packets")),
                        "rx_bps": 8.0 * rate(&format!("isp.{i}.rx_bytes")),
                    }),
                );
            }
            for c in &classes {
                out.insert(
                    format!("class.{c}"),
                    serde_json::json!(rate(&format!("class.{c}"))),
                );
            }
            let drops: u64 = c1
                .iter()
                .filter(|(k, _)| k.starts_with("drop."))
                .map(|(_, v)| v)
                .sum();
            let drops0: u64 = c0
                .iter()
                .filter(|(k, _)| k.starts_with("drop."))
                .map(|(_, v)| v)
                .sum();
            out.insert(
                "drops_pps".into(),
                serde_json::json!(drops.saturating_sub(drops0) as f64 / dt),
            );
            println!("{}", Value::Object(out));
        } else {
            if round == 0 {
                let mut h = format!("{:>9}", "uptime");
                for i in &isps {
                    h.push_str(&format!(
                        " | {:>15} {:>16}",
                        format!("{i} tx pps"),
                        format!("{i} rx pps")
                    ));
                }
                h.push_str(" | top classes (pps)");
                println!("{h}");
            }
            let mut line = format!("{:>8.1}s", after["uptime_secs"].as_f64().unwrap_or(0.0));
            for i in &isps {
                line.push_str(&format!(
                    " | {:>15.0} {:>16.0}",
                    rate(&format!("isp.{i}.tx_packets")),
                    rate(&format!("isp.{i}.rx_packets"))
                ));
            }
            let mut by_class: Vec<(f64, &String)> = classes
                .iter()
                .map(|c| (rate(&format!("class.{c}")), c))
                .collect();
            by_class.sort_by(|a, b| b.0.total_cmp(&a.0));
            let top: Vec<String> = by_class
                .iter()
                .take(3)
                .filter(|(r, _)| *r > 0.0)
                .map(|(r, c)| format!("{c} {r:.0}"))
                .collect();
            line.push_str(&format!(
                " | {}",
                if top.is_empty() {
                    "idle".into()
                } else {
                    top.join(", ")
                }
            ));
            println!("{line}");
        }
        before = after;
    }
    ExitCode::SUCCESS
}

fn print_neighbors(a: &Value) {
    println!("{:<8} {:<40} {:<18} state", "port", "address", "lladdr");
    let entries = a["entries"].as_array().cloned().unwrap_or_default();
    for n in &entries {
        println!(
            "{:<8} {:<40} {:<18} {}",
            s(&n["port"]),
            s(&n["address"]),
            s(&n["mac"]),
            s(&n["state"])
        );
    }
    println!("{} of {} entries", entries.len(), s(&a["total"]));
}

fn print_dns(a: &Value) {
    println!("{:<8} {:<44} {:>9}  answer", "query", "name", "expires");
    let entries = a["entries"].as_array().cloned().unwrap_or_default();
    for e in &entries {
        println!(
            "{:<8} {:<44} {:>8.0}s  {}",
            s(&e["query"]),
            s(&e["name"]),
            e["expires_in_secs"].as_f64().unwrap_or(0.0),
            s(&e["answer"])
        );
    }
    println!("{} of {} entries", entries.len(), s(&a["total"]));
}

fn print_context(a: &Value) {
    for c in a.as_array().cloned().unwrap_or_default() {
        for k in [
            "aid_local",
            "aid_peer",
            "f_local",
            "f_peer",
            "state",
            "lp_local",
            "lp_peer",
            "lsl_local",
            "ls_local",
            "lsl_peer",
            "lsv_peer",
            "rewrite_ok",
            "transmit",
        ] {
            let v = match &c[k] {
                Value::Array(v) => v.iter().map(s).collect::<Vec<_>>().join(" "),
                other => s(other),
            };
            println!("{k:<12} {v}");
        }
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_status(a: &Value) {
    let connected = a["dataplane"]["connected"].as_bool().unwrap_or(false);
    println!("birthday            {}", s(&a["birthday"]));
    println!(
        "uptime              {:.0} s",
        a["uptime_secs"].as_f64().unwrap_or(0.0)
    );
    println!(
        "dataplane           {} ({})",
        if connected {
            "connected"
        } else {
            "not connected"
        },
        s(&a["dataplane"]["socket"])
    );
    println!("hosts               {}", s(&a["hosts"]));
    println!("contexts            {}", s(&a["contexts"]));
    println!("destinations        {}", s(&a["destinations"]));
    println!("CC key serial       {}", s(&a["cc_key_serial"]));
    let down: Vec<String> = a["isp_prefixes_down"]
        .as_array()
        .map(|v| v.iter().map(s).collect())
        .unwrap_or_default();
    println!(
        "ISP prefixes down   {}",
        if down.is_empty() {
            "none".into()
        } else {
            down.join(" ")
        }
    );
}

fn print_isps(a: &Value) {
    println!(
        "{:<12} {:<22} {:<10} {:<8} {:>9} {:>11}",
        "ISP", "prefix", "state", "drained", "rtt (ms)", "withdrawals"
    );
    for i in a.as_array().cloned().unwrap_or_default() {
        let state = if i["usable"].as_bool().unwrap_or(false) {
            "usable".to_string()
        } else {
            format!("down ({})", s(&i["cause"]))
        };
        println!(
            "{:<12} {:<22} {:<10} {:<8} {:>9} {:>11}",
            s(&i["name"]),
            s(&i["prefix"]),
            state,
            if i["drained"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            i["rtt_ms"]
                .as_f64()
                .map_or("-".into(), |r| format!("{r:.2}")),
            s(&i["withdrawals"]),
        );
    }
}

fn print_contexts(a: &Value) {
    let rows = a.as_array().cloned().unwrap_or_default();
    println!(
        "{:<28} {:<28} {:>8} {:>8} {:<28} {:<5} Lsv(peer)",
        "AID(local)", "AID(peer)", "F(local)", "F(peer)", "Lp(peer)", "tx"
    );
    for c in &rows {
        let lsv: Vec<String> = c["lsv_peer"]
            .as_array()
            .map(|v| v.iter().map(s).collect())
            .unwrap_or_default();
        println!(
            "{:<28} {:<28} {:>8} {:>8} {:<28} {:<5} {}",
            s(&c["aid_local"]),
            s(&c["aid_peer"]),
            s(&c["f_local"]),
            s(&c["f_peer"]),
            s(&c["lp_peer"]),
            if c["transmit"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            lsv.join(",")
        );
    }
    println!("{} contexts", rows.len());
}
