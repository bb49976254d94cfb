"""Health and readiness probes."""

from tests.factories import auth_header, make_test_grid, make_user


def test_healthz_answers(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json == {"status": "ok"}


def test_readyz_reports_latest_migration(client, backend):
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["status"] == "ready"
    assert body["database"]["revision"] == body["database"]["head"]
    assert body["database"]["backend"] == ("sqlite" if backend == "spatialite" else "postgresql")


def test_data_from_factories_survives_requests(client):
    cells = make_test_grid()
    user = make_user("worker", served=[cells["11010500100101"]])
    headers = auth_header(user)
    assert client.get("/api/v1/nope", headers=headers).status_code == 404
    first = client.get("/api/v1/me", headers=headers)
    second = client.get("/api/v1/me", headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.json["served_cells"][0]["code"] == "11010500100101"
