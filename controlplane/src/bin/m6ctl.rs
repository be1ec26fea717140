//! `m6ctl`: the admin CLI. It asks m6-controlplane over its admin socket
//! (`controlplane::admin`) and prints the answer as a table, or as JSON with `--json`:
//! `status`, `context list`, `isp list`, `isp drain|undrain NAME` (the rest of the command
//! set comes with the operations issue).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use controlplane::admin;
use controlplane::config::DEFAULT_ADMIN_SOCKET;
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "m6ctl",
    version,
    about = "Ask m6-controlplane what it is doing"
)]
struct Cli {
    /// The control plane's admin socket (its `admin_socket` setting).
    #[arg(long, default_value = DEFAULT_ADMIN_SOCKET)]
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
    /// Host-pair contexts.
    Context {
        #[command(subcommand)]
        command: ContextCommand,
    },
    /// The ISPs: health, drains.
    Isp {
        #[command(subcommand)]
        command: IspCommand,
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
enum ContextCommand {
    /// Every context installed in the dataplane.
    List {
        /// Only the contexts with this peer AID.
        #[arg(long)]
        peer: Option<std::net::Ipv6Addr>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let request = match &cli.command {
        Command::Status => "status".to_string(),
        Command::Context { .. } => "contexts".to_string(),
        Command::Isp {
            command: IspCommand::List,
        } => "isps".to_string(),
        Command::Isp {
            command: IspCommand::Drain { name },
        } => format!("isp drain {name}"),
        Command::Isp {
            command: IspCommand::Undrain { name },
        } => format!("isp undrain {name}"),
    };
    let mut answer = match admin::request(&cli.socket, &request) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("m6ctl: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(e) = answer.get("error").and_then(Value::as_str) {
        eprintln!("m6ctl: m6-controlplane says: {e}");
        return ExitCode::FAILURE;
    }
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
        Command::Context { .. } => print_contexts(&answer),
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
    }
    ExitCode::SUCCESS
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
