#!/usr/bin/env bash
# A guided tour of m6-dataplane in the namespace lab, for a newcomer. `make demo` runs
# scripts/setup.sh and the release build first; by hand:
#
#   sudo scripts/setup.sh && cargo build --release -p dataplane --bin m6-dataplane
#   sudo scripts/demo.sh
#
# It builds the lab (lab/topology.sh), starts the router, sends pings and TCP from each of the
# host's two source prefixes, shows which ISP carried what (the ISPs' own nftables counters),
# cuts ISP1's link, and stops the router to print its counters. Takes about half a minute and
# exits non-zero as soon as a step does not behave as described. The lab is always torn down.
#
# Environment: M6_DATAPLANE (binary, default target/release/m6-dataplane),
# M6_DEMO_PAUSE (seconds to pause between steps, default 1).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lab/lib.sh
. "$repo/lab/lib.sh"

BIN=${M6_DATAPLANE:-$repo/target/release/m6-dataplane}
CONFIG=$repo/configs/lab.yaml
PAUSE=${M6_DEMO_PAUSE:-1}
export M6_LAB_LOCK_HELD=1 # we hold the lab lock; lab/topology.sh must not refuse us

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B='' G='' R='' N=''; fi
step_no=0
step() {
    step_no=$((step_no + 1))
    [ "$step_no" -eq 1 ] || sleep "$PAUSE"
    printf '\n%s== %d. %s%s\n' "$B" "$step_no" "$*" "$N"
}
say() { printf '%s\n' "$@" | fold -s -w 96 | sed 's/^/   /'; }
ok() { printf '   %s[ok] %s%s\n' "$G" "$*" "$N"; }
fail() {
    printf '\n   %s[FAILED] step %d: %s%s\n' "$R" "$step_no" "$*" "$N" >&2
    exit 1
}
show() { sed 's/^/     | /'; } # indent a command's output

dp_pid=
dp_out=
cleanup() {
    local rc=$?
    if [ -n "$dp_pid" ] && kill -0 "$dp_pid" 2>/dev/null; then
        kill -TERM "$dp_pid" 2>/dev/null || true
        wait "$dp_pid" 2>/dev/null || true
    fi
    lab_down || true
    [ $rc -eq 0 ] || printf '%sdemo: failed; the lab has been torn down%s\n' "$R" "$N" >&2
    exit $rc
}

# ---------------------------------------------------------------------------------------------

lab_require_root
lab_require_tools
[ -x "$BIN" ] || lab_die "no router binary at $BIN; run: cargo build --release -p dataplane --bin m6-dataplane"
lab_lock
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
step "What a multihomed site is"
say "A site that buys IPv6 service from two ISPs gets one prefix from each: here ISP1 delegated" \
    "PA1 = $LAB_PA1 and ISP2 delegated PA2 = $LAB_PA2. Every host on the LAN has one" \
    "address from each prefix. Each ISP drops packets whose source address is not in the prefix it" \
    "delegated (ingress filtering, BCP 38): a packet from a PA1 address is only accepted by ISP1," \
    "and a packet from PA2 only by ISP2. So the border router must send each packet to the ISP" \
    "that owns its SOURCE address - no NAT, and the host keeps both addresses. When an ISP's link" \
    "is down, the router tells the host \"source address failed ingress/egress policy\" (ICMPv6" \
    "destination unreachable, code 5), and the host tries again from its other address." \
    "" \
    "The lab, in network namespaces on this machine (no outside address is ever used):"
cat <<EOF

     m6-lan (legacy host)          m6-rtr (m6-dataplane, DPDK)          m6-isp1 --+
     $LAB_HOST_PA1  ---- lan     isp1 ---- ISP1 (filters: only PA1)   |   m6-inet (server)
     $LAB_HOST_PA2             isp2 ---- ISP2 (filters: only PA2) --+-- $LAB_SERVER
EOF

step "Building the lab"
lab_up
ok "namespaces ${LAB_NAMESPACES[*]} are up; both ISPs reach the server; iperf3 listens on it"
say "In m6-rtr the kernel's IPv6 is disabled on lan, isp1 and isp2: only DPDK answers there."

