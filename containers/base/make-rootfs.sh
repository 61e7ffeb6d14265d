#!/usr/bin/env bash
# Make the base root file system of the serving images as a tar file, with debootstrap.
#
#   make-rootfs.sh OUT_TAR MIRROR [SUITE]
#
# A minimal Debian (variant minbase) with python3 (3.11 in bookworm, matching cp311 wheels) and
# python3-venv (venv + ensurepip, so wheels install into /opt/venv without any network).
# Docs, man pages, locales and apt caches are removed to keep the image small.
# Needs root (debootstrap makes device nodes and chroots).  harness/images.py runs this script
# and imports the tar with `docker import`; the image tag carries a hash of this file and its
# arguments, so an edit here makes a new base image.
#
# Environment:
#   PITFALLS_DEBOOTSTRAP_CACHE  directory for downloaded .deb files, reused between runs
set -euo pipefail

OUT_TAR="${1:?usage: make-rootfs.sh OUT_TAR MIRROR [SUITE]}"
MIRROR="${2:?usage: make-rootfs.sh OUT_TAR MIRROR [SUITE]}"
SUITE="${3:-bookworm}"
PACKAGES="python3,python3-venv"
DEB_CACHE="${PITFALLS_DEBOOTSTRAP_CACHE:-}"

say() { echo "make-rootfs: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "error: debootstrap needs root"; exit 1; }
command -v debootstrap >/dev/null || { say "error: debootstrap missing (run scripts/setup-docker.sh)"; exit 1; }

ROOT="$(mktemp -d "${TMPDIR:-/tmp}/pitfalls-rootfs.XXXXXX")"
cleanup() {
    # A failed debootstrap can leave /proc or /sys mounted inside the chroot.
    for m in proc sys dev/pts dev; do umount -l "$ROOT/$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$ROOT"
}
trap cleanup EXIT

cache_args=()
if [ -n "$DEB_CACHE" ]; then
    mkdir -p "$DEB_CACHE"
    cache_args=(--cache-dir="$DEB_CACHE")
fi

say "debootstrap --variant=minbase --include=$PACKAGES $SUITE from $MIRROR"
if ! debootstrap --variant=minbase --include="$PACKAGES" "${cache_args[@]}" \
        "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1; then
    say "error: debootstrap failed; last lines of its log ($ROOT.log):"
    tail -n 20 "$ROOT.log" >&2
    [ -f "$ROOT/debootstrap/debootstrap.log" ] && tail -n 20 "$ROOT/debootstrap/debootstrap.log" >&2
    exit 1
fi
rm -f "$ROOT.log"

# Same sources as the host, so `apt-get` inside a debugging shell would look where we did.
echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"

# Trim: nothing here is needed to run Python.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
       "$ROOT"/usr/share/locale/* "$ROOT"/var/log/* "$ROOT"/tmp/* "$ROOT"/root/.cache
find "$ROOT/usr/lib/python3.11" -name __pycache__ -type d -prune -exec rm -rf {} +

say "python in the root file system: $(chroot "$ROOT" python3 --version 2>&1)"

tar --numeric-owner --xattrs -C "$ROOT" -cf "$OUT_TAR" .
say "wrote $OUT_TAR ($(du -h "$OUT_TAR" | cut -f1))"
