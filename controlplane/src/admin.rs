//! The control plane's admin socket, which `m6ctl` talks to.
//!
//! A Unix stream socket at the configuration's `admin_socket`, created mode 0600 (only root,
//! or the daemon's user, may ask). One request per connection: a line holding the command,
//! then the daemon answers with one JSON document and closes. Commands:
//!
//! - `status`: the daemon's state (birthday, uptime, whether the dataplane is connected,
//!   counts of contexts, destinations and hosts, the CC key serial, the ISP prefixes it
//!   holds down, its counters);
//! - `contexts`: every context installed in the dataplane, with AIDs, F(local), F(peer),
//!   Lp(peer) and Lsv(peer) (seed 001 section 2.1 notation).
//!
//! More: `isps`, `isp drain|undrain NAME`, `context F`, `dns cache`, `stats`, and two the
//! dataplane answers (`neighbors`, `reload`), whose clients wait (at most
//! [`DATAPLANE_TIMEOUT`]) while the daemon serves others. An unknown command is answered
//! `{"error": "..."}`. Requests are read without blocking, a little at every turn of the
//! daemon's loop, and a client that has not sent its line within [`CLIENT_TIMEOUT`] is
//! dropped: a silent client never holds the loop. Writing an answer takes at most
//! [`CLIENT_TIMEOUT`]; at most [`CLIENTS_PER_TURN`] new clients are accepted per turn.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a client may take to send its request and read the answer, together.
pub const CLIENT_TIMEOUT: Duration = Duration::from_millis(200);
/// Clients served per turn of the daemon's loop at most (the rest wait for the next turn).
pub const CLIENTS_PER_TURN: usize = 8;
/// Longest request line.
pub const MAX_REQUEST: usize = 256;

/// How long a request the dataplane answers may wait for it.
pub const DATAPLANE_TIMEOUT: Duration = Duration::from_secs(3);
/// Requests waiting for the dataplane at most.
pub const MAX_PENDING: usize = 16;

/// What the daemon answers a command with.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// This document, now.
    Now(serde_json::Value),
    /// Later, through [`AdminSocket::complete`] with this id (the dataplane answers it).
    Later(u64),
}

/// A client waiting for the dataplane's answer.
struct Pending {
    id: u64,
    stream: UnixStream,
    deadline: Instant,
}

/// The listening socket.
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
    pending: Vec<Pending>,
    /// Clients whose request line has not fully arrived: read without blocking at every
    /// turn, dropped at their deadline (a silent client never holds the loop).
    reading: Vec<Reading>,
}

/// A client still sending its request.
struct Reading {
    stream: UnixStream,
    request: Vec<u8>,
    deadline: Instant,
}

/// Clients still sending their request at most (more are refused at once).
pub const MAX_READING: usize = 64;

impl AdminSocket {
    /// Binds `path` (mode 0600, directory created). A stale socket there is replaced;
    /// anything else at the path is refused, named in the error.
    pub fn bind(path: &Path) -> Result<AdminSocket, String> {
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if !m.file_type().is_socket() {
                return Err(format!(
                    "admin_socket {}: expected a socket path, found an existing file that is not one",
                    path.display()
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "admin_socket {}: another m6-controlplane is listening there",
                    path.display()
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("admin_socket {}: cannot replace: {e}", path.display()))?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("admin_socket {}: {e}", path.display()))?;
        }
        // Bound under a temporary name, made 0600, then renamed into place: the socket is
        // never reachable at its path with the umask's mode.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)
            .map_err(|e| format!("admin_socket {}: cannot listen: {e}", path.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("admin_socket {}: cannot set mode 0600: {e}", path.display())
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("admin_socket {}: {e}", path.display()))?;
        Ok(AdminSocket {
            listener,
            path: path.to_path_buf(),
            pending: Vec::new(),
            reading: Vec::new(),
        })
    }

    /// The listener, for the daemon's poll registration.
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// Answers every waiting client with `answer(command)`; a client answered
    /// [`Answer::Later`] waits (at most [`DATAPLANE_TIMEOUT`]) for [`Self::complete`].
    pub fn serve(&mut self, mut answer: impl FnMut(&str) -> Answer) {
        for _ in 0..CLIENTS_PER_TURN {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // WouldBlock: nobody waiting; other errors: try again next turn.
                Err(_) => break,
            };
            if self.reading.len() >= MAX_READING || stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.reading.push(Reading {
                stream,
                request: Vec::with_capacity(64),
                deadline: Instant::now() + CLIENT_TIMEOUT,
            });
        }
        // Every client that has sent its line (or too much, or gone quiet too long).
        let now = Instant::now();
        let mut ready = Vec::new();
        let mut i = 0;
        while i < self.reading.len() {
            match poll_request(&mut self.reading[i], now) {
                Poll::Waiting => i += 1,
                Poll::Done(command) => ready.push((self.reading.swap_remove(i).stream, command)),
                Poll::Drop => {
                    self.reading.swap_remove(i);
                }
            }
        }
        for (stream, command) in ready {
            let command = match command {
                Ok(c) => c,
                Err(e) => {
                    let _ = write_answer(&stream, &serde_json::json!({ "error": e }));
                    continue;
                }
            };
            match answer(&command) {
                Answer::Now(v) => {
                    let _ = write_answer(&stream, &v);
                }
                Answer::Later(id) if self.pending.len() < MAX_PENDING => {
                    self.pending.push(Pending {
                        id,
                        stream,
                        deadline: Instant::now() + DATAPLANE_TIMEOUT,
                    })
                }
                Answer::Later(_) => {
                    let busy = serde_json::json!({ "error": "too many requests waiting for the dataplane" });
                    let _ = write_answer(&stream, &busy);
                }
            }
        }
    }

