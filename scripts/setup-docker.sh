#!/usr/bin/env bash
# Make a Docker engine answer on this machine, and make sure debootstrap is installed.
#
# Idempotent: when `docker info` already answers, only debootstrap is checked.
# Otherwise Debian's docker.io package is installed (as root, non-interactively) and dockerd
# is started in the background with the overlay2 storage driver.  No image is ever pulled:
# the serving images are built locally (see containers/README.md).
#
# Environment:
#   PITFALLS_DOCKERD_LOG      where dockerd writes its log (default /var/log/pitfalls-dockerd.log)
#   PITFALLS_DOCKERD_TIMEOUT  seconds to wait for `docker info` (default 60)
set -euo pipefail

LOG="${PITFALLS_DOCKERD_LOG:-/var/log/pitfalls-dockerd.log}"
TIMEOUT="${PITFALLS_DOCKERD_TIMEOUT:-60}"
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup-docker: $*" >&2; }
die() { say "error: $*"; exit 1; }

apt_updated=0
started_here=0
apt_install() {
    # apt_install PKG... : install Debian packages, running `apt-get update` once if needed.
    if [ "$apt_updated" = 0 ]; then
        say "apt-get update"
        apt-get update -qq </dev/null || die "apt-get update failed"
        apt_updated=1
    fi
    say "apt-get install $*"
    apt-get install -y -qq --no-install-recommends "$@" </dev/null \
        || die "apt-get install $* failed"
}

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root to install packages or start dockerd (try: sudo $0)"
}

engine_answers() { docker info >/dev/null 2>&1; }

ensure_debootstrap() {
    command -v debootstrap >/dev/null 2>&1 && return 0
    need_root
    apt_install debootstrap
}

ensure_docker_packages() {
    if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
        return 0
    fi
    need_root
    # docker.io brings dockerd, containerd, runc, iptables and the client.
    apt_install docker.io
}

start_dockerd() {
    need_root
    if pgrep -x dockerd >/dev/null 2>&1; then
        say "dockerd already running (pid $(pgrep -x dockerd | head -1)); waiting for it to answer"
        return 0
    fi
    mkdir -p "$(dirname "$LOG")"
    say "starting dockerd --storage-driver=overlay2 (log: $LOG)"
    # setsid: the daemon outlives this script and the shell that ran it.
    setsid dockerd --storage-driver=overlay2 >>"$LOG" 2>&1 </dev/null &
    started_here=1
}

show_log() {
    if [ "$started_here" = 1 ]; then
        say "last lines of $LOG:"
        tail -n 30 "$LOG" >&2 || true
    else
        say "dockerd was not started by this script: its log is wherever it was started"
    fi
}

wait_for_engine() {
    local waited=0
    until engine_answers; do
        if [ "$waited" -ge "$TIMEOUT" ]; then
            show_log
            say "\`docker info\` says: $(docker info 2>&1 | tail -n 3 | tr '\n' ' ')"
            die "dockerd did not answer \`docker info\` within ${TIMEOUT}s; see $LOG"
        fi
        if ! pgrep -x dockerd >/dev/null 2>&1; then
            show_log
            die "dockerd exited during start-up; see $LOG"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "engine answers after ${waited}s: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}' 2>/dev/null || echo '?')"
}

main() {
    ensure_debootstrap
    if engine_answers; then
        say "docker engine already answers; nothing to do"
        return 0
    fi
    ensure_docker_packages
    start_dockerd
    wait_for_engine
}

main "$@"
