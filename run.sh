#!/usr/bin/env bash
# pitfalls: install whatever is missing, then run the catalog or the test suite.
#
#   ./run.sh catalog [pitfalls run options]   every scenario, results/latest.json + reports
#   ./run.sh test    [pytest options]         the type check (mypy), then the harness tests and every scenario
#   ./run.sh setup                            only install what is missing
#
# Idempotent: each step checks first and is skipped when its inputs have not changed.
# Runs as root (CI, this machine kind) or with sudo for the system packages.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
WORKERS=${PITFALLS_WORKERS:-auto}  # auto: from cores and memory (harness.shard.default_workers), after set-up
T0=$(date +%s)

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 2; }
stamp_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi; }

# apt_install COMMAND:PACKAGE ...  installs PACKAGE only when COMMAND is not on PATH, so that a
# tool installed another way (e.g. node and npm from the machine image) is left alone.
apt_install() {
  local missing=() pair
  for pair in "$@"; do command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_system() {
  local t=$(date +%s)
  command -v apt-get >/dev/null || die "this set-up needs a Debian-like system with apt-get"
  apt_install chromium:chromium node:nodejs npm:npm nginx:nginx-light
  bash "$ROOT/scripts/setup-docker.sh"
  bash "$ROOT/scripts/setup-arm64.sh"
  say "system packages ready ($(( $(date +%s) - t ))s)"
}

setup_python() {
  local t=$(date +%s) want have
  command -v python3 >/dev/null || die "python3 is missing"
  python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "Python 3.11 is required (found $(python3 --version 2>&1)); TensorFlow 2.19 wheels pin it"
  [ -x "$PY" ] || { say "creating $VENV"; python3 -m venv "$VENV"; }
  want=$(stamp_of requirements.lock pyproject.toml)
  have=$(cat "$VENV/.pitfalls-stamp" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    say "installing Python packages from requirements.lock (about a minute on a fresh machine)"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -r requirements.lock
    "$PY" -m pip install -q --no-deps -e .
    echo "$want" > "$VENV/.pitfalls-stamp"
  fi
  say "Python environment ready ($(( $(date +%s) - t ))s)"
}

setup_node() {
  local t=$(date +%s) want have
  want=$(stamp_of package-lock.json)
  have=$(cat node_modules/.pitfalls-stamp 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    say "installing npm packages from package-lock.json"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    echo "$want" > node_modules/.pitfalls-stamp
  fi
  say "npm packages ready ($(( $(date +%s) - t ))s)"
}

setup_artifacts() {
  # The serving images and the arm64 root file system: cached by a hash of their inputs.
  "$PY" -m harness.prebuild || die "building the cached images failed (see the lines above)"
}

setup() {
  setup_system
  setup_python
  setup_node
  setup_artifacts
  say "all set up in $(( $(date +%s) - T0 ))s"
}

resolve_workers() {
  # one xdist worker per core, as many as fit in memory (a worker with TF, Chromium and LiteRT
  # workers peaked at 1.8 GiB RSS; see docs/cli.md); PITFALLS_WORKERS=N overrides
  if [ "$WORKERS" = auto ]; then
    WORKERS=$("$PY" -c 'from harness.shard import default_workers; print(default_workers())')
  fi
  say "pytest-xdist workers: $WORKERS"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  catalog)
    setup
    resolve_workers
    "$VENV/bin/pitfalls" run -n "$WORKERS" "$@"
    ;;
  test)
    setup
    # mypy over harness/ and every scenario file (one summary line); any error fails before pytest runs
    "$PY" -m harness.typecheck || { say "the type check failed (errors above); pytest was not run"; exit 1; }
    resolve_workers
    t=$(date +%s)
    set +e
    "$PY" -m pytest -n "$WORKERS" --durations=15 "$@"
    rc=$?
    set -e
    say "tests finished in $(( $(date +%s) - t ))s (whole run $(( $(date +%s) - T0 ))s), exit code $rc"
    exit $rc
    ;;
  *)
    die "usage: ./run.sh catalog|test|setup [options] (unknown command '${cmd}')" ;;
esac
