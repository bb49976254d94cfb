"""PostGIS operations on databases of their own: the partitioning migration over existing rows, and
scripts/backup.sh + scripts/restore.sh round-tripping the demo data (docs/operations.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.conftest import BACKEND, LOCAL_PG

ROOT = Path(__file__).resolve().parent.parent
BEFORE_PARTITIONS = "60c3853c3707"

pytestmark = pytest.mark.skipif(BACKEND != "postgis", reason="PostGIS operations")


@contextmanager
def fresh_database(postgis: bool = True):
    name = f"grid_ops_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(LOCAL_PG.format(db="postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        if postgis:
            with psycopg.connect(LOCAL_PG.format(db=name), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        yield LOCAL_PG.format(db=name)
    finally:
        with psycopg.connect(LOCAL_PG.format(db="postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def environment(url: str, tmp_path: Path, **extra) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TEST_", "FLASK_"))}
    env.update(
        APP_ENV="development",
        DATABASE_URL=url.replace("postgresql://", "postgresql+psycopg://", 1),
        INSTANCE_PATH=str(tmp_path / "instance"),
        UPLOAD_DIR=str(tmp_path / "uploads"),
        FLASK_APP="wsgi",
        PASSWORD_TIME_COST="1",
        PASSWORD_MEMORY_KIB="8",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def sh(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def flask(env: dict[str, str], *args: str) -> str:
    return sh([sys.executable, "-m", "flask", *args], env)


def counts(url: str) -> dict[str, int]:
    """Rows per table (partitions counted once, through their parents) and the migration revision."""
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1"
            )
        ]
        found = {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}
        found["revision"] = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        found["partitions"] = conn.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relispartition"
        ).fetchone()[0]
    return found


CHECKINS = """
INSERT INTO patrol_checkins (user_id, cell_id, recorded_at, received_at, location, accuracy_m, input_crs, input_lon,
                             input_lat)
SELECT %(user)s, NULL, %(day)s::timestamptz + make_interval(secs => n * 30), now(),
       ST_SetSRID(ST_MakePoint(116.4, 39.9), 4326), 5, 'wgs84', 116.4, 39.9
