"""Schemathesis on the app's OpenAPI document, in-process on the demo district, as every role (README: Fuzzing)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.engine import events
from schemathesis.engine.statistic import Statistic
from sqlalchemy import orm, select

from tests.conftest import BACKEND

# role -> the demo account it signs in as
ROLES = {"admin": "admin", "supervisor": "district_supervisor", "worker": "worker1", "resident": "13800138000"}
# Examples per operation in the fuzzing phase; the coverage phase adds its own boundary cases (most of the run).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
SEED = int(os.environ.get("FUZZ_SEED", "20261127"))
CHECKS = ("not_a_server_error", "status_code_conformance", "response_schema_conformance", "content_type_conformance")
# Path parameter -> the table whose ids it names.
ID_TABLES = {
    "report_id": "reports",
    "cell_id": "cells",
    "user_id": "users",
    "category_id": "categories",
    "notification_id": "notifications",
    "attachment_id": "attachments",
    "assignment_id": "worker_cells",
    "key_id": "api_keys",
}
# The steps each seeded case takes round the loop (_walk_cases says who takes them).
WALKS = [
    (),
    ("accept",),
    ("accept", "start"),
    ("accept", "start", "resolve"),
    ("accept", "start", "resolve", "close"),
    ("reject",),
]


class _FuzzSession(orm.Session):
    """A plain Session bound to the fuzz's connection (Flask-SQLAlchemy's would pick the engine)."""

    def __init__(self, db=None, **kwargs):
        super().__init__(**kwargs)


@dataclass
class World:
    app: object
    connection: object
    password: str
    account_ids: dict[str, int] = field(default_factory=dict)


@dataclass
class RoleRun:
    role: str
    documented: int
    operations: int
    cases: int
    failures: list[str]
    errors: list[str]
    seconds: float

    def summary(self) -> str:
        return (
            f"fuzz {BACKEND} {self.role}: {self.operations}/{self.documented} operations, {self.cases} cases, "
            f"{len(self.failures)} failures, {len(self.errors)} errors, {self.seconds:.0f} s"
        )

    def row(self) -> str:
        return (
            f"{BACKEND:<11}{self.role:<12}{self.operations:>10}{self.cases:>9}{len(self.failures):>10}"
            f"{len(self.errors):>8}{self.seconds:>8.0f}"
        )


def _walk_cases() -> None:
    """Cases in each status the loop reaches early, filed and moved by the real services."""
    from app.extensions import db
    from app.models import User
    from app.services.cases import lifecycle as cases, reports as report_service
    from app.services.people.api_keys import create_key

    users = {u.username: u for u in db.session.scalars(select(User))}
    resident, worker, supervisor = users["13800138000"], users["worker1"], users["district_supervisor"]
    location = {"lon": 120.1012, "lat": 30.2411, "crs": "wgs84"}  # in worker1's grid cell
    steps = {
        "accept": (supervisor, cases.accept, {}),
        "reject": (supervisor, cases.reject, {"reason": "not ours"}),
        "start": (worker, cases.start, {}),
        "resolve": (worker, cases.resolve, {"note": "cleared"}),
        "close": (supervisor, cases.close, {}),
    }
    for walk in WALKS:
        report = report_service.create_report(
            resident, category_code="0102", description=f"demo {walk}", location=location, address="演示路 1 号"
        )
        db.session.flush()
        for step in walk:
            if step == "start" and report.status == "accepted":  # no auto-dispatch: hand it over first
                cases.assign(supervisor, report, {report.version}, assignee_id=worker.id)
                db.session.flush()
            user, perform, kwargs = steps[step]
            perform(user, report, {report.version}, **kwargs)
            db.session.flush()
    report_service.create_report(worker, category_code="0104", description="found on patrol", location=location)
    create_key("civic app", users["admin"])
    db.session.commit()


# The demo district and a few cases, written inside one outer transaction on one connection that is rolled back
# after the module: a second app with a fresh database cannot be made in this process (flask-smorest's Api is a
# module singleton bound to the session's app), and the transaction needs no second migration run and leaves
# nothing behind on either backend, even when the run is interrupted.
@pytest.fixture(scope="module")
def world(app, tmp_path_factory):
    from app.extensions import db
    from app.models import User
    from app.services.demo import seed_demo

    # No app context stays pushed while the fuzz runs: a request made in this thread would join it and end its
    # session's savepoint, and with it the role's savepoint nested in the same connection.
    with app.app_context():
        connection = db.engine.connect()
    outer = connection.begin()
    original, upload_dir = db.session, app.config["UPLOAD_DIR"]
    db.session = db._make_scoped_session(  # noqa: SLF001 - the documented way to rebind the session
        {"class_": _FuzzSession, "bind": connection, "join_transaction_mode": "create_savepoint"}
    )
    app.config["UPLOAD_DIR"] = str(tmp_path_factory.mktemp("fuzz-uploads"))
    try:
        with app.app_context():
            seed_demo(app.config["DEMO_PASSWORD"])
            db.session.commit()
            _walk_cases()
            ids = dict(
                db.session.execute(select(User.username, User.id).where(User.username.in_(ROLES.values()))).all()
            )
            db.session.remove()
        yield World(app, connection, app.config["DEMO_PASSWORD"], ids)
    finally:
        db.session = original
        app.config["UPLOAD_DIR"] = upload_dir
        outer.rollback()
        connection.close()


def _existing_ids(connection) -> dict[str, list[int]]:
    from sqlalchemy import text

    return {
        name: [row[0] for row in connection.execute(text(f"SELECT id FROM {table} ORDER BY id LIMIT 50"))]
        for name, table in ID_TABLES.items()
    }


def build_schema(world: World, role: str, examples: int):
    """The app's OpenAPI document, with the fuzz's configuration, sign-in and hooks for one role.

    schemathesis's own engine (what `schemathesis run` drives) runs on it: the lazy pytest loader
    (`schemathesis.pytest.from_fixture`) does not run on pytest 9 (it sets `Function._nodeid`), and
    `schema.parametrize()` needs the schema while tests are collected, before the test database exists."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": examples, "deterministic": True, "database": "none"},
            "phases": {"coverage": {"generate-duplicate-query-parameters": True}, "stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "continue-on-failure": True,
            "cache": {"enabled": False},
        }
    )
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", world.app, config=config)
    client = world.app.test_client()
    username = ROLES[role]

    @schema.auth(refresh_interval=600)
    class SignIn:
        """A token for the role's demo account; on a 401 the engine asks again and replays once."""

        def get(self, case, context):
            resp = client.post("/api/v1/auth/login", json={"username": username, "password": world.password})
            assert resp.status_code == 200, resp.get_data(as_text=True)
            return resp.json["access_token"]

        def set(self, case, token, context):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

    protected = set(world.account_ids.values())

    @schema.hook
    def filter_case(context, case):
        # The admin could deactivate, demote or re-password the accounts the fuzz signs in with.
        user_id = (case.path_parameters or {}).get("user_id")
        return not (case.method.upper() == "PATCH" and case.path.endswith("/users/{user_id}") and user_id in protected)

    # Half the generated path ids name rows that exist, so the case loop, not only its 404s, is fuzzed on both
    # backends (PostgreSQL's sequences do not restart with the rollbacks, so the demo's ids differ by backend).
    existing = _existing_ids(world.connection)

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        known = {name: ids for name, ids in existing.items() if name in (path_parameters or {}) and ids}
        if not known:
            return st.just(path_parameters)
        aimed = st.fixed_dictionaries(
            {
                **{k: st.just(v) for k, v in path_parameters.items()},
                **{k: st.sampled_from(ids) for k, ids in known.items()},
            }
        )
        return st.one_of(st.just(path_parameters), aimed)

    return schema


