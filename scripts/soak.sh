#!/usr/bin/env bash
# make soak: PostGIS, a private Redis, two gunicorn hosts behind HAProxy and two escalation sweepers on loopback;
# clients file reports, act on cases and upload photos while PostgreSQL restarts, a host is SIGKILLed and Redis
# restarts; then every acknowledged write is checked. Arguments go to bench/soak.py (--help). SOAK_TIMEOUT (600 s)
# bounds the whole run. Restarts the machine's PostgreSQL cluster for a few seconds: run it as root.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
TIMEOUT=${SOAK_TIMEOUT:-600}

if [ "$(id -u)" != 0 ]; then
  echo "make soak restarts PostgreSQL (pg_ctlcluster): run it as root" >&2
  exit 2
fi
need=()
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if ((${#need[@]})); then
  echo "installing ${need[*]} with apt-get ..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2 || exit 1
fi
scripts/ensure-postgis.sh >/dev/null || exit 1

driver=
cleanup() {
  trap - EXIT INT TERM
  # The driver stops what it started in its own finally; this is the guard for a driver that was killed outright.
  if [ -n "$driver" ] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$driver" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$driver" 2>/dev/null
  fi
  # Never leave the machine's PostgreSQL down, whatever happened in between.
  if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    echo "soak: starting PostgreSQL again" >&2
    pg_ctlcluster --skip-systemctl-redirect 15 main start
  fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# timeout sends SIGTERM, which the driver turns into its clean-up (children, the soak database), then SIGKILL.
timeout --kill-after=60 "$TIMEOUT" "$BIN/python" -m bench.soak "$@" &
driver=$!
wait "$driver"
status=$?
driver=
exit "$status"
