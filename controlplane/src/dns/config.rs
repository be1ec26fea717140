//! The `dns:` section of the control plane's YAML (DESIGN.md section 8).
//!
//! Two halves: how the resolver thread talks to the DNS (servers, timeout, attempts, the
//! marker type, how many lookups run at once), and the engine's DNS policy (TTL floor and
//! ceiling, negative caching, retry backoff, the destination cache bound and the rate of
//! lookups that traffic may trigger). Every field is optional: an empty section means "the
//! system's /etc/resolv.conf, the defaults below".
//!
//! ```yaml
//! dns:
//!   servers: ["2001:db8:53::1", "192.0.2.53:5353"]   # absent or []: /etc/resolv.conf
//!   timeout_ms: 2000          # per try and server; absent: resolv.conf "options timeout"
//!   attempts: 2               # tries per lookup; absent: resolv.conf "options attempts"
//!   marker_type: 65280        # RR type of the M6 marker (private use, RFC 6895)
//!   lookups_per_sec: 50       # lookups that new destinations may start per second
//!   lookup_burst: 100
//!   destination_cache: 65536  # peer AIDs remembered (pending, not M6 until T, M6)
//!   min_ttl_sec: 5            # floor: a zero TTL cannot cause a lookup storm
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_resolver::config::{
    NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts, ServerOrderingStrategy,
};
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::proto::xfer::Protocol;
use serde::Deserialize;

use crate::engine::EngineConfig;

/// The M6 capability marker's RR type by default (DESIGN.md section 7).
pub const DEFAULT_MARKER_TYPE: u16 = proto::wire::dns::M6_RR_TYPE;

/// Where the system resolver configuration lives.
pub const SYSTEM_RESOLV_CONF: &str = "/etc/resolv.conf";

/// A refused `dns:` section: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfigError {
    /// Dotted path of the field (`dns.servers[1]`), empty for the whole section.
    pub field: String,
    pub message: String,
}

impl fmt::Display for DnsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for DnsConfigError {}

fn err(field: impl Into<String>, message: impl Into<String>) -> DnsConfigError {
    DnsConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// The `dns:` section as written. See the module documentation for an example.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Name servers as `address` (port 53) or `address:port` (`[v6]:port`), tried in order.
    /// Empty: the `nameserver` lines of [`DnsConfig::resolv_conf`].
    pub servers: Vec<String>,
    /// The resolv.conf read when `servers` is empty, and whose `options timeout/attempts`
    /// apply when `timeout_ms`/`attempts` are absent.
    pub resolv_conf: PathBuf,
    /// Time to wait for one answer from one server, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Tries per lookup (each walks the server list), at least 1.
    pub attempts: Option<usize>,
    /// RR type of the M6 marker: an empty record at the FQDN (seed 001 section 3,
    /// DESIGN.md section 7). Private use is 65280-65534 (RFC 6895 section 3.1).
    pub marker_type: u16,
    /// Lookups the resolver thread runs at the same time.
    pub max_inflight: usize,
    /// Lookups waiting beyond `max_inflight`; more are answered "transient failure" at once
    /// and the engine retries them with backoff, so the loop never blocks on the resolver.
    pub queue: usize,
    /// Lookups that traffic to new destinations may start per second (token bucket), so a
    /// scan of random destinations cannot flood the resolver. Lookups for contexts that
    /// exist (verification of a peer's locators, refreshes) are not counted here.
    pub lookups_per_sec: u32,
    /// Burst of that token bucket.
    pub lookup_burst: u32,
    /// Most peer AIDs in the destination cache (pending, not M6 until T, M6). The oldest
    /// not-M6 entries are dropped first; when it is full of pending lookups new
    /// destinations are not looked up (they flow as plain IPv6).
    pub destination_cache: usize,
    /// Floor applied to every DNS TTL, in seconds: a zero TTL cannot cause a lookup storm
    /// (seed 001 section 4.5 "what should the minimum time be to avoid DNS storms").
    pub min_ttl_sec: u64,
    /// Ceiling applied to every DNS TTL, in seconds.
    pub max_ttl_sec: u64,
    /// How long a permanent failure (NXDOMAIN, NODATA) is remembered, in seconds
    /// (seed 001 section 5.2 "negative caching").
    pub negative_ttl_sec: u64,
    /// First retry of a transiently failed lookup (SERVFAIL, timeout), in milliseconds;
    /// then doubled each time (seed 001 section 7.13 "binary exponential backoff").
    pub retry_initial_ms: u64,
    /// Longest retry interval, in milliseconds.
    pub retry_max_ms: u64,
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig {
            servers: Vec::new(),
            resolv_conf: PathBuf::from(SYSTEM_RESOLV_CONF),
            timeout_ms: None,
            attempts: None,
            marker_type: DEFAULT_MARKER_TYPE,
            max_inflight: 64,
            queue: 4096,
            lookups_per_sec: 50,
            lookup_burst: 100,
            destination_cache: 65_536,
            min_ttl_sec: 5,
            max_ttl_sec: 86_400,
            negative_ttl_sec: 300,
            retry_initial_ms: 2_000,
            retry_max_ms: 300_000,
        }
    }
}

