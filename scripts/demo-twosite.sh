#!/usr/bin/env bash
# The second half of `make demo`: the M6 border between two sites (lab/twosite.sh,
# docs/lab.md). It starts both routers and their control planes and shows:
# - the host-pair contexts as they establish;
# - a TCP download that survives the failure of the ISP carrying it, with the longest gap;
# - an ISP whose upstream goes dark behind a live link: found by the health probes,
#   withdrawn, its prefix deprecated in the Router Advertisements so a SLAAC host's new
#   connections leave from the other prefix; then restored;
# - a plain server reached natively, with no M6 attempt after one DNS lookup;
# - a real Prometheus scraping both routers, and a query's answer;
# - the routers' and ISPs' counters.
# About a minute. It exits non-zero as soon as a step does not behave as described, and the
# lab is always torn down.
#
# Environment: M6_DATAPLANE, M6_CONTROLPLANE, M6CTL (binaries, default target/release/...),
# M6_DEMO_PAUSE (seconds between steps, default 1).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lab/lib.sh
. "$repo/lab/lib.sh"

DP=${M6_DATAPLANE:-$repo/target/release/m6-dataplane}
CP=${M6_CONTROLPLANE:-$repo/target/release/m6-controlplane}
CTL=${M6CTL:-$repo/target/release/m6ctl}
CFG=$repo/configs/twosite
RUN=/run/m6-twosite
PAUSE=${M6_DEMO_PAUSE:-1}
HOST_A=2001:db8:1:1::10
HOST_B=2001:db8:3:1::20
SERVER=2001:db8:ee::100

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B='' G='' R='' N=''; fi
step_no=0
step() {
    step_no=$((step_no + 1))
    [ "$step_no" -eq 1 ] || sleep "$PAUSE"
    printf '\n%s== M6 %d. %s%s\n' "$B" "$step_no" "$*" "$N"
}
say() { printf '%s\n' "$@" | fold -s -w 96 | sed 's/^/   /'; }
ok() { printf '   %s[ok] %s%s\n' "$G" "$*" "$N"; }
fail() {
    printf '\n   %s[FAILED] step %d: %s%s\n' "$R" "$step_no" "$*" "$N" >&2
    exit 1
}
show() { sed 's/^/     | /'; }

pids=()
logs=$(mktemp -d)
cleanup() {
    local rc=$? p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    bash "$repo/lab/twosite.sh" down || true
    rm -rf "$logs"
    [ $rc -eq 0 ] || printf '%sdemo: failed; the two-site lab has been torn down%s\n' "$R" "$N" >&2
    exit $rc
}

lab_require_root
lab_require_tools
[ -x "$DP" ] || lab_die "no $DP; run: cargo build --release -p dataplane -p controlplane"
[ -x "$CP" ] || lab_die "no $CP; run: cargo build --release -p dataplane -p controlplane"
trap cleanup EXIT
trap 'exit 130' INT TERM
start=$(date +%s)

step "Two sites, each with an M6 border router"
say "Site A buys IPv6 from ISP1 (PA1 2001:db8:1::/48) and ISP2 (PA2 2001:db8:2::/48); site B" \
    "from ISP3 (PB 2001:db8:3::/48). Their hosts are ordinary Linux hosts with no M6 at all:" \
    "each border router runs the M6 protocol on their behalf (seed 002, the proxy). The routers'" \
    "control planes verify locators in the DNS (Knot, forward and reverse zones with the M6" \
    "marker) and establish host-pair contexts; the dataplanes translate between the hosts'" \
    "addresses (AIDs) and locators. Every ISP still drops sources outside its prefix."
bash "$repo/lab/twosite.sh" up
for s in a b; do
    ip netns exec "m6s-${s}rtr" "$DP" --config "$CFG/$s.yaml" >"$logs/dp-$s" 2>&1 9>&- &
    pids+=($!)
done
for i in $(seq 1 100); do
    grep -q forwarding "$logs/dp-a" 2>/dev/null && grep -q forwarding "$logs/dp-b" 2>/dev/null && break
    sleep 0.1
done
grep -q forwarding "$logs/dp-a" || fail "router A did not start: $(cat "$logs/dp-a")"
for s in a b; do
    ip netns exec m6s-core env M6_CONTROLPLANE_TRACE=1 "$CP" --config "$CFG/$s-controlplane.yaml" \
        >"$logs/cp-$s" 2>&1 9>&- &
    pids+=($!)
done
# A real Prometheus in the core scrapes both control planes' /metrics every second.
mkdir -p "$RUN/prometheus"
cat >"$RUN/prometheus/prometheus.yml" <<'YAML'
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: m6
    static_configs:
      - targets: ["[::1]:9106"]
        labels: { router: a }
      - targets: ["[::1]:9107"]
        labels: { router: b }
