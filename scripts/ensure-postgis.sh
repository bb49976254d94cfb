#!/usr/bin/env bash
# Makes sure the local PostgreSQL has PostGIS available and is running (for tests and the benchmark).
set -euo pipefail

need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql-15)
dpkg -s postgresql-15-postgis-3 >/dev/null 2>&1 || need+=(postgresql-15-postgis-3)
if ((${#need[@]})); then
  echo "installing ${need[*]} with apt-get ..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "starting PostgreSQL ..." >&2
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || service postgresql start
  for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p 5432 -q && break
    sleep 1
  done
fi
pg_isready -h 127.0.0.1 -p 5432
