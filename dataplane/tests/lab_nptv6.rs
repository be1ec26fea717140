//! End to end, issue 9: the NPTv6 fallback (RFC 6296) through a real TCP connection. The
//! one-site lab (lab/topology.sh) with configs/lab.yaml plus a ULA LAN prefix
//! fd00:a:0:1::/64 mapped to 2001:db8:1:f1::/64 under ISP1 and 2001:db8:2:f2::/64 under
//! ISP2; the LAN host gets fd00:a:0:1::10 and sends 1 MiB from it to the server with nc.
//! Checks: the bytes arrive intact (no checksum was broken: translation is checksum
//! neutral), the ISPs' ingress filters pass the translated source and drop nothing, and the
//! router counted the translations both ways; with ISP1 down, a new connection goes through
//! ISP2.
//!
//! Needs root, hugepages and the lab's tools; fails with the reason otherwise.

mod lab;

use lab::*;

const ULA_HOST: &str = "fd00:a:0:1::10";

fn nptv6_config() -> String {
    let base = std::fs::read_to_string(CONFIG).expect("read configs/lab.yaml");
    let cfg = base
        .replace(
            "addresses: [\"2001:db8:1:1::1\", \"2001:db8:2:1::1\"]",
            "addresses: [\"2001:db8:1:1::1\", \"2001:db8:2:1::1\", \"fd00:a:0:1::1\"]",
        )
        .replace(
            "next_hop: \"2001:db8:ff01::1\", admin: up }",
            "next_hop: \"2001:db8:ff01::1\", admin: up, \
             nptv6: { internal: \"fd00:a:0:1::/64\", external: \"2001:db8:1:f1::/64\" } }",
        )
        .replace(
            "next_hop: \"2001:db8:ff02::1\", admin: up }",
            "next_hop: \"2001:db8:ff02::1\", admin: up, \
             nptv6: { internal: \"fd00:a:0:1::/64\", external: \"2001:db8:2:f2::/64\" } }",
        );
    assert_eq!(
        cfg.matches("nptv6:").count(),
        2,
        "configs/lab.yaml changed shape"
    );
    cfg
}

#[test]
fn lab_nptv6() {
    require_environment();
    let _lab = Lab::up();
    let path = format!("{RUN_DIR}/nptv6.yaml");
    std::fs::write(&path, nptv6_config()).expect("write the configuration");
    let mut dp = Dataplane::start(&path);
    dp.wait_ready();
    lab_ok(&format!(
        "ip -n {NS_LAN} -6 addr add {ULA_HOST}/64 dev eth0 nodad"
    ));
    assert!(
        ping_until_answered(ULA_HOST, std::time::Duration::from_secs(10)).is_some(),
        "no answer from the server to {ULA_HOST}\n{}",
        dp.output()
    );
    let before = isp_counts();
    let bytes = nc_transfer(ULA_HOST, 5311);
    let after = isp_counts();
    let d = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert_eq!(d("isp1.ingress_drop") + d("isp2.ingress_drop"), 0);
    let via = if d("isp1.from_pa1") > d("isp2.from_pa2") {
        1
    } else {
        2
    };
    assert!(
        d(&format!("isp{via}.from_pa{via}")) > 100,
        "the translated packets did not pass ISP{via}'s filter: {after:?}"
    );
    // The ISP the policy picked goes down: a new connection leaves through the other one.
    lab_ok(&format!("lab_isp_link isp{via} down"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let other = 3 - via;
    let before = isp_counts();
    let bytes2 = nc_transfer(ULA_HOST, 5312);
    let after = isp_counts();
    let d = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert!(
        d(&format!("isp{other}.from_pa{other}")) > 100,
        "not through ISP{other}: {after:?}"
    );
    let (_, counters) = dp.stop();
    let c = |k: &str| counters.get(k).copied().unwrap_or(0);
    assert!(
        c("nptv6.translated_out") > 100 && c("nptv6.translated_in") > 100,
        "{counters:?}"
    );
    println!(
        "lab_nptv6: {bytes} + {bytes2} octets over TCP from {ULA_HOST}, intact; first through ISP{via}, \
         then (ISP{via} down) through ISP{other}; {} packets translated out, {} in, 0 ingress drops",
        c("nptv6.translated_out"),
        c("nptv6.translated_in")
    );
}
