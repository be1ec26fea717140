//! The messages between `m6-dataplane` and `m6-controlplane` (DESIGN section 3; issue 8
//! item 2): one message per datagram of a Unix `SOCK_SEQPACKET` socket, encoded with
//! postcard (serde's compact binary format), versioned by the [`Message::Hello`] each side
//! sends first.
//!
//! | direction | messages |
//! |---|---|
//! | both | `Hello` (version, role, instance) |
//! | control plane -> dataplane | `Install`, `Remove`, `Destination` (table updates); `ResyncBegin` / `ResyncEnd` around a full re-send after a (re)connection; `Inject` (a packet to send) |
//! | dataplane -> control plane | `Punt` (an M6 control packet received); `FirstPacket`, `UnknownFlowLabel`, `NewSourceLocator` (data-path events, rate-limited and de-duplicated by the workers); `IspState`; `Counters` |
//!
//! Times never cross the channel as instants (the two processes have different clocks):
//! a negative destination entry carries its remaining lifetime.
//!
//! A message that does not decode is refused with [`ChannelError`], never a panic; a peer
//! whose `Hello` has another [`VERSION`] is refused with [`check_hello`]'s reason.

use std::fmt;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

/// The protocol version both sides must speak.
pub const VERSION: u16 = 4;
/// The largest encoded message (a 64 KiB packet and its envelope).
pub const MAX_MESSAGE: usize = 65_536 + 1024;

/// Which process sent a [`Message::Hello`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Dataplane,
    Controlplane,
}

/// A host-pair context for the dataplane (the engine's `DataplaneContext`, seed 001
/// section 7.11).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ContextMsg {
    pub f_local: u32,
    pub aid_local: Ipv6Addr,
    pub aid_peer: Ipv6Addr,
    /// F(peer); `None` until the peer told us.
    pub f_peer: Option<u32>,
    pub lsl_local: Vec<Ipv6Addr>,
    pub ls_local: Vec<Ipv6Addr>,
    pub lsl_peer: Vec<Ipv6Addr>,
    pub lsv_peer: Vec<Ipv6Addr>,
    pub lp_peer: Option<Ipv6Addr>,
    pub rewrite_ok: bool,
    pub transmit: bool,
}

/// A destination-cache entry (the engine's `DestinationStatus`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationMsg {
    Pending,
    /// Not M6 capable for this many more milliseconds.
    NotM6 {
        for_ms: u64,
    },
    M6,
}

/// One message of the channel.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The first message each way.
    Hello {
        version: u16,
        role: Role,
        /// Changes at every start of the sender (a reconnection to a new instance means its
        /// state is gone).
        instance: u64,
    },
    /// Control plane -> dataplane: create or replace a context.
    Install(ContextMsg),
    /// Control plane -> dataplane: remove a context.
    Remove { aid_local: Ipv6Addr, f_local: u32 },
    /// Control plane -> dataplane: set (or with `None` clear) a destination-cache entry.
    Destination {
        aid_peer: Ipv6Addr,
        status: Option<DestinationMsg>,
    },
    /// Control plane -> dataplane: a full re-send of the tables follows; contexts and
    /// destinations not re-sent before [`Message::ResyncEnd`] are removed.
    ResyncBegin,
    /// Control plane -> dataplane: the full re-send is complete.
    ResyncEnd,
    /// Control plane -> dataplane: send this IPv6 packet (from its fixed header on) through
    /// ISP `isp` (index in the dataplane's configuration), or by destination when `None`.
    Inject { isp: Option<u16>, packet: Vec<u8> },
    /// Dataplane -> control plane: an M6 control packet (ICMPv6 type 200/201) for the
    /// router or a proxied host, received on port `port` (the IPv6 packet as received).
    Punt { port: u16, packet: Vec<u8> },
    /// Dataplane -> control plane: a proxied host sent to a peer with no context and no
    /// destination-cache entry (seed 001 section 4.1).
    FirstPacket {
        aid_local: Ipv6Addr,
        aid_peer: Ipv6Addr,
    },
    /// Dataplane -> control plane: M6 data with an unknown flow label (7.11 step 1a).
    UnknownFlowLabel {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        flow_label: u32,
    },
    /// Dataplane -> control plane: a source locator other than Lp(peer) on a context
    /// (7.11 steps 3b, 3c).
    NewSourceLocator {
        aid_local: Ipv6Addr,
        f_local: u32,
        src: Ipv6Addr,
    },
    /// Dataplane -> control plane: the context of (AID(local), F(local)) carried data lately
    /// (the engine's idle timer, seed 001 appendix A).
    Activity { aid_local: Ipv6Addr, f_local: u32 },
    /// Dataplane -> control plane: the state of ISP `isp` (index in the dataplane's
    /// configuration) named `name`, which delegated `prefix`/`prefix_len`; sent at every
    /// change and after each hello. A proxy stops announcing locators under an ISP that is
    /// not usable or is drained.
    IspState {
        isp: u16,
        name: String,
        prefix: Ipv6Addr,
        prefix_len: u8,
        /// It may carry traffic (admin, link, next hop and probes up, not dampened).
        usable: bool,
        /// The operator drained it: no rewritable or proxied flow uses it.
        drained: bool,
        /// Why it is not usable ("probes failing", "dampened", ...); empty when usable.
        cause: String,
        /// The health probes' last round-trip time in microseconds (0: none yet or not
        /// probed).
        rtt_us: u32,
        /// Probe rounds answered since the dataplane started (a new value: a new RTT).
        probe_rounds: u64,
        /// Withdrawals for a health cause since the dataplane started.
        withdrawals: u64,
    },
    /// Control plane -> dataplane: drain (`drained`) or undrain the ISP named `isp`
    /// (`m6ctl isp drain NAME`): its rewritable and proxied flows move to the others.
    Drain { isp: String, drained: bool },
    /// Control plane -> dataplane: an operator's request (`m6ctl`), answered by a
    /// [`Message::Reply`] with the same `id`.
    Request { id: u64, request: RequestMsg },
    /// Dataplane -> control plane: the answer to the [`Message::Request`] `id`.
    Reply { id: u64, reply: ReplyMsg },
    /// Dataplane -> control plane: counter values by dotted name.
    Counters { values: Vec<(String, u64)> },
    /// Control plane -> dataplane: what a worker needs to answer an INIT with a CC itself
    /// (seed 001 sections 3.3.2 and 7.3: the CC is stateless). Sent after the hello, at
    /// every CC key rotation and when a host's locators change.
    CcResponder(CcResponderMsg),
}

