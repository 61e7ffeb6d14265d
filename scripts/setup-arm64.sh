#!/usr/bin/env bash
# Prepare this machine for the emulated arm64 LiteRT device (harness/targets/litert/arm64.py;
# its root file system is the recipe harness/environments/arm64_rootfs.py).
#
# Idempotent; run as root.  Installs debootstrap and qemu-user-static from Debian when they are
# missing, mounts binfmt_misc when it is not mounted, and registers qemu for aarch64 ELF files
# with the "F" (fix binary) flag so that the interpreter also works inside a chroot.
#
#   scripts/setup-arm64.sh                  system part only (packages, binfmt)
#   scripts/setup-arm64.sh --build-rootfs   also build the cached arm64 root file system now
#                                           (about 2 minutes, needs the Debian mirror and PyPI),
#                                           so that a later test session needs no network.
#                                           Uses $PITFALLS_PYTHON, default <repo>/.venv/bin/python.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_ROOTFS=0
for arg in "$@"; do
    case "$arg" in
        --build-rootfs) BUILD_ROOTFS=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) printf 'setup-arm64: unknown option %s\n' "$arg" >&2; exit 2 ;;
    esac
done

BINFMT_DIR=/proc/sys/fs/binfmt_misc
QEMU_CONF=/usr/lib/binfmt.d/qemu-aarch64.conf

log() { printf 'setup-arm64: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot and binfmt_misc need it)"

install_packages() {
    local missing=()
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    [ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
    if [ "${#missing[@]}" -eq 0 ]; then
        log "debootstrap and qemu-user-static already installed"
        return
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

mount_binfmt_misc() {
    if [ -e "$BINFMT_DIR/register" ]; then
        return
    fi
    log "mounting binfmt_misc on $BINFMT_DIR"
    mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" \
        || die "cannot mount binfmt_misc (a container without CAP_SYS_ADMIN cannot; run on a VM or a privileged container)"
}

register_aarch64() {
    if [ -e "$BINFMT_DIR/qemu-aarch64" ]; then
        log "binfmt for aarch64 already registered: $(head -n1 "$BINFMT_DIR/qemu-aarch64")"
        return
    fi
    [ -r "$QEMU_CONF" ] || die "$QEMU_CONF missing; is qemu-user-static installed?"
    local line
    line=$(grep -v '^#' "$QEMU_CONF" | grep -m1 ':qemu-aarch64:')
    local interpreter
    interpreter=$(printf '%s' "$line" | awk -F: '{print $(NF-1)}')
    [ -x "$interpreter" ] || die "interpreter $interpreter from $QEMU_CONF is missing"
    log "registering aarch64 binfmt ($interpreter, flags OPF)"
    printf '%s' "$line" > "$BINFMT_DIR/register" \
        || die "writing $BINFMT_DIR/register failed"
}

check_aarch64() {
    grep -q '^enabled' "$BINFMT_DIR/status" || die "binfmt_misc is disabled ($BINFMT_DIR/status)"
    grep -q '^enabled' "$BINFMT_DIR/qemu-aarch64" || die "aarch64 binfmt entry is disabled"
    grep -q '^flags:.*F' "$BINFMT_DIR/qemu-aarch64" \
        || die "aarch64 binfmt entry lacks the F flag; a chroot cannot find the interpreter (remove it: echo -1 > $BINFMT_DIR/qemu-aarch64, then rerun)"
    log "ready: $(/usr/bin/qemu-aarch64-static --version | head -n1)"
}

build_rootfs() {
    local python=${PITFALLS_PYTHON:-$ROOT/.venv/bin/python}
    [ -x "$python" ] || die "no Python at $python to build the root file system (set PITFALLS_PYTHON)"
    log "building (or finding cached) the arm64 root file system"
    (cd "$ROOT" && "$python" -c 'from harness.environments.arm64_rootfs import ensure_arm64_rootfs; print(ensure_arm64_rootfs())')
}

install_packages
mount_binfmt_misc
register_aarch64
check_aarch64
if [ "$BUILD_ROOTFS" -eq 1 ]; then
    build_rootfs
fi
