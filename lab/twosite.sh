#!/usr/bin/env bash
# The two-site M6 lab (issue 8): site A is multihomed (ISP1 with PA1, ISP2 with PA2), site B
# has one ISP (ISP3 with PB); both sites' legacy hosts are proxied by their border router
# (m6-dataplane in m6s-artr / m6s-brtr, m6-controlplane beside each), and a core joins the
# ISPs, a plain IPv6 server and an authoritative DNS server (Knot) for both sites.
#
#   m6s-ahost  eth0 2001:db8:1:1::10, 2001:db8:2:1::10 --- lan  m6s-artr  isp1 --- down m6s-isp1 up --- isp1
#   m6s-aslaac eth0 (macvlan on m6s-ahost's eth0): SLAAC from router A's Router Advertisements
#                                                              isp2 --- down m6s-isp2 up --- isp2   m6s-core
#   m6s-bhost  eth0 2001:db8:3:1::20                   --- lan  m6s-brtr  isp3 --- down m6s-isp3 up --- isp3   lo: server 2001:db8:ee::100
#                                                                                                              dns 2001:db8:53::1 (knotd)
#
# Each ISP drops (and counts) what arrives from its customer with a source outside the
# prefix it delegated. The control planes run in m6s-core (their management network: they
# reach the DNS there and their dataplane through its socket under /run/m6-twosite).
#
#   lab/twosite.sh up | down | status
#
# Everything stays inside the namespaces created here.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"

TS_NS=(m6s-ahost m6s-aslaac m6s-artr m6s-isp1 m6s-isp2 m6s-bhost m6s-brtr m6s-isp3 m6s-core)
TS_RUN=/run/m6-twosite
TS_SERVER=2001:db8:ee::100
TS_DNS=2001:db8:53::1

ts_down() {
    local ns pids
    if [ -f "$TS_RUN/knotd.pid" ]; then
        kill "$(cat "$TS_RUN/knotd.pid")" 2>/dev/null || true
    fi
    for ns in "${TS_NS[@]}"; do
        lab_ns_exists "$ns" || continue
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$TS_RUN"
}

# nftables on an ISP's customer port: accept the delegated prefix (and link control), count
# and drop everything else.
ts_isp_filter() { # NS PREFIX
    ip netns exec "$1" nft -f - <<EOF
flush ruleset
table ip6 m6_isp {
    counter from_customer {}
    counter to_customer {}
    counter ingress_drop {}
    chain ingress_filter {
        type filter hook prerouting priority filter; policy accept;
        iifname != "down" accept
        ip6 saddr { ::, fe80::/10 } accept
        ip6 hoplimit 255 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept
        ip6 saddr $2 counter name from_customer accept
        counter name ingress_drop drop
    }
    chain to_customer {
        type filter hook postrouting priority filter; policy accept;
        oifname "down" counter name to_customer
    }
}
EOF
}

# A reverse-zone owner name for an address inside a /48.
ts_ptr() { # ADDR ORIGIN_NIBBLES(skip)
    /usr/bin/python3 - "$1" <<'EOF'
import ipaddress, sys
a = ipaddress.IPv6Address(sys.argv[1])
print(a.reverse_pointer[: -len(".ip6.arpa") - 24])
EOF
}

ts_zones() {
    local z=$TS_RUN/zones
    mkdir -p "$z"
    cat >"$z/example.net.zone" <<EOF
\$ORIGIN example.net.
\$TTL 300
@   IN SOA ns1 hostmaster 1 3600 600 86400 60
    IN NS  ns1
ns1 IN AAAA $TS_DNS
a   IN AAAA 2001:db8:1:1::10
a   IN AAAA 2001:db8:2:1::10
a   IN TYPE65280 \# 0
b   IN AAAA 2001:db8:3:1::20
b   IN TYPE65280 \# 0
server IN AAAA $TS_SERVER
EOF
    local n host addr
    for n in 1 2 3; do
        {
            echo "\$ORIGIN $n.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
            echo "\$TTL 300"
            echo "@ IN SOA ns1.example.net. hostmaster.example.net. 1 3600 600 86400 60"
            echo "  IN NS ns1.example.net."
        } >"$z/$n.zone"
    done
    for pair in "a 2001:db8:1:1::10 1" "a 2001:db8:2:1::10 2" "b 2001:db8:3:1::20 3"; do
        set -- $pair
        host=$1 addr=$2 n=$3
        echo "$(ts_ptr "$addr") IN PTR $host.example.net." >>"$z/$n.zone"
    done
    cat >"$TS_RUN/knot.conf" <<EOF
server:
    listen: $TS_DNS@53
    rundir: $TS_RUN
    pidfile: $TS_RUN/knotd.pid
database:
    storage: $TS_RUN/knotdb
log:
  - target: stderr
    any: warning
zone:
  - domain: example.net
    file: $z/example.net.zone
  - domain: 1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa
    file: $z/1.zone
  - domain: 2.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa
    file: $z/2.zone
  - domain: 3.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa
    file: $z/3.zone
EOF
}

