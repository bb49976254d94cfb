#!/usr/bin/env bash
# Restore a backup of scripts/backup.sh into an EMPTY database (create it first: createdb -O grid grid_restored).
# Usage: DATABASE_URL=postgresql://.../grid_restored scripts/restore.sh BACKUP_DIR [UPLOAD_DIR]
set -euo pipefail
# The service's own default (config: UPLOAD_DIR, else INSTANCE_PATH/uploads, else the repository's instance/uploads).
default_uploads=${UPLOAD_DIR:-${INSTANCE_PATH:-$(cd "$(dirname "$0")/.." && pwd)/instance}/uploads}

from=${1:?usage: scripts/restore.sh BACKUP_DIR [UPLOAD_DIR]}
url=${DATABASE_URL:?DATABASE_URL must name the (empty) database to restore into}
url=${url/postgresql+psycopg:\/\//postgresql://}
url=${url/postgres:\/\//postgresql://}
[[ -f $from/grid.dump ]] || { echo "restore.sh: no $from/grid.dump" >&2; exit 2; }

tables=$(psql -X -q -At -d "$url" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'spatial_ref_sys'")
if [[ $tables != 0 ]]; then
  echo "restore.sh: the target database already holds $tables tables; restore into an empty one" >&2
  exit 2
fi
# One transaction: a restore that fails leaves the database as empty as it was.
pg_restore --no-owner --exit-on-error --single-transaction --dbname="$url" "$from/grid.dump"
echo "database restored from $from/grid.dump"

if [[ -f $from/uploads.tar.gz ]]; then
  uploads=${2:-$default_uploads}
  mkdir -p "$uploads"
  tar -C "$uploads" -xzf "$from/uploads.tar.gz"
  echo "photos restored into $uploads"
fi
