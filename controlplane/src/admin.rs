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
//! `{"error": "..."}`. The daemon's loop spends at most [`CLIENT_TIMEOUT`] reading a
//! client's request and as much writing its answer, and serves at most
//! [`CLIENTS_PER_TURN`] new clients per turn.

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
}

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
                Err(_) => return,
            };
            let Ok((stream, command)) = read_request(stream) else {
                continue;
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

/// Reads one request line (at most [`MAX_REQUEST`] octets, within [`CLIENT_TIMEOUT`]).
fn read_request(stream: UnixStream) -> std::io::Result<(UnixStream, String)> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    stream.set_nonblocking(false)?;
    let mut request = Vec::with_capacity(64);
    let mut chunk = [0u8; 64];
    while !request.contains(&b'\n') && request.len() < MAX_REQUEST {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::from(ErrorKind::TimedOut))?;
        stream.set_read_timeout(Some(left))?;
        let n = (&stream).read(&mut chunk)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
    let line = String::from_utf8_lossy(&request);
    let command = line.lines().next().unwrap_or("").trim().to_string();
    Ok((stream, command))
}

/// Writes `value` and a newline within [`CLIENT_TIMEOUT`].
fn write_answer(stream: &UnixStream, value: &serde_json::Value) -> std::io::Result<()> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
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