/// What the resolver thread needs, checked.
#[derive(Debug, Clone)]
pub struct ResolverSetup {
    pub config: ResolverConfig,
    pub options: ResolverOpts,
    pub marker_type: u16,
    pub max_inflight: usize,
    pub queue: usize,
    /// Upper bound of one lookup (every try on every server), after which the thread
    /// answers "transient" itself.
    pub lookup_deadline: Duration,
}

impl DnsConfig {
    /// Parses a `dns:` section (the mapping under the key, not the key itself).
    pub fn from_yaml(text: &str) -> Result<DnsConfig, DnsConfigError> {
        let cfg: DnsConfig = serde_yaml::from_str(text).map_err(|e| err("dns", e.to_string()))?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks values that serde cannot.
    pub fn check(&self) -> Result<(), DnsConfigError> {
        for (i, s) in self.servers.iter().enumerate() {
            parse_server(s).map_err(|m| err(format!("dns.servers[{i}]"), m))?;
        }
        if self.timeout_ms == Some(0) {
            return Err(err("dns.timeout_ms", "must be at least 1"));
        }
        if self.attempts == Some(0) {
            return Err(err("dns.attempts", "must be at least 1 (tries per lookup)"));
        }
        let t = self.marker_type;
        // A type with a meaning of its own (AAAA, PTR, TXT ...) or a meta/query type cannot
        // be the marker: only a type the resolver treats as opaque has "empty RDATA".
        let opaque = matches!(RecordType::from(t), RecordType::Unknown(_));
        if !opaque || t == 0 || (128..=255).contains(&t) {
            return Err(err(
                "dns.marker_type",
                format!("{t} is not usable as the M6 marker (use a private-use type 65280-65534)"),
            ));
        }
        if self.max_inflight == 0 {
            return Err(err("dns.max_inflight", "must be at least 1"));
        }
        if self.lookups_per_sec == 0 || self.lookup_burst == 0 {
            return Err(err(
                "dns.lookups_per_sec",
                "lookups_per_sec and lookup_burst must be at least 1",
            ));
        }
        if self.destination_cache == 0 {
            return Err(err("dns.destination_cache", "must be at least 1"));
        }
        if self.min_ttl_sec == 0 {
            return Err(err(
                "dns.min_ttl_sec",
                "must be at least 1: a zero floor lets a zero TTL cause a lookup storm",
            ));
        }
        if self.max_ttl_sec < self.min_ttl_sec {
            return Err(err("dns.max_ttl_sec", "must not be below min_ttl_sec"));
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return Err(err(
                "dns.retry_initial_ms",
                "retry_initial_ms must be at least 1 and not above retry_max_ms",
            ));
        }
        Ok(())
    }

    /// The name servers, parsed.
    pub fn server_addrs(&self) -> Result<Vec<SocketAddr>, DnsConfigError> {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| parse_server(s).map_err(|m| err(format!("dns.servers[{i}]"), m)))
            .collect()
    }

