#!/usr/bin/env bash
# Make sure a Docker daemon answers; start one (Debian's docker.io) when none does. Idempotent:
# a daemon that already answers is left alone, whoever started it.
#
# The daemon we start is set up for sandbox's contract:
#   --userns-remap  root inside a container is uid 1000000000 outside, the same id the nsjail
#                   backend maps the sandbox's root to (MAPPED_ROOT_ID), so a session's upper dir
#                   has one owner whichever backend wrote it;
#   --bridge=none   sandbox containers never get a network (network none), so the daemon neither
#                   creates docker0 nor touches the host's iptables.
# Usage: scripts/dockerd.sh [--stop]      --stop ends a daemon this script started.
# Env:   SANDBOX_DOCKERD_LOG (default /var/log/sandbox-dockerd.log)
set -euo pipefail

REMAP_USER=sandbox-remap
REMAP_BASE=1000000000
REMAP_COUNT=65536
PIDFILE=/var/run/sandbox-dockerd.pid
LOG=${SANDBOX_DOCKERD_LOG:-/var/log/sandbox-dockerd.log}

answers() {
  # The Debian daemon (20.10) speaks API 1.41; a newer client on PATH negotiates down.
  timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

if [ "${1:-}" = "--stop" ]; then
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill "$(cat "$PIDFILE")"
    for _ in $(seq 100); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
    rm -f "$PIDFILE"
    echo "sandbox dockerd: stopped" >&2
  fi
  exit 0
fi

if answers; then
  echo "sandbox dockerd: a daemon already answers" >&2
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "sandbox dockerd: no Docker daemon answers and starting one needs root" \
       "(sudo scripts/dockerd.sh, or: sudo systemctl start docker)" >&2
  exit 125
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "sandbox dockerd: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The remap user only names the subordinate range; it never logs in or owns files.
if ! getent passwd "$REMAP_USER" >/dev/null; then
  useradd --system --no-create-home --shell /usr/sbin/nologin "$REMAP_USER"
fi
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  if ! grep -q "^$REMAP_USER:$REMAP_BASE:$REMAP_COUNT\$" "$f"; then
    sed -i "/^$REMAP_USER:/d" "$f"
    echo "$REMAP_USER:$REMAP_BASE:$REMAP_COUNT" >> "$f"
  fi
done

# A stale socket or pid file from a killed daemon would make the new one refuse to start.
if [ -f "$PIDFILE" ] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  rm -f "$PIDFILE"
fi
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi

echo "sandbox dockerd: starting dockerd (log: $LOG)" >&2
# setsid + nohup: the daemon must outlive this script and the CI step that ran it.
setsid nohup dockerd \
  --userns-remap="$REMAP_USER" \
  --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
  --host=unix:///var/run/docker.sock \
  >>"$LOG" 2>&1 </dev/null &
echo $! > "$PIDFILE"

for _ in $(seq 300); do
  if answers; then
    echo "sandbox dockerd: ready" >&2
    exit 0
  fi
  if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
echo "sandbox dockerd: the daemon did not come up; last lines of $LOG:" >&2
tail -20 "$LOG" >&2
exit 125
