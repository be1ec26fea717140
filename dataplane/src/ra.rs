//! Router Advertisements on the LAN (RFC 4861 section 6; RDNSS from RFC 8106), so that hosts
//! number themselves from every ISP's prefix and move off a failed one by themselves.
//!
//! - One Prefix Information option per /64 of the LAN port's global addresses (on-link,
//!   autonomous). A prefix under an ISP that is withdrawn or drained is advertised with
//!   preferred lifetime 0 and its valid lifetime unchanged (RFC 8475 section 3, RFC 8678
//!   section 5.2): hosts stop choosing it as the source of new connections (RFC 6724 rule
//!   3) while connections already using it keep their address.
//! - The router lifetime is 0 while no ISP is usable (RFC 7084 G-4: no default route to
//!   offer).
//! - Source link-layer address, MTU (the LAN port's) and RDNSS options.
//! - Unsolicited RAs at random times between MinRtrAdvInterval (a third of the interval)
//!   and MaxRtrAdvInterval, the first three at most 16 s apart (section 6.2.4), and one as
//!   soon as what it says changes; a Router Solicitation is answered by a multicast RA
//!   after a random 0 to 500 ms delay. Consecutive multicast RAs are always at least
//!   MIN_DELAY_BETWEEN_RAS (3 s) apart (section 6.2.6), changes included.
//!
//! Datapath side: [`check_solicitation`] validates an RS (section 6.1.1) for a worker,
//! which reports it to the control thread. Control side: [`Advertiser`] decides when to
//! send and builds the frames.

use crate::buf::PacketBuf;
use crate::isp::IspLive;
use crate::net::addr::{self, Addr};
use crate::net::ethernet::{self, ethertype};
use crate::net::icmpv6::{self, msg_type};
use crate::net::nd::{self, option};
use crate::nodes::classify::Parsed;
use crate::site::{RaConfig, Site};
use crate::stats::named_counters;

/// MAX_INITIAL_RTR_ADVERTISEMENTS (RFC 4861 section 10).
pub const MAX_INITIAL_RTR_ADVERTISEMENTS: u32 = 3;
/// MAX_INITIAL_RTR_ADVERT_INTERVAL, in ns.
pub const MAX_INITIAL_RTR_ADVERT_INTERVAL: u64 = 16_000_000_000;
/// MIN_DELAY_BETWEEN_RAS, in ns.
pub const MIN_DELAY_BETWEEN_RAS: u64 = 3_000_000_000;
/// MAX_RA_DELAY_TIME, in ns.
pub const MAX_RA_DELAY_TIME: u64 = 500_000_000;

const PIO_TYPE: u8 = 3;
const MTU_TYPE: u8 = 5;
/// RFC 8106 section 5.1.
const RDNSS_TYPE: u8 = 25;
const ALL_NODES: Addr = 0xff02_0000_0000_0000_0000_0000_0000_0001;

named_counters! {
    /// Router Advertisements (`ra.*`).
    pub struct RaCounters("ra") {
        /// RAs sent (unsolicited, after a change or answering solicitations).
        sent,
        /// Router Solicitations received (valid ones, from workers).
        solicitations,
    }
}

/// Why a Router Solicitation is discarded (RFC 4861 section 6.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadSolicitation {
    /// Hop limit not 255, code not 0, shorter than 8 octets, an option of length 0, or a
    /// source link-layer address option from the unspecified address.
    Malformed,
    /// The ICMPv6 checksum does not verify.
    BadChecksum,
}

/// Validates the RS in `buf` (summary `p`); returns its source link-layer address option
/// when it has one and a specified source (the neighbor cache learns it, section 6.2.6).
pub fn check_solicitation<B: PacketBuf>(
    buf: &B,
    p: &Parsed,
) -> Result<Option<[u8; 6]>, BadSolicitation> {
    let msg = buf.data().get(p.l4()..p.end()).unwrap_or(&[]);
    let m = icmpv6::Message::new_checked(msg).map_err(|_| BadSolicitation::Malformed)?;
    if p.hop_limit != nd::HOP_LIMIT || m.code() != 0 || msg.len() < 8 {
        return Err(BadSolicitation::Malformed);
    }
    if !m.verify_checksum(&addr::to_bytes(p.src), &addr::to_bytes(p.dst)) {
        return Err(BadSolicitation::BadChecksum);
    }
    let sll = nd::lladdr_option(msg.get(8..).unwrap_or(&[]), option::SOURCE_LLADDR)
        .map_err(|_| BadSolicitation::Malformed)?;
    if addr::is_unspecified(p.src) {
        return match sll {
            Some(_) => Err(BadSolicitation::Malformed),
            None => Ok(None),
        };
    }
    Ok(sll)
}