YAML
ip netns exec m6s-core prometheus --config.file="$RUN/prometheus/prometheus.yml" \
    --storage.tsdb.path="$RUN/prometheus/data" --web.listen-address="[::1]:9090" \
    >"$logs/prometheus" 2>&1 9>&- &
pids+=($!)
sleep 1
ok "routers A and B forwarding; their control planes connected; Prometheus scraping both"

step "Host A talks to host B: the first packets flow as plain IPv6, the contexts establish beside them"
ip netns exec m6s-ahost ping -6 -n -c 3 -i 0.3 -I "$HOST_A" "$HOST_B" | tail -2 | show
for i in $(seq 1 50); do
    grep -q Established "$logs/cp-a" && grep -q Established "$logs/cp-b" && break
    sleep 0.1
done
grep -q Established "$logs/cp-a" || fail "no context at A"
say "Control plane A, as it looked host B up and ran the handshake:"
grep -E "Dns|send|Established" "$logs/cp-a" | grep -v "^m6-controlplane: Established" | sed 's/^m6-controlplane: *//' | head -8 | show
say "m6ctl context list at router A (its admin socket):"
"$CTL" --socket "$RUN/a-admin.sock" context list | show
ok "contexts established on both routers"

step "A download from B to A survives the failure of the ISP carrying it"
ip netns exec m6s-bhost iperf3 -s -B "$HOST_B" -p 5201 -D -I "$RUN/b-iperf.pid" 9>&-
sleep 0.3
ip netns exec m6s-ahost timeout 60 iperf3 -6 -R -c "$HOST_B" -p 5201 -B "$HOST_A" -t 12 -b 50M \
    -i 0.5 -f m >"$logs/iperf" 2>&1 9>&- &
ipid=$!
sleep 3
d1=$(ip netns exec m6s-isp1 nft list counter ip6 m6_isp to_customer | sed -n 's/.*packets \([0-9]*\).*/\1/p')
d2=$(ip netns exec m6s-isp2 nft list counter ip6 m6_isp to_customer | sed -n 's/.*packets \([0-9]*\).*/\1/p')
sleep 0.5
e1=$(ip netns exec m6s-isp1 nft list counter ip6 m6_isp to_customer | sed -n 's/.*packets \([0-9]*\).*/\1/p')
e2=$(ip netns exec m6s-isp2 nft list counter ip6 m6_isp to_customer | sed -n 's/.*packets \([0-9]*\).*/\1/p')
if [ $((e1 - d1)) -ge $((e2 - d2)) ]; then n=1; else n=2; fi
say "The download reaches site A through ISP$n. Cutting ISP$n's link now; back in 4 s."
ip -n "m6s-isp$n" link set dev down down
sleep 4
ip -n "m6s-isp$n" link set dev down up
ip -n "m6s-isp$n" -6 route replace "2001:db8:$n::/48" via "2001:db8:ff0$n::2" dev down
wait "$ipid" || fail "the transfer failed: $(tail -5 "$logs/iperf")"
grep -E "sec" "$logs/iperf" | head -24 | show
gap=$(awk '/sec/ && $5 == "0.00" { run += 0.5; if (run > m) m = run; next } /sec/ { run = 0 } END { print m + 0 }' "$logs/iperf")
ok "the TCP session survived ISP$n's failure; longest half-second gap: ${gap} s"

step "An ISP goes dark behind a live link: health probes, and RAs that move the hosts"
say "Router A probes each ISP every 2 s (ICMPv6 echo to two beacons in the core, sourced from" \
    "its address under that ISP's prefix). Its RAs give the LAN one prefix per ISP; the SLAAC" \
    "host on site A's LAN numbered itself from both:"
# After the previous step ISP1's probes must pass again before it is usable.
for i in $(seq 1 100); do
    "$CTL" --socket "$RUN/a-admin.sock" isp list | grep -Eq "^isp1 +[^ ]+ +usable" && break
    sleep 0.05
done
ip -n m6s-aslaac -6 -o addr show dev eth0 scope global | awk '{print $4, $5, $6, $7, $8, $9}' | sed 's/ *\\$//' | show
"$CTL" --socket "$RUN/a-admin.sock" isp list | show
say "ISP1 now drops everything it would forward (its upstream is dark); its link to router A," \
    "and its Neighbor Discovery, stay up, so carrier and next-hop checks see nothing."
withdrawals=$(grep -c "isp isp1 withdrawn (probes down" "$logs/dp-a" || true)
restores=$(grep -c "isp isp1 restored" "$logs/dp-a" || true)
printf 'table ip6 dark {\n chain transit {\n  type filter hook forward priority 0; policy drop;\n }\n}\n' |
    ip netns exec m6s-isp1 nft -f -