step "Starting the router in m6-rtr"
say "ip netns exec $LAB_NS_RTR $BIN --config configs/lab.yaml"
dp_out=$LAB_RUN_DIR/m6-dataplane.out
ip netns exec "$LAB_NS_RTR" "$BIN" --config "$CONFIG" >"$dp_out" 2>"$LAB_RUN_DIR/m6-dataplane.err" 9>&- &
dp_pid=$!
for _ in $(seq 1 200); do
    grep -q '^m6-dataplane: forwarding' "$dp_out" 2>/dev/null && break
    kill -0 "$dp_pid" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q '^m6-dataplane: forwarding' "$dp_out" 2>/dev/null; then
    show <"$LAB_RUN_DIR/m6-dataplane.err"
    fail "the router did not report 'm6-dataplane: forwarding' (output above)"
fi
ok "the router says: $(grep -m1 '^m6-dataplane: forwarding' "$dp_out")"

# The ISPs' view: packets from the router, by source prefix, and the ingress filter's drops.
isp_table() {
    local a b c d e f
    a=$(lab_nft_packets isp1 from_pa1) b=$(lab_nft_packets isp1 from_pa2) c=$(lab_nft_packets isp1 ingress_drop)
    d=$(lab_nft_packets isp2 from_pa1) e=$(lab_nft_packets isp2 from_pa2) f=$(lab_nft_packets isp2 ingress_drop)
    printf '     %-6s %16s %16s %14s\n' "" "from PA1 source" "from PA2 source" "filter drops"
    printf '     %-6s %16s %16s %14s\n' ISP1 "$a" "$b" "$c" ISP2 "$d" "$e" "$f"
    ISP1_PA1=$a ISP1_PA2=$b ISP1_DROP=$c ISP2_PA1=$d ISP2_PA2=$e ISP2_DROP=$f
}

# Ping from one source prefix and check it went through the right ISP only.
ping_via() { # SRC OWN(1|2)
    local src=$1 own=$2 out
    lab_nft_reset
    lab_ping_wait "$src" 5 || true # the first packet may wait for neighbour discovery
    lab_nft_reset
    out=$(lab_ping "$src" 4 2>&1) || true
    printf '%s\n' "$out" | grep -E 'bytes from|packets transmitted' | show
    printf '%s\n' "$out" | grep -q ' 0% packet loss' || fail "pings from $src were lost"
    say "What the ISPs saw (counted by their own nftables filters):"
    isp_table
    if [ "$own" = 1 ]; then
        [ "$ISP1_PA1" -gt 0 ] && [ "$ISP2_PA1" -eq 0 ] || fail "PA1 traffic did not go only through ISP1"
        ok "PA1-sourced pings went out through ISP1, none through ISP2"
    else
        [ "$ISP2_PA2" -gt 0 ] && [ "$ISP1_PA2" -eq 0 ] || fail "PA2 traffic did not go only through ISP2"
        ok "PA2-sourced pings went out through ISP2, none through ISP1"
    fi
    [ "$ISP1_DROP" -eq 0 ] && [ "$ISP2_DROP" -eq 0 ] || fail "an ISP's ingress filter dropped packets"
}

step "Ping the server from the host's PA1 address ($LAB_HOST_PA1)"
say "ping -I $LAB_HOST_PA1 $LAB_SERVER   (in m6-lan)"
ping_via "$LAB_HOST_PA1" 1

step "Ping the server from the host's PA2 address ($LAB_HOST_PA2)"
say "Same host, same default router - only the source address differs."
ping_via "$LAB_HOST_PA2" 2