/// One advertised prefix: a /64 and the ISP that delegated it (`None`: a prefix of no
/// ISP, such as a ULA behind NPTv6, always preferred).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Advertised {
    prefix: Addr,
    isp: Option<usize>,
    /// Gone from the configuration (a renumbering): advertised deprecated, with a valid
    /// lifetime of two hours at most (RFC 4862 5.5.3 e lets no RA shorten it further), so
    /// hosts move their new connections off it (RFC 8978).
    retired: bool,
}

/// The valid lifetime of a retired prefix (s): RFC 4862 section 5.5.3 (e)'s floor.
const RETIRED_VALID_S: u32 = 7200;

/// When and what to advertise on the LAN port: the control thread's state machine.
pub struct Advertiser {
    cfg: RaConfig,
    port: usize,
    mac: [u8; 6],
    link_local: Addr,
    mtu: u16,
    prefixes: Vec<Advertised>,
    /// What the last RA told the hosts: (router lifetime > 0, each prefix preferred).
    said: Option<(bool, Vec<bool>)>,
    next_unsolicited: u64,
    initial_left: u32,
    last_multicast: Option<u64>,
    solicited_due: Option<u64>,
    rng: u64,
    counters: RaCounters,
}

impl Advertiser {
    /// The advertiser of `site`'s LAN port, `None` when RAs are not configured or the LAN
    /// port is missing.
    pub fn new(site: &Site, seed: u64) -> Option<Advertiser> {
        let cfg = site.ra.clone()?;
        let lan = site.ports.get(site.lan_port)?;
        let mut a = Advertiser {
            cfg,
            port: site.lan_port,
            mac: lan.mac,
            link_local: addr::link_local_eui64(lan.mac),
            mtu: lan.mtu,
            prefixes: Vec::new(),
            said: None,
            next_unsolicited: 0,
            initial_left: MAX_INITIAL_RTR_ADVERTISEMENTS,
            last_multicast: None,
            solicited_due: None,
            rng: seed | 1,
            counters: RaCounters::default(),
        };
        a.configure(site);
        Some(a)
    }

    /// Takes new lifetimes and options (a reload); the next RA says them.
    pub fn configure(&mut self, site: &Site) {
        if let Some(cfg) = site.ra.clone() {
            self.cfg = cfg;
        }
        // Prefixes the configuration drops are kept, retired.
        let mut old = std::mem::take(&mut self.prefixes);
        for a in site
            .ports
            .get(site.lan_port)
            .map(|p| p.addresses.as_slice())
            .unwrap_or(&[])
        {
            let a_ = addr::from_std(a);
            // Only global prefixes: a link-local or multicast address is no SLAAC prefix.
            if addr::is_link_local(a_) || addr::is_multicast(a_) {
                continue;
            }
            let prefix = a_ & !((1u128 << 64) - 1);
            if self.prefixes.iter().any(|p| p.prefix == prefix) {
                continue;
            }
            let isp = site.isps.iter().position(|s| s.prefix.contains(a));
            self.prefixes.push(Advertised {
                prefix,
                isp,
                retired: false,
            });
        }
        old.retain(|o| !self.prefixes.iter().any(|p| p.prefix == o.prefix));
        for mut o in old {
            o.retired = true;
            self.prefixes.push(o);
        }
        self.said = None;
    }

    pub fn counters(&self) -> &RaCounters {
        &self.counters
    }