FROM generate_series(1, %(n)s) AS n
"""
USER = """INSERT INTO users (username, password_hash, role, active, created_at, updated_at)
VALUES ('ops-worker', 'x', 'worker', true, now(), now()) RETURNING id"""


def test_the_partitioning_migration_keeps_existing_rows_and_goes_back(tmp_path):
    with fresh_database() as url:
        env = environment(url, tmp_path)
        flask(env, "db", "upgrade", BEFORE_PARTITIONS)
        with psycopg.connect(url) as conn:
            user = conn.execute(USER).fetchone()[0]
            for day, n in (("2026-01-05", 40), ("2026-01-06", 25), ("2024-07-01", 10)):
                conn.execute(CHECKINS, {"user": user, "day": day, "n": n})
            conn.execute(
                "INSERT INTO sync_changes (kind, entity_id, report_id, changed_at) "
                "SELECT 'case', n, n, '2025-12-31'::timestamptz + make_interval(days => n) "
                "FROM generate_series(1, 50) AS n"
            )
            before = {
                table: conn.execute(f"SELECT array_agg(id ORDER BY id) FROM {table}".replace("id", key)).fetchone()[0]
                for table, key in (("patrol_checkins", "id"), ("sync_changes", "seq"))
            }
        flask(env, "db", "upgrade")
        with psycopg.connect(url) as conn:
            for table, key in (("patrol_checkins", "id"), ("sync_changes", "seq")):
                assert (
                    conn.execute(f"SELECT array_agg({key} ORDER BY {key}) FROM {table}").fetchone()[0] == before[table]
                )
            homes = dict(
                conn.execute("SELECT tableoid::regclass::text, count(*) FROM patrol_checkins GROUP BY 1").fetchall()
            )
            assert homes == {
                "patrol_checkins_p20260105": 40,
                "patrol_checkins_p20260106": 25,
                "patrol_checkins_p20240701": 10,
            }
            months = {row[0] for row in conn.execute("SELECT DISTINCT tableoid::regclass::text FROM sync_changes")}
            assert months == {"sync_changes_p202601", "sync_changes_p202602"}
            # The sequences go on where they were, and the unique key still skips a re-sent point.
            new_id = conn.execute(
                CHECKINS + " RETURNING id",
                {"user": user, "day": "2026-01-07", "n": 1},
            ).fetchone()[0]
            assert new_id > max(before["patrol_checkins"])
            resent = conn.execute(
                CHECKINS + " ON CONFLICT DO NOTHING RETURNING id", {"user": user, "day": "2026-01-05", "n": 40}
            ).fetchall()
            assert resent == []
        flask(env, "db", "downgrade", BEFORE_PARTITIONS)
        with psycopg.connect(url) as conn:
            kinds = dict(
                conn.execute(
                    "SELECT relname, relkind FROM pg_class WHERE relname IN ('patrol_checkins', 'sync_changes')"
                ).fetchall()
            )
            assert kinds == {"patrol_checkins": "r", "sync_changes": "r"}
            assert conn.execute("SELECT count(*) FROM patrol_checkins").fetchone()[0] == 76
            assert conn.execute("SELECT count(*) FROM sync_changes").fetchone()[0] == 50


def test_backup_and_restore_round_trip_the_demo_data(tmp_path):
    with fresh_database() as source, fresh_database(postgis=False) as target:
        env = environment(source, tmp_path)
        flask(env, "db", "upgrade")
        flask(env, "seed-demo")
        with psycopg.connect(source) as conn:
            worker = conn.execute("SELECT id FROM users WHERE username = 'worker1'").fetchone()[0]
            conn.execute(CHECKINS, {"user": worker, "day": "now", "n": 100})
            conn.execute(CHECKINS, {"user": worker, "day": "2001-01-01", "n": 3})  # the default partition
        photo = tmp_path / "uploads" / "ab" / "abcdef"
        photo.parent.mkdir(parents=True)
        photo.write_bytes(b"\xff\xd8 a photo")
        original = counts(source)
        assert original["cells"] > 100 and original["users"] >= 6 and original["patrol_checkins"] == 103

        backup = tmp_path / "backup"
        out = sh(["scripts/backup.sh", str(backup)], env)
        assert "grid.dump" in out and (backup / "uploads.tar.gz").exists()
        restored_uploads = tmp_path / "restored-uploads"
        target_env = environment(target, tmp_path, UPLOAD_DIR=str(restored_uploads))
        sh(["scripts/restore.sh", str(backup)], target_env)

        assert counts(target) == original
        assert (restored_uploads / "ab" / "abcdef").read_bytes() == b"\xff\xd8 a photo"
        # The restored database is a working one: the service's own commands run on it.
        assert "0 created" in flask(target_env, "partitions", "ensure", "--days-ahead", "3")
        # A second restore into a database that is no longer empty is refused, and changes nothing.
        again = subprocess.run(
            ["scripts/restore.sh", str(backup)], cwd=ROOT, env=target_env, capture_output=True, text=True
        )
        assert again.returncode == 2 and "restore into an empty one" in again.stderr
        assert counts(target) == original


def test_backup_and_restore_find_the_photos_where_the_service_keeps_them(tmp_path):
    """Without UPLOAD_DIR the service keeps photos under INSTANCE_PATH/uploads; so do both scripts."""
    with fresh_database() as source, fresh_database(postgis=False) as target:
        env = {key: value for key, value in environment(source, tmp_path).items() if key != "UPLOAD_DIR"}
        photo = tmp_path / "instance" / "uploads" / "ab" / "abcdef"
        photo.parent.mkdir(parents=True)
        photo.write_bytes(b"\xff\xd8 a photo")
        backup = tmp_path / "backup"
        assert "photos:" in sh(["scripts/backup.sh", str(backup)], env)
        assert (backup / "uploads.tar.gz").exists()

        target_env = {
            key: value
            for key, value in environment(target, tmp_path, INSTANCE_PATH=str(tmp_path / "restored")).items()
            if key != "UPLOAD_DIR"
        }
        assert str(tmp_path / "restored" / "uploads") in sh(["scripts/restore.sh", str(backup)], target_env)
        assert (tmp_path / "restored" / "uploads" / "ab" / "abcdef").read_bytes() == b"\xff\xd8 a photo"
