//! `m6-dataplane` refuses a bad configuration before touching EAL or any port: it exits
//! with status 2 and names the file and the field.

use std::path::PathBuf;
use std::process::Command;

const LAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/lab.yaml");

/// Runs the binary on the lab config with one textual change; returns (status, stderr).
fn run_with(from: &str, to: &str) -> (Option<i32>, String, PathBuf) {
    let text = std::fs::read_to_string(LAB).expect("configs/lab.yaml is readable");
    let changed = text.replacen(from, to, 1);
    assert_ne!(
        changed, text,
        "the edit {from:?} -> {to:?} did not apply to configs/lab.yaml"
    );
    let dir = tempdir();
    let path = dir.join("broken.yaml");
    std::fs::write(&path, changed).expect("write temp config");
    let out = Command::new(env!("CARGO_BIN_EXE_m6-dataplane"))
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run m6-dataplane");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path,
    )
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "m6-cli-config-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn assert_refused(from: &str, to: &str, field: &str, expected: &str) {
    let (status, stderr, path) = run_with(from, to);
    assert_eq!(status, Some(2), "stderr: {stderr}");
    let want = format!("{}: {field}: ", path.display());
    assert!(stderr.contains(&want), "expected {want:?} in: {stderr}");
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in: {stderr}"
    );
    // Refused before EAL started: no EAL log lines, no "forwarding" line.
    assert!(!stderr.contains("EAL:"), "EAL ran: {stderr}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap_or(&path));
}

#[test]
fn unknown_port_is_refused_naming_the_field() {
    assert_refused(
        "port: isp2,",
        "port: isp3,",
        "isps[1].port",
        "unknown port \"isp3\"",
    );
}

#[test]
fn overlapping_prefix_is_refused_naming_the_field() {
    assert_refused(
        "\"2001:db8:2::/48\"",
        "\"2001:db8::/32\"",
        "isps[1].prefix",
        "overlapping isps[0].prefix",
    );
}

#[test]
fn missing_field_is_refused_naming_the_field() {
    assert_refused(
        "next_hop: \"2001:db8:ff02::1\", ",
        "",
        "isps[1].next_hop",
        "expected a value, found none",
    );
}

#[test]
fn check_mode_accepts_the_shipped_lab_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_m6-dataplane"))
        .args(["--config", LAB, "--check"])
        .output()
        .expect("run m6-dataplane");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}
