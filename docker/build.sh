#!/usr/bin/env bash
# Builds the m6-dataplane and m6-controlplane images from docker/Dockerfile with podman
# (`--isolation=chroot`: no Docker engine or daemon needed), then runs the built binaries
# inside them by chroot: `--version`, and `--check` on the shipped configurations.
#
# Where no registry is reachable, the Debian 12 base is made with debootstrap and the Rust
# toolchain image from this host's rustup toolchain; with a registry, pass
#   M6_BASE=docker.io/library/debian:12 M6_RUST_IMAGE=docker.io/library/rust:1-bookworm
# Run by hand, as root, from anywhere (not part of make test: it takes minutes).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf 'docker/build.sh: %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || { say "run as root (podman image mount, debootstrap)"; exit 1; }
need=()
for t in podman:podman debootstrap:debootstrap; do
    command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# overlay where the kernel has it (layers share files); vfs elsewhere (every layer a full
# copy: tens of GB for the build stage).
if [ -z "${STORAGE_DRIVER:-}" ]; then
    if grep -qw overlay /proc/filesystems; then STORAGE_DRIVER=overlay; else STORAGE_DRIVER=vfs; fi
fi
export STORAGE_DRIVER
podman=(podman --storage-driver "$STORAGE_DRIVER")

base=${M6_BASE:-localhost/m6-debian12}
if [ -z "${M6_BASE:-}" ] && ! "${podman[@]}" image exists "$base"; then
    root=$(mktemp -d /var/tmp/m6-debian12.XXXXXX)
    say "making $base with debootstrap (Debian 12, minbase) in $root"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
    # The image's apt sources: bookworm and its security updates.
    printf 'deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
        >"$root/etc/apt/sources.list"
    tar -C "$root" -c . | "${podman[@]}" import - "$base" >/dev/null
    rm -rf "$root"
fi

rust=${M6_RUST_IMAGE:-localhost/m6-rust}
if [ -z "${M6_RUST_IMAGE:-}" ] && ! "${podman[@]}" image exists "$rust"; then
    toolchain=$(rustup default | awk '{print $1}')
    [ -n "$toolchain" ] || { say "no default rustup toolchain"; exit 1; }
    rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
    cargo_home=${CARGO_HOME:-$HOME/.cargo}
    say "making $rust from this host's toolchain $toolchain"
    tmp=$(mktemp -d /var/tmp/m6-rust.XXXXXX)
    mkdir -p "$tmp/usr/local/cargo/bin" "$tmp/usr/local/rustup/toolchains"
    cp -a "$cargo_home/bin/rustup" "$tmp/usr/local/cargo/bin/"
    for p in cargo rustc rustdoc cargo-clippy cargo-fmt rustfmt; do
        ln -s rustup "$tmp/usr/local/cargo/bin/$p"
    done
    cp -a "$rustup_home/toolchains/$toolchain" "$tmp/usr/local/rustup/toolchains/"
    printf 'default_toolchain = "%s"\nversion = "12"\n' "$toolchain" >"$tmp/usr/local/rustup/settings.toml"
    tar -C "$tmp" -c . | "${podman[@]}" import - "$rust" >/dev/null
    rm -rf "$tmp"
fi

# The crates, vendored into the build context: the build inside the image needs no network
# (a TLS-inspecting proxy's certificate, say, is not trusted in there).
say "vendoring the crates into docker/.vendor (cargo vendor)"
rm -rf "$repo/docker/.vendor"
mkdir -p "$repo/docker/.vendor"
(cd "$repo" && cargo vendor --locked --quiet docker/.vendor/crates >/dev/null)
cat >"$repo/docker/.vendor/config.toml" <<'TOML'
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "docker/.vendor/crates"
TOML

for target in dataplane controlplane; do
    say "building m6-$target (podman build --isolation=chroot, target $target)"
    "${podman[@]}" build --isolation=chroot -f "$repo/docker/Dockerfile" --target "$target" \
        --build-arg BASE="$base" --build-arg RUST_IMAGE="$rust" -t "m6-$target" "$repo"
done

say "the built binaries, run inside their images by chroot:"
run_in() { # IMAGE COMMAND...
    local image=$1 mnt
    shift
    mnt=$("${podman[@]}" image mount "$image")
    # /proc and /sys for the CPU list and hugepage checks; /dev for /dev/null.
    mount --bind /proc "$mnt/proc" && mount --bind /sys "$mnt/sys" && mount --bind /dev "$mnt/dev"
    local rc=0
    chroot "$mnt" "$@" || rc=$?
    umount "$mnt/dev" "$mnt/sys" "$mnt/proc"
    "${podman[@]}" image unmount "$image" >/dev/null
    return $rc
}
set -x
run_in m6-dataplane /usr/local/bin/m6-dataplane --version
run_in m6-dataplane /usr/local/bin/m6-dataplane --check --config /etc/m6/dataplane.yaml
run_in m6-controlplane /usr/local/bin/m6-controlplane --version
run_in m6-controlplane /usr/local/bin/m6-controlplane --check --config /etc/m6/controlplane.yaml
run_in m6-controlplane /usr/local/bin/m6ctl --version
run_in m6-controlplane /usr/local/bin/m6ctl config check /etc/m6/controlplane.yaml
set +x
"${podman[@]}" images --filter reference=m6-dataplane --filter reference=m6-controlplane
say "done"
