//! The configuration of ISP health, traffic engineering, Router Advertisements and NPTv6
//! (the `health`, `policy`, `router_advertisements` sections and `isps[].weight`,
//! `isps[].beacons`, `isps[].nptv6`), checked like the rest of the file: every refusal
//! names the field and what was expected.

use std::net::Ipv6Addr;

use serde::Deserialize;

use super::{parse_unicast, ConfigError, IspConfig, PortConfig, RawIsp};
use crate::prefix::Ipv6Prefix;

/// An ISP's weight unless configured.
pub const DEFAULT_WEIGHT: u32 = 1;
/// The largest weight (weights are relative; this bounds the arithmetic).
pub const MAX_WEIGHT: u32 = 1000;
/// RDNSS addresses in an RA at most (each is 16 octets of an RA that must fit the MTU).
pub const MAX_RDNSS: usize = 8;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    #[serde(default)]
    interval_ms: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    down_after: Option<u32>,
    #[serde(default)]
    up_after: Option<u32>,
    #[serde(default)]
    dampening: Option<RawDampening>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDampening {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    penalty: Option<u32>,
    #[serde(default)]
    suppress: Option<u32>,
    #[serde(default)]
    reuse: Option<u32>,
    #[serde(default)]
    half_life_s: Option<u64>,
    #[serde(default)]
    max_suppress_s: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicyRule {
    prefix: String,
    action: String,
    isps: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRa {
    #[serde(default)]
    interval_s: Option<u32>,
    #[serde(default)]
    router_lifetime_s: Option<u32>,
    #[serde(default)]
    valid_lifetime_s: Option<u32>,
    #[serde(default)]
    preferred_lifetime_s: Option<u32>,
    #[serde(default)]
    rdnss: Vec<String>,
    #[serde(default)]
    rdnss_lifetime_s: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNptv6 {
    internal: String,
    external: String,
}

/// Active health probes through each ISP with beacons (ICMPv6 echo, sourced from the
/// router's address under the ISP's prefix and sent to its next hop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// Between probe rounds while the ISP's state is settled (ms, 1000).
    pub interval_ms: u64,
    /// How long a probe waits for its reply; after a miss, or a success while withdrawn,
    /// the next round goes out at once (ms, 500, less than the interval).
    pub timeout_ms: u64,
    /// Consecutive missed rounds that withdraw the ISP (3).
    pub down_after: u32,
    /// Consecutive answered rounds that restore it (3).
    pub up_after: u32,
    pub dampening: DampeningConfig,
}

/// Flap dampening in the manner of RFC 2439 section 4.2, for ISPs instead of routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DampeningConfig {
    pub enabled: bool,
    /// Added to the figure of merit at each withdrawal for a health cause (link, next hop,
    /// probes), and at each flap while suppressed.
    pub penalty: u32,
    /// The suppress limit: above it the ISP is held withdrawn.
    pub suppress: u32,
    /// The reuse limit: a held ISP is released once the figure decays below it.
    pub reuse: u32,
    /// The figure of merit halves every this many milliseconds.
    pub half_life_ms: u64,
    /// The longest suppression in milliseconds (the figure is capped at
    /// `reuse * 2^(max_suppress / half_life)`).
    pub max_suppress_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> HealthConfig {
        HealthConfig {
            interval_ms: 1000,
            timeout_ms: 500,
            down_after: 3,
            up_after: 3,
            dampening: DampeningConfig {
                enabled: true,
                penalty: 1000,
                suppress: 2000,
                reuse: 750,
                half_life_ms: 15_000,
                max_suppress_ms: 60_000,
            },
        }
    }
}

/// What a policy rule does with the ISPs it names (DESIGN section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyAction {
    /// Use these ISPs while one of them is eligible, others otherwise.
    Prefer,
    /// Use other ISPs while one of them is eligible, these otherwise.
    Avoid,
    /// Use only these ISPs; none eligible: no rewritable path (the packet is handled as
    /// plain IPv6, by its source prefix).
    Only,
}

/// One traffic-engineering rule: destinations inside `prefix` use `isps` as `action` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRule {
    pub prefix: Ipv6Prefix,
    pub action: PolicyAction,
    /// Indices into [`super::DataplaneConfig::isps`].
    pub isps: Vec<usize>,
}

/// Router Advertisements on the LAN port (RFC 4861 section 6.2, RFC 8106). The prefixes
/// advertised are the /64s of the LAN port's global addresses, each deprecated (preferred
/// lifetime 0) while the ISP owning it is withdrawn or drained (RFC 8678 section 5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaConfig {
    /// MaxRtrAdvInterval (s, 4 to 1800, 600); unsolicited RAs go out at random times
    /// between a third of it and it (section 6.2.4).
    pub interval_s: u32,
    /// AdvDefaultLifetime (s, 0 or the interval to 9000, 3 x interval).
    pub router_lifetime_s: u32,
    /// AdvValidLifetime of every prefix (s, 2592000).
    pub valid_lifetime_s: u32,
    /// AdvPreferredLifetime of a prefix whose ISP is eligible (s, 604800).
    pub preferred_lifetime_s: u32,
    /// Recursive DNS servers (RFC 8106 section 5.1).
    pub rdnss: Vec<Ipv6Addr>,
    /// Their lifetime (s, 3 x interval).
    pub rdnss_lifetime_s: u32,
}

