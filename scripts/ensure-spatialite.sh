#!/usr/bin/env bash
# Makes sure SQLite's mod_spatialite can be loaded; installs it with apt-get when it is missing.
set -euo pipefail

have_spatialite() {
  ldconfig -p 2>/dev/null | grep -q 'mod_spatialite' || ls /usr/lib/*/mod_spatialite.so >/dev/null 2>&1
}

have_spatialite && exit 0
echo "mod_spatialite is missing; installing libsqlite3-mod-spatialite with apt-get ..." >&2
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsqlite3-mod-spatialite) >&2; then
    have_spatialite && exit 0
  fi
fi
cat >&2 <<'MSG'
ERROR: could not install mod_spatialite (SpatiaLite for SQLite).
Install it yourself, e.g. as root on Debian/Ubuntu:
    apt-get update && apt-get install -y libsqlite3-mod-spatialite
or set DATABASE_URL=postgresql+psycopg://... to run on PostgreSQL + PostGIS instead.
MSG
exit 1