ts_up() {
    lab_require_root && lab_require_tools || return 1
    ts_down
    mkdir -p "$TS_RUN"
    local ns
    for ns in "${TS_NS[@]}"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        _lab_sysctl "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
            net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
    done
    _lab_veth m6s-artr lan m6s-ahost eth0
    _lab_veth m6s-artr isp1 m6s-isp1 down
    _lab_veth m6s-artr isp2 m6s-isp2 down
    _lab_veth m6s-brtr lan m6s-bhost eth0
    _lab_veth m6s-brtr isp3 m6s-isp3 down
    _lab_veth m6s-isp1 up m6s-core isp1
    _lab_veth m6s-isp2 up m6s-core isp2
    _lab_veth m6s-isp3 up m6s-core isp3

    # Routers: DPDK owns the interfaces; the kernel stays out of IPv6 there.
    local r ifc
    for r in "m6s-artr lan isp1 isp2" "m6s-brtr lan isp3"; do
        set -- $r
        ns=$1
        shift
        for ifc in "$@"; do
            _lab_sysctl "$ns" "net.ipv6.conf.$ifc.disable_ipv6=1"
            _lab_offloads_off "$ns" "$ifc"
            ip -n "$ns" link set dev "$ifc" up
        done
    done

    # Hosts.
    for ns in m6s-ahost m6s-bhost; do
        _lab_offloads_off "$ns" eth0
        ip -n "$ns" link set dev eth0 up
    done
    ip -n m6s-ahost -6 addr add 2001:db8:1:1::10/64 dev eth0 nodad
    ip -n m6s-ahost -6 addr add 2001:db8:2:1::10/64 dev eth0 nodad
    ip -n m6s-ahost -6 route add default via 2001:db8:1:1::1 dev eth0
    # A second host on site A's LAN that numbers itself from router A's RAs (SLAAC): a
    # macvlan on host A's eth0, so both share the one veth to the router.
    ip -n m6s-ahost link add slaac link eth0 type macvlan mode bridge
    ip -n m6s-ahost link set slaac netns m6s-aslaac
    ip -n m6s-aslaac link set slaac name eth0
    _lab_sysctl m6s-aslaac net.ipv6.conf.eth0.accept_ra=1 net.ipv6.conf.eth0.autoconf=1 \
        net.ipv6.conf.eth0.accept_dad=0 net.ipv6.conf.eth0.use_tempaddr=0
    ip -n m6s-aslaac link set dev eth0 up
    ip -n m6s-bhost -6 addr add 2001:db8:3:1::20/64 dev eth0 nodad
    ip -n m6s-bhost -6 route add default via 2001:db8:3:1::1 dev eth0

    # ISPs: customer port `down` (2001:db8:ff0N::1, router ::2), upstream `up` to the core
    # (2001:db8:fe0N::1, core ::2).
    local n pa
    for n in 1 2 3; do
        ns=m6s-isp$n
        pa=2001:db8:$n::/48
        _lab_sysctl "$ns" net.ipv6.conf.all.forwarding=1 net.ipv6.conf.down.keep_addr_on_down=1
        _lab_offloads_off "$ns" down
        _lab_offloads_off "$ns" up
        ip -n "$ns" link set dev down up
        ip -n "$ns" link set dev up up
        ip -n "$ns" -6 addr add "2001:db8:ff0$n::1/64" dev down nodad
        ip -n "$ns" -6 addr add "2001:db8:fe0$n::1/64" dev up nodad
        ip -n "$ns" -6 route add "$pa" via "2001:db8:ff0$n::2" dev down
        ip -n "$ns" -6 route add default via "2001:db8:fe0$n::2" dev up
        ts_isp_filter "$ns" "$pa"
        _lab_offloads_off m6s-core "isp$n"
        ip -n m6s-core link set dev "isp$n" up
        ip -n m6s-core -6 addr add "2001:db8:fe0$n::2/64" dev "isp$n" nodad
        ip -n m6s-core -6 route add "$pa" via "2001:db8:fe0$n::1" dev "isp$n"
    done
    _lab_sysctl m6s-core net.ipv6.conf.all.forwarding=1
    ip -n m6s-core -6 addr add "$TS_SERVER/128" dev lo nodad
    ip -n m6s-core -6 addr add "$TS_DNS/128" dev lo nodad

    # The sites' DNS, and a plain IPv6 server.
    ts_zones
    ip netns exec m6s-core "$(knot_tool_path knotd)" -c "$TS_RUN/knot.conf" -d 9>&-
    ip netns exec m6s-core iperf3 -s -B "$TS_SERVER" -p 5201 -D -I "$TS_RUN/iperf3.pid" 9>&-
    local i
    for i in $(seq 1 50); do
        if ip netns exec m6s-core ss -Huln "sport = :53" 2>/dev/null | grep -q .; then break; fi
        sleep 0.1
    done
    ip netns exec m6s-core kdig -6 +short @"$TS_DNS" a.example.net AAAA >/dev/null ||
        lab_die "knotd does not answer in m6s-core" || return 1
    lab_wait_listen m6s-core 5201 5 || return 1
}

knot_tool_path() {
    command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"
}

ts_status() {
    local ns
    for ns in "${TS_NS[@]}"; do
        if lab_ns_exists "$ns"; then echo "$ns up"; else echo "$ns missing"; fi
    done
}

case "${1:-}" in
up) ts_up ;;
down) ts_down ;;
status) ts_status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