/// RFC 6296 translation between a ULA prefix inside the site and a prefix of equal length
/// under the ISP's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nptv6Config {
    pub internal: Ipv6Prefix,
    pub external: Ipv6Prefix,
}

type Err<'a> = &'a dyn Fn(String, String) -> ConfigError;

fn prefix(field: &str, text: &str, err: Err) -> Result<Ipv6Prefix, ConfigError> {
    text.parse().map_err(|e| {
        err(
            field.to_string(),
            format!("expected an IPv6 prefix such as 2001:db8:1::/48, found {text:?} ({e})"),
        )
    })
}

/// `isps[].beacons` and `isps[].nptv6`, checked against the ports and the proxy.
pub(crate) fn isp_extras(
    raw: &[RawIsp],
    isps: &mut [IspConfig],
    ports: &[PortConfig],
    lan_port: usize,
    proxied: &[Ipv6Prefix],
    err: Err,
) -> Result<(), ConfigError> {
    let own: Vec<Ipv6Addr> = ports.iter().flat_map(|p| p.addresses.clone()).collect();
    let prefixes: Vec<Ipv6Prefix> = isps.iter().map(|s| s.prefix).collect();
    for (i, (r, s)) in raw.iter().zip(isps.iter_mut()).enumerate() {
        let field = |f: &str| format!("isps[{i}].{f}");
        for (j, b) in r.beacons.iter().enumerate() {
            let f = field(&format!("beacons[{j}]"));
            let a = parse_unicast(b).map_err(|m| err(f.clone(), m))?;
            if let Some(p) = prefixes.iter().find(|p| p.contains(&a)) {
                return Err(err(
                    f,
                    format!("expected an address beyond the site, found {a} inside {p}"),
                ));
            }
            s.beacons.push(a);
        }
        if !s.beacons.is_empty() && !own.iter().any(|a| s.prefix.contains(a)) {
            return Err(err(
                field("beacons"),
                format!(
                    "expected the router to have an address under {} (ports[].addresses) to \
                     source probes from, found none",
                    s.prefix
                ),
            ));
        }
        if let Some(n) = &r.nptv6 {
            let internal = prefix(&field("nptv6.internal"), &n.internal, err)?;
            let external = prefix(&field("nptv6.external"), &n.external, err)?;
            if internal.len() != external.len() || internal.len() == 0 || internal.len() > 64 {
                return Err(err(
                    field("nptv6.external"),
                    format!(
                        "expected a prefix as long as nptv6.internal ({internal}), /1 to /64, \
                         found {external}"
                    ),
                ));
            }
            if external.len() < s.prefix.len() || !s.prefix.contains(&external.network()) {
                return Err(err(
                    field("nptv6.external"),
                    format!("expected a prefix inside {}, found {external}", s.prefix),
                ));
            }
            if let Some(p) = prefixes.iter().find(|p| p.overlaps(&internal)) {
                return Err(err(
                    field("nptv6.internal"),
                    format!(
                        "expected a prefix outside the ISPs' (a ULA such as fd00:1::/48), \
                         found {internal} overlapping {p}"
                    ),
                ));
            }
            let lan: Vec<Ipv6Prefix> = ports[lan_port]
                .addresses
                .iter()
                .filter_map(|a| Ipv6Prefix::new(*a, 64).ok())
                .chain(proxied.iter().copied())
                .collect();
            if let Some(p) = lan.iter().find(|p| p.overlaps(&external)) {
                return Err(err(
                    field("nptv6.external"),
                    format!(
                        "expected a prefix no LAN host is numbered from, found {external} \
                         overlapping {p}"
                    ),
                ));
            }
            s.nptv6 = Some(Nptv6Config { internal, external });
        }
    }
    Ok(())
}

