"""The supervisors' console (/console/): its page, settings and CSP, and a supervisor's session in Chromium."""

from __future__ import annotations

import io
import os
import re
import shutil
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from app.api import console
from app.api.headers import console_csp, tile_origin
from app.extensions import db
from app.models import Category, Cell, User
from app.services.demo import DEMO_GRID
from tests.conftest import BACKEND
from tests.factories import committed_world, make_escalated_case
from tests.test_attachments import jpeg

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
BUILT = (console.DIST / "index.html").is_file()
API = "/api/v1"


def directives(csp: str) -> dict[str, str]:
    return dict(d.strip().split(" ", 1) for d in csp.split(";"))


# ---- the page, its settings and its CSP --------------------------------------------------------------------------


@pytest.mark.skipif(not BUILT and not os.environ.get("CI"), reason="the console is not built (make console)")
def test_the_page_has_a_strict_csp_and_no_inline_code(client):
    resp = client.get("/console/")
    assert resp.status_code == 200
    found = directives(resp.headers["Content-Security-Policy"])
    assert found["default-src"] == "'none'" and found["script-src"] == "'self'" and found["style-src"] == "'self'"
    assert found["connect-src"] == "'self'" and found["frame-ancestors"] == "'none'"
    assert found["img-src"] == "'self' data: blob:"  # no tile host configured: nothing from elsewhere
    assert "unsafe" not in resp.headers["Content-Security-Policy"]
    html = resp.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in html and not re.search(r"\s(style|on[a-z]+)=", html)
    assert 'lang="zh-CN"' in html
    for asset in ("app.js", "style.css"):
        built = client.get(f"/console/{asset}")
        assert built.status_code == 200 and built.headers["Cache-Control"] == "no-cache"
        assert "Content-Security-Policy" in built.headers


@pytest.mark.skipif(not BUILT, reason="the console is not built (make console)")
def test_the_build_is_not_older_than_its_sources():
    """The browser tests drive the built bundle: one older than a source would test yesterday's console."""
    sources = Path(__file__).resolve().parent.parent / "console"
    newest = max(
        (path for path in [*sources.glob("src/*"), sources / "index.html", sources / "build.mjs"] if path.is_file()),
        key=lambda path: path.stat().st_mtime,
    )
    assert (console.DIST / "app.js").stat().st_mtime >= newest.stat().st_mtime, f"{newest} changed: run make console"


def test_console_redirects_to_its_slash_and_hides_nothing_else(client):
    assert client.get("/console").status_code == 308
    assert client.get("/console/index.html").status_code == 404
    assert client.get("/console/../wsgi.py").status_code == 404
    assert client.get("/console/nope.js").status_code == 404


def test_an_unbuilt_console_says_how_to_build_it(client, monkeypatch, tmp_path):
    monkeypatch.setattr(console, "DIST", tmp_path)
    resp = client.get("/console/")
    assert resp.status_code == 503
    assert "make console" in resp.get_data(as_text=True)


def test_settings_name_the_tiles_and_the_zone_and_the_csp_allows_the_tile_host(app, client, monkeypatch):
    assert client.get("/console/config.json").json == {
        "api": API,
        "timezone": "Asia/Shanghai",
        "tile_url": "",
        "tile_attribution": "",
        "tile_crs": "wgs84",
    }
    url = "https://webrd0{s}.is.autonavi.com/appmaptile?style=8&x={x}&y={y}&z={z}"
    monkeypatch.setitem(app.config, "CONSOLE_TILE_URL", url)
    monkeypatch.setitem(app.config, "CONSOLE_TILE_CRS", "gcj02")
    resp = client.get("/console/config.json")
    assert resp.json["tile_url"] == url and resp.json["tile_crs"] == "gcj02"
    assert (
        directives(resp.headers["Content-Security-Policy"])["img-src"] == "'self' data: blob: https://*.is.autonavi.com"
    )
    # The API's own answers keep their data CSP.
    assert "img-src" not in client.get(f"{API}/categories").headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "url, origin",
    [
        ("", ""),
        ("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png", "https://*.tile.openstreetmap.org"),
        ("https://tiles.example.org:8443/{z}/{x}/{y}.png", "https://tiles.example.org:8443"),
        ("http://tiles.{s}.example.org/{z}/{x}/{y}.png", ""),  # a template inside the host: no host at all
    ],
)
def test_tile_origin(url, origin):
    assert tile_origin(url) == origin
    assert ("img-src 'self' data: blob:" + (f" {origin}" if origin else "") + ";") in console_csp(url)


