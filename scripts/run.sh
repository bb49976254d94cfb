#!/usr/bin/env bash
# Upgrades the database, seeds the demo data once, and serves the API with gunicorn.
set -euo pipefail
cd "$(dirname "$0")/.."
export FLASK_APP=wsgi
BIN=.venv/bin
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
WORKERS=${WEB_WORKERS:-2}

case "${DATABASE_URL:-sqlite}" in
  sqlite*) scripts/ensure-spatialite.sh ;;
esac

"$BIN/flask" db upgrade
"$BIN/flask" seed-demo
echo
echo "API docs:     http://$HOST:$PORT/api/v1/docs"
echo "OpenAPI spec: http://$HOST:$PORT/api/v1/openapi.json"
echo "Health:       http://$HOST:$PORT/healthz  http://$HOST:$PORT/readyz"
echo
# gunicorn.conf.py redacts api_key values, tokens and phone numbers from the access and error logs.
exec "$BIN/gunicorn" --config gunicorn.conf.py --workers "$WORKERS" --bind "$HOST:$PORT" --access-logfile - wsgi:app
