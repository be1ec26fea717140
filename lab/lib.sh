# shellcheck shell=bash
# Helpers for the m6-dataplane namespace lab. Source this file; it defines names, the address
# plan and functions, and runs nothing by itself. Used by lab/topology.sh, scripts/demo.sh and
# dataplane/tests/lab_e2e.rs (which calls `bash -c '. lab/lib.sh; lab_<fn> ...'`).
#
#            m6-lan                m6-rtr (DPDK, af_packet)            m6-isp1 / m6-isp2      m6-inet
#   eth0 2001:db8:1:1::10  ---  lan   2001:db8:1:1::1, 2001:db8:2:1::1
#        2001:db8:2:1::10       isp1  2001:db8:ff01::2  ---  down ::1 | up 2001:db8:fe01::1 --- isp1 ::2
#                               isp2  2001:db8:ff02::2  ---  down ::1 | up 2001:db8:fe02::1 --- isp2 ::2
#                                                                               lo 2001:db8:ee::100 (server)
#
# ISP1 delegated PA1 = 2001:db8:1::/48, ISP2 delegated PA2 = 2001:db8:2::/48. Each ISP drops
# (and counts) what arrives from the router with a source outside its own prefix.
#
# Everything stays inside the namespaces created here: no address outside the lab is used.

# Tool output (ping, nft) is parsed as text: pin the language.
export LC_ALL=C

LAB_NS_RTR=m6-rtr
LAB_NS_LAN=m6-lan
LAB_NS_ISP1=m6-isp1
LAB_NS_ISP2=m6-isp2
LAB_NS_INET=m6-inet
LAB_NAMESPACES=("$LAB_NS_RTR" "$LAB_NS_LAN" "$LAB_NS_ISP1" "$LAB_NS_ISP2" "$LAB_NS_INET")

LAB_PA1=2001:db8:1::/48
LAB_PA2=2001:db8:2::/48
LAB_HOST_PA1=2001:db8:1:1::10
LAB_HOST_PA2=2001:db8:2:1::10
LAB_RTR_LAN_PA1=2001:db8:1:1::1
LAB_RTR_LAN_PA2=2001:db8:2:1::1
LAB_SERVER=2001:db8:ee::100
LAB_SERVER_PREFIX=2001:db8:ee::/48
LAB_IPERF_PORT=5201

# State of a running lab (pid files, logs). /run is a tmpfs: nothing survives a reboot.
# (dataplane/tests/lab_e2e.rs uses the same two paths.)
LAB_RUN_DIR=/run/m6-lab
# One lab session (test or demo) at a time: an flock(2) on this file, released when the holder
# dies, however it dies. The e2e test takes the same lock with std::fs::File::try_lock. The
# shell holds it on fd 9, which every long-lived child must close (9>&-), or a server left
# behind by a killed session would keep the lock.
LAB_LOCK_FILE=/run/lock/m6-lab.lock

# Tools the lab needs, with the Debian package that provides each.
LAB_TOOLS=(ip:iproute2 ss:iproute2 timeout:coreutils flock:util-linux ethtool:ethtool nft:nftables iperf3:iperf3 nc:netcat-openbsd ping:iputils-ping tcpdump:tcpdump rdisc6:ndisc6 /usr/bin/python3:python3-scapy)

lab_log() { printf 'lab: %s\n' "$*" >&2; }
lab_die() { printf 'lab: error: %s\n' "$*" >&2; return 1; }

# ---------------------------------------------------------------------------------------------
# Preconditions

lab_require_root() {
    [ "$(id -u)" -eq 0 ] || lab_die "must run as root (creates network namespaces)"
}

