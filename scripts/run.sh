#!/usr/bin/env bash
# Upgrades the database, seeds the demo data once, and serves the API with gunicorn beside the escalation sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
export FLASK_APP=wsgi
BIN=.venv/bin
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
WORKERS=${WEB_WORKERS:-2}
# The embedded default escalates without cron: `flask escalate` sweeps every ESCALATE_EVERY_S seconds next to
# gunicorn and stops with it. 0 leaves it out (production runs `flask escalate` from cron or a systemd timer).
ESCALATE_EVERY_S=${ESCALATE_EVERY_S:-60}
# gunicorn's workers and the sweep write their metrics here; GET /metrics (with METRICS_TOKEN set) sums them.
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-${INSTANCE_PATH:-instance}/prometheus}
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
# With LOG_FORMAT=json the app writes one JSON line per request itself; gunicorn's text access log would double it.
ACCESS_LOG=(--access-logfile -)
if [ "${LOG_FORMAT:-text}" = json ]; then
  ACCESS_LOG=()
fi

case "${DATABASE_URL:-sqlite}" in
  sqlite*) scripts/ensure-spatialite.sh ;;
esac

"$BIN/flask" db upgrade
"$BIN/flask" seed-demo
echo
if [ -f app/console_dist/index.html ]; then
  echo "Console:      http://$HOST:$PORT/console/  (demo: district_supervisor / \$DEMO_PASSWORD, default grid-demo-2026)"
else
  echo "Console:      not built: run \`make console\` (make run builds it)"
fi
echo "API docs:     http://$HOST:$PORT/api/v1/docs"
echo "OpenAPI spec: http://$HOST:$PORT/api/v1/openapi.json"
echo "Health:       http://$HOST:$PORT/healthz  http://$HOST:$PORT/readyz"
if [ "$ESCALATE_EVERY_S" != 0 ]; then
  echo "Escalation:   flask escalate --every $ESCALATE_EVERY_S (runs beside the server, stops with it)"
fi
echo

pids=()
stop() {
  trap - EXIT INT TERM
  # SIGTERM: gunicorn shuts its workers down gracefully, the sweep dies between (or inside, rolled back) batches.
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

# gunicorn.conf.py redacts api_key values, tokens and phone numbers from the access and error logs.
"$BIN/gunicorn" --config gunicorn.conf.py --workers "$WORKERS" --bind "$HOST:$PORT" ${ACCESS_LOG[@]+"${ACCESS_LOG[@]}"} wsgi:app &
pids+=($!)
if [ "$ESCALATE_EVERY_S" != 0 ]; then
  "$BIN/flask" escalate --every "$ESCALATE_EVERY_S" &
  pids+=($!)
fi
# Whichever ends first (a crash, a signal of its own) ends the other: no half-running service, no orphan.
set +e
wait -n "${pids[@]}"
status=$?
set -e
exit "$status"
