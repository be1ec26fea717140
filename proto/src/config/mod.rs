//! The YAML configuration of `m6-dataplane`, checked whole at load time.
//!
//! Loading happens in two steps: serde reads the file into the `Raw*` structs (every
//! field an operator writes, unknown fields refused), then `DataplaneConfig::from_raw`
//! checks each value and the references between sections. Every refusal names the file,
//! the field (`isps[1].prefix`) and what was expected against what was found, so an
//! operator can fix the file without reading code.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::prefix::Ipv6Prefix;

mod policy;
pub use policy::{
    DampeningConfig, HealthConfig, Nptv6Config, PolicyAction, PolicyRule, RaConfig, DEFAULT_WEIGHT,
};
use policy::{RawHealth, RawNptv6, RawPolicyRule, RawRa};

/// A configuration refusal: `file: field: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted path of the offending field, e.g. `isps[1].prefix`; empty for the whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.field,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// Reads a configuration file whole; the error names the file.
    pub fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            field: String::new(),
            message: format!("cannot read the file: {e}"),
        })
    }

    /// Turns serde's message (`isps[0]: missing field `prefix` at line 12 column 5`) into
    /// `file: isps[0]: missing field ...`; shared by every YAML file the project reads.
    pub fn from_yaml(file: &Path, e: &serde_yaml::Error) -> ConfigError {
        let text = e.to_string();
        let (mut field, mut message) = match text.split_once(": ") {
            Some((path, rest)) if looks_like_path(path) => (path.to_string(), rest.to_string()),
            _ => (String::new(), text.clone()),
        };
        // "missing field `x` at line L column C" names the parent; name the field itself.
        if let Some(rest) = message.strip_prefix("missing field `") {
            if let Some((name, location)) = rest.split_once('`') {
                field = if field.is_empty() {
                    name.to_string()
                } else {
                    format!("{field}.{name}")
                };
                message = format!("expected a value, found none{location}");
            }
        }
        ConfigError {
            file: file.to_path_buf(),
            field,
            message,
        }
    }
}

