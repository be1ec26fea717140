//! The control plane's YAML file (`m6-controlplane --config FILE`), checked whole at load
//! time with the same `file: field: expected ..., found ...` errors as the dataplane's.

use std::path::{Path, PathBuf};

use proto::config::ConfigError;
use serde::Deserialize;

use crate::dns::DnsConfig;

/// Where the birthday counter lives unless configured (seed 001 section 7.14).
pub const DEFAULT_BIRTHDAY_FILE: &str = "/var/lib/m6/birthday";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlplaneConfig {
    /// Resolver and DNS policy; absent: the system's resolv.conf and the defaults.
    #[serde(default)]
    pub dns: DnsConfig,
    /// The birthday counter's stable storage (written with fsync + rename).
    #[serde(default = "default_birthday_file")]
    pub birthday_file: PathBuf,
    /// The dataplane's channel socket (its `channel.path`).
    #[serde(default = "default_dataplane_socket")]
    pub dataplane_socket: PathBuf,
    /// The admin socket `m6ctl` talks to (created mode 0600).
    #[serde(default = "default_admin_socket")]
    pub admin_socket: PathBuf,
    /// The legacy hosts the router proxies (seed 002): each host's locators, one per ISP
    /// prefix (any of them can be its AID), and whether its forward and reverse DNS agree.
    #[serde(default)]
    pub hosts: Vec<HostConfig>,
    /// Where Prometheus scrapes `/metrics` (`crate::metrics`), e.g. `"[::1]:9106"`; absent:
    /// no metrics endpoint.
    #[serde(default)]
    pub metrics_address: Option<std::net::SocketAddr>,
}

/// Where the admin socket lives unless configured.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/m6/controlplane.sock";

fn default_admin_socket() -> PathBuf {
    PathBuf::from(DEFAULT_ADMIN_SOCKET)
}

/// One proxied host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    pub locators: Vec<std::net::Ipv6Addr>,
    #[serde(default = "default_true")]
    pub dns_verifiable: bool,
}

fn default_true() -> bool {
    true
}

fn default_dataplane_socket() -> PathBuf {
    PathBuf::from(proto::config::DEFAULT_CHANNEL_PATH)
}

fn default_birthday_file() -> PathBuf {
    PathBuf::from(DEFAULT_BIRTHDAY_FILE)
}

impl ControlplaneConfig {
    pub fn load(path: &Path) -> Result<ControlplaneConfig, ConfigError> {
        Self::from_yaml(path, &ConfigError::read(path)?)
    }

    /// Checks configuration text; `file` only names it in errors.
    pub fn from_yaml(file: &Path, text: &str) -> Result<ControlplaneConfig, ConfigError> {
        let cfg: ControlplaneConfig =
            serde_yaml::from_str(text).map_err(|e| ConfigError::from_yaml(file, &e))?;
        cfg.dns.check().map_err(|e| ConfigError {
            file: file.to_path_buf(),
            field: format!("dns.{}", e.field.trim_start_matches("dns.")),
            message: e.message,
        })?;
        for (i, h) in cfg.hosts.iter().enumerate() {
            if h.locators.is_empty() {
                return Err(ConfigError {
                    file: file.to_path_buf(),
                    field: format!("hosts[{i}].locators"),
                    message: "expected at least one locator, found none".into(),
                });
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/controlplane.yaml");
        let cfg = ControlplaneConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.dns.servers, vec!["[2001:db8:53::1]:53".to_string()]);
        assert_eq!(cfg.dns.attempts, Some(2));
        assert_eq!(cfg.birthday_file, PathBuf::from("/var/lib/m6/birthday"));
    }

    #[test]
    fn empty_file_means_system_resolver_and_defaults() {
        let cfg = ControlplaneConfig::from_yaml(Path::new("cp.yaml"), "{}").unwrap();
        assert!(cfg.dns.servers.is_empty());
        assert_eq!(cfg.dns.resolv_conf, PathBuf::from("/etc/resolv.conf"));
    }

    #[test]
    fn bad_dns_value_names_file_and_field() {
        let e = ControlplaneConfig::from_yaml(
            Path::new("cp.yaml"),
            "dns:\n  servers: [\"not-an-address\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("cp.yaml: dns.servers[0]: "), "{e}");
    }

    #[test]
    fn unknown_dns_field_names_file_and_field() {
        let e = ControlplaneConfig::from_yaml(Path::new("cp.yaml"), "dns:\n  timeuot_ms: 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cp.yaml: dns: unknown field `timeuot_ms`"),
            "{e}"
        );
    }
}
