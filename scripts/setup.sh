#!/usr/bin/env bash
# Idempotent host setup for building and testing the M6 border router.
# Installs missing Debian packages, reserves 2 MiB hugepages and mounts hugetlbfs.
# Quiet when there is nothing to do; says what it did otherwise.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: must run as root (installs packages, reserves hugepages)" >&2
    exit 1
fi

# Debian packages the build and the tests need.
PACKAGES=(
    dpdk libdpdk-dev pkg-config libclang-dev clang   # dpdk-bindings (bindgen + C shim)
    dpdk-dev                                         # dpdk-testpmd: the vhost-user backend in the virtio test
    iproute2 ethtool nftables iputils-ping procps    # lab namespaces and ISP ingress filters
    iperf3 netcat-openbsd                            # TCP transfer through the router
    knot knot-dnsutils                               # authoritative DNS for verification tests
    python3-scapy                                    # independent decoder of golden vectors
    tcpdump                                          # captures of the M6 handshake in the lab
    ndisc6                                           # rdisc6: what a host reads in our RAs
    prometheus curl                                  # promtool on live scrapes; the demo's Prometheus
)
HUGEPAGES_WANTED=${M6_HUGEPAGES:-512}   # 512 x 2 MiB = 1 GiB
HUGE_MOUNT=/dev/hugepages

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: no Rust toolchain (cargo) on PATH; install one with rustup first" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Knot and Prometheus are started by the tests and the demo on their own configs and
# addresses; the packaged services stay off (checked every run, so a reboot or a re-enable
# cannot bring them back unnoticed).
for svc in knot:knotd prometheus:prometheus; do
    name=${svc%%:*} proc=${svc#*:}
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        if systemctl is-enabled --quiet "$name" 2>/dev/null || systemctl is-active --quiet "$name" 2>/dev/null; then
            systemctl disable --now "$name" >/dev/null 2>&1 || true
            echo "setup: disabled the packaged $name service (tests run their own)"
        fi
    elif [ -x "/etc/init.d/$name" ] && pgrep -x "$proc" >/dev/null 2>&1; then
        "/etc/init.d/$name" stop >/dev/null 2>&1 || true
        echo "setup: stopped the packaged $name service (tests run their own)"
    fi
done

nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
have=$(cat "$nr")
if [ "$have" -lt "$HUGEPAGES_WANTED" ]; then
    echo "$HUGEPAGES_WANTED" > "$nr"
    got=$(cat "$nr")
    echo "setup: reserved 2 MiB hugepages: $have -> $got"
    if [ "$got" -lt "$HUGEPAGES_WANTED" ]; then
        echo "setup: could only reserve $got of $HUGEPAGES_WANTED hugepages" >&2
        exit 1
    fi
fi

if ! grep -qs " $HUGE_MOUNT hugetlbfs " /proc/mounts; then
    mkdir -p "$HUGE_MOUNT"
    mount -t hugetlbfs -o pagesize=2M nodev "$HUGE_MOUNT"
    echo "setup: mounted hugetlbfs on $HUGE_MOUNT"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "setup: installing cargo-nextest 0.9 (from crates.io, a few minutes on 2 cores)"
    cargo install --locked --quiet cargo-nextest@0.9.143
fi
