//! Runs scripts/decode_vectors.py, the independent (Python + scapy) decoder of the golden
//! vectors, and requires it to pass. The interpreter is `$M6_PYTHON` if set, else the first
//! of `python3` on PATH and `/usr/bin/python3` that can import scapy (Debian's python3-scapy
//! lives in the system interpreter, which a pyenv `python3` on PATH may shadow).

use std::path::Path;
use std::process::Command;

fn has_scapy(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import scapy.layers.inet6"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn python() -> String {
    if let Ok(p) = std::env::var("M6_PYTHON") {
        return p;
    }
    for p in ["python3", "/usr/bin/python3"] {
        if has_scapy(p) {
            return p.to_string();
        }
    }
    panic!(
        "no python3 that can import scapy (tried python3 and /usr/bin/python3; set M6_PYTHON to \
         choose one): `make setup` (scripts/setup.sh) installs python3-scapy"
    );
}

#[test]
fn python_scapy_decoder_agrees_with_vectors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/decode_vectors.py");
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let py = python();
    let out = Command::new(&py)
        .arg(&script)
        .arg("--dir")
        .arg(&vectors)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py} {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "decode_vectors.py failed (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    assert!(
        stdout.contains("ok       init"),
        "no vector decoded:\n{stdout}"
    );
}
