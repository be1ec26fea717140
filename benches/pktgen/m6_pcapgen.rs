//! `m6-pcapgen`: writes a pcap file of M6 data packets for Pktgen-DPDK's pcap mode (whose
//! own IPv6 mode always sends flow label 0, which an M6 receiver cannot use: F(local) names
//! the context, seed 001 section 3.2), or of plain IPv6 packets for comparison.
//!
//! Each packet: Ethernet, IPv6 from a source locator to a destination locator with flow
//! label F(peer) (`--flow-label` plus the flow's index, so `--flows N` gives N contexts'
//! worth of labels), next header P1 + k (rewrite ok; `--no-rewrite` for P2 + k) with k the
//! UDP slot (seed 001 section 6), and a UDP datagram whose checksum is computed over the
//! AIDs (seed 001 section 10), padded to `--size` octets of frame.
//!
//! ```text
//! m6-pcapgen --out m6.pcap --count 1024 --flows 256 --size 64 \
//!   --src-aid 2001:db8:1:1::10 --dst-aid 2001:db8:3:1::20 \
//!   --src-locator 2001:db8:2:1::10 --dst-locator 2001:db8:3:1::20
//! ```

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pcap_file::pcap::{PcapPacket, PcapWriter};
use proto::wire::checksum;
use proto::wire::consts::{P1_DEFAULT, P2_DEFAULT};
use proto::wire::data::{k_for_protocol, IPPROTO_UDP};

#[derive(Parser)]
#[command(
    name = "m6-pcapgen",
    version,
    about = "Write a pcap of M6 data packets for Pktgen-DPDK's pcap mode"
)]
struct Args {
    /// The pcap file to write.
    #[arg(long)]
    out: PathBuf,
    /// Packets in the file.
    #[arg(long, default_value_t = 1024)]
    count: u32,
    /// Distinct flows (flow labels, and UDP source ports) the packets cycle through.
    #[arg(long, default_value_t = 1)]
    flows: u32,
    /// The first flow's label (20 bits); flow i gets label + i.
    #[arg(long, default_value_t = 0x10000)]
    flow_label: u32,
    /// Frame size in octets, Ethernet header included, without the FCS (64 to 9000).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// The sending host's AID (the UDP checksum covers the AIDs).
    #[arg(long)]
    src_aid: Ipv6Addr,
    /// The receiving host's AID.
    #[arg(long)]
    dst_aid: Ipv6Addr,
    /// The source locator (defaults to the source AID).
    #[arg(long)]
    src_locator: Option<Ipv6Addr>,
    /// The destination locator (defaults to the destination AID).
    #[arg(long)]
    dst_locator: Option<Ipv6Addr>,
    /// Next header in P2 (no rewrite) instead of P1 (rewrite ok).
    #[arg(long)]
    no_rewrite: bool,
    /// Plain IPv6 + UDP between the AIDs, flow labels as given: the baseline.
    #[arg(long)]
    plain: bool,
    #[arg(long, default_value = "02:00:00:00:00:01")]
    src_mac: String,
    #[arg(long, default_value = "02:00:00:00:00:02")]
    dst_mac: String,
}

fn mac(s: &str) -> Result<[u8; 6], String> {
    let expected = || format!("expected a MAC like 02:00:00:00:00:01, found {s:?}");
    let v: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| expected())?;
    v.try_into().map_err(|_| expected())
}

/// One frame of flow `f`.
fn frame(a: &Args, src_mac: [u8; 6], dst_mac: [u8; 6], f: u32) -> Vec<u8> {
    let (src, dst) = if a.plain {
        (a.src_aid, a.dst_aid)
    } else {
        (
            a.src_locator.unwrap_or(a.src_aid),
            a.dst_locator.unwrap_or(a.dst_aid),
        )
    };
    let label = a.flow_label.wrapping_add(f) & 0xf_ffff;
    let udp_len = a.size.saturating_sub(14 + 40).max(8);
    let mut udp = vec![0u8; udp_len];
    udp[0..2].copy_from_slice(&(10_000 + (f % 50_000) as u16).to_be_bytes());
    udp[2..4].copy_from_slice(&5201u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    for (i, b) in udp.iter_mut().enumerate().skip(8) {
        *b = i as u8;
    }
    // Over the AIDs (seed 001 section 10): what the peer's host verifies once its router
    // has restored them.
    // A computed 0 is sent as 0xffff (RFC 8200 section 8.1: 0 means no checksum).
    let sum = match checksum::upper_layer_checksum(&a.src_aid, &a.dst_aid, IPPROTO_UDP, &udp) {
        0 => 0xffff,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    let nh = if a.plain {
        IPPROTO_UDP
    } else {
        let base = if a.no_rewrite { P2_DEFAULT } else { P1_DEFAULT };
        base + k_for_protocol(IPPROTO_UDP).unwrap_or(1)
    };
    let mut out = Vec::with_capacity(14 + 40 + udp_len);
    out.extend_from_slice(&dst_mac);
    out.extend_from_slice(&src_mac);
    out.extend_from_slice(&0x86ddu16.to_be_bytes());
    out.extend_from_slice(&(0x6000_0000u32 | label).to_be_bytes());
    out.extend_from_slice(&(udp_len as u16).to_be_bytes());
    out.push(nh);
    out.push(64);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(&udp);
    out
}

fn write(a: &Args) -> Result<u32, String> {
    if !(64..=9000).contains(&a.size) {
        return Err(format!(
            "--size: expected 64 to 9000 octets, found {}",
            a.size
        ));
    }
    if a.flows == 0 || a.flow_label > 0xf_ffff {
        return Err("--flows: expected at least 1; --flow-label: expected 20 bits".into());
    }
    let (src_mac, dst_mac) = (mac(&a.src_mac)?, mac(&a.dst_mac)?);
    let file = std::fs::File::create(&a.out)
        .map_err(|e| format!("{}: cannot create: {e}", a.out.display()))?;
    let mut w = PcapWriter::new(file).map_err(|e| format!("{}: {e}", a.out.display()))?;
    for i in 0..a.count {
        let data = frame(a, src_mac, dst_mac, i % a.flows);
        let packet = PcapPacket::new(
            Duration::from_micros(u64::from(i)),
            data.len() as u32,
            &data,
        );
        w.write_packet(&packet)
            .map_err(|e| format!("{}: {e}", a.out.display()))?;
    }
    Ok(a.count)
}

fn main() -> ExitCode {
    let a = Args::parse();
    match write(&a) {
        Ok(n) => {
            println!(
                "m6-pcapgen: {n} packets of {} octets, {} flows, in {}",
                a.size,
                a.flows,
                a.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("m6-pcapgen: {e}");
            ExitCode::from(2)
        }
    }
}
