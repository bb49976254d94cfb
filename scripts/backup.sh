#!/usr/bin/env bash
# Back up the PostGIS database (pg_dump custom format) and, with BLOB_STORE=local, the photos under UPLOAD_DIR.
# Usage: DATABASE_URL=postgresql://... scripts/backup.sh OUT_DIR    (writes OUT_DIR/grid.dump [+ uploads.tar.gz])
# S3 photos are not copied here: the object store keeps them (bucket versioning, replication), see docs/operations.md.
set -euo pipefail
# The service's own default (config: UPLOAD_DIR, else INSTANCE_PATH/uploads, else the repository's instance/uploads).
default_uploads=${UPLOAD_DIR:-${INSTANCE_PATH:-$(cd "$(dirname "$0")/.." && pwd)/instance}/uploads}

out=${1:?usage: scripts/backup.sh OUT_DIR}
url=${DATABASE_URL:?DATABASE_URL must name the PostGIS database}
# SQLAlchemy's driver suffix means nothing to libpq.
url=${url/postgresql+psycopg:\/\//postgresql://}
url=${url/postgres:\/\//postgresql://}
case $url in postgresql://*) ;; *) echo "backup.sh: DATABASE_URL is not a PostgreSQL URL" >&2; exit 2 ;; esac

mkdir -p "$out"
# One consistent snapshot of the whole database (a single transaction); --no-owner so it restores under any role.
pg_dump --format=custom --no-owner --file="$out/grid.dump.partial" "$url"
mv "$out/grid.dump.partial" "$out/grid.dump"
echo "database: $out/grid.dump ($(du -h "$out/grid.dump" | cut -f1))"

if [[ ${BLOB_STORE:-local} == local ]]; then
  uploads=$default_uploads
  if [[ -d $uploads ]]; then
    # Photo files are content-addressed and never rewritten, so copying after the dump keeps every photo the
    # dump names (a file written since is only garbage for `flask attachments gc`).
    tar -C "$uploads" -czf "$out/uploads.tar.gz.partial" .
    mv "$out/uploads.tar.gz.partial" "$out/uploads.tar.gz"
    echo "photos: $out/uploads.tar.gz ($(du -h "$out/uploads.tar.gz" | cut -f1))"
  else
    echo "photos: no folder $uploads, no photos to copy (set UPLOAD_DIR or INSTANCE_PATH as the service has them)" >&2
  fi
fi
