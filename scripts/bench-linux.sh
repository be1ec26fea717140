#!/usr/bin/env bash
# `make bench-linux`: the namespace lab (lab/topology.sh) forwarded once by m6-dataplane
# and once by the Linux kernel routing the very same veths with source-specific rules
# (`ip -6 rule from PA1 lookup 101`, `from PA2 lookup 102`), offloads off in both runs.
# Each run: a TCP stream (iperf3, 8 s) from PA1 to the server, and a small-packet UDP flood
# (iperf3 -u, 18-octet payloads: 80-octet frames, unlimited rate, 5 s) whose delivered packets per second
# the server counts. Prints both figures and the ratios (ours / kernel).
#
# With --knobs (`make bench-knobs`), m6-dataplane runs once per variant of configs/lab.yaml
# (af_packet's qdisc_bypass and ring sizes, busy polling, a 50 µs sleep ceiling, the
# net_af_xdp PMD) and each variant's figures are printed beside the kernel's; a variant
# that does not start or whose measurement fails shows "-" and the bench goes on.
#
# Environment: M6_DATAPLANE (default target/release/m6-dataplane). Not run in CI.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lab/lib.sh
. "$repo/lab/lib.sh"
DP=${M6_DATAPLANE:-$repo/target/release/m6-dataplane}
[ -x "$DP" ] || lab_die "no $DP: cargo build --release -p dataplane" || exit 1
lab_require_root
dp_pid=
cleanup() {
    [ -z "$dp_pid" ] || kill -TERM "$dp_pid" 2>/dev/null || true
    bash "$repo/lab/topology.sh" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

tcp() { # -> Mbit/s received
    ip netns exec "$LAB_NS_LAN" timeout 30 iperf3 -6 -J -c "$LAB_SERVER" -p "$LAB_IPERF_PORT" \
        -B "$LAB_HOST_PA1" -t 8 --connect-timeout 3000 |
        /usr/bin/python3 -c 'import json,sys; print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))'
}
udp64() { # -> packets per second delivered
    ip netns exec "$LAB_NS_LAN" timeout 30 iperf3 -6 -J -u -b 0 -l 18 -c "$LAB_SERVER" \
        -p "$LAB_IPERF_PORT" -B "$LAB_HOST_PA1" -t 5 --connect-timeout 3000 |
        /usr/bin/python3 -c 'import json,sys
s = json.load(sys.stdin)["end"]["sum"]
print("%.0f" % ((s["packets"] - s["lost_packets"]) / s["seconds"]))'
}

knobs=0
[ "${1:-}" = --knobs ] && knobs=1

# One run of m6-dataplane with config $1; sets run_tcp and run_udp ("-" when a step
# failed). Runs in this shell, so the EXIT trap can stop the dataplane whatever happens.
ours() {
    run_tcp=- run_udp=-
    : >/tmp/m6-bench-linux.log
    ip netns exec "$LAB_NS_RTR" "$DP" --config "$1" >/tmp/m6-bench-linux.log 2>&1 &
    dp_pid=$!
    for _ in $(seq 1 100); do grep -q forwarding /tmp/m6-bench-linux.log && break; sleep 0.1; done
    if grep -q forwarding /tmp/m6-bench-linux.log && lab_ping_wait "$LAB_HOST_PA1" 10 >/dev/null; then
        run_tcp=$(tcp) || run_tcp=-
        run_udp=$(udp64) || run_udp=-
    else
        echo "m6-dataplane did not forward with $1:" >&2
        cat /tmp/m6-bench-linux.log >&2
    fi
    kill -TERM "$dp_pid" 2>/dev/null || true
    wait "$dp_pid" 2>/dev/null || true
    dp_pid=
}

# A variant of configs/lab.yaml: $1 name, $2 sed program. Refuses a program that changes
# nothing (the lab configuration moved on), which would report the baseline as a variant.
variant() {
    local f=/tmp/m6-bench-$1.yaml
    sed "$2" "$repo/configs/lab.yaml" >"$f"
    if cmp -s "$f" "$repo/configs/lab.yaml"; then
        lab_die "knob $1: '$2' changes nothing in configs/lab.yaml" || exit 1
    fi
    echo "$f"
}

bash "$repo/lab/topology.sh" up >/dev/null
ours "$repo/configs/lab.yaml"
ours_tcp=$run_tcp ours_udp=$run_udp
[ "$ours_tcp" != - ] && [ "$ours_udp" != - ] || lab_die "m6-dataplane with configs/lab.yaml gave no figures" || exit 1
declare -a knob_rows=()
if [ "$knobs" = 1 ]; then
    for v in \
        "qdisc_bypass=1|s/iface=\([a-z0-9]*\)\"/iface=\1,qdisc_bypass=1\"/" \
        "framecnt=4096,blocksz=16384|s/iface=\([a-z0-9]*\)\"/iface=\1,framecnt=4096,blocksz=16384,framesz=2048\"/" \
        "polling busy|s/^polling: .*/polling: { mode: busy }/" \
        "adaptive, max sleep 50 µs|s/max_idle_sleep_us: 200/max_idle_sleep_us: 50/" \
        "net_af_xdp (XDP on veth)|s/net_af_packet\([0-9]\),iface=\([a-z0-9]*\)/net_af_xdp\1,iface=\2,start_queue=0,queue_count=1/"; do
        name=${v%%|*}
        f=$(variant "$(echo "$name" | tr -c 'a-z0-9' _)" "${v#*|}")
        ours "$f"
        knob_rows+=("$name|$run_tcp|$run_udp")
    done
fi

# The kernel, same veths and offloads: IPv6 on, the router's addresses, forwarding, and a
# routing table per source prefix toward the ISP that owns it.
r=$LAB_NS_RTR
for ifc in lan isp1 isp2; do _lab_sysctl "$r" "net.ipv6.conf.$ifc.disable_ipv6=0"; done
_lab_sysctl "$r" net.ipv6.conf.all.forwarding=1
ip -n "$r" -6 addr add 2001:db8:1:1::1/64 dev lan nodad
ip -n "$r" -6 addr add 2001:db8:2:1::1/64 dev lan nodad
ip -n "$r" -6 addr add 2001:db8:ff01::2/64 dev isp1 nodad
ip -n "$r" -6 addr add 2001:db8:ff02::2/64 dev isp2 nodad
ip -n "$r" -6 route add default via 2001:db8:ff01::1 dev isp1 table 101
ip -n "$r" -6 route add default via 2001:db8:ff02::1 dev isp2 table 102
ip -n "$r" -6 rule add from "$LAB_PA1" lookup 101
ip -n "$r" -6 rule add from "$LAB_PA2" lookup 102
lab_ping_wait "$LAB_HOST_PA1" 10 >/dev/null
linux_tcp=$(tcp)
linux_udp=$(udp64)

ratio() { /usr/bin/python3 -c "print('%.2f' % ($1 / max($2, 1)))"; }
printf '%-34s %12s %12s %8s\n' "lab, $(date -u +%F), $(git -C "$repo" rev-parse --short HEAD)" "m6-dataplane" "Linux" "ratio"
printf '%-34s %12s %12s %8s\n' "TCP, 8 s, Mbit/s" "$ours_tcp" "$linux_tcp" "$(ratio "$ours_tcp" "$linux_tcp")"
printf '%-34s %12s %12s %8s\n' "UDP 80-octet frames, pps delivered" "$ours_udp" "$linux_udp" "$(ratio "$ours_udp" "$linux_udp")"
if [ "$knobs" = 1 ]; then
    printf '\n%-34s %12s %8s %12s %8s\n' "m6-dataplane variant" "TCP Mbit/s" "ratio" "UDP pps" "ratio"
    printf '%-34s %12s %8s %12s %8s\n' "configs/lab.yaml as it is" "$ours_tcp" "$(ratio "$ours_tcp" "$linux_tcp")" "$ours_udp" "$(ratio "$ours_udp" "$linux_udp")"
    for row in "${knob_rows[@]}"; do
        IFS='|' read -r name t u <<<"$row"
        if [ "$t" = - ] || [ "$u" = - ]; then
            printf '%-34s %12s %8s %12s %8s   (failed: see above)\n' "$name" "$t" "" "$u" ""
        else
            printf '%-34s %12s %8s %12s %8s\n' "$name" "$t" "$(ratio "$t" "$linux_tcp")" "$u" "$(ratio "$u" "$linux_udp")"
        fi
    done
fi