    /// The hickory configuration: `servers` or the resolv.conf, with our fixed choices
    /// (no hosts file, no resolver cache, one server at a time in the given order).
    pub fn resolver_setup(&self) -> Result<ResolverSetup, DnsConfigError> {
        self.check()?;
        let servers = self.server_addrs()?;
        let (mut config, mut options) = if servers.is_empty() {
            read_resolv_conf(&self.resolv_conf)?
        } else {
            let mut c = ResolverConfig::new();
            for addr in &servers {
                // UDP first; TCP is used by hickory when an answer is truncated.
                c.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
                c.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
            }
            (c, ResolverOpts::default())
        };
        if config.name_servers().is_empty() {
            return Err(err(
                "dns.servers",
                format!(
                    "no name server: none configured and none in {}",
                    self.resolv_conf.display()
                ),
            ));
        }
        // Names are always absolute (a trailing dot), so search lists never apply.
        config = ResolverConfig::from_parts(None, Vec::new(), config.name_servers().to_vec());
        if let Some(ms) = self.timeout_ms {
            options.timeout = Duration::from_millis(ms);
        }
        if let Some(a) = self.attempts {
            // hickory counts retries after the first try.
            options.attempts = a - 1;
        }
        // The engine caches with the TTL (and the floor) on its own clock; a second cache
        // here would answer from real-time state the engine does not see.
        options.cache_size = 0;
        // A PTR must come from the DNS, not from a local hosts file.
        options.use_hosts_file = ResolveHosts::Never;
        options.num_concurrent_reqs = 1;
        options.server_ordering_strategy = ServerOrderingStrategy::UserProvidedOrder;
        options.preserve_intermediates = false;
        options.edns0 = true;
        let tries = options.attempts as u32 + 1;
        let per_try = options.timeout * config.name_servers().len().max(1) as u32;
        Ok(ResolverSetup {
            config,
            options,
            marker_type: self.marker_type,
            max_inflight: self.max_inflight,
            queue: self.queue,
            lookup_deadline: per_try * tries + Duration::from_secs(1),
        })
    }

    /// Applies the engine's DNS policy (TTL bounds, negative caching, retry backoff, the
    /// lookup rate of traffic and the destination cache bound) to an engine configuration.
    pub fn apply_to(&self, engine: &mut EngineConfig) {
        engine.min_ttl = self.min_ttl();
        engine.max_ttl = self.max_ttl();
        engine.negative_ttl = self.negative_ttl();
        engine.dns_retry_initial = self.retry_initial();
        engine.dns_retry_max = self.retry_max();
        engine.discovery_per_second = self.lookups_per_sec;
        engine.discovery_burst = self.lookup_burst;
        engine.destination_cache_size = self.destination_cache;
        // A destination costs at most two answers (PTR, AAAA + marker) plus the PTRs of
        // its locators, which expire with their TTL.
        engine.dns_cache_size = self.destination_cache.saturating_mul(2);
    }

    /// `min_ttl_sec` as a duration.
    pub fn min_ttl(&self) -> Duration {
        Duration::from_secs(self.min_ttl_sec)
    }

    /// `max_ttl_sec` as a duration.
    pub fn max_ttl(&self) -> Duration {
        Duration::from_secs(self.max_ttl_sec)
    }

    /// `negative_ttl_sec` as a duration.
    pub fn negative_ttl(&self) -> Duration {
        Duration::from_secs(self.negative_ttl_sec)
    }

    /// `retry_initial_ms` as a duration.
    pub fn retry_initial(&self) -> Duration {
        Duration::from_millis(self.retry_initial_ms)
    }

    /// `retry_max_ms` as a duration.
    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry_max_ms)
    }
}

fn read_resolv_conf(path: &Path) -> Result<(ResolverConfig, ResolverOpts), DnsConfigError> {
    let text = std::fs::read(path)
        .map_err(|e| err("dns.resolv_conf", format!("{}: {e}", path.display())))?;
    hickory_resolver::system_conf::parse_resolv_conf(text)
        .map_err(|e| err("dns.resolv_conf", format!("{}: {e}", path.display())))
}

