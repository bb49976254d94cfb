"""Finding a case on GET /reports: q (case number, reporter's phone, text), case_number, comma-separated filters."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import text

from app.extensions import db as _db
from app.models import Report
from app.services.insight import geoqueries
from app.services.public import residents
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    DISTRICT,
    OTHER_COMMUNITY,
    OTHER_GRID,
    auth_header,
    make_case,
    make_category,
    make_escalated_case,
    make_offered,
    make_two_district_grid,
    make_user,
    set_case,
)

URL = "/api/v1/reports"
SW = "11010500100101"
NE = "11010500100104"
SW_POINT = (116.405, 39.905)
OTHER_POINT = (116.505, 39.905)
PHONE = "13912345678"
OTHER_PHONE = "13787654321"


@pytest.fixture()
def w(db):
    """Two districts, two categories, an account of every kind, and cases with texts to find."""
    cells = make_two_district_grid()
    category = make_category(hours=4)
    second = make_category(hours=8)
    w = SimpleNamespace(
        cells=cells,
        category=category,
        second=second,
        resident=make_user("resident", phone=PHONE),
        resident2=make_user("resident", phone=OTHER_PHONE),
        worker=make_user("worker", served=[cells[SW]]),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        other_supervisor=make_user("supervisor", cell=cells[OTHER_COMMUNITY]),
        root_supervisor=make_user("supervisor", cell=cells[DISTRICT]),
        admin=make_user("admin"),
    )
    w.bin = make_case(
        w.resident,
        category,
        cells[SW],
        status="submitted",
        description="东四北大街垃圾桶满溢，无人清理",
        address="东城区东四北大街 12 号",
    )
    w.light = make_case(
        w.resident, second, cells[NE], status="accepted", description="Street LIGHT broken", address="和平里 3 号楼"
    )
    w.percent = make_case(
        w.resident2, category, cells[SW], status="submitted", description="工程完成 100% 了", address=None
    )
    w.thousand = make_case(
        w.resident2, category, cells[SW], status="submitted", description="工程完成 1000 米 a_b", address=None
    )
    w.far = make_case(
        w.resident2, category, cells[OTHER_GRID], status="submitted", description="东四北大街垃圾桶满溢 另一区"
    )
    return w


def _get(client, user, **query):
    return client.get(URL, headers=auth_header(user), query_string=query)


def _ids(client, user, **query) -> list[int]:
    resp = _get(client, user, **query)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return sorted(item["id"] for item in resp.json["items"])


def ids(*reports) -> list[int]:
    return sorted(r.id for r in reports)


# ---- q: text ---------------------------------------------------------------------------------------------------


def test_q_finds_chinese_text_in_description_or_address(client, db, w):
    assert _ids(client, w.admin, q="垃圾桶满溢") == ids(w.bin, w.far)
    assert _ids(client, w.admin, q="东四北大街 12") == ids(w.bin)  # in the address only
    assert _ids(client, w.admin, q="和平里") == ids(w.light)
    assert _ids(client, w.admin, q="  垃圾桶  ") == ids(w.bin, w.far)  # surrounding blanks are not part of it
    assert _ids(client, w.admin, q="没有这种文字") == []


def test_q_ignores_the_case_of_latin_letters(client, db, w):
    assert _ids(client, w.admin, q="street light") == ids(w.light)
    assert _ids(client, w.admin, q="LIGHT BROKEN") == ids(w.light)


def test_q_takes_wildcards_literally(client, db, w):
    assert _ids(client, w.admin, q="100%") == ids(w.percent)
    assert _ids(client, w.admin, q="0%") == ids(w.percent)
    assert _ids(client, w.admin, q="%") == ids(w.percent)
    assert _ids(client, w.admin, q="a_b") == ids(w.thousand)
    assert _ids(client, w.admin, q="_") == ids(w.thousand)
    assert _ids(client, w.admin, q="\\") == []


def test_q_stays_within_the_callers_scope(client, db, w):
    assert _ids(client, w.supervisor, q="垃圾桶满溢") == ids(w.bin)
    assert _ids(client, w.other_supervisor, q="垃圾桶满溢") == ids(w.far)
    assert _ids(client, w.worker, q="工程完成") == ids(w.percent, w.thousand)
    # q narrows like any filter and combines with the others.
    assert _ids(client, w.admin, q="垃圾桶满溢", cell_id=w.cells[SW].id) == ids(w.bin)


def test_a_resident_finds_by_text_only_their_own_cases(client, db, w):
    assert _ids(client, w.resident, q="垃圾桶满溢") == ids(w.bin)
    assert _ids(client, w.resident2, q="垃圾桶满溢") == ids(w.far)
    # Following a case shows its public view, which has no description: text must not find it either.
    make_offered(w.resident2, w.bin)
    residents.follow(w.resident2, w.bin.id, None)
    db.session.commit()
    assert w.bin.id in _ids(client, w.resident2)
    assert _ids(client, w.resident2, q="东四北大街 12") == []
    assert _ids(client, w.resident2, q="东四北大街垃圾桶满溢，") == []


# ---- q and case_number: the case number ----------------------------------------------------------------------


def test_q_with_a_case_number_finds_that_case(client, db, w):
    assert _ids(client, w.admin, q=w.light.case_number) == ids(w.light)
    assert _ids(client, w.supervisor, q=w.bin.case_number) == ids(w.bin)
    assert _ids(client, w.resident, q=w.bin.case_number) == ids(w.bin)
    # The number of a case that does not exist, or of another day, finds nothing.
    assert _ids(client, w.admin, q=f"{w.bin.case_day:%Y%m%d}9999999") == []
    assert _ids(client, w.admin, q=f"20200101{w.bin.id:07d}") == []


def test_case_number_filter(client, db, w):
    assert _ids(client, w.admin, case_number=w.percent.case_number) == ids(w.percent)
    assert _ids(client, w.admin, case_number=w.percent.case_number, status="accepted") == []
    assert _ids(client, w.supervisor, case_number=w.percent.case_number) == ids(w.percent)
    assert _ids(client, w.admin, case_number=f"{w.bin.case_day:%Y%m%d}9999999") == []


def test_nobody_finds_a_case_outside_their_scope_by_its_number(client, db, w):
    for query in ({"q": w.bin.case_number}, {"case_number": w.bin.case_number}):
        assert _ids(client, w.resident2, **query) == []
        assert _ids(client, w.other_supervisor, **query) == []
    # A followed case is found by its number (the number is in its public view), in its public view.
    make_offered(w.resident2, w.bin)
    residents.follow(w.resident2, w.bin.id, None)
    db.session.commit()
    resp = _get(client, w.resident2, case_number=w.bin.case_number)
    assert [(item["id"], item["view"]) for item in resp.json["items"]] == [(w.bin.id, "public")]
    assert "description" not in resp.json["items"][0]


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "2026112700001",
        "202613010000001",
        "20261127000000x1",
        "202611270000000",
        "2026112700000001",
        " ",
        "20261127" + "1" * 4992,
    ],
)
def test_case_number_that_is_not_one_is_refused(client, db, w, value):
    problem = assert_problem(_get(client, w.admin, case_number=value), 422, "validation_failed")
    assert list(problem["errors"]) == ["case_number"]


# ---- q: the reporter's phone ---------------------------------------------------------------------------------


def test_q_with_a_phone_finds_the_reporters_cases_for_their_data_holders(client, db, w):
    assert _ids(client, w.admin, q=PHONE) == ids(w.bin, w.light)
    assert _ids(client, w.admin, q="139-1234-5678") == ids(w.bin, w.light)
    assert _ids(client, w.admin, q=OTHER_PHONE) == ids(w.percent, w.thousand, w.far)
    assert _ids(client, w.supervisor, q=OTHER_PHONE) == ids(w.percent, w.thousand)
    assert _ids(client, w.other_supervisor, q=OTHER_PHONE) == ids(w.far)
    assert _ids(client, w.other_supervisor, q=PHONE) == []
    assert _ids(client, w.admin, q="13000000000") == []


def test_q_with_a_phone_finds_an_open311_contact(client, db, w):
    set_case(w.far, contact_phone="13511112222")
    assert _ids(client, w.admin, q="13511112222") == ids(w.far)
    assert _ids(client, w.other_supervisor, q="13511112222") == ids(w.far)
    assert _ids(client, w.supervisor, q="13511112222") == []


def test_a_phone_is_only_text_to_those_without_the_right_to_personal_data(client, db, w):
    # Grid workers handle cases without the reporter's data: a phone finds only a case whose text holds it.
    assert _ids(client, w.worker, q=PHONE) == []
    set_case(w.percent, description=f"请回电 {OTHER_PHONE}")
    assert _ids(client, w.worker, q=OTHER_PHONE) == ids(w.percent)
    # A resident finds nobody's cases by a phone, the others' least of all.
    assert _ids(client, w.resident, q=OTHER_PHONE) == []
    assert _ids(client, w.resident, q=PHONE) == []
    assert _ids(client, w.resident2, q=PHONE) == []


@pytest.mark.parametrize("value", ["", "   ", "x" * 201])
def test_q_bad_input(client, db, w, value):
    problem = assert_problem(_get(client, w.admin, q=value), 422, "validation_failed")
    assert list(problem["errors"]) == ["q"]


def test_q_on_the_map_and_the_polygon_search(client, db, w):
    resp = client.get(f"{URL}.geojson", headers=auth_header(w.admin), query_string={"q": "垃圾桶满溢"})
    assert resp.status_code == 200
    assert sorted(f["properties"]["id"] for f in resp.json["features"]) == ids(w.bin, w.far)


# ---- several values --------------------------------------------------------------------------------------------


def test_status_takes_several_values(client, db, w):
    assert _ids(client, w.admin, status="accepted") == ids(w.light)
    assert _ids(client, w.admin, status="submitted,accepted") == ids(w.bin, w.light, w.percent, w.thousand, w.far)
    assert _ids(client, w.admin, status="accepted,accepted") == ids(w.light)
    assert _ids(client, w.supervisor, status="accepted,closed") == ids(w.light)


def test_category_takes_several_codes(client, db, w):
    both = f"{w.category.code},{w.second.code}"
    assert _ids(client, w.admin, category=w.second.code) == ids(w.light)
    assert _ids(client, w.admin, category=both) == ids(w.bin, w.light, w.percent, w.thousand, w.far)


def test_sla_state_and_escalation_level_take_several_values(client, db, w):
    late = make_escalated_case(w.resident, w.category, w.cells[SW])
    assert _ids(client, w.admin, escalation_level="1") == ids(late)
    assert _ids(client, w.admin, escalation_level="0,1") == ids(w.bin, w.light, w.percent, w.thousand, w.far, late)
    assert _ids(client, w.admin, sla_state="red") == ids(late)
    assert _ids(client, w.admin, sla_state="green,red") == ids(late)


@pytest.mark.parametrize(
    "name, value, bad",
    [
        ("status", "submitted,bogus", "bogus"),
        ("status", "submitted,", ""),
        ("sla_state", "red,purple", "purple"),
        ("escalation_level", "0,9", "9"),
        ("escalation_level", "zero", "zero"),
        ("category", "{code},NOPE,ALSO", "NOPE, ALSO"),
    ],
)
def test_an_unknown_value_is_named(client, db, w, name, value, bad):
    problem = assert_problem(
        _get(client, w.admin, **{name: value.format(code=w.category.code)}), 422, "validation_failed"
    )
    assert list(problem["errors"]) == [name]
    assert bad in " ".join(problem["errors"][name])


def test_too_many_values(client, db, w):
    value = ",".join(f"C{i}" for i in range(51))
    assert_problem(_get(client, w.admin, category=value), 422, "validation_failed")


def test_my_reports_tasks_and_escalations_take_several_values(client, db, w):
    resp = client.get("/api/v1/me/reports", headers=auth_header(w.resident), query_string={"status": "accepted,closed"})
    assert resp.status_code == 200, resp.json
    assert [item["id"] for item in resp.json["items"]] == [w.light.id]
    assert_problem(
        client.get("/api/v1/me/reports", headers=auth_header(w.resident), query_string={"status": "open,nope"}),
        422,
        "validation_failed",
    )

    set_case(w.bin, status="assigned", assignee_id=w.worker.id)
    set_case(w.percent, status="resolved", assignee_id=w.worker.id)
    tasks = client.get("/api/v1/me/tasks", headers=auth_header(w.worker), query_string={"status": "assigned,resolved"})
    assert tasks.status_code == 200, tasks.json
    assert sorted(item["id"] for item in tasks.json["items"]) == ids(w.bin, w.percent)

    late = make_escalated_case(w.resident, w.category, w.cells[SW])
    for value in ("community", "community,street"):
        resp = client.get("/api/v1/escalations", headers=auth_header(w.admin), query_string={"escalation_level": value})
        assert resp.status_code == 200, resp.json
        assert [item["id"] for item in resp.json["items"]] == [late.id]
    resp = client.get(
        "/api/v1/escalations", headers=auth_header(w.admin), query_string={"escalation_level": "street,district"}
    )
    assert resp.json["items"] == []
    problem = assert_problem(
        client.get(
            "/api/v1/escalations", headers=auth_header(w.admin), query_string={"escalation_level": "street,planet"}
        ),
        422,
        "validation_failed",
    )
    assert "planet" in problem["errors"]["escalation_level"][0]


def test_the_document_describes_several_values(client, db):
    spec = client.get("/api/v1/openapi.json").json
    params = {p["name"]: p for p in spec["paths"]["/api/v1/reports"]["get"]["parameters"]}
    status = params["status"]["schema"]
    assert status["type"] == "string"
    assert status["pattern"].startswith("^(?:submitted|") and "comma-separated" in params["status"]["description"]
    assert {"q", "case_number", "category", "sla_state", "escalation_level"} <= params.keys()


# ---- the trigram index on PostGIS ------------------------------------------------------------------------------


def test_postgis_text_search_uses_the_trigram_index(db, w, backend):
    if backend != "postgis":
        pytest.skip("pg_trgm is PostgreSQL's")
    needle = "垃圾桶满溢"
    stmt = geoqueries.reports_query(w.admin, q=needle).with_only_columns(Report.id).order_by(None)
    compiled = stmt.compile(dialect=_db.engine.dialect)
    connection = _db.session.connection()
    connection.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params))
    assert "idx_reports_description_trgm" in plan, plan
    assert "idx_reports_address_trgm" in plan, plan
    assert sorted(_db.session.scalars(stmt)) == ids(w.bin, w.far)


def test_users_and_cells_take_several_values(client, db, w):
    resp = client.get(
        "/api/v1/users", headers=auth_header(w.admin), query_string={"role": "worker,supervisor", "page_size": 100}
    )
    assert resp.status_code == 200, resp.json
    assert {item["role"] for item in resp.json["items"]} == {"worker", "supervisor"}
    problem = assert_problem(
        client.get("/api/v1/users", headers=auth_header(w.admin), query_string={"role": "worker,boss"}),
        422,
        "validation_failed",
    )
    assert "boss" in problem["errors"]["role"][0]

    resp = client.get("/api/v1/cells", headers=auth_header(w.admin), query_string={"level": "street,community"})
    assert resp.status_code == 200, resp.json
    assert {item["level"] for item in resp.json["items"]} == {"street", "community"}
    assert_problem(
        client.get("/api/v1/cells", headers=auth_header(w.admin), query_string={"level": "grid,planet"}),
        422,
        "validation_failed",
    )