tcp_via() { # SRC LABEL
    local out rate
    out=$(lab_iperf "$1" 20M 2>&1) || { printf '%s\n' "$out" | show; fail "TCP from $1 failed"; }
    rate=$(printf '%s\n' "$out" | awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") print $(i-1) }')
    ok "20 MB over TCP from $2 ($1): ${rate:-?} Mbit/s"
}

step "TCP from each address (iperf3, 20 MB each)"
lab_nft_reset
tcp_via "$LAB_HOST_PA1" PA1
tcp_via "$LAB_HOST_PA2" PA2
isp_table
[ "$ISP1_PA2" -eq 0 ] && [ "$ISP2_PA1" -eq 0 ] && [ "$ISP1_PA1" -gt 0 ] && [ "$ISP2_PA2" -gt 0 ] ||
    fail "TCP segments went through the wrong ISP"
[ "$ISP1_DROP" -eq 0 ] && [ "$ISP2_DROP" -eq 0 ] || fail "an ISP's ingress filter dropped packets"
ok "each TCP stream left through the ISP that owns its source prefix; nothing was filtered"

step "Cutting ISP1's link"
say "ip -n m6-isp1 link set dev down down   (the router sees its isp1 port lose carrier)"
lab_isp_link isp1 down
say "Now the host pings again from PA1. ISP2 would drop a PA1 packet, so the router must not" \
    "send it there; it drops it and answers the host instead:"
code5=
for _ in $(seq 1 20); do
    out=$(lab_ping "$LAB_HOST_PA1" 1 2>&1) || true
    code5=$(printf '%s\n' "$out" | grep -m1 'Destination unreachable' || true)
    [ -n "$code5" ] && break
    sleep 0.5
done
[ -n "$code5" ] || fail "no ICMPv6 destination unreachable came back for PA1"
printf '%s\n' "$code5" | show
case "$code5" in
*"Unknown code 5"* | *[Pp]olicy*) ;;
*) fail "the unreachable was not code 5 (source address failed ingress/egress policy)" ;;
esac
say "That is ICMPv6 destination unreachable code 5, \"source address failed ingress/egress" \
    "policy\" (RFC 4443 section 3.1; Debian 12's ping has no name for it and prints \"Unknown" \
    "code 5\"). It tells the host that this source address cannot get out right now, so the" \
    "host - or the application - should retry from another of its addresses."

step "The host retries from PA2 while ISP1 is down"
ping_via "$LAB_HOST_PA2" 2
lab_nft_reset
tcp_via "$LAB_HOST_PA2" PA2
ok "PA2 still works: the site stays online through ISP2"

step "Restoring ISP1's link"
lab_isp_link isp1 up
lab_ping_wait "$LAB_HOST_PA1" 10 || fail "PA1 did not work again after ISP1 came back"
ok "PA1 reaches the server again through ISP1"

step "Stopping the router (SIGTERM) and reading its counters"
kill -TERM "$dp_pid"
rc=0
wait "$dp_pid" || rc=$?
dp_pid=
[ "$rc" -eq 0 ] || fail "m6-dataplane exited with status $rc"
say "Per-ISP packet counts as the router counted them (its \"counter isp.<name>.*\" lines):"
awk '$1 == "counter" { c[$2] = $3 }
    END {
        printf "     %-6s %26s %26s\n", "", "sent to the ISP", "received from the ISP"
        for (i = 1; i <= 2; i++) {
            p = "isp.isp" i "."
            printf "     ISP%-3d %12d pkts %7.1f MB %12d pkts %7.1f MB\n", i,
                c[p "tx_packets"], c[p "tx_bytes"] / 1e6, c[p "rx_packets"], c[p "rx_bytes"] / 1e6
        }
    }' "$dp_out"
say "ICMPv6 errors and drops for a down ISP:"
grep -E '^counter (icmp\.unreachable_sent|drop\.isp_)' "$dp_out" | show || true
tx1=$(awk '$1 == "counter" && $2 == "isp.isp1.tx_packets" { print $3 }' "$dp_out")
tx2=$(awk '$1 == "counter" && $2 == "isp.isp2.tx_packets" { print $3 }' "$dp_out")
un=$(awk '$1 == "counter" && $2 == "icmp.unreachable_sent" { print $3 }' "$dp_out")
[ "${tx1:-0}" -gt 0 ] && [ "${tx2:-0}" -gt 0 ] || fail "the router reports no packets sent to an ISP"
[ "${un:-0}" -gt 0 ] || fail "the router reports no ICMPv6 unreachable sent"
ok "both ISPs carried traffic (isp1 $tx1, isp2 $tx2 packets); $un unreachable(s) sent to the host"

step "Tearing the lab down"
trap - EXIT
lab_down
ok "lab removed; demo finished in $(($(date +%s) - start)) s"
