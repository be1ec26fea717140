//! The dataplane's end of the channel to `m6-controlplane` (`proto::channel`): a Unix
//! `SOCK_SEQPACKET` socket the dataplane listens on, one control plane at a time.
//!
//! The dataplane is the long-lived side: it keeps forwarding with its current tables while
//! no control plane is connected, and a control plane that (re)connects sends a `Hello`,
//! then its whole state between `ResyncBegin` and `ResyncEnd`; what it does not re-send is
//! removed. Everything here runs on the control thread, nonblocking, polled every tick.
//!
//! The socket path is refused when it exists and belongs to another user (someone else's
//! socket or file must not be replaced); a stale socket of ours is replaced. The mode is set
//! from the configuration (0600 by default).

use std::collections::{HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::Ipv6Addr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use proto::channel::{self, ContextMsg, DestinationMsg, Message, RequestMsg, Role};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::contexts::datapath::M6Event;
use crate::contexts::{Context, Destination, LocatorSet};
use crate::control::Control;
use crate::net::addr;
use crate::nodes::cc_answer::Responder;
use crate::stats::named_counters;

/// Messages queued for the control plane at most (beyond: counted and lost).
pub const MAX_QUEUED: usize = 4096;
/// Messages taken from the control plane per poll at most, so that a large resync does not
/// hold the control thread (neighbor owner, link state) for long.
pub const MAX_READ_PER_POLL: usize = 4096;

named_counters! {
    /// The channel (`channel.*`).
    pub struct ChannelCounters("channel") {
        /// Control planes that connected and said hello.
        connections,
        /// Connections refused or closed for a bad hello or a malformed message.
        refused,
        /// Messages received.
        received,
        /// Messages sent.
        sent,
        /// Messages not sent: no control plane connected, or its queue full.
        unsent,
        /// Contexts removed at the end of a resynchronisation (not re-sent by the control
        /// plane that installed them).
        resync_removed,
        /// Contexts kept at the end of a resynchronisation with a restarted control plane
        /// (they carry traffic until the protocol replaces them).
        resync_kept,
        /// Operator commands refused (a drain of an ISP that does not exist).
        commands_refused,
    }
}

/// What the control plane asked the dataplane to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub isp: Option<u16>,
    pub packet: Vec<u8>,
}

struct Peer {
    sock: Socket,
    hello: bool,
    out: VecDeque<Vec<u8>>,
}

/// The listening socket and the connected control plane, if any.
pub struct ChannelServer {
    path: PathBuf,
    listener: Socket,
    peer: Option<Peer>,
    instance: u64,
    /// The control plane instance of the current or last connection.
    last_instance: Option<u64>,
    /// The connected control plane is the one that installed what the tables hold.
    same_instance: bool,
    /// During a resynchronisation: what was re-sent so far.
    resync: Option<Resync>,
    /// Every context installed through the channel.
    installed: HashSet<ContextId>,
    destinations: HashSet<[u8; 16]>,
    buf: Vec<u8>,
    /// Operators' requests waiting for the dataplane's main loop (`take_requests`).
    requests: Vec<(u64, RequestMsg)>,
    pub counters: ChannelCounters,
}

/// Requests held for the main loop at most (more are dropped: m6ctl times out).
pub const MAX_PENDING_REQUESTS: usize = 16;

/// (AID(local), F(local)): one context.
type ContextId = ([u8; 16], u32);

/// What a control plane re-sent since `ResyncBegin`.
#[derive(Default)]
struct Resync {
    contexts: HashSet<ContextId>,
    destinations: HashSet<[u8; 16]>,
}

/// The uid this process runs as (the owner of its `/proc/self`).
fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

