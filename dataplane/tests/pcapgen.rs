//! `m6-pcapgen`'s output, read back by an independent decoder (scapy): every packet is M6
//! data with the chosen flow labels, next header and addresses, and its UDP checksum holds
//! over the AIDs.

use std::process::Command;

const SCAPY_CHECK: &str = r#"
import sys
from scapy.all import rdpcap, IPv6, raw
from scapy.layers.inet6 import in6_chksum
pkts = rdpcap(sys.argv[1])
labels = set()
for p in pkts:
    ip = p[IPv6]
    assert ip.nh == int(sys.argv[2]), ip.nh
    assert ip.src == "2001:db8:2:1::10" and ip.dst == "2001:db8:3:1::20", (ip.src, ip.dst)
    assert len(p) == int(sys.argv[3]), len(p)
    udp = raw(ip.payload)
    # The checksum over the AIDs (seed 001 section 10), by scapy's own pseudo-header sum.
    fake = IPv6(src="2001:db8:1:1::10", dst="2001:db8:3:1::20")
    assert in6_chksum(17, fake, udp) == 0, "checksum"
    labels.add(ip.fl)
print(len(pkts), len(labels), min(labels), max(labels))
"#;

#[test]
fn pcapgen_output_decodes_as_m6_data_with_the_chosen_labels() {
    let dir = tempfile::tempdir().unwrap();
    for (size, rewrite, nh) in [(64, true, "161"), (512, false, "169")] {
        let out = dir.path().join(format!("m6-{size}.pcap"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_m6-pcapgen"));
        cmd.args([
            "--out",
            out.to_str().unwrap(),
            "--count",
            "300",
            "--flows",
            "100",
        ])
        .args([
            "--flow-label",
            &0xabc00u32.to_string(),
            "--size",
            &size.to_string(),
        ])
        .args([
            "--src-aid",
            "2001:db8:1:1::10",
            "--dst-aid",
            "2001:db8:3:1::20",
        ])
        .args(["--src-locator", "2001:db8:2:1::10"]);
        if !rewrite {
            cmd.arg("--no-rewrite");
        }
        let st = cmd.output().unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let check = Command::new("/usr/bin/python3")
            .args([
                "-c",
                SCAPY_CHECK,
                out.to_str().unwrap(),
                nh,
                &size.to_string(),
            ])
            .output()
            .expect("run python3 with scapy (Debian python3-scapy: make setup)");
        let text = String::from_utf8_lossy(&check.stdout).to_string()
            + &String::from_utf8_lossy(&check.stderr);
        assert!(check.status.success(), "scapy: {text}");
        let words: Vec<u32> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(words, vec![300, 100, 0xabc00, 0xabc00 + 99], "{text}");
    }
    // A bad size is refused with the reason.
    let st = Command::new(env!("CARGO_BIN_EXE_m6-pcapgen"))
        .args([
            "--out",
            "/dev/null",
            "--size",
            "20",
            "--src-aid",
            "::1",
            "--dst-aid",
            "::2",
        ])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&st.stderr).contains("--size: expected 64 to 9000"));
}