/// What an operator asks the dataplane.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum RequestMsg {
    /// The neighbor cache (`m6ctl neighbor list`).
    Neighbors,
    /// Read the configuration file again and apply what may change live (`m6ctl reload`).
    Reload,
}

/// The dataplane's answer to a [`RequestMsg`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ReplyMsg {
    /// At most [`MAX_NEIGHBORS_IN_REPLY`] entries of the neighbor cache, and how many there
    /// are in all.
    Neighbors {
        entries: Vec<NeighborMsg>,
        total: u32,
    },
    /// Whether the reload was applied, and what was applied or why it was refused.
    Reloaded { ok: bool, message: String },
}

/// Neighbor-cache entries one reply carries at most: 500 entries with 32-character port
/// names stay well within [`MAX_MESSAGE`].
pub const MAX_NEIGHBORS_IN_REPLY: usize = 500;

/// One neighbor-cache entry (RFC 4861 section 7.3.2 state names).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NeighborMsg {
    /// The port's name.
    pub port: String,
    pub address: Ipv6Addr,
    /// Its link-layer address, when known.
    pub mac: Option<[u8; 6]>,
    /// INCOMPLETE, REACHABLE, STALE, DELAY, PROBE, FAILED or STATIC.
    pub state: String,
}

/// The responder's state for CCs made in the dataplane (seed 001 section 7.3). `Debug`
/// leaves the secret out.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct CcResponderMsg {
    /// Serial of the current CC key.
    pub key_serial: u32,
    /// Its 32-octet secret.
    pub secret: [u8; crate::cc::SECRET_LEN],
    /// The control plane's birthday counter (section 7.14).
    pub birthday: u32,
    /// The control plane's clock (milliseconds since its start; its CC clock is this in
    /// whole seconds) when it sent this; the dataplane counts on from there with its own
    /// monotonic clock.
    pub clock_ms: u64,
    /// CCs answered per second per worker at most (the burst is one second's worth).
    pub per_second: u32,
    /// The proxied hosts the control plane answers for.
    pub hosts: Vec<ResponderHost>,
}

impl std::fmt::Debug for CcResponderMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CcResponderMsg")
            .field("key_serial", &self.key_serial)
            .field("birthday", &self.birthday)
            .field("clock_ms", &self.clock_ms)
            .field("per_second", &self.per_second)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// One proxied host as the responder of section 7.3 sees it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ResponderHost {
    /// Its locators (an INIT's AID(responder) and destination must both be among them).
    pub locators: Vec<Ipv6Addr>,
    /// Whether Lsl(responder) announces every locator or only the AID (section 7.13).
    pub dns_verifiable: bool,
    /// Whether its control messages say "rewrite ok" (section 7.13).
    pub rewrite_ok: bool,
}

/// Why a datagram is not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// Longer than [`MAX_MESSAGE`].
    TooLong(usize),
    /// Not a valid encoding of [`Message`].
    Malformed(String),
    /// The peer speaks another version, or is not the expected role.
    Refused(String),
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::TooLong(n) => {
                write!(f, "message of {n} octets, more than {MAX_MESSAGE}")
            }
            ChannelError::Malformed(e) => write!(f, "malformed message: {e}"),
            ChannelError::Refused(e) => write!(f, "peer refused: {e}"),
        }
    }
}

impl std::error::Error for ChannelError {}

/// Encodes `m` as one datagram.
pub fn encode(m: &Message) -> Result<Vec<u8>, ChannelError> {
    let v = postcard::to_stdvec(m).map_err(|e| ChannelError::Malformed(e.to_string()))?;
    if v.len() > MAX_MESSAGE {
        return Err(ChannelError::TooLong(v.len()));
    }
    Ok(v)
}