t0=$(date +%s%N)
# Waits until PATTERN is in more than N lines of router A's log.
more_than() { # N PATTERN
    local i
    for i in $(seq 1 200); do
        [ "$(grep -c "$2" "$logs/dp-a" || true)" -gt "$1" ] && return 0
        sleep 0.05
    done
    return 1
}
more_than "$withdrawals" "isp isp1 withdrawn (probes down" || fail "ISP1 was not withdrawn"
t1=$(date +%s%N)
grep "isp isp1 withdrawn (probes down" "$logs/dp-a" | tail -1 | show
say "Withdrawn $(((t1 - t0) / 1000000)) ms after the upstream went dark (at most one 2 s" \
    "interval plus three 200 ms rounds). The next RA deprecates PA1 (preferred lifetime 0) and" \
    "the SLAAC host marks its PA1 address deprecated:"
for i in $(seq 1 50); do
    ip -n m6s-aslaac -6 -o addr show dev eth0 | grep "2001:db8:1:1:" | grep -q deprecated && break
    sleep 0.05
done
ip -n m6s-aslaac -6 -o addr show dev eth0 scope global | awk '{print $4, $5, $6, $7, $8, $9}' | sed 's/ *\\$//' | show
ip -n m6s-aslaac -6 -o addr show dev eth0 | grep "2001:db8:1:1:" | grep -q deprecated ||
    fail "PA1 not deprecated on the SLAAC host"
src=$(ip netns exec m6s-aslaac /usr/bin/python3 -c \
    "import socket; s=socket.create_connection(('$SERVER',5201),timeout=3); print(s.getsockname()[0])")
say "A new TCP connection from the SLAAC host to the server leaves from $src, with no change to" \
    "the application. A plain ping from host A's PA1 address gets code 5:"
ip netns exec m6s-ahost ping -6 -n -c 1 -W 2 -I "$HOST_A" "$SERVER" 2>&1 | grep -i unreachable | show || true
case $src in 2001:db8:2:1:*) ;; *) fail "the new connection left from $src" ;; esac
"$CTL" --socket "$RUN/a-admin.sock" isp list | show
ip netns exec m6s-isp1 nft delete table ip6 dark
more_than "$restores" "isp isp1 restored" || fail "ISP1 was not restored"
grep "isp isp1 restored" "$logs/dp-a" | tail -1 | show
ok "ISP1 withdrawn by its probes, its prefix deprecated meanwhile, then restored"

step "A plain IPv6 server is reached natively"
ip netns exec m6s-ahost ping -6 -n -c 3 -i 0.2 -I "$HOST_A" "$SERVER" | tail -2 | show
lookups=$(grep -c "Reverse($SERVER)" "$logs/cp-a" || true)
inits=$(grep -c "send Init .* -> $SERVER" "$logs/cp-a" || true)
say "Control plane A looked the server up $lookups time(s) (no M6 marker: not M6 capable," \
    "remembered for the negative TTL) and sent it $inits INIT."
[ "$inits" -eq 0 ] || fail "an INIT went to the plain server"
ok "native traffic through the ISP that owns the source"

step "Prometheus, scraping both routers' metrics"
promql() { # QUERY
    ip netns exec m6s-core curl -sfG 'http://[::1]:9090/api/v1/query' --data-urlencode "query=$1" |
        /usr/bin/python3 -c '
import json, sys
for s in json.load(sys.stdin)["data"]["result"]:
    labels = ",".join("%s=%s" % kv for kv in sorted(s["metric"].items()) if kv[0] not in ("job", "instance"))
    print("%s: %.0f" % (labels or "-", float(s["value"][1])))'
}
q='sum by (router, isp) (increase(m6_isp_transmit_packets_total[5m]))'
say "Query: $q"
out=$(promql "$q") || fail "Prometheus did not answer: $(tail -3 "$logs/prometheus")"
[ -n "$out" ] || fail "Prometheus has no m6 samples yet"
printf '%s\n' "$out" | show
q='m6_handshakes_completed_total'
say "Query: $q"
promql "$q" | show
ok "Prometheus at [::1]:9090 in m6s-core has both routers' metrics (docs/operations.md lists them)"

step "The routers' counters"
for p in "${pids[@]:0:2}"; do kill -TERM "$p"; done
for p in "${pids[@]:0:2}"; do wait "$p" || true; done
for s in a b; do
    say "router $s:"
    grep -E "^counter (isp\.[a-z0-9]+\.(tx|rx)_packets|proxy\.(translated_out|translated_in|plain_out|punted|lp_switched)|channel\.connections) " \
        "$logs/dp-$s" | show
done
for n in 1 2 3; do
    printf 'ISP%s: %s\n' "$n" "$(ip netns exec "m6s-isp$n" nft list table ip6 m6_isp |
        awk '/counter (from_customer|to_customer|ingress_drop)/ { name=$2 } /packets/ && name { printf "%s %s  ", name, $2; name="" }')"
done | show
ok "two-site demo finished in $(($(date +%s) - start)) s"
