#!/usr/bin/env bash
# Make sure a Docker engine answers, starting one on this machine if needed (CI and dev VMs).
#
#   scripts/docker_engine.sh start   exit 0 once `docker info` answers; if none answered, install
#                                    Debian's docker.io (as root, with apt-get) and start `dockerd`
#                                    in the background, log in $LSTM_AD_CACHE/dockerd.log
#   scripts/docker_engine.sh stop    stop the dockerd that `start` started (and nothing else)
#
# `start` prints `engine=running` (one was already answering: leave it alone) or `engine=started`
# (ours: the caller stops it when done). The pid of our dockerd is kept in $LSTM_AD_CACHE/dockerd.pid.
set -euo pipefail

CACHE="${LSTM_AD_CACHE:-/var/cache/lstm-ad}"
PIDFILE="$CACHE/dockerd.pid"
LOG="$CACHE/dockerd.log"

answers() { docker info > /dev/null 2>&1; }

install_engine() {
    if command -v dockerd > /dev/null && command -v docker > /dev/null; then
        return
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
        echo "No Docker engine answers and none can be installed here (needs root and apt-get):" \
             "install Docker, or set DOCKER_HOST to an engine." >&2
        exit 1
    fi
    echo "Installing Debian's docker.io (apt-get)..." >&2
    apt-get update -q > "$CACHE/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >> "$CACHE/apt.log" 2>&1 \
        || { tail -20 "$CACHE/apt.log" >&2; echo "apt-get install docker.io failed (log: $CACHE/apt.log)" >&2; exit 1; }
}

start() {
    mkdir -p "$CACHE"
    if answers; then
        echo "engine=running"
        return
    fi
    install_engine
    # setsid: the engine outlives this script but not as part of the caller's process group,
    # so a Ctrl-C in the caller does not kill it half-way; `stop` ends it by its pid.
    setsid dockerd > "$LOG" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 60); do
        if answers; then
            echo "engine=started"
            return
        fi
        if ! kill -0 "$(cat "$PIDFILE")" 2> /dev/null; then
            tail -20 "$LOG" >&2
            echo "dockerd exited at start (log: $LOG)" >&2
            exit 1
        fi
        sleep 1
    done
    tail -20 "$LOG" >&2
    echo "dockerd did not answer within 60 s (log: $LOG); stopping it" >&2
    stop
    exit 1
}

stop() {
    [ -f "$PIDFILE" ] || return 0
    local pid
    pid="$(cat "$PIDFILE")"
    rm -f "$PIDFILE"
    # Only our dockerd: the pid must still be a dockerd process.
    if [ "$(cat "/proc/$pid/comm" 2> /dev/null)" = dockerd ]; then
        kill -TERM "$pid"
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2> /dev/null || return 0
            sleep 1
        done
        echo "dockerd ($pid) did not stop within 30 s; killing it" >&2
        kill -KILL "$pid" 2> /dev/null || true
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