/// Decodes one datagram.
pub fn decode(b: &[u8]) -> Result<Message, ChannelError> {
    if b.len() > MAX_MESSAGE {
        return Err(ChannelError::TooLong(b.len()));
    }
    postcard::from_bytes(b).map_err(|e| ChannelError::Malformed(e.to_string()))
}

/// Checks the peer's first message: a `Hello` of our [`VERSION`] from `expected`; returns
/// the peer's instance.
pub fn check_hello(m: &Message, expected: Role) -> Result<u64, ChannelError> {
    match m {
        Message::Hello {
            version,
            role,
            instance,
        } => {
            if *version != VERSION {
                return Err(ChannelError::Refused(format!(
                    "expected channel version {VERSION}, found {version}"
                )));
            }
            if *role != expected {
                return Err(ChannelError::Refused(format!(
                    "expected a hello from the {expected:?}, found one from the {role:?}"
                )));
            }
            Ok(*instance)
        }
        other => Err(ChannelError::Refused(format!(
            "expected a hello first, found {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn every_message() -> Vec<Message> {
        let ctx = ContextMsg {
            f_local: 0x12345,
            aid_local: a("2001:db8:1:1::10"),
            aid_peer: a("2001:db8:99::20"),
            f_peer: Some(0xabcde),
            lsl_local: vec![a("2001:db8:1:1::10"), a("2001:db8:2:1::10")],
            ls_local: vec![a("2001:db8:1:1::10")],
            lsl_peer: vec![a("2001:db8:99::20")],
            lsv_peer: vec![],
            lp_peer: None,
            rewrite_ok: true,
            transmit: false,
        };
        vec![
            Message::Hello {
                version: VERSION,
                role: Role::Dataplane,
                instance: 7,
            },
            Message::Install(ctx),
            Message::Remove {
                aid_local: a("2001:db8:1:1::10"),
                f_local: 5,
            },
            Message::Destination {
                aid_peer: a("2001:db8:99::20"),
                status: Some(DestinationMsg::NotM6 { for_ms: 300_000 }),
            },
            Message::Destination {
                aid_peer: a("2001:db8:99::20"),
                status: None,
            },
            Message::ResyncBegin,
            Message::ResyncEnd,
            Message::Inject {
                isp: Some(1),
                packet: vec![0x60; 1280],
            },
            Message::Punt {
                port: 2,
                packet: vec![1, 2, 3],
            },
            Message::FirstPacket {
                aid_local: a("2001:db8:1:1::10"),
                aid_peer: a("2001:db8:99::20"),
            },
            Message::UnknownFlowLabel {
                src: a("2001:db8:99::20"),
                dst: a("2001:db8:1:1::10"),
                flow_label: 0xfffff,
            },
            Message::NewSourceLocator {
                aid_local: a("2001:db8:1:1::10"),
                f_local: 9,
                src: a("2001:db8:98::20"),
            },
            Message::IspState {
                isp: 0,
                name: "isp1".into(),
                prefix: a("2001:db8:1::"),
                prefix_len: 48,
                usable: false,
                drained: true,
                cause: "probes failing".into(),
                rtt_us: 1234,
                probe_rounds: 9,
                withdrawals: 2,
            },
            Message::Drain {
                isp: "isp1".into(),
                drained: true,
            },
            Message::Request {
                id: 7,
                request: RequestMsg::Reload,
            },
            Message::Reply {
                id: 7,
                reply: ReplyMsg::Neighbors {
                    entries: vec![NeighborMsg {
                        port: "lan".into(),
                        address: a("fe80::1"),
                        mac: Some([2, 0, 0, 0, 0, 1]),
                        state: "REACHABLE".into(),
                    }],
                    total: 1,
                },
            },
            Message::Counters {
                values: vec![("drop.truncated".into(), 3)],
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in every_message() {
            let b = encode(&m).unwrap();
            assert!(b.len() <= MAX_MESSAGE);
            assert_eq!(decode(&b).unwrap(), m);
        }
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for len in 0..2000usize {
            let b: Vec<u8> = (0..len % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode(&b);
        }
        // Every truncation of a valid message is refused.
        let b = encode(&every_message()[1]).unwrap();
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err(), "{n}");
        }
        assert_eq!(
            decode(&vec![0; MAX_MESSAGE + 1]),
            Err(ChannelError::TooLong(MAX_MESSAGE + 1))
        );
    }

    #[test]
    fn hello_is_checked() {
        let hello = |version, role| Message::Hello {
            version,
            role,
            instance: 42,
        };
        assert_eq!(
            check_hello(&hello(VERSION, Role::Controlplane), Role::Controlplane),
            Ok(42)
        );
        assert!(
            check_hello(&hello(VERSION + 1, Role::Controlplane), Role::Controlplane)
                .unwrap_err()
                .to_string()
                .contains(&format!(
                    "expected channel version {VERSION}, found {}",
                    VERSION + 1
                ))
        );
        assert!(check_hello(&hello(VERSION, Role::Dataplane), Role::Controlplane).is_err());
        assert!(check_hello(&Message::ResyncEnd, Role::Controlplane).is_err());
    }
}