pub(crate) fn health(raw: Option<&RawHealth>, err: Err) -> Result<HealthConfig, ConfigError> {
    let mut h = HealthConfig::default();
    let Some(r) = raw else {
        return Ok(h);
    };
    let range = |name: &str, v: Option<u64>, lo: u64, hi: u64, slot: &mut u64| {
        if let Some(v) = v {
            if !(lo..=hi).contains(&v) {
                return Err(err(
                    format!("health.{name}"),
                    format!("expected {lo} to {hi}, found {v}"),
                ));
            }
            *slot = v;
        }
        Ok(())
    };
    range(
        "interval_ms",
        r.interval_ms,
        100,
        60_000,
        &mut h.interval_ms,
    )?;
    range("timeout_ms", r.timeout_ms, 10, 30_000, &mut h.timeout_ms)?;
    let mut down = u64::from(h.down_after);
    range("down_after", r.down_after.map(u64::from), 1, 20, &mut down)?;
    let mut up = u64::from(h.up_after);
    range("up_after", r.up_after.map(u64::from), 1, 20, &mut up)?;
    (h.down_after, h.up_after) = (down as u32, up as u32);
    if h.timeout_ms >= h.interval_ms {
        return Err(err(
            "health.timeout_ms".into(),
            format!(
                "expected less than health.interval_ms ({}), found {}",
                h.interval_ms, h.timeout_ms
            ),
        ));
    }
    if let Some(d) = &r.dampening {
        let x = &mut h.dampening;
        x.enabled = d.enabled.unwrap_or(true);
        let v = |name: &str, val: Option<u32>, slot: &mut u32| {
            let mut w = u64::from(*slot);
            range(
                &format!("dampening.{name}"),
                val.map(u64::from),
                1,
                1_000_000,
                &mut w,
            )?;
            *slot = w as u32;
            Ok::<(), ConfigError>(())
        };
        v("penalty", d.penalty, &mut x.penalty)?;
        v("suppress", d.suppress, &mut x.suppress)?;
        v("reuse", d.reuse, &mut x.reuse)?;
        let mut hl = x.half_life_ms / 1000;
        range("dampening.half_life_s", d.half_life_s, 1, 3600, &mut hl)?;
        let mut ms = x.max_suppress_ms / 1000;
        range(
            "dampening.max_suppress_s",
            d.max_suppress_s,
            1,
            14_400,
            &mut ms,
        )?;
        (x.half_life_ms, x.max_suppress_ms) = (hl * 1000, ms * 1000);
        if x.reuse >= x.suppress {
            return Err(err(
                "health.dampening.reuse".into(),
                format!(
                    "expected less than dampening.suppress ({}), found {}",
                    x.suppress, x.reuse
                ),
            ));
        }
    }
    Ok(h)
}

pub(crate) fn rules(
    raw: &[RawPolicyRule],
    isps: &[IspConfig],
    err: Err,
) -> Result<Vec<PolicyRule>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let field = |f: &str| format!("policy[{i}].{f}");
        let p = prefix(&field("prefix"), &r.prefix, err)?;
        let action = match r.action.as_str() {
            "prefer" => PolicyAction::Prefer,
            "avoid" => PolicyAction::Avoid,
            "only" => PolicyAction::Only,
            other => {
                return Err(err(
                    field("action"),
                    format!("expected prefer, avoid or only, found {other:?}"),
                ))
            }
        };
        if r.isps.is_empty() {
            return Err(err(
                field("isps"),
                "expected at least one ISP name, found none".into(),
            ));
        }
        let mut names = Vec::with_capacity(r.isps.len());
        for (j, n) in r.isps.iter().enumerate() {
            let k = isps.iter().position(|s| &s.name == n).ok_or_else(|| {
                err(
                    field(&format!("isps[{j}]")),
                    format!(
                        "expected one of the ISPs ({}), found unknown ISP {n:?}",
                        isps.iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            names.push(k);
        }
        out.push(PolicyRule {
            prefix: p,
            action,
            isps: names,
        });
    }
    Ok(out)
}

pub(crate) fn router_advertisements(
    raw: Option<&RawRa>,
    err: Err,
) -> Result<Option<RaConfig>, ConfigError> {
    let Some(r) = raw else {
        return Ok(None);
    };
    let check = |name: &str, v: u32, lo: u32, hi: u32| {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(err(
                format!("router_advertisements.{name}"),
                format!("expected {lo} to {hi}, found {v}"),
            ))
        }
    };
    // RFC 4861 section 6.2.1 bounds.
    let interval_s = check("interval_s", r.interval_s.unwrap_or(600), 4, 1800)?;
    let router_lifetime_s = r.router_lifetime_s.unwrap_or(3 * interval_s);
    if router_lifetime_s != 0 {
        check("router_lifetime_s", router_lifetime_s, interval_s, 9000)?;
    }
    let valid_lifetime_s = r.valid_lifetime_s.unwrap_or(2_592_000);
    let preferred_lifetime_s = check(
        "preferred_lifetime_s",
        r.preferred_lifetime_s
            .unwrap_or(604_800.min(valid_lifetime_s)),
        0,
        valid_lifetime_s,
    )?;
    if r.rdnss.len() > MAX_RDNSS {
        return Err(err(
            "router_advertisements.rdnss".into(),
            format!(
                "expected at most {MAX_RDNSS} addresses, found {}",
                r.rdnss.len()
            ),
        ));
    }
    let mut rdnss = Vec::with_capacity(r.rdnss.len());
    for (i, a) in r.rdnss.iter().enumerate() {
        rdnss.push(
            parse_unicast(a).map_err(|m| err(format!("router_advertisements.rdnss[{i}]"), m))?,
        );
    }
    let rdnss_lifetime_s = check(
        "rdnss_lifetime_s",
        r.rdnss_lifetime_s.unwrap_or(3 * interval_s),
        interval_s,
        u32::MAX,
    )?;
    Ok(Some(RaConfig {
        interval_s,
        router_lifetime_s,
        valid_lifetime_s,
        preferred_lifetime_s,
        rdnss,
        rdnss_lifetime_s,
    }))
}
