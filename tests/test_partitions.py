"""Partitions (PostGIS) and check-in retention (both): `flask partitions ensure` and `flask patrols prune`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from app.dialect import queries, spatial
from app.models import PatrolCheckin
from app.models.base import utcnow
from app.services.field.retention import checkin_cutoff, ensure_partitions
from tests.factories import make_checkin, make_user

POINT = (116.405, 39.905)


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def table_exists(db, name: str) -> bool:
    if db.session.get_bind().dialect.name == "postgresql":
        return db.session.scalar(select(func.to_regclass(name))) is not None
    return bool(db.session.scalar(text("SELECT count(*) FROM sqlite_master WHERE name = :n"), {"n": name}))


def home_of(db, checkin_id: int) -> str:
    """The partition a check-in is stored in."""
    return db.session.scalar(
        text("SELECT tableoid::regclass::text FROM patrol_checkins WHERE id = :id"), {"id": checkin_id}
    )


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def test_postgis_tables_are_partitioned_with_the_partition_column_in_every_key(db, backend):
    if backend != "postgis":
        kinds = dict(
            db.session.execute(
                text("SELECT name, type FROM sqlite_master WHERE name IN ('patrol_checkins', 'sync_changes')")
            ).all()
        )
        assert kinds == {"patrol_checkins": "table", "sync_changes": "table"}
        return
    for table, column in (("patrol_checkins", "recorded_at"), ("sync_changes", "changed_at")):
        assert db.session.scalar(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}) == "p"
        keys = db.session.scalars(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(:t) "
                "AND contype IN ('p', 'u')"
            ),
            {"t": table},
        ).all()
        assert keys and all(column in key for key in keys)
        assert table_exists(db, f"{table}_default")
    indexes = set(db.session.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'patrol_checkins'")))
    assert {
        "idx_patrol_checkins_location",
        "ix_patrol_checkins_cell_recorded",
        "uq_patrol_checkins_user_id_recorded_at",
        "pk_patrol_checkins",
    } <= indexes
    # The migration created its day's partitions and a week ahead. It ran at the start of this session, which may
    # have been before midnight UTC: count from the day before too.
    today = utcnow().date()
    assert all(table_exists(db, f"patrol_checkins_p{today + timedelta(days=n):%Y%m%d}") for n in range(7))
    assert any(table_exists(db, f"sync_changes_p{day:%Y%m}") for day in (today, today - timedelta(days=1)))


def test_ensure_creates_days_ahead_once(app, db, backend):
    first = run(app, "partitions", "ensure", "--days-ahead", "3")
    assert first.exit_code == 0, first.output
    if backend != "postgis":
        assert "0 created" in first.output
        assert ensure_partitions(3) == []
        return
    start = date(2031, 1, 30)
    created = ensure_partitions(3, today=start)
    assert created == [
        "patrol_checkins_p20310130",
        "patrol_checkins_p20310131",
        "patrol_checkins_p20310201",
        "patrol_checkins_p20310202",
        "sync_changes_p203101",
        "sync_changes_p203102",
    ]
    # A second run, from cron on another host say, finds them all.
    assert ensure_partitions(3, today=start) == []
    again = run(app, "partitions", "ensure", "--days-ahead", "3")
    assert again.exit_code == 0 and "0 created" in again.output


def test_a_checkin_on_a_day_without_partition_is_stored_and_moved_later(db, backend):
    if backend != "postgis":
        pytest.skip("SQLite keeps a plain table")
    worker = make_user("worker")
    far = date(2001, 5, 4)
    checkin = make_checkin(worker, *POINT, at=at_noon(far))
    assert home_of(db, checkin.id) == "patrol_checkins_default"
    assert ensure_partitions(0, today=far)[0] == "patrol_checkins_p20010504"
    assert home_of(db, checkin.id) == "patrol_checkins_p20010504"
    # The unique key still covers the moved row: the same worker and instant is skipped, not stored twice.
    again = {
        "user_id": worker.id,
        "recorded_at": at_noon(far),
        "received_at": utcnow(),
        "location": spatial.point(*POINT),
        "input_crs": "wgs84",
        "input_lon": POINT[0],
        "input_lat": POINT[1],
    }
    stmt = queries.insert_ignoring_duplicates(PatrolCheckin.__table__).values([again]).returning(PatrolCheckin.id)
    assert db.session.execute(stmt).all() == []
    assert db.session.scalars(select(PatrolCheckin.id).where(PatrolCheckin.user_id == worker.id)).all() == [checkin.id]


def test_prune_keeps_the_last_days_and_drops_the_rest(app, db, backend):
    worker = make_user("worker")
    today = utcnow().date()
    days = [today - timedelta(days=n) for n in (0, 3, 7, 8, 20)]
    if backend == "postgis":
        ensure_partitions(25, today=today - timedelta(days=25))
    ids = {day: make_checkin(worker, *POINT, at=at_noon(day)).id for day in days}
    # A stray far in the past sits in the default partition on PostGIS.
    stray = make_checkin(worker, *POINT, at=at_noon(date(2001, 1, 1))).id
    result = run(app, "patrols", "prune", "--keep-days", "7")
    assert result.exit_code == 0, result.output
    assert checkin_cutoff(7) == today - timedelta(days=7)
    kept = set(db.session.scalars(select(PatrolCheckin.id).where(PatrolCheckin.user_id == worker.id)))
    assert kept == {ids[today], ids[days[1]], ids[days[2]]}
    assert stray not in kept
    if backend == "postgis":
        assert not table_exists(db, f"patrol_checkins_p{days[3]:%Y%m%d}")
        assert table_exists(db, f"patrol_checkins_p{days[2]:%Y%m%d}")
        assert "1 rows deleted" in result.output
    else:
        assert "3 rows deleted" in result.output


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_prune_refuses_a_bad_keep_days(app, db, value):
    worker = make_user("worker")
    make_checkin(worker, *POINT, at=at_noon(utcnow().date() - timedelta(days=40)))
    result = run(app, "patrols", "prune", "--keep-days", value)
    assert result.exit_code == 2 and "--keep-days" in result.output
    assert db.session.scalar(select(func.count()).select_from(PatrolCheckin)) == 1


def test_ensure_refuses_a_bad_days_ahead(app, db):
    result = run(app, "partitions", "ensure", "--days-ahead", "-1")
    assert result.exit_code == 2 and "--days-ahead" in result.output