// ---------------------------------------------------------------------------------------
// What the operator writes.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    eal: RawEal,
    #[serde(default)]
    mempool: Option<RawMempool>,
    ports: Vec<RawPort>,
    lan_port: String,
    isps: Vec<RawIsp>,
    workers: Vec<RawWorker>,
    #[serde(default)]
    polling: Option<RawPolling>,
    #[serde(default)]
    neighbors: Vec<RawNeighbor>,
    #[serde(default)]
    icmp_errors_per_sec: Option<u32>,
    #[serde(default)]
    ipv4: Option<String>,
    #[serde(default)]
    neighbor_discovery: Option<RawNd>,
    #[serde(default)]
    proxy: Option<RawProxy>,
    #[serde(default)]
    channel: Option<RawChannel>,
    #[serde(default)]
    health: Option<RawHealth>,
    #[serde(default)]
    policy: Vec<RawPolicyRule>,
    #[serde(default)]
    router_advertisements: Option<RawRa>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    #[serde(default)]
    prefixes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNd {
    #[serde(default)]
    reachable_time_ms: Option<u64>,
    #[serde(default)]
    retrans_timer_ms: Option<u64>,
    #[serde(default)]
    delay_first_probe_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEal {
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMempool {
    mbufs: u32,
    #[serde(default)]
    cache: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: String,
    device: String,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    rx_desc: Option<u16>,
    #[serde(default)]
    tx_desc: Option<u16>,
    #[serde(default)]
    mtu: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIsp {
    name: String,
    port: String,
    prefix: String,
    next_hop: String,
    #[serde(default)]
    next_hop_mac: Option<String>,
    #[serde(default)]
    admin: Option<String>,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    pub(crate) beacons: Vec<String>,
    #[serde(default)]
    pub(crate) nptv6: Option<RawNptv6>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    lcore: usize,
    rx: Vec<RawRxQueue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRxQueue {
    port: String,
    queue: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolling {
    mode: String,
    #[serde(default)]
    max_idle_sleep_us: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighbor {
    port: String,
    address: String,
    mac: String,
}

// ---------------------------------------------------------------------------------------
// What the dataplane runs with: every value checked and every name resolved to an index.

/// How a port is found by EAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A PCI device, added to EAL's allow list (`-a`), e.g. `0000:01:00.0`.
    Pci(String),
    /// A virtual device string passed as `--vdev`, e.g. `net_af_packet0,iface=lan`.
    Vdev(String),
}

impl Device {
    /// The name DPDK gives the port: the PCI address, or the vdev name before the first comma.
    pub fn port_name(&self) -> &str {
        match self {
            Device::Pci(addr) => addr,
            Device::Vdev(spec) => spec.split(',').next().unwrap_or(spec),
        }
    }

    /// The kernel interface behind an af_packet vdev (`iface=` argument), whose carrier
    /// stands in for the link state that the af_packet PMD does not report.
    pub fn af_packet_iface(&self) -> Option<&str> {
        match self {
            Device::Vdev(spec) if spec.starts_with("net_af_packet") => spec
                .split(',')
                .skip(1)
                .find_map(|kv| kv.strip_prefix("iface=")),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    pub device: Device,
    /// The router's own global addresses on this link (its EUI-64 link-local is implied).
    pub addresses: Vec<Ipv6Addr>,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// The link's IPv6 MTU in octets (the largest IPv6 packet, without the Ethernet
    /// header): [`DEFAULT_MTU`] unless configured, [`MIN_MTU`] to [`MAX_MTU`].
    pub mtu: u16,
}

/// One upstream provider. The dataplane uses this type as it is (`dataplane::IspInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IspConfig {
    pub name: String,
    /// Index into [`DataplaneConfig::ports`] (and so into the dataplane's `Site::ports`,
    /// which lists the ports in the same order).
    pub port: usize,
    /// The prefix this ISP delegated to the site (PA); it accepts only these sources.
    pub prefix: Ipv6Prefix,
    /// The ISP router the site sends through.
    pub next_hop: Ipv6Addr,
    /// A static MAC for the next hop; when `None` it is resolved by Neighbor Discovery.
    pub next_hop_mac: Option<[u8; 6]>,
    pub admin_up: bool,
    /// Share of rewritable and proxied flows this ISP carries against the others' weights
    /// ([`DEFAULT_WEIGHT`] unless configured; 0: only when no weighted ISP is healthy).
    pub weight: u32,
    /// Addresses beyond the ISP that health probes (ICMPv6 echo) go to through it; empty:
    /// no probes, health from carrier and next hop only.
    pub beacons: Vec<Ipv6Addr>,
    /// RFC 6296 prefix translation for ULA hosts through this ISP (off unless configured).
    pub nptv6: Option<Nptv6Config>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxQueueConfig {
    pub port: usize,
    pub queue: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The CPU the worker is pinned to.
    pub lcore: usize,
    pub rx: Vec<RxQueueConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollingMode {
    /// Spin on the RX queues forever: lowest latency, one full core per worker.
    Busy,
    /// Back off (yield, then sleep up to `max_idle_sleep_us`) while the queues are empty.
    Adaptive { max_idle_sleep_us: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticNeighbor {
    pub port: usize,
    pub address: Ipv6Addr,
    pub mac: [u8; 6],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    pub eal_args: Vec<String>,
    pub mempool_mbufs: u32,
    pub mempool_cache: u32,
    pub ports: Vec<PortConfig>,
    pub lan_port: usize,
    pub isps: Vec<IspConfig>,
    pub workers: Vec<WorkerConfig>,
    pub polling: PollingMode,
    pub neighbors: Vec<StaticNeighbor>,
    pub icmp_errors_per_sec: u32,
    pub nd: NdTimers,
    /// Prefixes of the legacy hosts the router proxies (seed 002): every LAN prefix their
    /// AIDs and locators are in. Empty: no proxy.
    pub proxy_prefixes: Vec<Ipv6Prefix>,
    /// The Unix socket the dataplane listens on for `m6-controlplane`.
    pub channel: ChannelConfig,
    /// How ISP health probes run (used for ISPs with `beacons`).
    pub health: HealthConfig,
    /// Traffic-engineering rules for rewritable and proxied traffic, first match wins.
    pub policy: Vec<PolicyRule>,
    /// Router Advertisements on the LAN; `None`: the router sends none.
    pub router_advertisements: Option<RaConfig>,
}

/// Where the dataplane <-> control-plane channel lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Socket path ([`DEFAULT_CHANNEL_PATH`] unless configured).
    pub path: std::path::PathBuf,
    /// Permission bits of the socket (0600 unless configured).
    pub mode: u32,
}

/// The channel's socket unless configured.
pub const DEFAULT_CHANNEL_PATH: &str = "/run/m6/dataplane.sock";

/// Neighbor Discovery timers (RFC 4861 section 10), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdTimers {
    /// How long a confirmation keeps a neighbor REACHABLE (REACHABLE_TIME, 30 000).
    pub reachable_time_ms: u64,
    /// Between solicitations for one target (RetransTimer, 1 000).
    pub retrans_timer_ms: u64,
    /// From the first use of a STALE entry to its first probe (DELAY_FIRST_PROBE_TIME,
    /// 5 000).
    pub delay_first_probe_ms: u64,
}

impl Default for NdTimers {
    fn default() -> NdTimers {
        NdTimers {
            reachable_time_ms: 30_000,
            retrans_timer_ms: 1_000,
            delay_first_probe_ms: 5_000,
        }
    }
}

pub const DEFAULT_MEMPOOL_MBUFS: u32 = 8191;
pub const DEFAULT_MEMPOOL_CACHE: u32 = 256;
pub const DEFAULT_RX_DESC: u16 = 1024;
pub const DEFAULT_TX_DESC: u16 = 1024;
/// An adaptive worker's sleep ceiling (µs). With the worker's 1 µs timer slack a 50 µs
/// sleep takes about 70 µs (125 µs with Linux's default slack), and a 1024-descriptor RX
/// queue took bursts of up to 16 Mpps after idle without systematic loss; the price is
/// 22% to 30% of a core while idle (docs/performance.md, "Loss after idle").
pub const DEFAULT_MAX_IDLE_SLEEP_US: u64 = 50;
/// The largest sleep ceiling accepted (µs): beyond 1 s of sleep an idle worker would also
/// miss the control thread's watchdog (3 s without a publication counts as stuck) and the
/// back-off's doubling stops at about 1 s anyway.
pub const MAX_IDLE_SLEEP_US: u64 = 1_000_000;
pub const DEFAULT_ICMP_ERRORS_PER_SEC: u32 = 100;
/// Ethernet's MTU.
pub const DEFAULT_MTU: u16 = 1500;
/// IPv6's minimum link MTU (RFC 8200 section 5).
pub const MIN_MTU: u16 = 1280;
/// The largest MTU a port may have (jumbo frames; the dataplane sizes its mbufs for the
/// largest configured MTU so that every frame fits one segment).
pub const MAX_MTU: u16 = 9000;

impl DataplaneConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<DataplaneConfig, ConfigError> {
        Self::from_yaml(path, &ConfigError::read(path)?)
    }

    /// Checks configuration text; `file` is only used to name it in errors.
    pub fn from_yaml(file: &Path, text: &str) -> Result<DataplaneConfig, ConfigError> {
        let raw: RawConfig =
            serde_yaml::from_str(text).map_err(|e| ConfigError::from_yaml(file, &e))?;
        Self::from_raw(file, raw)
    }

    /// The EAL argument list: the operator's `eal.args` followed by one `--vdev` or `-a`
    /// per port, so a port is never probed unless the configuration names it.
    pub fn full_eal_args(&self) -> Vec<String> {
        let mut args = self.eal_args.clone();
        for port in &self.ports {
            match &port.device {
                Device::Pci(addr) => {
                    args.push("-a".into());
                    args.push(addr.clone());
                }
                Device::Vdev(spec) => args.push(format!("--vdev={spec}")),
            }
        }
        args
    }

    /// Number of RX queues each port gets: one per `workers[].rx` entry naming it.
    pub fn rx_queue_count(&self, port: usize) -> u16 {
        let n = self
            .workers
            .iter()
            .flat_map(|w| &w.rx)
            .filter(|q| q.port == port)
            .count();
        u16::try_from(n).unwrap_or(u16::MAX)
    }

    fn from_raw(file: &Path, raw: RawConfig) -> Result<DataplaneConfig, ConfigError> {
        let err = |field: String, message: String| ConfigError {
            file: file.to_path_buf(),
            field,
            message,
        };

        // ports
        if raw.ports.is_empty() {
            return Err(err(
                "ports".into(),
                "expected at least one port, found none".into(),
            ));
        }
        let mut port_index: HashMap<&str, usize> = HashMap::new();
        let mut ports = Vec::with_capacity(raw.ports.len());
        let mut seen_devices: HashSet<String> = HashSet::new();
        for (i, p) in raw.ports.iter().enumerate() {
            let field = |f: &str| format!("ports[{i}].{f}");
            check_name(&p.name).map_err(|m| err(field("name"), m))?;
            if port_index.insert(p.name.as_str(), i).is_some() {
                return Err(err(
                    field("name"),
                    format!("expected a unique port name, found a second {:?}", p.name),
                ));
            }
            let device = parse_device(&p.device).map_err(|m| err(field("device"), m))?;
            if !seen_devices.insert(device.port_name().to_string()) {
                return Err(err(
                    field("device"),
                    format!(
                        "expected each device once, found {:?} twice",
                        device.port_name()
                    ),
                ));
            }
            if matches!(device, Device::Pci(_)) && raw.eal.args.iter().any(|a| a == "--no-pci") {
                return Err(err(
                    field("device"),
                    format!(
                        "expected a vdev while eal.args has --no-pci, found PCI address {:?}",
                        p.device
                    ),
                ));
            }
            let mut addresses = Vec::with_capacity(p.addresses.len());
            for (j, a) in p.addresses.iter().enumerate() {
                let addr =
                    parse_unicast(a).map_err(|m| err(field(&format!("addresses[{j}]")), m))?;
                addresses.push(addr);
            }
            let mtu = p.mtu.unwrap_or(DEFAULT_MTU);
            if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
                return Err(err(
                    field("mtu"),
                    format!("expected an MTU from {MIN_MTU} to {MAX_MTU} octets, found {mtu}"),
                ));
            }
            ports.push(PortConfig {
                name: p.name.clone(),
                device,
                addresses,
                rx_desc: p.rx_desc.unwrap_or(DEFAULT_RX_DESC),
                tx_desc: p.tx_desc.unwrap_or(DEFAULT_TX_DESC),
                mtu,
            });
        }
        let lookup_port = |field: String, name: &str| -> Result<usize, ConfigError> {
            port_index.get(name).copied().ok_or_else(|| {
                err(
                    field,
                    format!(
                        "expected one of the ports ({}), found unknown port {name:?}",
                        raw.ports
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
        };

        let lan_port = lookup_port("lan_port".into(), &raw.lan_port)?;

        // isps
        if raw.isps.is_empty() {
            return Err(err(
                "isps".into(),
                "expected at least one ISP, found none".into(),
            ));
        }
        let mut isps: Vec<IspConfig> = Vec::with_capacity(raw.isps.len());
        for (i, s) in raw.isps.iter().enumerate() {
            let field = |f: &str| format!("isps[{i}].{f}");
            check_name(&s.name).map_err(|m| err(field("name"), m))?;
            if let Some(j) = raw.isps[..i].iter().position(|o| o.name == s.name) {
                return Err(err(
                    field("name"),
                    format!(
                        "expected a unique ISP name, found {:?} again (isps[{j}])",
                        s.name
                    ),
                ));
            }
            let port = lookup_port(field("port"), &s.port)?;
            if port == lan_port {
                return Err(err(
                    field("port"),
                    format!("expected an uplink port, found the LAN port {:?}", s.port),
                ));
            }
            let prefix: Ipv6Prefix = s.prefix.parse().map_err(|e| {
                err(
                    field("prefix"),
                    format!(
                        "expected an IPv6 prefix like 2001:db8:1::/48, found {:?} ({e})",
                        s.prefix
                    ),
                )
            })?;
            if prefix.len() == 0 || prefix.len() > 64 {
                return Err(err(
                    field("prefix"),
                    format!(
                        "expected a delegated prefix of length 1 to 64, found /{}",
                        prefix.len()
                    ),
                ));
            }
            if let Some((j, other)) = isps
                .iter()
                .enumerate()
                .find(|(_, o)| o.prefix.overlaps(&prefix))
            {
                return Err(err(
                    field("prefix"),
                    format!(
                        "expected a prefix disjoint from every other ISP's, found {prefix} overlapping isps[{j}].prefix {} ({})",
                        other.prefix, other.name
                    ),
                ));
            }
            let next_hop = parse_unicast(&s.next_hop).map_err(|m| err(field("next_hop"), m))?;
            let next_hop_mac = match &s.next_hop_mac {
                None => None,
                Some(m) => Some(parse_mac(m).map_err(|m| err(field("next_hop_mac"), m))?),
            };
            let admin_up = match s.admin.as_deref() {
                None | Some("up") => true,
                Some("down") => false,
                Some(other) => {
                    return Err(err(
                        field("admin"),
                        format!("expected up or down, found {other:?}"),
                    ))
                }
            };
            let weight = s.weight.unwrap_or(DEFAULT_WEIGHT);
            if weight > policy::MAX_WEIGHT {
                return Err(err(
                    field("weight"),
                    format!(
                        "expected a weight from 0 to {}, found {weight}",
                        policy::MAX_WEIGHT
                    ),
                ));
            }
            isps.push(IspConfig {
                name: s.name.clone(),
                port,
                prefix,
                next_hop,
                next_hop_mac,
                admin_up,
                weight,
                beacons: Vec::new(),
                nptv6: None,
            });
        }

        // workers and their RX queues
        if raw.workers.is_empty() {
            return Err(err(
                "workers".into(),
                "expected at least one worker, found none".into(),
            ));
        }
        let mut workers = Vec::with_capacity(raw.workers.len());
        let mut lcores = HashSet::new();
        let mut queues_of_port: Vec<Vec<u16>> = vec![Vec::new(); ports.len()];
        for (i, w) in raw.workers.iter().enumerate() {
            if !lcores.insert(w.lcore) {
                return Err(err(
                    format!("workers[{i}].lcore"),
                    format!(
                        "expected one worker per lcore, found lcore {} twice",
                        w.lcore
                    ),
                ));
            }
            let mut rx = Vec::with_capacity(w.rx.len());
            for (j, q) in w.rx.iter().enumerate() {
                let field = format!("workers[{i}].rx[{j}]");
                let port = lookup_port(format!("{field}.port"), &q.port)?;
                if queues_of_port[port].contains(&q.queue) {
                    return Err(err(
                        format!("{field}.queue"),
                        format!(
                            "expected each RX queue polled by one worker, found {}:{} twice",
                            q.port, q.queue
                        ),
                    ));
                }
                queues_of_port[port].push(q.queue);
                rx.push(RxQueueConfig {
                    port,
                    queue: q.queue,
                });
            }
            workers.push(WorkerConfig { lcore: w.lcore, rx });
        }
        for (port, queues) in queues_of_port.iter_mut().enumerate() {
            queues.sort_unstable();
            let expected: Vec<u16> = (0..queues.len() as u16).collect();
            if queues.is_empty() {
                return Err(err(
                    "workers".into(),
                    format!(
                        "expected every port polled by a worker, found port {:?} in no workers[].rx",
                        ports[port].name
                    ),
                ));
            }
            if *queues != expected {
                return Err(err(
                    "workers".into(),
                    format!(
                        "expected RX queues 0..{} of port {:?}, found {:?}",
                        queues.len() - 1,
                        ports[port].name,
                        queues
                    ),
                ));
            }
        }

        let polling = match &raw.polling {
            None => PollingMode::Adaptive {
                max_idle_sleep_us: DEFAULT_MAX_IDLE_SLEEP_US,
            },
            Some(p) => match p.mode.as_str() {
                "busy" if p.max_idle_sleep_us.is_some() => {
                    return Err(err(
                        "polling.max_idle_sleep_us".into(),
                        "only with mode: adaptive (a busy worker never sleeps)".into(),
                    ))
                }
                "busy" => PollingMode::Busy,
                "adaptive" => {
                    let us = p.max_idle_sleep_us.unwrap_or(DEFAULT_MAX_IDLE_SLEEP_US);
                    if !(1..=MAX_IDLE_SLEEP_US).contains(&us) {
                        return Err(err(
                            "polling.max_idle_sleep_us".into(),
                            format!("expected 1 to {MAX_IDLE_SLEEP_US} (µs), found {us}"),
                        ));
                    }
                    PollingMode::Adaptive {
                        max_idle_sleep_us: us,
                    }
                }
                other => {
                    return Err(err(
                        "polling.mode".into(),
                        format!("expected busy or adaptive, found {other:?}"),
                    ))
                }
            },
        };

        let mut neighbors = Vec::with_capacity(raw.neighbors.len());
        for (i, n) in raw.neighbors.iter().enumerate() {
            let field = |f: &str| format!("neighbors[{i}].{f}");
            neighbors.push(StaticNeighbor {
                port: lookup_port(field("port"), &n.port)?,
                address: parse_unicast(&n.address).map_err(|m| err(field("address"), m))?,
                mac: parse_mac(&n.mac).map_err(|m| err(field("mac"), m))?,
            });
        }

        let needed = mbufs_needed(&ports, &queues_of_port, workers.len());
        let (mempool_mbufs, mempool_cache) = match &raw.mempool {
            // Round up to 2^n - 1, the size DPDK's ring-backed pools use best.
            None => (
                DEFAULT_MEMPOOL_MBUFS.max(needed.next_power_of_two() - 1),
                DEFAULT_MEMPOOL_CACHE,
            ),
            Some(m) => {
                if m.mbufs < needed {
                    return Err(err(
                        "mempool.mbufs".into(),
                        format!(
                            "expected at least {needed} mbufs to fill every RX/TX ring, \
                             cache and burst in flight, found {}",
                            m.mbufs
                        ),
                    ));
                }
                let cache = m.cache.unwrap_or(DEFAULT_MEMPOOL_CACHE);
                if m.mbufs < 512 {
                    return Err(err(
                        "mempool.mbufs".into(),
                        format!("expected at least 512 mbufs, found {}", m.mbufs),
                    ));
                }
                // DPDK refuses caches over 512 or over n / 1.5.
                if cache > 512 || u64::from(cache) * 3 > u64::from(m.mbufs) * 2 {
                    return Err(err(
                        "mempool.cache".into(),
                        format!("expected at most 512 and at most mbufs / 1.5, found {cache}"),
                    ));
                }
                (m.mbufs, cache)
            }
        };

        match raw.ipv4.as_deref() {
            None | Some("drop") => {}
            Some(other) => {
                return Err(err(
                    "ipv4".into(),
                    format!("expected drop (an IPv6-only router), found {other:?}"),
                ))
            }
        }

        let mut nd = NdTimers::default();
        if let Some(n) = &raw.neighbor_discovery {
            for (name, value, slot, range) in [
                (
                    "reachable_time_ms",
                    n.reachable_time_ms,
                    &mut nd.reachable_time_ms,
                    1_000..=3_600_000u64,
                ),
                (
                    "retrans_timer_ms",
                    n.retrans_timer_ms,
                    &mut nd.retrans_timer_ms,
                    100..=60_000,
                ),
                (
                    "delay_first_probe_ms",
                    n.delay_first_probe_ms,
                    &mut nd.delay_first_probe_ms,
                    100..=60_000,
                ),
            ] {
                if let Some(v) = value {
                    if !range.contains(&v) {
                        return Err(err(
                            format!("neighbor_discovery.{name}"),
                            format!(
                                "expected milliseconds from {} to {}, found {v}",
                                range.start(),
                                range.end()
                            ),
                        ));
                    }
                    *slot = v;
                }
            }
        }

        let mut proxy_prefixes = Vec::new();
        for (i, text) in raw
            .proxy
            .as_ref()
            .map(|p| p.prefixes.as_slice())
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let field = format!("proxy.prefixes[{i}]");
            let p: Ipv6Prefix = text.parse().map_err(|e| {
                err(
                    field.clone(),
                    format!(
                        "expected an IPv6 prefix such as 2001:db8:1:1::/64, found {text:?} ({e})"
                    ),
                )
            })?;
            if !isps
                .iter()
                .any(|s| s.prefix.len() <= p.len() && s.prefix.contains(&p.network()))
            {
                return Err(err(
                    field,
                    format!("expected a prefix inside one of the ISPs' prefixes, found {text}"),
                ));
            }
            proxy_prefixes.push(p);
        }

        let channel = {
            let c = raw.channel.as_ref();
            let path = c
                .and_then(|c| c.path.clone())
                .unwrap_or_else(|| DEFAULT_CHANNEL_PATH.to_string());
            if !path.starts_with('/') {
                return Err(err(
                    "channel.path".into(),
                    format!("expected an absolute path, found {path:?}"),
                ));
            }
            let mode_text = c
                .and_then(|c| c.mode.clone())
                .unwrap_or_else(|| "0600".into());
            let mode = u32::from_str_radix(mode_text.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| {
                    err(
                        "channel.mode".into(),
                        format!(
                            "expected octal permission bits such as \"0600\", found {mode_text:?}"
                        ),
                    )
                })?;
            ChannelConfig {
                path: path.into(),
                mode,
            }
        };

        policy::isp_extras(
            &raw.isps,
            &mut isps,
            &ports,
            lan_port,
            &proxy_prefixes,
            &err,
        )?;
        let health = policy::health(raw.health.as_ref(), &err)?;
        let policy = policy::rules(&raw.policy, &isps, &err)?;
        let router_advertisements =
            policy::router_advertisements(raw.router_advertisements.as_ref(), &err)?;

        Ok(DataplaneConfig {
            eal_args: raw.eal.args,
            mempool_mbufs,
            mempool_cache,
            ports,
            lan_port,
            isps,
            workers,
            polling,
            neighbors,
            icmp_errors_per_sec: raw
                .icmp_errors_per_sec
                .unwrap_or(DEFAULT_ICMP_ERRORS_PER_SEC),
            nd,
            proxy_prefixes,
            channel,
            health,
            policy,
            router_advertisements,
        })
    }
}

fn looks_like_path(s: &str) -> bool {
    !s.is_empty()
        && !s.contains(' ')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.[]-".contains(c))
}

/// Mbufs the pool must hold so that no RX ring starves: every RX and TX descriptor of
/// every queue, each worker's mempool cache, and two bursts per port per worker in flight.
fn mbufs_needed(ports: &[PortConfig], rx_queues: &[Vec<u16>], workers: usize) -> u32 {
    let workers = workers as u64;
    let rings: u64 = ports
        .iter()
        .zip(rx_queues)
        .map(|(p, q)| q.len() as u64 * u64::from(p.rx_desc) + workers * u64::from(p.tx_desc))
        .sum();
    let in_flight = workers * (u64::from(DEFAULT_MEMPOOL_CACHE) + 2 * 32 * ports.len() as u64);
    u32::try_from(rings + in_flight).unwrap_or(u32::MAX)
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected 1 to 32 letters, digits, '-' or '_', found {name:?}"
        ))
    }
}

fn parse_device(s: &str) -> Result<Device, String> {
    if s.starts_with("net_") {
        return Ok(Device::Vdev(s.to_string()));
    }
    if is_pci_address(s) {
        return Ok(Device::Pci(s.to_string()));
    }
    Err(format!(
        "expected a PCI address like 0000:01:00.0 or a vdev like net_af_packet0,iface=eth1, found {s:?}"
    ))
}

/// `DDDD:BB:DD.F` or `BB:DD.F`, hexadecimal.
fn is_pci_address(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let (domain, bus, devfn) = match parts.as_slice() {
        [d, b, df] => (Some(*d), *b, *df),
        [b, df] => (None, *b, *df),
        _ => return false,
    };
    let hex = |t: &str, n: usize| t.len() == n && t.chars().all(|c| c.is_ascii_hexdigit());
    let Some((dev, func)) = devfn.split_once('.') else {
        return false;
    };
    domain.is_none_or(|d| hex(d, 4)) && hex(bus, 2) && hex(dev, 2) && hex(func, 1)
}

pub(crate) fn parse_unicast(s: &str) -> Result<Ipv6Addr, String> {
    let addr: Ipv6Addr = s
        .trim()
        .parse()
        .map_err(|_| format!("expected an IPv6 address, found {s:?}"))?;
    if addr.is_multicast() || addr.is_unspecified() || addr.is_loopback() {
        return Err(format!("expected a unicast IPv6 address, found {addr}"));
    }
    Ok(addr)
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let expected = || format!("expected a MAC address like 02:00:00:00:00:01, found {s:?}");
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in mac.iter_mut() {
        let part = parts.next().ok_or_else(expected)?;
        if part.len() != 2 {
            return Err(expected());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| expected())?;
    }
    if parts.next().is_some() {
        return Err(expected());
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
eal:
  args: ["--in-memory", "--no-pci", "-l", "0"]
ports:
  - name: lan
    device: "net_af_packet0,iface=lan"
    addresses: ["2001:db8:1:1::1", "2001:db8:2:1::1"]
  - name: isp1
    device: "net_af_packet1,iface=isp1"
    addresses: ["2001:db8:ff01::2"]
  - name: isp2
    device: "net_af_packet2,iface=isp2"
lan_port: lan
isps:
  - { name: isp1, port: isp1, prefix: "2001:db8:1::/48", next_hop: "2001:db8:ff01::1" }
  - { name: isp2, port: isp2, prefix: "2001:db8:2::/48", next_hop: "2001:db8:ff02::1", next_hop_mac: "02:00:00:00:02:01", admin: down }
workers:
  - lcore: 1
    rx: [{ port: lan, queue: 0 }, { port: isp1, queue: 0 }, { port: isp2, queue: 0 }]
polling: { mode: adaptive, max_idle_sleep_us: 50 }
"#;

    fn load(text: &str) -> Result<DataplaneConfig, ConfigError> {
        DataplaneConfig::from_yaml(Path::new("site.yaml"), text)
    }

    fn refusal(text: &str) -> String {
        load(text)
            .expect_err("config should be refused")
            .to_string()
    }

    #[test]
    fn good_config_resolves_names_to_indices() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.lan_port, 0);
        assert_eq!(c.isps[1].port, 2);
        assert!(!c.isps[1].admin_up);
        assert_eq!(c.isps[1].next_hop_mac, Some([2, 0, 0, 0, 2, 1]));
        assert_eq!(
            c.polling,
            PollingMode::Adaptive {
                max_idle_sleep_us: 50
            }
        );
        assert_eq!(c.rx_queue_count(1), 1);
        assert_eq!(c.ports[0].device.af_packet_iface(), Some("lan"));
        assert_eq!(c.ports[0].device.port_name(), "net_af_packet0");
        let eal = c.full_eal_args();
        assert!(eal.contains(&"--vdev=net_af_packet2,iface=isp2".to_string()));
    }

    #[test]
    fn unknown_port_is_named() {
        let msg = refusal(&GOOD.replace("port: isp2, prefix", "port: isp9, prefix"));
        assert!(
            msg.starts_with("site.yaml: isps[1].port: expected one of the ports"),
            "{msg}"
        );
        assert!(msg.contains("\"isp9\""), "{msg}");
    }

    #[test]
    fn overlapping_prefix_is_named() {
        let msg = refusal(&GOOD.replace("2001:db8:2::/48", "2001:db8:1:8000::/49"));
        assert!(
            msg.starts_with("site.yaml: isps[1].prefix: expected a prefix disjoint"),
            "{msg}"
        );
        assert!(msg.contains("isps[0].prefix 2001:db8:1::/48"), "{msg}");
    }

    #[test]
    fn missing_field_is_named() {
        let msg = refusal(&GOOD.replace(", next_hop: \"2001:db8:ff01::1\"", ""));
        assert!(
            msg.starts_with("site.yaml: isps[0].next_hop: expected a value, found none"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_field_is_named() {
        let msg = refusal(&GOOD.replace("lan_port: lan", "lan_port: lan\nlan_prot: lan"));
        assert!(
            msg.starts_with("site.yaml: unknown field `lan_prot`"),
            "{msg}"
        );
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        let cases = [
            (
                "2001:db8:1::/48",
                "2001:db8:1::1/48",
                "isps[0].prefix: expected an IPv6 prefix",
            ),
            (
                "\"2001:db8:ff01::2\"",
                "\"ff02::1\"",
                "ports[1].addresses[0]: expected a unicast",
            ),
            (
                "02:00:00:00:02:01",
                "02:00:00:00:02",
                "isps[1].next_hop_mac: expected a MAC",
            ),
            (
                "admin: down",
                "admin: sideways",
                "isps[1].admin: expected up or down",
            ),
            (
                "mode: adaptive",
                "mode: lazy",
                "polling.mode: expected busy or adaptive",
            ),
            (
                "max_idle_sleep_us: 50",
                "max_idle_sleep_us: 0",
                "polling.max_idle_sleep_us: expected 1 to 1000000 (µs), found 0",
            ),
            (
                "max_idle_sleep_us: 50",
                "max_idle_sleep_us: 18446744073709551615",
                "polling.max_idle_sleep_us: expected 1 to 1000000",
            ),
            (
                "mode: adaptive",
                "mode: busy",
                "polling.max_idle_sleep_us: only with mode: adaptive",
            ),
            (
                "net_af_packet1,iface=isp1",
                "eth1",
                "ports[1].device: expected a PCI address",
            ),
            (
                "lan_port: lan",
                "lan_port: wan",
                "lan_port: expected one of the ports",
            ),
            (
                "{ port: isp2, queue: 0 }",
                "{ port: isp1, queue: 0 }",
                "expected each RX queue",
            ),
        ];
        for (from, to, want) in cases {
            let text = GOOD.replacen(from, to, 1);
            assert_ne!(text, GOOD, "case {from} did not apply");
            let msg = refusal(&text);
            assert!(msg.contains(want), "{from} -> {to}: {msg}");
            assert!(msg.starts_with("site.yaml: "), "{msg}");
        }
    }

    #[test]
    fn mempool_too_small_for_the_rings_is_refused() {
        let msg =
            refusal(&GOOD.replace("lan_port: lan", "lan_port: lan\nmempool: { mbufs: 2047 }"));
        assert!(
            msg.contains("mempool.mbufs: expected at least 6592 mbufs"),
            "{msg}"
        );
        // Without a mempool section the default grows to fit the rings.
        let c = load(GOOD).unwrap();
        assert!(c.mempool_mbufs >= mbufs_needed(&c.ports, &[vec![0], vec![0], vec![0]], 1));
    }

    #[test]
    fn pci_device_with_no_pci_is_refused() {
        let msg = refusal(&GOOD.replace("net_af_packet1,iface=isp1", "0000:01:00.0"));
        assert!(
            msg.contains("ports[1].device: expected a vdev while eal.args has --no-pci"),
            "{msg}"
        );
    }

    #[test]
    fn lan_port_as_isp_uplink_is_refused() {
        let msg = refusal(&GOOD.replace("port: isp1, prefix", "port: lan, prefix"));
        assert!(
            msg.contains("isps[0].port: expected an uplink port"),
            "{msg}"
        );
    }

    #[test]
    fn unpolled_port_is_refused() {
        let msg = refusal(&GOOD.replace(", { port: isp2, queue: 0 }", ""));
        assert!(
            msg.contains("found port \"isp2\" in no workers[].rx"),
            "{msg}"
        );
    }

    #[test]
    fn pci_addresses_are_recognised() {
        assert!(is_pci_address("0000:01:00.0"));
        assert!(is_pci_address("3b:00.1"));
        assert!(!is_pci_address("0000:01:00"));
        assert!(!is_pci_address("zz:00.0"));
    }

    #[test]
    fn unreadable_file_names_the_file() {
        let e = DataplaneConfig::load(Path::new("/nonexistent/m6.yaml")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("/nonexistent/m6.yaml: cannot read the file"));
    }
    const TE: &str = r#"
health:
  interval_ms: 2000
  timeout_ms: 200
  down_after: 3
  up_after: 2
  dampening: { penalty: 1000, suppress: 2000, reuse: 750, half_life_s: 5, max_suppress_s: 15 }
policy:
  - { prefix: "2001:db8:3::/48", action: only, isps: [isp2] }
  - { prefix: "2001:db8::/32", action: avoid, isps: [isp1] }
router_advertisements:
  interval_s: 30
  rdnss: ["2001:db8:53::1"]
"#;

    fn with_te(isp_extra: &str) -> String {
        GOOD.replace(
            "next_hop: \"2001:db8:ff01::1\" }",
            &format!("next_hop: \"2001:db8:ff01::1\"{isp_extra} }}"),
        ) + TE
    }

    #[test]
    fn health_policy_advertisements_and_nptv6_are_read() {
        let c = load(&with_te(
            ", weight: 3, beacons: [\"2001:db8:ee::100\"], \
             nptv6: { internal: \"fd00:a::/48\", external: \"2001:db8:9::/48\" }",
        ));
        // /48 external must sit under the /48 ISP prefix: this one does not fit.
        let e = c.unwrap_err().to_string();
        assert!(
            e.contains("isps[0].nptv6.external: expected a prefix inside"),
            "{e}"
        );
        let c = load(&with_te(
            ", weight: 3, beacons: [\"2001:db8:ee::100\"], \
             nptv6: { internal: \"fd00:a:0:1::/64\", external: \"2001:db8:1:f1::/64\" }",
        ))
        .unwrap();
        assert_eq!((c.isps[0].weight, c.isps[1].weight), (3, DEFAULT_WEIGHT));
        assert_eq!(
            c.isps[0].beacons,
            vec!["2001:db8:ee::100".parse::<Ipv6Addr>().unwrap()]
        );
        assert!(c.isps[0].nptv6.is_some());
        assert_eq!(c.health.interval_ms, 2000);
        assert_eq!(c.health.dampening.half_life_ms, 5000);
        assert_eq!(c.policy.len(), 2);
        assert_eq!(c.policy[0].action, PolicyAction::Only);
        assert_eq!(c.policy[0].isps, vec![1]);
        let ra = c.router_advertisements.unwrap();
        assert_eq!(
            (ra.interval_s, ra.router_lifetime_s, ra.rdnss_lifetime_s),
            (30, 90, 90)
        );
    }

    #[test]
    fn bad_health_policy_and_advertisements_are_named() {
        for (edit, want) in [
            (
                ("timeout_ms: 200", "timeout_ms: 2000"),
                "health.timeout_ms: expected less than",
            ),
            (
                ("isps: [isp2]", "isps: [isp7]"),
                "policy[0].isps[0]: expected one of the ISPs",
            ),
            (
                ("action: only", "action: never"),
                "policy[0].action: expected prefer, avoid or only",
            ),
            (
                ("interval_s: 30", "interval_s: 2"),
                "router_advertisements.interval_s: expected 4 to 1800",
            ),
            (
                ("reuse: 750", "reuse: 5000"),
                "health.dampening.reuse: expected less than",
            ),
        ] {
            let e = refusal(&with_te("").replace(edit.0, edit.1));
            assert!(e.contains(want), "{e}");
        }
        let e = refusal(&with_te(", beacons: [\"2001:db8:1:5::1\"]"));
        assert!(
            e.contains("isps[0].beacons[0]: expected an address beyond the site"),
            "{e}"
        );
        let e = refusal(&with_te(", weight: 5000"));
        assert!(
            e.contains("isps[0].weight: expected a weight from 0 to 1000"),
            "{e}"
        );
        // Probes need a router address under the ISP's prefix to come from.
        let e = refusal(
            &with_te("")
                .replace(
                    "next_hop: \"2001:db8:ff02::1\",",
                    "next_hop: \"2001:db8:ff02::1\", beacons: [\"2001:db8:ee::1\"],",
                )
                .replace("\"2001:db8:2:1::1\"", "\"2001:db8:9:1::1\""),
        );
        assert!(
            e.contains("isps[1].beacons: expected the router to have an address"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod example_configs {
    use super::*;

    /// Every dataplane configuration shipped in configs/ must load (controlplane.yaml is
    /// the other daemon's, checked in the controlplane crate).
    #[test]
    fn shipped_examples_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let is_dataplane = path.file_stem().is_some_and(|s| s != "controlplane");
            if path.extension().is_some_and(|e| e == "yaml") && is_dataplane {
                if let Err(e) = DataplaneConfig::load(&path) {
                    panic!("{e}");
                }
                checked += 1;
            }
        }
        assert!(
            checked >= 2,
            "expected example configs in {}",
            dir.display()
        );
    }
}
