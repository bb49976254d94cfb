"""Flask CLI: seed-demo, users, grid and calendar import (one transaction each); sweeps and purges in batches."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app import logs, metrics
from app.errors import DomainError, StorageUnavailable
from app.extensions import db
from app.lib import i18n
from app.models import Role
from app.services.calendar import worktime
from app.services.health import is_database_unavailable

# One line per committed batch of a sweep run from cron (escalate, purges, prunes), in the app's LOG_FORMAT.
sweep_log = logging.getLogger("app.sweep")


@contextlib.contextmanager
def sweep_run():
    """A run of a sweep: its batches' lines share one id (the request_id field), as a request's lines do."""
    token = logs.current_request_id.set(logs.new_request_id())
    try:
        yield
    finally:
        logs.current_request_id.reset(token)


def log_batch(command: str, batch: int, started: float, **counts: int) -> None:
    seconds = time.monotonic() - started
    figures = ", ".join(f"{name} {value}" for name, value in counts.items())
    sweep_log.info(
        "%s batch %d: %s (%.1f ms)",
        command,
        batch,
        figures,
        seconds * 1000,
        extra={"command": command, "batch": batch, "duration_ms": round(seconds * 1000, 3), **counts},
    )


def progress_bar(items: Iterable, label: str) -> Iterator:
    items = list(items)
    with click.progressbar(items, label=label, file=sys.stderr, show_pos=True) as bar:
        yield from bar


@contextlib.contextmanager
def one_transaction():
    """Commit once at the end; on any error roll back and report it the way the API would."""
    try:
        yield
        db.session.commit()
    except DomainError as err:
        db.session.rollback()
        # The CLI speaks English, like the rest of its output.
        click.echo(f"error ({err.code}): {err.detail}", err=True)
        errors = err.extra.get("errors")
        if errors:
            click.echo(json.dumps(i18n.render(errors, i18n.SOURCE_LANGUAGE), ensure_ascii=False, indent=2), err=True)
        sys.exit(1)
    except Exception:
        db.session.rollback()
        raise


users_cli = AppGroup("users", help="Manage accounts.")
grid_cli = AppGroup("grid", help="Manage the grid.")
calendar_cli = AppGroup("calendar", help="Manage the work calendar.")
idempotency_cli = AppGroup("idempotency", help="Manage the responses stored under Idempotency-Key.")
attachments_cli = AppGroup("attachments", help="Manage stored photos.")


@users_cli.command("create")
@click.option("--username", required=True)
@click.option("--password", required=True, prompt=True, hide_input=True, confirmation_prompt=False)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--cell", "cell_code", default=None, help="Worker: the grid cell served. Supervisor: subtree root.")
@click.option("--name", "display_name", default=None)
@click.option("--phone", default=None)
def create_user_command(username, password, role, cell_code, display_name, phone):
    """Create an account of any role."""
    from app.services.people.users import create_user

    with one_transaction():
        user = create_user(
            username=username, password=password, role=role, cell_code=cell_code, display_name=display_name, phone=phone
        )
    click.echo(f"created {user.role} {user.username} (id {user.id})")


@grid_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_grid_command(path: Path):
    """Import a GeoJSON FeatureCollection of cells (all or nothing; same codes update in place)."""
    from app.services.grid.cells import import_cells

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{path} is not valid UTF-8 JSON: {exc}") from exc
    if (
        not isinstance(data, dict)
        or data.get("type") != "FeatureCollection"
        or not isinstance(data.get("features"), list)
    ):
        raise click.ClickException(f"{path} is not a GeoJSON FeatureCollection")
    with one_transaction():
        result = import_cells(data["features"], progress_bar)
    click.echo(f"imported {len(data['features'])} cells: {result.created} created, {result.updated} updated")


@calendar_cli.command("import")
@click.argument("year", type=click.IntRange(2000, 2099))
def import_calendar_command(year: int):
    """Import a year's public holidays and make-up working days (调休) from the holiday library.

    Admins' overrides are kept; open cases' deadlines that are still ahead are re-derived."""
    from app.services.calendar.days import LIBRARY, import_year

    with one_transaction():
        result = import_year(year, progress_bar)
    click.echo(
        f"calendar {year} from {LIBRARY}: {result.created} added, {result.updated} updated, "
        f"{result.removed} removed, {result.kept_admin} admin overrides kept; "
        f"{result.recomputed} open cases recomputed"
    )


@click.option(
    "--cases/--no-cases",
    default=True,
    help="Also the last month of demo cases in the district (once); --no-cases: grid, categories, accounts only.",
)
def seed_demo_command(cases: bool):
    """Load the demo district, categories and accounts, and a month of cases (idempotent)."""
    from app.services.demo import demo_accounts, seed_demo
    from app.services.demo_month import CREW_HINT

    password = current_app.config["DEMO_PASSWORD"]
    if not password:
        raise click.ClickException("Set DEMO_PASSWORD to seed demo accounts outside development.")
    with one_transaction():
        result = seed_demo(password, progress_bar, month=cases)
    click.echo(
        f"demo data: {result.cells_created} cells, {result.categories_created} categories, "
        f"{result.users_created} accounts added"
    )
    years = ", ".join(map(str, result.calendar_years)) or "no year"
    month = result.month
    if month.cases:
        click.echo(
            f"demo month: {month.cases} cases added ({month.events} events, {month.photos} photos, "
            f"{month.sweeps} escalation sweeps at their past moments)"
        )
    elif cases:
        click.echo("demo month: the cases are there already (source demo), none added")
    click.echo(f"work calendar: {result.calendar_days_created} days added ({years} from the holiday library)")
    for year in result.calendar_years_missing:
        click.echo(
            f"work calendar: the holiday library has no {year} yet; run `flask calendar import {year}` "
            "after upgrading it, or set the days by hand"
        )
    click.echo(f"demo accounts (password: {password}):")
    for account in demo_accounts():
        where = f" cell {account.cell_code}" if account.cell_code else ""
        click.echo(f"  {account.role:<10} {account.username}{where}")
    if cases:
        click.echo(f"  and the month's grid workers ({CREW_HINT}) and residents (13900139001-5), same password")


def escalation_sweep(batch_size: int):
    """Run the sweep to the end with one clock reading, committing batch by batch."""
    from app.services.cases.escalation import SweepResult, escalate_batch

    now = datetime.now(UTC)
    total = SweepResult()
    started = time.monotonic()
    with sweep_run():
        for number in itertools.count(1):
            batch_started = time.monotonic()
            with one_transaction():
                batch = escalate_batch(now, batch_size)
            total += batch
            # Counted once committed: a batch rolled back is claimed again by the next sweep.
            metrics.observe_sweep_batch(batch.escalated, batch.critical, batch.reminded, batch.notifications)
            log_batch(
                "escalate",
                number,
                batch_started,
                claimed=batch.claimed,
                escalated=batch.escalated,
                critical=batch.critical,
                reminded=batch.reminded,
                notifications=batch.notifications,
            )
            if batch.claimed == 0:
                break
    metrics.observe_sweep(time.monotonic() - started)
    return total


@click.command("escalate")
@click.option(
    "--every",
    type=click.FloatRange(min=1),
    default=None,
    metavar="SECONDS",
    help="Sweep again every SECONDS until interrupted (Ctrl-C).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=5000,
    show_default=True,
    help="Cases claimed and committed per batch.",
)
@with_appcontext
def escalate_command(every, batch_size):
    """Move overdue cases one level up the grid and remind assignees of yellow cases (idempotent)."""
    try:
        while True:
            started = time.monotonic()
            # A long-running loop keeps one app context: read the calendar afresh for every sweep.
            worktime.forget_calendar()
            try:
                result = escalation_sweep(batch_size)
            except Exception as err:
                if every is None or not is_database_unavailable(err):
                    raise
                # A database restart must not end the loop: committed batches stay, the next sweep does the rest.
                with contextlib.suppress(Exception):
                    db.session.rollback()
                click.echo(
                    f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} escalate: database unavailable "
                    f"({type(err).__name__}), next sweep in {every:g} s",
                    err=True,
                )
                time.sleep(every)
                continue
            click.echo(
                f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} escalate: {result.escalated} escalated, "
                f"{result.critical} marked critical, {result.reminded} reminded, "
                f"{result.notifications} notifications ({time.monotonic() - started:.2f} s)"
            )
            if every is None:
                return
            time.sleep(every)
    except KeyboardInterrupt:
        # Batches already committed stay; the one in flight is rolled back and the next sweep redoes it.
        db.session.rollback()
        click.echo("escalate: stopped", err=True)


@idempotency_cli.command("purge")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Expired keys deleted and committed per batch.",
)
def purge_idempotency_command(batch_size):
    """Delete expired idempotency keys, one committed batch at a time (safe from cron on every host)."""
    from app.models.base import utcnow
    from app.services.idempotency import purge_expired

    now = utcnow()
    total = 0
    with sweep_run():
        for number in itertools.count(1):
            started = time.monotonic()
            with one_transaction():
                deleted = purge_expired(now, batch_size)
            total += deleted
            log_batch("idempotency purge", number, started, deleted=deleted)
            click.echo(f"idempotency purge: {total} deleted", err=True)
            # A short batch means the rest are gone or held by another host's purge, which deletes them.
            if deleted < batch_size:
                break
    click.echo(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} idempotency purge: {total} expired keys deleted")


@attachments_cli.command("gc")
@click.option(
    "--min-age",
    "min_age_s",
    default=3600,
    show_default=True,
    type=click.IntRange(min=0),
    help="Spare blobs younger than this many seconds (uploads still in flight).",
)
@with_appcontext
def attachments_gc_command(min_age_s):
    """Delete stored photo bytes that no attachment names (left by uploads whose transaction rolled back)."""
    from app.services.field.attachments import collect_garbage

    try:
        removed = collect_garbage(min_age_s)
    except StorageUnavailable as exc:
        # Whatever was deleted before the store went away stays deleted; a later run finishes the rest.
        raise click.ClickException(str(exc)) from exc
    finally:
        db.session.rollback()
    click.echo(f"removed {len(removed)} unreferenced blob(s)")


api_keys_cli = AppGroup("api-keys", help="Manage the API keys of Open311 clients.")


@api_keys_cli.command("create")
@click.argument("name")
def create_api_key_command(name):
    """Issue a key; it is printed once, only its hash is stored."""
    from app.services.people.api_keys import create_key

    with one_transaction():
        issued = create_key(name)
    click.echo(f"created API key {issued.api_key.id} ({name}), files reports as {issued.api_key.user.username}")
    click.echo("the key (shown only now):")
    click.echo(issued.key)


@api_keys_cli.command("list")
def list_api_keys_command():
    """Every key: id, prefix, name, created, last used, revoked."""
    from app.services.people.api_keys import keys_query

    def stamp(moment):
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"

    for key in db.session.scalars(keys_query()):
        click.echo(
            f"{key.id}\tg311_{key.prefix}…\t{key.name}\tcreated {stamp(key.created_at)}\t"
            f"last used {stamp(key.last_used_at)}\trevoked {stamp(key.revoked_at)}"
        )


@api_keys_cli.command("revoke")
@click.argument("key_id", type=int)
def revoke_api_key_command(key_id):
    """Revoke a key at once; its reports stay."""
    from app.services.people.api_keys import get_key, revoke_key

    with one_transaction():
        key = revoke_key(get_key(key_id))
    click.echo(f"revoked API key {key.id} ({key.name})")


sync_cli = AppGroup("sync", help="Maintain the sync change log.")


@sync_cli.command("prune")
@click.option(
    "--days", type=click.IntRange(min=1), required=True, help="Keep every change row younger than this many days."
)
def prune_sync_command(days):
    """Delete change rows older than DAYS that a later row of the same case or notification supersedes.

    Idempotent and safe to run from cron on several hosts; clients' cursors stay valid."""
    from app.services.field.sync import PRUNE_BATCH, prune_batch

    before = datetime.now(UTC) - timedelta(days=days)
    total = 0
    with sweep_run():
        for number in itertools.count(1):
            started = time.monotonic()
            with one_transaction():
                deleted = prune_batch(before)
            total += deleted
            log_batch("sync prune", number, started, deleted=deleted)
            if deleted < PRUNE_BATCH:
                break
    click.echo(f"sync prune: {total} superseded change rows deleted")