    /// Whether a client is still sending its request (the loop should look again soon).
    pub fn reading(&self) -> bool {
        !self.reading.is_empty()
    }

    /// Answers the client waiting for request `id` with `value`.
    pub fn complete(&mut self, id: u64, value: &serde_json::Value) {
        if let Some(i) = self.pending.iter().position(|p| p.id == id) {
            let p = self.pending.swap_remove(i);
            let _ = write_answer(&p.stream, value);
        }
    }

    /// Answers the clients whose request the dataplane did not answer in time.
    pub fn expire(&mut self) {
        let now = Instant::now();
        let (late, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.deadline <= now);
        self.pending = waiting;
        let e = serde_json::json!({
            "error": format!("the dataplane did not answer within {} s", DATAPLANE_TIMEOUT.as_secs())
        });
        for p in late {
            let _ = write_answer(&p.stream, &e);
        }
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where a client's request stands.
enum Poll {
    Waiting,
    /// The command line, or why it is refused.
    Done(Result<String, String>),
    Drop,
}

/// Reads what the client has sent so far, without blocking.
fn poll_request(r: &mut Reading, now: Instant) -> Poll {
    let mut chunk = [0u8; 256];
    loop {
        match (&r.stream).read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                r.request.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                if r.request.len() > MAX_REQUEST {
                    return Poll::Done(Err(format!("request longer than {MAX_REQUEST} octets")));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Poll::Drop,
        }
    }
    if let Some(end) = r.request.iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(r.request.get(..end).unwrap_or(&[]))
            .trim()
            .to_string();
        return Poll::Done(Ok(line));
    }
    if now >= r.deadline {
        return Poll::Drop;
    }
    Poll::Waiting
}

/// Writes `value` and a newline within [`CLIENT_TIMEOUT`].
fn write_answer(stream: &UnixStream, value: &serde_json::Value) -> std::io::Result<()> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    stream.set_nonblocking(false)?;
    let mut out = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    out.push(b'\n');
    let mut sent = 0;
    while sent < out.len() {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::from(ErrorKind::TimedOut))?;
        stream.set_write_timeout(Some(left))?;
        sent += (&*stream).write(out.get(sent..).unwrap_or(&[]))?;
    }
    Ok(())
}

/// Sends `command` to the admin socket at `path` and returns the daemon's JSON answer.
/// Errors say what to check: the daemon not running, or the socket not permitted.
pub fn request(path: &Path, command: &str) -> Result<serde_json::Value, String> {
    let mut stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => format!(
            "cannot reach m6-controlplane at {}: {e} (is it running? is this its admin_socket?)",
            path.display()
        ),
        ErrorKind::PermissionDenied => format!(
            "not permitted to use {} (mode 0600: run as the daemon's user or root)",
            path.display()
        ),
        _ => format!("{}: {e}", path.display()),
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| format!("{}: no answer: {e}", path.display()))?;
    serde_json::from_str(&line).map_err(|e| format!("{}: unreadable answer: {e}", path.display()))
}
