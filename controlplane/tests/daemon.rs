//! `m6-controlplane`'s daemon against a dataplane's end of the channel (`proto::channel`)
//! played by the test: the hello and resynchronisation, an INIT punted by the dataplane
//! answered with a CC injected back, the CC responder state published for the workers
//! (and a CC made from it accepted in a CCR), and a restart that resyncs what the engine
//! holds.
//! No DPDK: the channel is a real Unix SOCK_SEQPACKET socket.

use std::io::{Read, Write};
use std::net::Ipv6Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use controlplane::config::ControlplaneConfig;
use controlplane::daemon::Daemon;
use proto::channel::{self, Message, Role};
use proto::wire::m6::{Cc, IcmpTypes, Init, Message as M6, Packet, Repr};
use proto::wire::tlv::Locators;
use proto::wire::FlowLabel;
use socket2::{Domain, SockAddr, Socket, Type};

const HOST: &str = "2001:db8:1:1::10";
const HOST_PA2: &str = "2001:db8:2:1::10";
const PEER: &str = "2001:db8:99::20";

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// The dataplane's side: a listener and the accepted control plane.
struct FakeDataplane {
    listener: Socket,
    conn: Option<Socket>,
}

impl FakeDataplane {
    fn bind(path: &Path) -> FakeDataplane {
        let listener = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
        listener.bind(&SockAddr::unix(path).unwrap()).unwrap();
        listener.listen(1).unwrap();
        FakeDataplane {
            listener,
            conn: None,
        }
    }

    fn accept(&mut self) {
        let (c, _) = self.listener.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        self.conn = Some(c);
    }

    fn send(&mut self, m: &Message) {
        let b = channel::encode(m).unwrap();
        self.conn.as_mut().unwrap().write_all(&b).unwrap();
    }

    fn recv(&mut self) -> Message {
        let mut b = vec![0; channel::MAX_MESSAGE];
        let n = self
            .conn
            .as_mut()
            .unwrap()
            .read(&mut b)
            .expect("a message from the control plane within 5 s");
        channel::decode(&b[..n]).unwrap()
    }

    /// Accepts, trades hellos, and returns the resync the control plane sends.
    fn handshake(&mut self) -> Vec<Message> {
        self.accept();
        let hello = self.recv();
        assert_eq!(
            channel::check_hello(&hello, Role::Controlplane).map(|_| ()),
            Ok(())
        );
        self.send(&Message::Hello {
            version: channel::VERSION,
            role: Role::Dataplane,
            instance: 1,
        });
        let mut resync = vec![self.recv()];
        assert_eq!(resync[0], Message::ResyncBegin);
        loop {
            let m = self.recv();
            let end = m == Message::ResyncEnd;
            resync.push(m);
            if end {
                return resync;
            }
        }
    }
}

/// Runs a daemon on its own thread until `stop`.
fn spawn(cfg: ControlplaneConfig, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut poll = mio::Poll::new().unwrap();
        let mut d = Daemon::new(&cfg, &poll).unwrap();
        d.run(&mut poll, &stop).unwrap();
    })
}

fn config(dir: &Path) -> ControlplaneConfig {
    let text = format!(
        "dns: {{ servers: [\"[::1]:5399\"] }}\n\
         birthday_file: {}/birthday\n\
         dataplane_socket: {}/dp.sock\n\
         admin_socket: {}/admin.sock\n\
         hosts:\n  - {{ locators: [\"{HOST}\", \"{HOST_PA2}\"], dns_verifiable: false }}\n",
        dir.display(),
        dir.display(),
        dir.display()
    );
    ControlplaneConfig::from_yaml(Path::new("test.yaml"), &text).unwrap()
}

/// An INIT from the peer to the host, as the dataplane punts it (the IPv6 packet).
fn init_packet() -> Vec<u8> {
    let repr = Repr {
        rewrite_ok: false,
        nonce: 0x1234_5678,
        message: M6::Init(Init {
            aid_initiator: a(PEER),
            aid_responder: a(HOST),
            lsl_initiator: vec![a(PEER)],
            lsr_responder: vec![a(HOST)],
            flow_label: FlowLabel::new_truncated(0x777),
            birthday: 99,
        }),
        piggyback: None,
    };
    ipv6_packet(&repr, PEER, HOST)
}

/// The IPv6 packet of an M6 control message from `src` to `dst`, as a daemon sends it.
fn ipv6_packet(repr: &Repr, src: &str, dst: &str) -> Vec<u8> {
    controlplane::daemon::control_packet(&a(src), &a(dst), repr).unwrap()
}

