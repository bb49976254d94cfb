"""Health and readiness probes."""


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