    /// A valid Router Solicitation arrived at `now` (ns): schedules the answer.
    pub fn on_solicitation(&mut self, now: u64) {
        self.counters.solicitations += 1;
        let delay = self.random(0, MAX_RA_DELAY_TIME);
        let earliest = self.last_multicast.map_or(0, |t| t + MIN_DELAY_BETWEEN_RAS);
        let at = (now + delay).max(earliest);
        if self.solicited_due.is_none_or(|d| at < d) {
            self.solicited_due = Some(at);
        }
    }

    /// Sends what is due at `now` (ns) given the ISPs' state: `(port, frame)` to `out`.
    pub fn tick(&mut self, now: u64, isps: &[IspLive], out: &mut impl FnMut(usize, Vec<u8>)) {
        let state = self.state(isps);
        let changed = self.said.as_ref() != Some(&state);
        let unsolicited = now >= self.next_unsolicited;
        let solicited = self.solicited_due.is_some_and(|d| now >= d);
        let spaced = self
            .last_multicast
            .is_none_or(|t| now >= t + MIN_DELAY_BETWEEN_RAS);
        if !(changed || unsolicited || solicited) || !spaced {
            return;
        }
        out(self.port, self.frame(&state));
        self.counters.sent += 1;
        self.last_multicast = Some(now);
        self.solicited_due = None;
        if changed && self.said.is_some() {
            // Say it again soon, in case this one was lost (section 6.2.4).
            self.initial_left = self.initial_left.max(2);
        }
        let max = u64::from(self.cfg.interval_s) * 1_000_000_000;
        let mut next = self.random(max / 3, max);
        if self.initial_left > 0 {
            self.initial_left -= 1;
            next = next.min(MAX_INITIAL_RTR_ADVERT_INTERVAL);
        }
        self.next_unsolicited = now + next;
        self.said = Some(state);
    }

    fn state(&self, isps: &[IspLive]) -> (bool, Vec<bool>) {
        let router = isps.iter().any(|l| l.usable());
        let preferred = self
            .prefixes
            .iter()
            .map(|p| {
                !p.retired
                    && p.isp
                        .is_none_or(|i| isps.get(i).is_some_and(|l| l.eligible()))
            })
            .collect();
        (router, preferred)
    }

    /// The RA frame for `state`, to all nodes.
    fn frame(&self, state: &(bool, Vec<bool>)) -> Vec<u8> {
        let c = &self.cfg;
        let mut msg = vec![0u8; 16];
        msg[0] = msg_type::ROUTER_ADVERT;
        msg[4] = 64; // Cur Hop Limit
        let lifetime = if state.0 {
            u16::try_from(c.router_lifetime_s).unwrap_or(u16::MAX)
        } else {
            0
        };
        msg[6..8].copy_from_slice(&lifetime.to_be_bytes());
        // Reachable Time and Retrans Timer 0: unspecified by this router.
        msg.extend_from_slice(&[option::SOURCE_LLADDR, 1]);
        msg.extend_from_slice(&self.mac);
        msg.extend_from_slice(&[MTU_TYPE, 1, 0, 0]);
        msg.extend_from_slice(&u32::from(self.mtu).to_be_bytes());
        for (p, &preferred) in self.prefixes.iter().zip(&state.1) {
            msg.extend_from_slice(&[PIO_TYPE, 4, 64, 0xc0]); // L and A
            let valid = if p.retired {
                c.valid_lifetime_s.min(RETIRED_VALID_S)
            } else {
                c.valid_lifetime_s
            };
            msg.extend_from_slice(&valid.to_be_bytes());
            let pref = if preferred { c.preferred_lifetime_s } else { 0 };
            msg.extend_from_slice(&pref.to_be_bytes());
            msg.extend_from_slice(&[0; 4]);
            msg.extend_from_slice(&addr::to_bytes(p.prefix));
        }
        if !c.rdnss.is_empty() {
            let len = 1 + 2 * c.rdnss.len();
            msg.extend_from_slice(&[RDNSS_TYPE, len as u8, 0, 0]);
            msg.extend_from_slice(&c.rdnss_lifetime_s.to_be_bytes());
            for a in &c.rdnss {
                msg.extend_from_slice(&a.octets());
            }
        }
        let packet = icmpv6::packet(
            addr::to_bytes(self.link_local),
            addr::to_bytes(ALL_NODES),
            nd::HOP_LIMIT,
            &msg,
        );
        let mut frame = vec![0u8; ethernet::HEADER_LEN];
        ethernet::emit(
            &mut frame,
            addr::multicast_mac(ALL_NODES),
            self.mac,
            None,
            ethertype::IPV6,
        );
        frame.extend_from_slice(&packet);
        frame
    }