def test_config_refuses_a_bad_tile_crs_or_url(monkeypatch):
    from config import ConfigError, load_config

    monkeypatch.setenv("CONSOLE_TILE_CRS", "bd09")
    with pytest.raises(ConfigError, match="CONSOLE_TILE_CRS"):
        load_config("testing")
    monkeypatch.setenv("CONSOLE_TILE_CRS", "wgs84")
    monkeypatch.setenv("CONSOLE_TILE_URL", "javascript:alert(1)")
    with pytest.raises(ConfigError, match="CONSOLE_TILE_URL"):
        load_config("testing")


# ---- a supervisor's session in Chromium ---------------------------------------------------------------------------

needs_browser = pytest.mark.skipif(
    (CHROMIUM is None or not BUILT) and not os.environ.get("CI"),
    reason="needs Chromium (Debian's chromium package) and the built console (make console)",
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM or "/usr/bin/chromium", args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def live(app, tmp_path_factory):
    """The demo district, committed, with a case escalated two days ago and a photo, served on a loopback port."""
    uploads = tmp_path_factory.mktemp("uploads")
    saved = app.config["UPLOAD_DIR"]
    app.config["UPLOAD_DIR"] = str(uploads)
    with committed_world(app):
        result = app.test_cli_runner().invoke(args=["seed-demo"])
        assert result.exit_code == 0, result.output
        password = app.config["DEMO_PASSWORD"]
        users = {u.username: u for u in db.session.scalars(select(User))}
        worker = users["worker1"]
        grid = db.session.scalars(select(Cell).where(Cell.code == f"{DEMO_GRID.district_code}00100101")).one()
        category = db.session.scalars(select(Category).where(Category.code == "0301")).one()  # 8 calendar hours
        _open_cases_around(users["13800138000"], category)
        case = make_escalated_case(
            users["13800138000"],
            category,
            grid,
            hours_late=48,
            lon=120.1012,
            lat=30.2411,
            assignee_id=worker.id,
            description="夜间施工噪音扰民，已持续三晚",
            address="演示路 1 号",
        )
        client = app.test_client()
        token = client.post(f"{API}/auth/login", json={"username": "13800138000", "password": password}).json
        photo = client.post(
            f"{API}/reports/{case.id}/attachments",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            data={"stage": "before", "file": (io.BytesIO(jpeg()), "现场.jpg")},
            content_type="multipart/form-data",
        )
        assert photo.status_code == 201, photo.json
        case_id = case.id
        # Hold no transaction while the server writes (SQLite: a reader's lock would keep its commits waiting).
        db.session.commit()
        db.session.close()
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield {"url": f"http://127.0.0.1:{server.server_port}", "case": case_id, "password": password}
        finally:
            server.shutdown()
            thread.join(10)
            app.config["UPLOAD_DIR"] = saved


# (street, community, grid, status, hours since accepted or None): green, yellow and unaccepted cases around the
# district, so the map has lights of every colour and shaded streets beside the escalated case.
AROUND = [
    (1, 1, 6, "assigned", 1),
    (1, 2, 3, "in_progress", 7),
    (1, 3, 11, "accepted", 2),
    (2, 1, 7, "assigned", 7.5),
    (2, 2, 10, "in_progress", 3),
    (2, 3, 2, "submitted", None),
    (3, 1, 14, "accepted", 6.6),
    (3, 2, 5, "submitted", None),
]


def _open_cases_around(resident, category) -> None:
    from geoalchemy2.shape import to_shape

    from app.models.base import utcnow
    from app.services.cases.sla import start_clock
    from tests.factories import make_case

    for street, community, grid, status, hours in AROUND:
        code = f"{DEMO_GRID.district_code}{street:03d}{community:03d}{grid:02d}"
        cell = db.session.scalars(select(Cell).where(Cell.code == code)).one()
        point = to_shape(cell.geom).representative_point()
        case = make_case(resident, category, cell, status=status, lon=point.x, lat=point.y)
        if hours is not None:
            start_clock(case, utcnow() - timedelta(hours=hours))
    db.session.commit()


@pytest.fixture()
def page(browser, live):
    """A fresh browser profile (no cookie) whose CSP reports and script errors are collected."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.problems = []
    page.on(
        "console",
        lambda msg: (
            page.problems.append(msg.text)
            if "Content Security Policy" in msg.text or "Refused to" in msg.text
            else None
        ),
    )
    page.on("pageerror", lambda err: page.problems.append(f"pageerror: {err}"))
    yield page
    context.close()


def sign_in(page, live, username: str) -> None:
    page.goto(f"{live['url']}/console/")
    page.fill("#username", username)
    page.fill("#password", live["password"])
    page.press("#password", "Enter")  # the keyboard submits the form


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"console-{name}-{BACKEND}.png"
    page.screenshot(path=str(path))
    return path


def act_elsewhere(app, live, username: str, note: str) -> None:
    """Another session (another supervisor, over the API) supervises the case."""
    client = app.test_client()
    token = client.post(f"{API}/auth/login", json={"username": username, "password": live["password"]}).json
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    etag = client.get(f"{API}/reports/{live['case']}", headers=headers).headers["ETag"]
    resp = client.post(
        f"{API}/reports/{live['case']}/actions/supervise", json={"note": note}, headers={**headers, "If-Match": etag}
    )
    assert resp.status_code == 200, resp.json


@needs_browser
def test_a_district_supervisor_reviews_and_supervises_an_escalated_case(app, live, page):
    case = live["case"]
    sign_in(page, live, "district_supervisor")

    # The queue: the case is there, red, one level up, with its chain and assignee.
    row = page.locator(f"#queue-table tr[data-case-id='{case}']")
    row.wait_for()
    assert "超期" in row.inner_text() and "社区级" in row.inner_text() and "网格员一" in row.inner_text()
    assert "区级督办员" in page.inner_text("#who")
    shot(page, "queue")

    # The map: the case is a point, marked escalated.
    page.click("#nav-map")
    marker = page.locator(f"path.case-{case}.escalated")
    marker.wait_for()
    # The district's cells drawn (a locator, not wait_for_function: the page's CSP refuses the eval it polls with).
    page.locator("#map .leaflet-cells-pane path").nth(DEMO_GRID.streets * 3).wait_for()
    shot(page, "map")

    # Open it from the map.
    marker.click()
    page.click(".leaflet-popup-content button")
    page.wait_for_selector("#case-description")
    assert "夜间施工噪音扰民" in page.inner_text("#case-description")
    page.wait_for_selector(".photos img")

    # Supervise it with a note: the note is in its history.
    page.click("#case-actions button[data-action=supervise]")
    page.fill("#action-note", "请今晚十点前完成整改")
    page.click("#form-supervise button[type=submit]")
    page.wait_for_selector("#case-history li[data-action=supervise] >> text=请今晚十点前完成整改")
    assert "督办成功" in page.inner_text("#case-message")

    # Another session acts first: the stale action is 412, the page says so and shows the other note.
    act_elsewhere(app, live, "street_supervisor", "街道已电话督促")
    page.click("#case-actions button[data-action=supervise]")
    page.fill("#action-note", "再次督办")
    page.click("#form-supervise button[type=submit]")
    page.wait_for_selector("#case-message.message-warn")
    assert "已被他人更新" in page.inner_text("#case-message")
    page.wait_for_selector("#case-history >> text=街道已电话督促")
    assert "再次督办" not in page.inner_text("#case-history")
    shot(page, "case")
    page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, upright: one column
    shot(page, "case-tablet")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Re-assign it to the cell's backup worker, picked from the cell's workers.
    page.click("#case-actions button[data-action=assign]")
    backup = page.locator("#action-assignee_id option", has_text="网格员二").get_attribute("value")
    page.select_option("#action-assignee_id", value=backup)
    page.click("#form-assign button[type=submit]")
    page.wait_for_selector("#case-history li[data-action=assign]")
    assert "网格员二" in page.inner_text(".facts")

    # A reload keeps the session (the refresh cookie), which script cannot read.
    page.reload()
    page.wait_for_selector("#case-description")
    cookies = page.context.cookies()
    [refresh] = [c for c in cookies if c["name"] == "grid_refresh"]
    assert refresh["httpOnly"] and refresh["sameSite"] == "Strict" and refresh["path"] == f"{API}/auth"
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0  # the access token is in memory only

    # Statistics of the district's streets and the trend.
    page.click("#nav-stats")
    page.wait_for_selector("#stats-table tbody tr.total")
    page.wait_for_selector("#stats-chart canvas")
    assert page.locator("#stats-table tbody tr").count() == DEMO_GRID.streets + 1
    shot(page, "stats")
    with page.expect_download() as download:
        page.click("#stats-export")
    assert download.value.suggested_filename.endswith(".csv")

    # Sign out: the login ends, a reload shows the sign-in form.
    page.click("#sign-out")
    page.wait_for_selector("#login-form")
    assert "已退出登录" in page.inner_text("#login-message")
    assert not [c for c in page.context.cookies() if c["name"] == "grid_refresh"]
    page.reload()
    page.wait_for_selector("#login-form")
    assert page.problems == []


@needs_browser
def test_a_resident_is_refused_by_the_console(live, page):
    sign_in(page, live, "13800138000")
    page.wait_for_selector("#login-message >> text=仅供督办员和管理员使用")
    assert page.locator("#queue-table").count() == 0
    assert not [c for c in page.context.cookies() if c["name"] == "grid_refresh"]
    assert page.problems == []
    # The CSP is enforced (and its reports are what page.problems collects): an injected inline script is refused.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
        " document.body.append(s); }"
    )
    assert page.evaluate("window.injected === undefined")
    for _ in range(100):  # the report reaches us as a console message, a moment later
        if page.problems:
            break
        page.wait_for_timeout(50)
    assert any("Content Security Policy" in problem for problem in page.problems), page.problems


@needs_browser
def test_the_map_shades_communities_and_is_reachable_by_keyboard(live, page):
    case = live["case"]
    sign_in(page, live, "district_supervisor")
    page.wait_for_selector("#queue-table")
    page.click("#nav-map")
    marker = page.locator(f"path.case-{case}.escalated")
    marker.wait_for()

    # The district's communities are shaded and named (a tooltip on focus, the same words for a screen reader);
    # the escalated case's community counts it as overdue, and no community counts more overdue than open.
    community = page.locator("#map .leaflet-cells-pane path[aria-label^='第1街道第1社区：']")
    community.wait_for()
    labels = page.locator("#map .leaflet-cells-pane path[aria-label*='：在办']").evaluate_all(
        "paths => paths.map(p => p.getAttribute('aria-label'))"
    )
    assert len(labels) == DEMO_GRID.streets * 3
    for text in labels:
        open_count, overdue = map(int, re.search(r"在办 (\d+)，超期 (\d+)", text).groups())
        assert overdue <= open_count, text
    assert int(re.search(r"超期 (\d+)", community.get_attribute("aria-label")).group(1)) >= 1
    # The demo month's hot spots are rings, visible at the district's zoom.
    page.locator("#map .leaflet-hotspots-pane path.hotspot").first.wait_for()

    # Tab to the case's point and press Enter: its file opens, its escalation says to which level.
    marker.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#case-description")
    assert "至社区级" in page.inner_text("#case-history li[data-action=escalate]")
    # Back goes to the map it was opened from.
    page.click("#case-back")
    page.wait_for_selector("#map-view:not([hidden])")
    assert page.url.endswith("#/map")
    assert page.problems == []