impl ChannelServer {
    /// Listens on `path` with permissions `mode`. Errors name the path and the reason.
    pub fn bind(path: &Path, mode: u32, instance: u64) -> Result<ChannelServer, String> {
        let shown = path.display();
        if let Ok(m) = std::fs::symlink_metadata(path) {
            let me = own_uid();
            if Some(m.uid()) != me {
                return Err(format!(
                    "{shown}: expected a path owned by uid {} or absent, found one owned by uid {}",
                    me.map_or("?".into(), |u| u.to_string()),
                    m.uid()
                ));
            }
            if !m.file_type().is_socket() {
                return Err(format!(
                    "{shown}: expected a socket or nothing, found another kind of file"
                ));
            }
            std::fs::remove_file(path).map_err(|e| format!("{shown}: cannot replace: {e}"))?;
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let listener = Socket::new(Domain::UNIX, Type::SEQPACKET, None)
            .map_err(|e| format!("{shown}: socket: {e}"))?;
        let addr = SockAddr::unix(path).map_err(|e| format!("{shown}: {e}"))?;
        listener
            .bind(&addr)
            .map_err(|e| format!("{shown}: bind: {e}"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{shown}: chmod {mode:o}: {e}"))?;
        listener
            .listen(1)
            .map_err(|e| format!("{shown}: listen: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{shown}: {e}"))?;
        Ok(ChannelServer {
            path: path.to_path_buf(),
            listener,
            peer: None,
            instance,
            last_instance: None,
            same_instance: false,
            resync: None,
            installed: HashSet::new(),
            destinations: HashSet::new(),
            buf: vec![0; channel::MAX_MESSAGE + 1],
            requests: Vec::new(),
            counters: ChannelCounters::default(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a control plane is connected and has said hello.
    pub fn connected(&self) -> bool {
        self.peer.as_ref().is_some_and(|p| p.hello)
    }

    /// Accepts a control plane, reads what it sent and applies it to `control` (`now`: the
    /// workers' clock, for destination lifetimes), hands packets to inject to `inject`,
    /// and writes what is queued. Never blocks.
    pub fn poll(&mut self, control: &mut Control, now: u64, inject: &mut impl FnMut(Injected)) {
        if let Ok((sock, _)) = self.listener.accept() {
            // One control plane at a time: a new connection replaces the old one (the old
            // process is gone or about to be).
            if sock.set_nonblocking(true).is_ok() {
                let mut peer = Peer {
                    sock,
                    hello: false,
                    out: VecDeque::new(),
                };
                if let Ok(hello) = channel::encode(&Message::Hello {
                    version: channel::VERSION,
                    role: Role::Dataplane,
                    instance: self.instance,
                }) {
                    peer.out.push_back(hello);
                }
                self.peer = Some(peer);
                self.resync = None;
            }
        }
        let mut close = false;
        let mut taken = 0;
        while let Some(peer) = self.peer.as_mut() {
            if taken >= MAX_READ_PER_POLL {
                break;
            }
            taken += 1;
            match peer.sock.read(&mut self.buf) {
                Ok(0) => {
                    close = true;
                    break;
                }
                Ok(n) => {
                    self.counters.received += 1;
                    let msg = match self.buf.get(..n).map(channel::decode) {
                        Some(Ok(m)) => m,
                        _ => {
                            self.counters.refused += 1;
                            close = true;
                            break;
                        }
                    };
                    if !peer.hello {
                        match channel::check_hello(&msg, Role::Controlplane) {
                            Ok(instance) => {
                                peer.hello = true;
                                self.counters.connections += 1;
                                // The same control plane reconnecting re-sends its whole
                                // state; a new one (restarted) knows nothing of what the
                                // previous one installed, and those contexts keep carrying
                                // traffic until the protocol replaces them.
                                self.same_instance = self.last_instance == Some(instance);
                                self.last_instance = Some(instance);
                                if !self.same_instance {
                                    // Another key: the new control plane publishes its own.
                                    control.set_responder(None);
                                }
                            }
                            Err(_) => {
                                self.counters.refused += 1;
                                close = true;
                                break;
                            }
                        }
                        continue;
                    }
                    self.apply(msg, control, now, inject);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    close = true;
                    break;
                }
            }
        }
        if !close {
            close = !self.flush();
        }
        if close {
            self.peer = None;
            self.resync = None;
            // CCs made with the key of a control plane that is gone could not be verified
            // by its successor; until one connects, INITs are punted (and lost).
            control.set_responder(None);
        }
    }

    /// Queues `m` for the control plane (lost, counted, when none is connected).
    pub fn send(&mut self, m: &Message) {
        let Some(peer) = self.peer.as_mut().filter(|p| p.hello) else {
            self.counters.unsent += 1;
            return;
        };
        match channel::encode(m) {
            Ok(b) if peer.out.len() < MAX_QUEUED => peer.out.push_back(b),
            _ => self.counters.unsent += 1,
        }
    }

    /// Queues a worker's M6 report.
    pub fn report(&mut self, e: M6Event) {
        let m = match e {
            M6Event::Punt { port, packet } => Message::Punt { port, packet },
            M6Event::Activity { aid_local, f_local } => Message::Activity {
                aid_local: addr::to_std(aid_local),
                f_local,
            },
            M6Event::FirstPacket {
                aid_local,
                aid_peer,
            } => Message::FirstPacket {
                aid_local: addr::to_std(aid_local),
                aid_peer: addr::to_std(aid_peer),
            },
            M6Event::UnknownFlowLabel {
                src,
                dst,
                flow_label,
            } => Message::UnknownFlowLabel {
                src: addr::to_std(src),
                dst: addr::to_std(dst),
                flow_label,
            },
            M6Event::NewSourceLocator {
                aid_local,
                f_local,
                src,
            } => Message::NewSourceLocator {
                aid_local: addr::to_std(aid_local),
                f_local,
                src: addr::to_std(src),
            },
        };
        self.send(&m);
    }

    /// Writes queued messages; false if the connection failed.
    fn flush(&mut self) -> bool {
        let Some(peer) = self.peer.as_mut() else {
            return true;
        };
        while let Some(b) = peer.out.front() {
            match peer.sock.write(b) {
                Ok(_) => {
                    peer.out.pop_front();
                    self.counters.sent += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }

    fn apply(
        &mut self,
        msg: Message,
        control: &mut Control,
        now: u64,
        inject: &mut impl FnMut(Injected),
    ) {
        match msg {
            Message::Install(c) => {
                let ctx = context_of(&c);
                let key = (ctx.aid_local, ctx.f_local);
                self.installed.insert(key);
                if let Some(r) = self.resync.as_mut() {
                    r.contexts.insert(key);
                }
                control.install_context(ctx);
            }
            Message::Remove { aid_local, f_local } => {
                let a = aid_local.octets();
                self.installed.remove(&(a, f_local));
                control.remove_context(a, f_local);
            }
            Message::Destination { aid_peer, status } => {
                let a = aid_peer.octets();
                let status = status.map(|s| match s {
                    DestinationMsg::Pending => Destination::Pending,
                    DestinationMsg::M6 => Destination::M6,
                    DestinationMsg::NotM6 { for_ms } => Destination::NotM6 {
                        until_ns: now.saturating_add(for_ms.saturating_mul(1_000_000)),
                    },
                });
                match status {
                    Some(_) => {
                        self.destinations.insert(a);
                        if let Some(r) = self.resync.as_mut() {
                            r.destinations.insert(a);
                        }
                    }
                    None => {
                        self.destinations.remove(&a);
                    }
                }
                control.set_destination(a, status);
            }
            Message::ResyncBegin => self.resync = Some(Resync::default()),
            Message::ResyncEnd => {
                let resync = self.resync.take();
                if !self.same_instance {
                    // A restarted control plane: keep what the previous one installed.
                    self.counters.resync_kept += self
                        .installed
                        .iter()
                        .filter(|k| !resync.as_ref().is_some_and(|r| r.contexts.contains(*k)))
                        .count() as u64;
                    return;
                }
                if let Some(Resync {
                    contexts: ctxs,
                    destinations: dests,
                }) = resync
                {
                    let stale: Vec<_> = self
                        .installed
                        .iter()
                        .filter(|k| !ctxs.contains(*k))
                        .copied()
                        .collect();
                    for (a, f) in stale {
                        control.remove_context(a, f);
                        self.installed.remove(&(a, f));
                        self.counters.resync_removed += 1;
                    }
                    let stale: Vec<_> = self.destinations.difference(&dests).copied().collect();
                    for a in stale {
                        control.set_destination(a, None);
                        self.destinations.remove(&a);
                    }
                }
            }
            Message::Inject { isp, packet } => inject(Injected { isp, packet }),
            Message::CcResponder(m) => control.set_responder(Some(Responder::new(&m, now))),
            // Beyond the bound the request is dropped: m6ctl reports the timeout.
            Message::Request { id, request } if self.requests.len() < MAX_PENDING_REQUESTS => {
                self.requests.push((id, request));
            }
            Message::Drain { isp, drained } => {
                if let Err(e) = control.set_drained(&isp, drained) {
                    self.counters.commands_refused += 1;
                    eprintln!("m6-dataplane: drain refused: {e}");
                }
            }
            // Messages for the control plane, or a second hello: ignored.
            _ => {}
        }
    }
}

/// The dataplane's form of a context from the channel.
pub fn context_of(c: &ContextMsg) -> Context {
    let set = |v: &[Ipv6Addr]| LocatorSet::new(&v.iter().map(addr::from_std).collect::<Vec<_>>());
    Context {
        f_local: c.f_local & 0xf_ffff,
        aid_local: c.aid_local.octets(),
        aid_peer: c.aid_peer.octets(),
        f_peer: c.f_peer.unwrap_or(0) & 0xf_ffff,
        lsl_local: set(&c.lsl_local),
        ls_local: set(&c.ls_local),
        lsl_peer: set(&c.lsl_peer),
        lsv_peer: set(&c.lsv_peer),
        lp_peer: c.lp_peer.map_or([0; 16], |a| a.octets()),
        rewrite_ok: c.rewrite_ok,
        transmit: c.transmit && c.f_peer.is_some() && c.lp_peer.is_some(),
    }
}

impl ChannelServer {
    /// The operators' requests received since the last call (id, request); each is
    /// answered with `send(&Message::Reply { id, .. })`.
    pub fn take_requests(&mut self) -> Vec<(u64, RequestMsg)> {
        std::mem::take(&mut self.requests)
    }
}

impl Drop for ChannelServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::two_isp_site;
    use std::time::{Duration, Instant};

    fn ctx_msg(f_local: u32) -> ContextMsg {
        ContextMsg {
            f_local,
            aid_local: "2001:db8:1:1::10".parse().unwrap(),
            aid_peer: "2001:db8:99::20".parse().unwrap(),
            f_peer: Some(0xabcde),
            lsl_local: vec!["2001:db8:1:1::10".parse().unwrap()],
            ls_local: vec!["2001:db8:1:1::10".parse().unwrap()],
            lsl_peer: vec!["2001:db8:99::20".parse().unwrap()],
            lsv_peer: vec!["2001:db8:99::20".parse().unwrap()],
            lp_peer: Some("2001:db8:99::20".parse().unwrap()),
            rewrite_ok: true,
            transmit: true,
        }
    }

    struct Client(Socket);

    impl Client {
        fn connect(path: &Path) -> Client {
            let s = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
            s.connect(&SockAddr::unix(path).unwrap()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            Client(s)
        }
        fn send(&mut self, m: &Message) {
            self.0.write_all(&channel::encode(m).unwrap()).unwrap();
        }
        fn recv(&mut self) -> Message {
            let mut b = vec![0; channel::MAX_MESSAGE];
            let n = self.0.read(&mut b).unwrap();
            channel::decode(&b[..n]).unwrap()
        }
    }

    fn hello() -> Message {
        Message::Hello {
            version: channel::VERSION,
            role: Role::Controlplane,
            instance: 1,
        }
    }

    fn poll_until(
        s: &mut ChannelServer,
        c: &mut Control,
        mut done: impl FnMut(&ChannelServer, &Control) -> bool,
    ) {
        let start = Instant::now();
        while !done(s, c) {
            s.poll(c, 0, &mut |_| {});
            assert!(start.elapsed() < Duration::from_secs(5), "timed out");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn hello_install_resync_and_reports() {
        let dir = tempfile_dir();
        let path = dir.join("dp.sock");
        let mut s = ChannelServer::bind(&path, 0o600, 9).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut control = Control::new(&two_isp_site());
        let mut cp = Client::connect(&path);
        s.poll(&mut control, 0, &mut |_| {});
        assert!(matches!(
            cp.recv(),
            Message::Hello {
                role: Role::Dataplane,
                instance: 9,
                ..
            }
        ));
        cp.send(&hello());
        cp.send(&Message::Install(ctx_msg(1)));
        cp.send(&Message::Install(ctx_msg(2)));
        // Two contexts for one AID pair (the engine's old and new): both held.
        poll_until(&mut s, &mut control, |_, c| c.contexts().len() == 2);
        assert!(s.connected());
        // The same control plane reconnecting resynchronises: what it does not re-send goes.
        let mut cp2 = Client::connect(&path);
        cp2.send(&hello());
        cp2.send(&Message::ResyncBegin);
        cp2.send(&Message::ResyncEnd);
        poll_until(&mut s, &mut control, |s, _| s.counters.resync_removed == 2);
        assert_eq!(control.contexts().len(), 0);
        // Reports reach the control plane.
        let _ = cp2.recv(); // its hello
        s.report(M6Event::UnknownFlowLabel {
            src: 1,
            dst: 2,
            flow_label: 3,
        });
        s.poll(&mut control, 0, &mut |_| {});
        assert_eq!(
            cp2.recv(),
            Message::UnknownFlowLabel {
                src: addr::to_std(1),
                dst: addr::to_std(2),
                flow_label: 3
            }
        );
        drop(cp);
    }

    #[test]
    fn a_restarted_control_plane_does_not_take_the_previous_ones_contexts_away() {
        let (path, mut s, mut control) = server();
        let mut cp = Client::connect(&path);
        cp.send(&hello());
        cp.send(&Message::Install(ctx_msg(1)));
        poll_until(&mut s, &mut control, |_, c| c.contexts().len() == 1);
        drop(cp);
        let mut cp2 = Client::connect(&path);
        cp2.send(&Message::Hello {
            version: channel::VERSION,
            role: Role::Controlplane,
            instance: 2,
        });
        cp2.send(&Message::ResyncBegin);
        cp2.send(&Message::ResyncEnd);
        poll_until(&mut s, &mut control, |s, _| s.counters.resync_kept == 1);
        assert_eq!(control.contexts().len(), 1, "still carrying traffic");
    }

    #[test]
    fn the_cc_responder_is_published_and_withdrawn_with_its_control_plane() {
        let (path, mut s, mut control) = server();
        let mut cp = Client::connect(&path);
        cp.send(&hello());
        cp.send(&Message::CcResponder(proto::channel::CcResponderMsg {
            key_serial: 3,
            secret: [1; 32],
            birthday: 9,
            clock_ms: 0,
            per_second: 10,
            hosts: Vec::new(),
        }));
        poll_until(&mut s, &mut control, |_, c| {
            c.contexts().responder().is_some()
        });
        // Gone: its key would make CCs that no control plane can verify.
        drop(cp);
        poll_until(&mut s, &mut control, |_, c| {
            c.contexts().responder().is_none()
        });
    }

    #[test]
    fn a_bad_hello_is_refused_and_the_dataplane_keeps_its_tables() {
        let (path, mut s, mut control) = server();
        control.install_context(context_of(&ctx_msg(5)));
        let mut cp = Client::connect(&path);
        cp.send(&Message::Hello {
            version: 99,
            role: Role::Controlplane,
            instance: 1,
        });
        poll_until(&mut s, &mut control, |s, _| s.counters.refused == 1);
        assert!(!s.connected());
        assert_eq!(control.contexts().len(), 1, "tables kept");
    }

    #[test]
    fn a_path_owned_by_someone_else_or_not_a_socket_is_refused() {
        let dir = tempfile_dir();
        let path = dir.join("file");
        std::fs::write(&path, b"x").unwrap();
        let e = ChannelServer::bind(&path, 0o600, 1).err().unwrap();
        assert!(e.contains("expected a socket or nothing"), "{e}");
        if own_uid() == Some(0) {
            let other = dir.join("other");
            std::fs::write(&other, b"x").unwrap();
            std::os::unix::fs::chown(&other, Some(65534), None).unwrap();
            let e = ChannelServer::bind(&other, 0o600, 1).err().unwrap();
            assert!(e.contains("owned by uid 65534"), "{e}");
        }
        // A stale socket of ours is replaced.
        let sock = dir.join("s.sock");
        drop(ChannelServer::bind(&sock, 0o600, 1).unwrap());
        let _keep = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
        let first = ChannelServer::bind(&sock, 0o600, 1).unwrap();
        std::mem::forget(first); // leaves the socket file behind
        assert!(ChannelServer::bind(&sock, 0o600, 1).is_ok());
    }

    /// A listening channel in a fresh directory, and the control thread it feeds.
    fn server() -> (PathBuf, ChannelServer, Control) {
        let path = tempfile_dir().join("dp.sock");
        let s = ChannelServer::bind(&path, 0o600, 1).unwrap();
        (path, s, Control::new(&two_isp_site()))
    }

    fn tempfile_dir() -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "m6-channel-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