def fuzz_role(world: World, role: str, examples: int = EXAMPLES) -> RoleRun:
    """One role's run from the seeded world, in a savepoint rolled back after it: what one role changes (a cell
    redrawn, a category deactivated) never steers another's run, and each role's figures stand alone."""
    savepoint = world.connection.begin_nested()
    try:
        schema = build_schema(world, role, examples)
        stat, errors, started = Statistic(), [], time.monotonic()
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
                stat.on_scenario_finished(event.recorder)
            elif isinstance(event, events.NonFatalError):
                errors.append(f"{event.label}: {event.info.format()}"[:3000])
            elif isinstance(event, events.FatalError):
                errors.append(f"fatal: {event.exception!r}")
        failures = []
        for label, grouped in stat.failures.items():
            for group in grouped.values():
                status = group.response.status_code if group.response is not None else "-"
                for failure in group.failures:
                    failures.append(
                        f"{label} [{status}] {failure.title}: {failure.message[:500]}\n    {group.code_sample or ''}"[
                            :2000
                        ]
                    )
        documented = sum(1 for _ in schema.get_all_operations())
        return RoleRun(
            role,
            documented,
            len(stat.tested_operations),
            stat.total_cases,
            failures,
            errors,
            time.monotonic() - started,
        )
    finally:
        savepoint.rollback()


def _show(request, line: str) -> None:
    """Print past pytest's capture, so `make test` shows each role's figures."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{line}", flush=True)


@pytest.mark.parametrize("role", list(ROLES))
def test_fuzz(world, role, request):
    run = fuzz_role(world, role)
    _show(request, run.summary())
    if os.environ.get("FUZZ_SUMMARY"):  # make fuzz collects the rows of both backends' runs
        with open(os.environ["FUZZ_SUMMARY"], "a", encoding="utf-8") as summary:
            summary.write(run.row() + "\n")
    assert run.operations == run.documented, run.summary()
    if run.failures or run.errors:
        pytest.fail("\n".join([run.summary(), *run.failures, *run.errors]), pytrace=False)