partitions_cli = AppGroup("partitions", help="Maintain the PostGIS partitions of check-ins and the sync log.")
patrols_cli = AppGroup("patrols", help="Maintain patrol check-ins.")


@partitions_cli.command("ensure")
@click.option("--days-ahead", type=click.IntRange(min=0, max=366), default=7, show_default=True)
def ensure_partitions_command(days_ahead):
    """Create the partitions of today (UTC) and the next DAYS_AHEAD days, and the default ones, where missing.

    Safe from cron on every host at once (an advisory lock; what exists is kept). SpatiaLite: nothing to do."""
    from app.services.field.retention import ensure_partitions

    with one_transaction():
        created = ensure_partitions(days_ahead)
    click.echo(f"partitions ensure: {len(created)} created" + (f" ({', '.join(created)})" if created else ""))


@patrols_cli.command("prune")
@click.option(
    "--keep-days",
    type=click.IntRange(min=1),
    required=True,
    help="Keep check-ins of today (UTC) and this many days before it.",
)
def prune_patrols_command(keep_days):
    """Delete older check-ins: PostGIS drops whole day partitions, SpatiaLite deletes in committed batches."""
    from app.services.field.retention import (
        PRUNE_BATCH,
        checkin_cutoff,
        delete_checkins_batch,
        drop_checkin_partitions,
    )

    cutoff = checkin_cutoff(keep_days)
    with one_transaction():
        dropped = drop_checkin_partitions(cutoff)
    total = 0
    while True:
        with one_transaction():
            deleted = delete_checkins_batch(cutoff)
        total += deleted
        if deleted < PRUNE_BATCH:
            break
    click.echo(f"patrols prune: before {cutoff.isoformat()}, {len(dropped)} partitions dropped, {total} rows deleted")


def register_commands(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(grid_cli)
    app.cli.add_command(calendar_cli)
    app.cli.add_command(attachments_cli)
    app.cli.command("seed-demo")(seed_demo_command)
    app.cli.add_command(escalate_command)
    app.cli.add_command(idempotency_cli)
    app.cli.add_command(api_keys_cli)
    app.cli.add_command(sync_cli)
    app.cli.add_command(partitions_cli)
    app.cli.add_command(patrols_cli)
