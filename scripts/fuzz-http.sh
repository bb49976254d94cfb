#!/usr/bin/env bash
# make fuzz-http: schemathesis's CLI over HTTP against gunicorn on a fresh, seeded PostGIS database, per role.
# FUZZ_EXAMPLES (default 10), FUZZ_SEED (default 1), FUZZ_PORT (default 8765), FUZZ_ROLES (default "admin 13800138000").
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
PORT=${FUZZ_PORT:-8765}
EXAMPLES=${FUZZ_EXAMPLES:-10}
SEED=${FUZZ_SEED:-1}
OUT=$(mktemp -d)
export FLASK_APP=wsgi APP_ENV=development INSTANCE_PATH="$OUT/instance" LOG_LEVEL=WARNING
# The fuzz's token must outlive the run; everything else is the development configuration.
export ACCESS_TOKEN_TTL_S=86400 DEMO_PASSWORD=${DEMO_PASSWORD:-grid-demo-2026}
PG=postgresql://postgres@127.0.0.1:5432

status=0
summary=()
for username in ${FUZZ_ROLES:-admin 13800138000}; do
  # A fresh database per role: one role's run (an admin deactivating accounts, say) never steers the next.
  db=grid_fuzz_http_$$_${username//[^a-z0-9]/_}
  psql "$PG/postgres" -qc "CREATE DATABASE $db" || exit 1
  export DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/$db"
  "$BIN/flask" db upgrade >/dev/null 2>&1 && "$BIN/flask" seed-demo >/dev/null || { status=1; continue; }
  "$BIN/gunicorn" --workers 2 --bind "127.0.0.1:$PORT" --error-logfile "$OUT/$username.server.log" wsgi:app &
  server=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
  token=$(curl -s -X POST "http://127.0.0.1:$PORT/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"username\": \"$username\", \"password\": \"$DEMO_PASSWORD\"}" \
    | "$BIN/python" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  # From the output folder: the CLI keeps its cache (.schemathesis/) in the working directory.
  (cd "$OUT" && "$BIN/schemathesis" run "http://127.0.0.1:$PORT/api/v1/openapi.json" \
    -H "Authorization: Bearer $token" --max-examples "$EXAMPLES" --seed "$SEED" --no-color \
    -c not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
    > "$OUT/$username.out" 2>&1) || status=1
  kill "$server"
  wait "$server" 2>/dev/null
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  tail -n 25 "$OUT/$username.out"
  summary+=("$username: $(grep -E '^  [0-9]+ generated' "$OUT/$username.out" | sed 's/^ *//')")
done

echo
echo "HTTP fuzz summary (PostGIS, gunicorn, max examples $EXAMPLES, seed $SEED; full output in $OUT):"
printf '  %s\n' "${summary[@]}"
exit $status