lab_require_tools() {
    local t missing=()
    for t in "${LAB_TOOLS[@]}"; do
        command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t%%:*} (Debian package ${t#*:})")
    done
    [ ${#missing[@]} -eq 0 ] || lab_die "missing tools: ${missing[*]}; run scripts/setup.sh"
}

# Take the session lock on fd 9 for the rest of the calling shell's life. Fails at once (with
# the holder's description) if another session holds it, unless a wait in seconds is given.
lab_lock() {
    local wait=${1:-0} who
    mkdir -p "$(dirname "$LAB_LOCK_FILE")"
    exec 9<>"$LAB_LOCK_FILE"
    if ! flock -w "$wait" 9; then
        who=$(cat "$LAB_LOCK_FILE" 2>/dev/null || true)
        exec 9>&-
        lab_die "another lab session holds $LAB_LOCK_FILE (${who:-unknown holder}); wait for it or stop it"
        return 1
    fi
    truncate -s 0 "$LAB_LOCK_FILE"
    printf '%s pid %s\n' "$(basename "$0")" "$$" >"$LAB_LOCK_FILE"
}

# True when some session other than ours holds the lock (used by topology.sh to refuse to pull
# the lab from under a running test or demo).
lab_lock_busy() {
    [ -e "$LAB_LOCK_FILE" ] || return 1
    ! flock -n "$LAB_LOCK_FILE" true
}

# ---------------------------------------------------------------------------------------------
# Building and removing the lab

lab_ns_exists() { [ -e "/run/netns/$1" ]; }

# Stop every process still running inside the lab namespaces (servers, the dataplane after a
# crashed test), then delete the namespaces; deleting a namespace deletes its veth ends, and
# every veth has both ends inside lab namespaces, so nothing is left in the root namespace.
lab_down() {
    local ns pids i
    for ns in "${LAB_NAMESPACES[@]}"; do
        lab_ns_exists "$ns" || continue
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        if [ -n "$pids" ]; then
            # shellcheck disable=SC2086
            kill -TERM $pids 2>/dev/null || true
            for i in 1 2 3 4 5 6 7 8 9 10; do
                pids=$(ip netns pids "$ns" 2>/dev/null || true)
                [ -z "$pids" ] && break
                sleep 0.2
            done
            # shellcheck disable=SC2086
            [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
        fi
        ip netns del "$ns" 2>/dev/null || true
    done
    for ns in "${LAB_NAMESPACES[@]}"; do
        if lab_ns_exists "$ns"; then
            # A stale mount point without a namespace behind it: remove the file.
            umount "/run/netns/$ns" 2>/dev/null || true
            rm -f "/run/netns/$ns" 2>/dev/null || true
        fi
        lab_ns_exists "$ns" && lab_die "could not delete namespace $ns"
    done
    rm -rf "$LAB_RUN_DIR"
    return 0
}

# A veth pair with one end in each namespace, created in place (never in the root namespace).
_lab_veth() { # NS_A IF_A NS_B IF_B
    ip -n "$1" link add name "$2" type veth peer name "$4" netns "$3"
}

# Offloads off: af_packet otherwise gets partial checksums and GSO super-frames and TCP stalls
# (shared/DPDK-NOTES.md item 9). Some features are fixed on veth; ethtool's complaints about
# those are not errors.
_lab_offloads_off() { # NS IF
    ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
    local left
    left=$(ip netns exec "$1" ethtool -k "$2" 2>/dev/null |
        grep -E '^(rx-checksumming|tx-checksumming|tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload): on' || true)
    [ -z "$left" ] || lab_die "offloads still on for $1:$2: $left"
}

_lab_sysctl() { # NS KEY=VALUE...
    local ns=$1; shift
    ip netns exec "$ns" sysctl -qw "$@" >/dev/null
}

# nftables ruleset of one ISP: ingress filtering (BCP 38) on the customer port `down`, with a
# named counter per kind of source so tests can tell which prefix went through which ISP.
#   from_pa1, from_pa2  packets from the router sourced in PA1 / PA2 (the foreign one is dropped)
#   from_link           link control: link-local or unspecified sources (ND, MLD reports sent
#                       before an interface has an address) and ND with hop limit 255 whatever
#                       its source (a router may answer NS from its global link address)
#   ingress_drop        every packet dropped by the filter (foreign PA, link prefix, anything)
#   to_pa1, to_pa2      return traffic this ISP sends down to the router
_lab_isp_nft() { # NS OWN_PREFIX
    local ns=$1 own=$2 pa1_verdict=accept pa2_verdict=accept
    if [ "$own" = "$LAB_PA1" ]; then pa2_verdict="jump filtered"; else pa1_verdict="jump filtered"; fi
    ip netns exec "$ns" nft -f - <<EOF
flush ruleset
table ip6 m6_isp {
    counter from_pa1 {}
    counter from_pa2 {}
    counter from_link {}
    counter ingress_drop {}
    counter to_pa1 {}
    counter to_pa2 {}

    chain filtered {
        counter name ingress_drop drop
    }

    chain ingress_filter {
        type filter hook prerouting priority filter; policy accept;
        iifname != "down" accept
        ip6 saddr { ::, fe80::/10 } counter name from_link accept
        ip6 hoplimit 255 icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } counter name from_link accept
        ip6 saddr $LAB_PA1 counter name from_pa1 $pa1_verdict
        ip6 saddr $LAB_PA2 counter name from_pa2 $pa2_verdict
        jump filtered
    }

    chain to_customer {
        type filter hook postrouting priority filter; policy accept;
        oifname != "down" accept
        ip6 daddr $LAB_PA1 counter name to_pa1
        ip6 daddr $LAB_PA2 counter name to_pa2
    }
}
EOF
}

# Bring the lab up from scratch (leftovers of an earlier run, even a crashed one, are removed
# first). Leaves the router namespace with its three interfaces up, IPv6 disabled on them (so
# only DPDK answers), and no process inside: the caller starts m6-dataplane there.
lab_up() {
    lab_require_root && lab_require_tools || return 1
    lab_down || return 1
    mkdir -p "$LAB_RUN_DIR"
    local ns
    for ns in "${LAB_NAMESPACES[@]}"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # No duplicate address detection anywhere, link-local addresses included: otherwise a
        # link brought back up waits 1-2 s for DAD before it can resolve neighbours again.
        _lab_sysctl "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done

    _lab_veth "$LAB_NS_RTR" lan "$LAB_NS_LAN" eth0
    _lab_veth "$LAB_NS_RTR" isp1 "$LAB_NS_ISP1" down
    _lab_veth "$LAB_NS_RTR" isp2 "$LAB_NS_ISP2" down
    _lab_veth "$LAB_NS_ISP1" up "$LAB_NS_INET" isp1
    _lab_veth "$LAB_NS_ISP2" up "$LAB_NS_INET" isp2

    # Router: the kernel keeps out of IPv6 (no addresses, no ND, no forwarding); DPDK's
    # af_packet PMD owns the interfaces. IPv4 is never configured anywhere.
    local ifc
    for ifc in lan isp1 isp2; do
        _lab_sysctl "$LAB_NS_RTR" "net.ipv6.conf.$ifc.disable_ipv6=1"
        _lab_offloads_off "$LAB_NS_RTR" "$ifc"
        ip -n "$LAB_NS_RTR" link set dev "$ifc" up
    done

    # Legacy host: one address from each PA, default route via the router's PA1 LAN address.
    _lab_sysctl "$LAB_NS_LAN" net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
        net.ipv6.conf.eth0.accept_ra=0
    _lab_offloads_off "$LAB_NS_LAN" eth0
    ip -n "$LAB_NS_LAN" link set dev eth0 up
    ip -n "$LAB_NS_LAN" -6 addr add "$LAB_HOST_PA1/64" dev eth0 nodad
    ip -n "$LAB_NS_LAN" -6 addr add "$LAB_HOST_PA2/64" dev eth0 nodad
    ip -n "$LAB_NS_LAN" -6 route add default via "$LAB_RTR_LAN_PA1" dev eth0

    # ISPs: customer port `down` (link 2001:db8:ffNN::/64, ISP ::1, router ::2), upstream `up`
    # towards the Internet server (2001:db8:feNN::/64, ISP ::1, inet ::2).
    local n pa isp_ns
    for n in 1 2; do
        if [ "$n" = 1 ]; then pa=$LAB_PA1; isp_ns=$LAB_NS_ISP1; else pa=$LAB_PA2; isp_ns=$LAB_NS_ISP2; fi
        # keep_addr_on_down: the customer link keeps its address while the demo cuts it.
        _lab_sysctl "$isp_ns" net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.accept_ra=0 \
            net.ipv6.conf.down.keep_addr_on_down=1
        _lab_offloads_off "$isp_ns" down
        _lab_offloads_off "$isp_ns" up
        ip -n "$isp_ns" link set dev down up
        ip -n "$isp_ns" link set dev up up
        ip -n "$isp_ns" -6 addr add "2001:db8:ff0$n::1/64" dev down nodad
        ip -n "$isp_ns" -6 addr add "2001:db8:fe0$n::1/64" dev up nodad
        ip -n "$isp_ns" -6 route add "$pa" via "2001:db8:ff0$n::2" dev down
        ip -n "$isp_ns" -6 route add "$LAB_SERVER_PREFIX" via "2001:db8:fe0$n::2" dev up
        _lab_isp_nft "$isp_ns" "$pa"

        _lab_offloads_off "$LAB_NS_INET" "isp$n"
        ip -n "$LAB_NS_INET" link set dev "isp$n" up
        ip -n "$LAB_NS_INET" -6 addr add "2001:db8:fe0$n::2/64" dev "isp$n" nodad
        ip -n "$LAB_NS_INET" -6 route add "$pa" via "2001:db8:fe0$n::1" dev "isp$n"
    done

    # The Internet side: a server address on lo, reachable through either ISP; PA1 returns
    # through ISP1 and PA2 through ISP2 (each ISP routes only its own prefix).
    _lab_sysctl "$LAB_NS_INET" net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.accept_ra=0
    ip -n "$LAB_NS_INET" -6 addr add "$LAB_SERVER/128" dev lo nodad
    ip netns exec "$LAB_NS_INET" iperf3 -s -B "$LAB_SERVER" -p "$LAB_IPERF_PORT" -D \
        -I "$LAB_RUN_DIR/iperf3.pid" --logfile "$LAB_RUN_DIR/iperf3.log" 9>&-

    # Self-check of the part that does not involve the router: each ISP reaches the server,
    # and the server listens.
    for isp_ns in "$LAB_NS_ISP1" "$LAB_NS_ISP2"; do
        ip netns exec "$isp_ns" ping -6 -c 1 -W 2 -q "$LAB_SERVER" >/dev/null ||
            lab_die "$isp_ns cannot reach the server $LAB_SERVER" || return 1
    done
    lab_wait_listen "$LAB_NS_INET" "$LAB_IPERF_PORT" 5 || return 1
    lab_nft_reset
}

# ---------------------------------------------------------------------------------------------
# Operating the lab

# Wait until a TCP port listens in a namespace (seconds, default 5).
lab_wait_listen() { # NS PORT [SECONDS]
    local ns=$1 port=$2 secs=${3:-5} i
    for ((i = 0; i < secs * 10; i++)); do
        if ip netns exec "$ns" ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.1
    done
    lab_die "nothing listens on TCP port $port in $ns after ${secs}s"
}

# Packets counted so far by a named nftables counter of an ISP namespace (isp1/isp2 or the
# namespace name). Example: lab_nft_packets isp2 from_pa1
lab_nft_packets() { # ISP COUNTER
    local ns=$1
    case "$ns" in isp1 | isp2) ns="m6-$ns" ;; esac
    ip netns exec "$ns" nft list counter ip6 m6_isp "$2" |
        sed -n 's/.*packets \([0-9][0-9]*\) bytes.*/\1/p'
}

# Zero every ISP counter (the demo does it before each step to show that step's packets).
lab_nft_reset() {
    ip netns exec "$LAB_NS_ISP1" nft reset counters table ip6 m6_isp >/dev/null
    ip netns exec "$LAB_NS_ISP2" nft reset counters table ip6 m6_isp >/dev/null
}

# All ISP counters on one line each: "<isp> <counter> <packets>", machine-readable.
lab_isp_counts() {
    local isp c
    for isp in isp1 isp2; do
        for c in from_pa1 from_pa2 from_link ingress_drop to_pa1 to_pa2; do
            printf '%s %s %s\n' "$isp" "$c" "$(lab_nft_packets "$isp" "$c")"
        done
    done
}

# Cut or restore an ISP's access link by setting the ISP-side veth end down or up; the router
# sees the carrier of its own end go away. Taking a link down makes the kernel forget the routes
# through it, so bringing it up re-adds the ISP's route to its customer prefix.
lab_isp_link() { # isp1|isp2 up|down
    local n pa
    case "$1" in
    isp1) n=1 pa=$LAB_PA1 ;;
    isp2) n=2 pa=$LAB_PA2 ;;
    *) lab_die "lab_isp_link: no ISP named $1"; return 1 ;;
    esac
    case "$2" in
    down) ip -n "m6-$1" link set dev down down ;;
    up)
        ip -n "m6-$1" link set dev down up
        ip -n "m6-$1" -6 route replace "$pa" via "2001:db8:ff0$n::2" dev down
        ;;
    *) lab_die "lab_isp_link: state must be up or down"; return 1 ;;
    esac
}