    /// A number in `lo..hi` (xorshift; the RFC asks for spread, not secrecy).
    fn random(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        lo + self.rng % (hi - lo).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::{ip, ra_site, LAN_MAC};

    const S: u64 = 1_000_000_000;

    fn site() -> Site {
        ra_site()
    }

    /// Decodes an RA frame: (router lifetime, [(prefix, valid, preferred)], rdnss, mtu).
    type Decoded = (
        u16,
        Vec<(std::net::Ipv6Addr, u32, u32)>,
        Vec<std::net::Ipv6Addr>,
        u32,
    );

    fn decode(f: &[u8]) -> Decoded {
        assert_eq!(f[..6], [0x33, 0x33, 0, 0, 0, 1], "to all nodes");
        let ip6 = &f[14..];
        assert_eq!(ip6[7], 255, "hop limit 255");
        assert_eq!(ip6[8..24], addr::to_bytes(addr::link_local_eui64(LAN_MAC)));
        assert_eq!(ip6[24..40], ip("ff02::1").octets());
        let msg = &ip6[40..];
        assert!(proto::wire::checksum::verify(
            &ip6[8..24].try_into().unwrap(),
            &ip6[24..40].try_into().unwrap(),
            58,
            msg
        ));
        assert_eq!((msg[0], msg[1]), (134, 0));
        let lifetime = u16::from_be_bytes([msg[6], msg[7]]);
        let (mut pios, mut rdnss, mut mtu, mut sll) = (Vec::new(), Vec::new(), 0, None);
        let mut o = 16;
        while o < msg.len() {
            let (t, l) = (msg[o], usize::from(msg[o + 1]) * 8);
            let opt = &msg[o..o + l];
            let be32 = |i: usize| u32::from_be_bytes(opt[i..i + 4].try_into().unwrap());
            match t {
                1 => sll = Some(opt[2..8].to_vec()),
                3 => {
                    assert_eq!((opt[2], opt[3]), (64, 0xc0), "a /64, on-link, autonomous");
                    let p: [u8; 16] = opt[16..32].try_into().unwrap();
                    pios.push((p.into(), be32(4), be32(8)));
                }
                5 => mtu = be32(4),
                25 => {
                    for a in opt[8..].chunks(16) {
                        rdnss.push(<[u8; 16]>::try_from(a).unwrap().into());
                    }
                }
                other => panic!("unexpected option {other}"),
            }
            o += l;
        }
        assert_eq!(sll.as_deref(), Some(&LAN_MAC[..]));
        (lifetime, pios, rdnss, mtu)
    }

    #[test]
    fn one_prefix_per_isp_deprecated_while_it_is_out() {
        let mut a = Advertiser::new(&site(), 7).unwrap();
        let up = [IspLive::UP; 2];
        let mut frames = Vec::new();
        a.tick(0, &up, &mut |p, f| frames.push((p, f)));
        assert_eq!(frames.len(), 1, "the first RA at once");
        assert_eq!(frames[0].0, 0, "on the LAN port");
        let (lifetime, pios, rdnss, mtu) = decode(&frames[0].1);
        assert_eq!(lifetime, 90);
        assert_eq!(
            pios,
            vec![
                (ip("2001:db8:1:1::"), 86_400, 14_400),
                (ip("2001:db8:2:1::"), 86_400, 14_400)
            ]
        );
        assert_eq!(rdnss, vec![ip("2001:db8:53::1")]);
        assert_eq!(mtu, 1500);
        // Nothing changed, nothing due.
        frames.clear();
        a.tick(S, &up, &mut |p, f| frames.push((p, f)));
        assert!(frames.is_empty());
        // ISP1 withdrawn: at once, PA1 deprecated, its valid lifetime kept.
        let mut down = up;
        down[0].probes_up = false;
        // Not sooner than MIN_DELAY_BETWEEN_RAS after the previous RA.
        a.tick(2 * S, &down, &mut |p, f| frames.push((p, f)));
        assert!(frames.is_empty(), "3 s apart at least");
        a.tick(3 * S, &down, &mut |p, f| frames.push((p, f)));
        let (lifetime, pios, _, _) = decode(&frames[0].1);
        assert_eq!(lifetime, 90, "still a default router");
        assert_eq!(pios[0], (ip("2001:db8:1:1::"), 86_400, 0));
        assert_eq!(pios[1].2, 14_400);
        // ISP2 drained too: deprecated, while usable it stays a default router.
        down[1].drained = true;
        frames.clear();
        a.tick(6 * S, &down, &mut |p, f| frames.push((p, f)));
        let (lifetime, pios, _, _) = decode(&frames[0].1);
        assert_eq!((lifetime, pios[1].2), (90, 0));
        // No ISP usable: router lifetime 0 (RFC 7084 G-4).
        down[1].link_up = false;
        frames.clear();
        a.tick(9 * S, &down, &mut |p, f| frames.push((p, f)));
        assert_eq!(decode(&frames[0].1).0, 0);
        // Recovery: preferred again.
        frames.clear();
        a.tick(12 * S, &up, &mut |p, f| frames.push((p, f)));
        assert!(decode(&frames[0].1).1.iter().all(|p| p.2 == 14_400));
    }

    /// A renumbering: the prefix the file no longer has is advertised deprecated with a
    /// two-hour valid lifetime, the new one preferred.
    #[test]
    fn a_renumbered_prefix_is_retired_not_dropped() {
        let mut s = site();
        let mut a = Advertiser::new(&s, 3).unwrap();
        let up = [IspLive::UP; 2];
        let mut frames = Vec::new();
        a.tick(0, &up, &mut |_, f| frames.push(f));
        s.ports[0].addresses[0] = ip("2001:db8:1:7::1");
        a.configure(&s);
        frames.clear();
        a.tick(4 * S, &up, &mut |_, f| frames.push(f));
        let (_, pios, _, _) = decode(&frames[0]);
        assert!(
            pios.contains(&(ip("2001:db8:1:7::"), 86_400, 14_400)),
            "{pios:?}"
        );
        assert!(pios.contains(&(ip("2001:db8:1:1::"), 7200, 0)), "{pios:?}");
    }

    #[test]
    fn unsolicited_and_solicited_timing() {
        let mut a = Advertiser::new(&site(), 99).unwrap();
        let up = [IspLive::UP; 2];
        let mut times = Vec::new();
        for ms in 0..200_000u64 {
            let now = ms * 1_000_000;
            if ms == 100_000 {
                a.on_solicitation(now);
            }
            a.tick(now, &up, &mut |_, _| times.push(ms));
        }
        // Initial ones at most 16 s apart, then between 10 and 30 s.
        for w in times.windows(2).take(2) {
            assert!(w[1] - w[0] <= 16_000, "{times:?}");
        }
        // After the initial ones: every gap within MaxRtrAdvInterval (30 s) and at least
        // MinRtrAdvInterval (10 s), but the one the answer to the solicitation ends, which
        // is at least MIN_DELAY_BETWEEN_RAS (3 s).
        let answer_at = times.iter().position(|&t| t >= 100_000).unwrap();
        for (k, w) in times.windows(2).enumerate().skip(2) {
            let gap = w[1] - w[0];
            let floor = if k + 1 == answer_at { 3_000 } else { 10_000 };
            assert!((floor..=30_000).contains(&gap), "gap {k}: {times:?}");
        }
        assert!(
            (3 + 200 / 30..=3 + 200 / 10 + 1).contains(&times.len()),
            "{times:?}"
        );
        // The solicitation is answered within 500 ms (or 3 s after the previous RA).
        let answer = times.iter().find(|&&t| t >= 100_000).unwrap();
        let before = times.iter().rev().find(|&&t| t < 100_000).unwrap();
        assert!(
            *answer <= (100_500).max(before + 3_000),
            "answered at {answer} ms, previous at {before} ms"
        );
        assert_eq!(a.counters().solicitations, 1);
    }
}
