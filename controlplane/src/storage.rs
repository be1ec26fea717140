//! Stable storage for the birthday counter (seed 001 section 7.14).
//!
//! "Each host needs to maintain a birthday counter in stable storage ... When a host is first
//! initialized it allocates a random initial value for the birthday counter. Each time the
//! host loses all state ... it increments the birthday counter by one and saves the result in
//! stable storage."
//!
//! The control plane loses every context when it restarts, so [`BirthdayCounter::start`] is
//! called once per start: it reads the stored value (or draws a random one the first time),
//! adds one, and makes the new value durable *before* returning it, so the engine never
//! announces a birthday that a crash could make it announce again.
//!
//! Durability: the value is written to a temporary file in the same directory, the file is
//! fsync'ed, renamed over the old one (atomic on POSIX), and the directory is fsync'ed so the
//! rename itself survives a power loss. A reader therefore sees either the old or the new
//! file, never a torn one.
//!
//! File format (one line of ASCII, so an operator can read it with `cat`):
//! `m6-birthday 1 <value> <check>` where `<check>` is `value XOR 0x5a5a5a5a` in decimal; a
//! file that does not match is reported as [`std::io::ErrorKind::InvalidData`] rather than
//! silently replaced, since a silently reset counter could fall inside a peer's
//! MAX_BIRTHDAY_INCR window of an old incarnation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const MAGIC: &str = "m6-birthday";
const VERSION: &str = "1";
const CHECK_XOR: u32 = 0x5a5a_5a5a;

/// The birthday counter file of one control plane.
#[derive(Debug, Clone)]
pub struct BirthdayCounter {
    path: PathBuf,
}

impl BirthdayCounter {
    /// A counter kept at `path` (the file need not exist yet; its directory must).
    pub fn new(path: impl Into<PathBuf>) -> BirthdayCounter {
        BirthdayCounter { path: path.into() }
    }

    /// The file this counter lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the stored value, if any.
    ///
    /// `Ok(None)` when the file does not exist (first initialisation); an error when it
    /// exists but cannot be read or is not a valid counter file.
    pub fn read(&self) -> io::Result<Option<u32>> {
        match fs::read_to_string(&self.path) {
            Ok(text) => parse(&text).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Called once at every start of the control plane (section 7.14): returns the birthday
    /// counter of this incarnation, already durable in stable storage.
    ///
    /// The first time (no file) the value is `initial` + 1, where `initial` should be random
    /// ([`random_initial`] gives one); afterwards it is the stored value + 1 (wrapping: the
    /// counter is compared with serial number arithmetic).
    pub fn start(&self, initial: u32) -> io::Result<u32> {
        let current = self.read()?.unwrap_or(initial);
        let next = current.wrapping_add(1);
        self.store(next)?;
        Ok(next)
    }

    /// Writes `value` durably: temporary file, fsync, rename, fsync of the directory.
    pub fn store(&self, value: u32) -> io::Result<()> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let mut tmp_name = name.to_os_string();
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(format(value).as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        // Make the rename durable. Opening a directory read-only and fsync'ing it is the
        // POSIX way; on platforms where that fails the data is still safe, only the rename
        // may be lost, which leaves the previous (smaller) value: report it.
        File::open(&dir)?.sync_all()?;
        Ok(())
    }
}

fn format(value: u32) -> String {
    format!("{MAGIC} {VERSION} {value} {}\n", value ^ CHECK_XOR)
}

fn parse(text: &str) -> io::Result<u32> {
    let bad =
        |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("birthday file: {why}"));
    let mut it = text.split_ascii_whitespace();
    if it.next() != Some(MAGIC) {
        return Err(bad("bad magic"));
    }
    if it.next() != Some(VERSION) {
        return Err(bad("unknown version"));
    }
    let value: u32 = it
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad value"))?;
    let check: u32 = it
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad check"))?;
    if check != value ^ CHECK_XOR || it.next().is_some() {
        return Err(bad("check mismatch"));
    }
    Ok(value)
}

/// A random initial birthday counter (section 7.14: "allocates a random initial value").
///
/// Uses the standard library's per-process random hash keys, so no extra dependency is
/// needed; this is not a cryptographic secret, only a value an off-path attacker should not
/// be able to guess exactly.
pub fn random_initial() -> u32 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    let v = h.finish();
    (v ^ (v >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_uses_initial_plus_one() {
        let dir = tempfile::tempdir().unwrap();
        let c = BirthdayCounter::new(dir.path().join("birthday"));
        assert_eq!(c.read().unwrap(), None);
        assert_eq!(c.start(41).unwrap(), 42);
        assert_eq!(c.read().unwrap(), Some(42));
    }

    #[test]
    fn every_start_increments_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("birthday");
        let first = BirthdayCounter::new(&path).start(1000).unwrap();
        // A new object, as after a reboot, sees the stored value.
        let second = BirthdayCounter::new(&path).start(7).unwrap();
        let third = BirthdayCounter::new(&path).start(7).unwrap();
        assert_eq!((first, second, third), (1001, 1002, 1003));
    }

    #[test]
    fn wraps_with_serial_arithmetic() {
        let dir = tempfile::tempdir().unwrap();
        let c = BirthdayCounter::new(dir.path().join("b"));
        c.store(u32::MAX).unwrap();
        assert_eq!(c.start(0).unwrap(), 0);
    }

    #[test]
    fn no_temporary_file_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let c = BirthdayCounter::new(dir.path().join("b"));
        c.start(5).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["b".to_string()]);
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        for text in [
            "garbage",
            "m6-birthday 1 10 11\n",
            "m6-birthday 2 10 1515870800\n",
            "m6-birthday 1 10",
            "",
        ] {
            fs::write(&path, text).unwrap();
            let err = BirthdayCounter::new(&path).start(3).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{text:?}");
            // The bad file is left for the operator.
            assert_eq!(fs::read_to_string(&path).unwrap(), text);
        }
    }

    #[test]
    fn file_is_human_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        BirthdayCounter::new(&path).store(10).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("m6-birthday 1 10 {}\n", 10 ^ CHECK_XOR)
        );
    }

    #[test]
    fn stale_temporary_file_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        fs::write(dir.path().join("b.tmp"), "half written").unwrap();
        assert_eq!(BirthdayCounter::new(&path).start(9).unwrap(), 10);
        assert!(!dir.path().join("b.tmp").exists());
    }

    #[test]
    fn random_initial_varies() {
        // Not a statistical test: two draws in one process differ because RandomState
        // keys differ per instance.
        let a: Vec<u32> = (0..4).map(|_| random_initial()).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]));
    }
}