/// `2001:db8::53`, `192.0.2.1`, `[2001:db8::53]:5353`, `192.0.2.1:5353`.
fn parse_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        format!("expected an address or address:port (e.g. \"2001:db8::53\", \"[::1]:5353\"), found {s:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_is_the_default() {
        let c = DnsConfig::from_yaml("{}").unwrap();
        assert_eq!(c, DnsConfig::default());
        assert_eq!(c.marker_type, 65280);
        assert!(c.servers.is_empty());
    }

    #[test]
    fn servers_with_and_without_port() {
        let c = DnsConfig::from_yaml(
            "servers: [\"::1\", \"[::1]:5353\", \"127.0.0.1:53000\"]\ntimeout_ms: 300\nattempts: 3\n",
        )
        .unwrap();
        let a = c.server_addrs().unwrap();
        assert_eq!(a[0], "[::1]:53".parse().unwrap());
        assert_eq!(a[1], "[::1]:5353".parse().unwrap());
        assert_eq!(a[2], "127.0.0.1:53000".parse().unwrap());
        let s = c.resolver_setup().unwrap();
        assert_eq!(s.options.timeout, Duration::from_millis(300));
        assert_eq!(
            s.options.attempts, 2,
            "hickory counts retries after the first try"
        );
        assert_eq!(s.options.cache_size, 0);
        // UDP and TCP per server, in order.
        assert_eq!(s.config.name_servers().len(), 6);
        assert_eq!(s.config.name_servers()[0].socket_addr, a[0]);
    }

    #[test]
    fn refusals_name_the_field() {
        let e = DnsConfig::from_yaml("servers: [\"dns.example\"]").unwrap_err();
        assert_eq!(e.field, "dns.servers[0]");
        let e = DnsConfig::from_yaml("attempts: 0").unwrap_err();
        assert_eq!(e.field, "dns.attempts");
        let e = DnsConfig::from_yaml("marker_type: 28").unwrap_err();
        assert_eq!(e.field, "dns.marker_type");
        let e = DnsConfig::from_yaml("min_ttl_sec: 0").unwrap_err();
        assert_eq!(e.field, "dns.min_ttl_sec");
        let e = DnsConfig::from_yaml("timeout: 3").unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn policy_reaches_the_engine() {
        let c = DnsConfig::from_yaml(
            "lookups_per_sec: 7\nlookup_burst: 9\ndestination_cache: 100\nmin_ttl_sec: 3\n\
             negative_ttl_sec: 30\nretry_initial_ms: 500\nretry_max_ms: 4000\n",
        )
        .unwrap();
        let mut e = EngineConfig::default();
        c.apply_to(&mut e);
        assert_eq!((e.discovery_per_second, e.discovery_burst), (7, 9));
        assert_eq!(e.destination_cache_size, 100);
        assert_eq!(e.dns_cache_size, 200);
        assert_eq!(e.min_ttl, Duration::from_secs(3));
        assert_eq!(e.negative_ttl, Duration::from_secs(30));
        assert_eq!(e.dns_retry_initial, Duration::from_millis(500));
        assert_eq!(e.dns_retry_max, Duration::from_millis(4000));
    }

    #[test]
    fn default_reads_resolv_conf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "# test\nnameserver 127.0.0.9\nnameserver ::1\noptions timeout:3 attempts:4\n",
        )
        .unwrap();
        let c = DnsConfig {
            resolv_conf: path.clone(),
            ..DnsConfig::default()
        };
        let s = c.resolver_setup().unwrap();
        let addrs: Vec<SocketAddr> = s
            .config
            .name_servers()
            .iter()
            .map(|n| n.socket_addr)
            .collect();
        assert!(
            addrs.contains(&"127.0.0.9:53".parse().unwrap()),
            "{addrs:?}"
        );
        assert!(addrs.contains(&"[::1]:53".parse().unwrap()), "{addrs:?}");
        assert_eq!(s.options.timeout, Duration::from_secs(3));
        // Our own settings win over the file's.
        let c = DnsConfig {
            resolv_conf: path,
            timeout_ms: Some(700),
            attempts: Some(1),
            ..DnsConfig::default()
        };
        let s = c.resolver_setup().unwrap();
        assert_eq!(s.options.timeout, Duration::from_millis(700));
        assert_eq!(s.options.attempts, 0);
    }

    #[test]
    fn resolv_conf_without_servers_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "options timeout:3\n").unwrap();
        let c = DnsConfig {
            resolv_conf: path,
            ..DnsConfig::default()
        };
        let e = c.resolver_setup().unwrap_err();
        assert!(
            e.field == "dns.servers" || e.field == "dns.resolv_conf",
            "{e}"
        );
        assert!(
            e.to_string().contains("nameserver") || e.to_string().contains("name server"),
            "{e}"
        );
    }
}