# Ping the server from the LAN host with a given source address; prints ping's output.
lab_ping() { # SRC [COUNT] [extra ping args...]
    local src=$1 count=${2:-3}
    shift 2 || shift $#
    ip netns exec "$LAB_NS_LAN" ping -6 -n -c "$count" -i 0.2 -W 1 -I "$src" "$@" "$LAB_SERVER"
}

# Wait until the server answers a ping from SRC (the first packets may be spent on neighbour
# discovery, or draw an ICMPv6 error while the router is still noticing a link change, which
# ends a ping at once: so ping again until SECONDS have passed); non-zero if it never answers.
lab_ping_wait() { # SRC [SECONDS]
    local src=$1 secs=${2:-5} deadline
    deadline=$(($(date +%s%N) / 1000000 + secs * 1000))
    while [ $(($(date +%s%N) / 1000000)) -lt "$deadline" ]; do
        ip netns exec "$LAB_NS_LAN" ping -6 -n -c 1 -W 1 -I "$src" "$LAB_SERVER" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# TCP throughput from the LAN host to the server with a given source address (iperf3, BYTES
# like 10M). Prints iperf3's report.
lab_iperf() { # SRC [BYTES]
    ip netns exec "$LAB_NS_LAN" timeout 30 iperf3 -6 -c "$LAB_SERVER" -p "$LAB_IPERF_PORT" \
        -B "$1" -n "${2:-10M}" --connect-timeout 3000 -f m
}

# Print a one-screen summary of namespaces, links, addresses, processes and ISP counters.
# Returns 0 if the whole lab is up and healthy, 3 if it is down, 4 if it is partly there (a
# cut ISP link counts as degraded).
lab_status() {
    local ns up=0
    for ns in "${LAB_NAMESPACES[@]}"; do lab_ns_exists "$ns" && up=$((up + 1)); done
    if [ "$up" -eq 0 ]; then
        echo "lab is down (no m6-* namespaces)"
        return 3
    fi
    for ns in "${LAB_NAMESPACES[@]}"; do
        if ! lab_ns_exists "$ns"; then
            echo "== $ns: MISSING"
            continue
        fi
        echo "== $ns"
        { ip -n "$ns" -br link show | grep -v '^lo ' | sed 's/@[^ ]*//; s/^/   /'; } || true
        { ip -n "$ns" -6 -br addr show scope global | sed 's/@[^ ]*//; s/^/   /'; } || true
        local pids
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        if [ -n "$pids" ]; then
            # shellcheck disable=SC2086
            { ps -o pid=,comm= -p $pids 2>/dev/null | sed 's/^ */   process /'; } || true
        fi
    done
    # Health: every interface of the plan present and up, filters loaded, server listening.
    local problems=() want nsif
    for want in m6-rtr:lan m6-rtr:isp1 m6-rtr:isp2 m6-lan:eth0 m6-isp1:down m6-isp1:up \
        m6-isp2:down m6-isp2:up m6-inet:isp1 m6-inet:isp2; do
        ns=${want%%:*} nsif=${want#*:}
        if ! lab_ns_exists "$ns" || ! ip -n "$ns" link show dev "$nsif" >/dev/null 2>&1; then
            problems+=("$ns:$nsif missing")
        elif ! ip -n "$ns" link show dev "$nsif" | grep -q 'LOWER_UP'; then
            problems+=("$ns:$nsif has no carrier")
        fi
    done
    for ns in "$LAB_NS_ISP1" "$LAB_NS_ISP2"; do
        lab_ns_exists "$ns" && ip netns exec "$ns" nft list table ip6 m6_isp >/dev/null 2>&1 ||
            problems+=("$ns: ingress filter (table ip6 m6_isp) missing")
    done
    lab_ns_exists "$LAB_NS_INET" &&
        ip netns exec "$LAB_NS_INET" ss -Htln "sport = :$LAB_IPERF_PORT" 2>/dev/null | grep -q . ||
        problems+=("$LAB_NS_INET: no iperf3 server on port $LAB_IPERF_PORT")
    if [ ${#problems[@]} -eq 0 ]; then
        echo "== ISP counters (packets)"
        lab_isp_counts | sed 's/^/   /'
        echo "lab is up"
        return 0
    fi
    printf 'lab is DEGRADED:\n'
    printf '   %s\n' "${problems[@]}"
    return 4
}