#[test]
fn hello_resync_init_answered_with_a_cc_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut dp = FakeDataplane::bind(&dir.path().join("dp.sock"));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let daemon = spawn(config(dir.path()), stop.clone());

    let resync = dp.handshake();
    assert_eq!(
        resync,
        vec![Message::ResyncBegin, Message::ResyncEnd],
        "nothing yet"
    );
    let t_connect = t0.elapsed();
    // Then what the workers need to answer INITs themselves.
    let Message::CcResponder(responder) = dp.recv() else {
        panic!("expected the CC responder state after the resync");
    };
    assert_eq!(responder.key_serial, 1);
    assert_eq!(responder.per_second, 1000, "the engine's cc_per_second");
    assert_eq!(responder.hosts.len(), 1);
    assert_eq!(responder.hosts[0].locators, vec![a(HOST), a(HOST_PA2)]);
    assert!(!responder.hosts[0].dns_verifiable);
    assert!(
        !responder.hosts[0].rewrite_ok,
        "7.13: not without DNS verification"
    );
    assert!(
        responder.clock_ms <= 5000,
        "the daemon's clock starts at its start"
    );

    // The punted INIT is answered with a CC, injected back toward the INIT's source.
    dp.send(&Message::Punt {
        port: 1,
        packet: init_packet(),
    });
    let Message::Inject { isp, packet } = dp.recv() else {
        panic!("expected an injected CC");
    };
    assert_eq!(isp, None, "the dataplane routes it by its source");
    assert_eq!(packet[6], 58);
    assert_eq!(
        packet[8..24],
        a(HOST).octets(),
        "from the INIT's destination"
    );
    assert_eq!(
        packet[24..40],
        a(PEER).octets(),
        "to the INIT's source (4.1 step 5)"
    );
    let repr = Repr::parse(
        &Packet::new_unchecked(&packet[40..]),
        &a(HOST),
        &a(PEER),
        &IcmpTypes::default(),
    )
    .unwrap();
    assert!(matches!(repr.message, M6::Cc(_)), "{repr:?}");
    assert_eq!(repr.nonce, 0x1234_5678);

    // A CC made as a worker makes it (nodes::cc_answer: the published secret, birthday and
    // clock) is accepted when the peer's CCR echoes it: the daemon establishes the context.
    let state = proto::cc::generate(
        &proto::cc::CcKeyring::new(proto::cc::CcKey::new(
            responder.key_serial,
            &responder.secret,
        )),
        &proto::cc::CcInput {
            init_src: a(PEER),
            init_dst: a(HOST),
            aid_initiator: a(PEER),
            aid_responder: a(HOST),
            initiator_nonce: 0x4444,
            initiator_flow_label: FlowLabel::new_truncated(0x999),
            initiator_birthday: 98,
            responder_birthday: responder.birthday,
            ulp_discarded: false,
            lsl_initiator: Locators::from_addrs(&[a(PEER)]),
            lsr_responder: Locators::from_addrs(&[a(HOST)]),
            lsl_responder: Locators::from_addrs(&[a(HOST)]),
        },
        (responder.clock_ms / 1000) as u32,
    );
    let ccr = Repr {
        rewrite_ok: false,
        nonce: 0x5555,
        message: M6::Ccr(Cc {
            aid_initiator: a(PEER),
            aid_responder: a(HOST),
            lsl_initiator: vec![a(PEER)],
            lsr_responder: vec![a(HOST)],
            lsl_responder: vec![a(HOST)],
            state,
        }),
        piggyback: None,
    };
    dp.send(&Message::Punt {
        port: 1,
        packet: ipv6_packet(&ccr, PEER, HOST),
    });
    let installed = (0..8).find_map(|_| match dp.recv() {
        Message::Install(c) => Some(c),
        _ => None,
    });
    let installed = installed.expect("the CCR for a worker's CC established no context");
    assert_eq!(installed.aid_peer, a(PEER));
    assert_eq!(installed.f_peer, Some(0x999));

    // m6ctl over the admin socket (mode 0600) sees it.
    let admin = dir.path().join("admin.sock");
    let mode = std::fs::metadata(&admin).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "admin socket mode {mode:o}");
    let m6ctl = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_m6ctl"))
            .arg("--socket")
            .arg(&admin)
            .args(args)
            .output()
            .unwrap()
    };
    let out = m6ctl(&["--json", "status"]);
    assert!(out.status.success(), "{out:?}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["dataplane"]["connected"], true);
    assert_eq!(status["contexts"], 1);
    assert_eq!(status["hosts"], 1);
    let out = m6ctl(&["context", "list", "--peer", PEER]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && table.contains(PEER) && table.contains("1 contexts"),
        "{table}"
    );
    let out = m6ctl(&["context", "list", "--peer", "2001:db8::1"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 contexts"));
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_m6ctl"))
        .args(["--socket", "/nonexistent/admin.sock", "status"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && err.contains("is it running?"),
        "{err}"
    );

    // The dataplane restarts (its socket goes and comes back): the daemon reconnects and
    // resyncs; the birthday file was written.
    drop(dp);
    std::fs::remove_file(dir.path().join("dp.sock")).unwrap();
    let mut dp = FakeDataplane::bind(&dir.path().join("dp.sock"));
    let resync = dp.handshake();
    assert_eq!(resync.first(), Some(&Message::ResyncBegin));
    assert!(std::fs::metadata(dir.path().join("birthday")).is_ok());

    stop.store(true, Ordering::Relaxed);
    daemon.join().unwrap();
    eprintln!("daemon: connected to the dataplane in {t_connect:?}; CC answered; resynced after a dataplane restart");
}

#[test]
fn a_dataplane_speaking_another_version_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut dp = FakeDataplane::bind(&dir.path().join("dp.sock"));
    let stop = Arc::new(AtomicBool::new(false));
    let daemon = spawn(config(dir.path()), stop.clone());
    dp.accept();
    let _ = dp.recv();
    dp.send(&Message::Hello {
        version: channel::VERSION + 1,
        role: Role::Dataplane,
        instance: 1,
    });
    // The daemon hangs up and tries again later: the next accept is a new connection.
    dp.accept();
    assert!(matches!(dp.recv(), Message::Hello { .. }));
    stop.store(true, Ordering::Relaxed);
    daemon.join().unwrap();
}

/// Under systemd (Type=notify, WatchdogSec=), m6-controlplane says READY=1 once running and
/// WATCHDOG=1 while its loop turns, even with no dataplane to talk to.
#[test]
fn systemd_hears_ready_then_watchdog_pings() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("cp.yaml");
    std::fs::write(
        &cfg_path,
        format!(
            "dns: {{ servers: [\"[::1]:5399\"] }}\nbirthday_file: {0}/birthday\n\
             dataplane_socket: {0}/dp.sock\nadmin_socket: {0}/admin.sock\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let notify = dir.path().join("notify.sock");
    let listener = UnixDatagram::bind(&notify).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_m6-controlplane"))
        .args(["--config", cfg_path.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &notify)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut said = Vec::new();
    let mut buf = [0u8; 256];
    while said.len() < 3 {
        match listener.recv(&mut buf) {
            Ok(n) => said.push(String::from_utf8_lossy(&buf[..n]).trim().to_string()),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        said.first().map(String::as_str),
        Some("READY=1"),
        "{said:?}"
    );
    assert!(
        said.iter().skip(1).filter(|m| *m == "WATCHDOG=1").count() >= 2,
        "{said:?}"
    );
}

/// Clients that connect to the admin socket and say nothing, or too much, hold neither the
/// daemon's loop nor the next client: `status` is answered at once beside 40 silent ones,
/// and an over-long request gets its reason.
#[test]
fn silent_and_overlong_admin_clients_hold_nobody() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let admin = cfg.admin_socket.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let h = spawn(cfg, Arc::clone(&stop));
    let start = Instant::now();
    while UnixStream::connect(&admin).is_err() {
        assert!(start.elapsed() < Duration::from_secs(5), "no admin socket");
        thread::sleep(Duration::from_millis(10));
    }
    let silent: Vec<UnixStream> = (0..40)
        .map(|_| UnixStream::connect(&admin).unwrap())
        .collect();
    let t = Instant::now();
    let status = controlplane::admin::request(&admin, "status").unwrap();
    let took = t.elapsed();
    assert!(status.get("birthday").is_some(), "{status}");
    assert!(
        took < Duration::from_millis(500),
        "status took {took:?} beside silent clients"
    );
    let mut long = UnixStream::connect(&admin).unwrap();
    long.write_all(&[b'a'; 1000]).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut answer = String::new();
    let _ = long.read_to_string(&mut answer);
    assert!(
        answer.contains("request longer than 256 octets"),
        "{answer:?}"
    );
    drop(silent);
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
}
