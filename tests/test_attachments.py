"""Photos on reports: upload by bytes-sniffed type, who may add which stage, list, download, the after-photo rule."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import time
import zlib
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.models import Attachment, CaseEvent, Category, Report
from app.services.field.storage import LocalBlobStore
from tests.assertions import assert_problem
from tests.factories import (
    COMMUNITY,
    OTHER_COMMUNITY,
    OTHER_GRID,
    auth_header,
    make_case,
    make_category,
    make_offered,
    make_two_district_grid,
    make_user,
)

API = "/api/v1"
SW, NE = "11010500100101", "11010500100104"


# ---- tiny real images, built here so the tests need no imaging library --------------------------


def png(width: int = 1, height: int = 1, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg(comment: bytes = b"") -> bytes:
    """A baseline 8x8 grey JPEG: one block, DC difference 0 and end-of-block, one-code Huffman tables."""

    def segment(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body

    one_code_table = bytes([1] + [0] * 15) + b"\x00"
    return (
        b"\xff\xd8"
        + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + (segment(0xFE, comment) if comment else b"")
        + segment(0xDB, b"\x00" + bytes([1] * 64))
        + segment(0xC0, b"\x08" + struct.pack(">HH", 8, 8) + b"\x01\x01\x11\x00")
        + segment(0xC4, b"\x00" + one_code_table)
        + segment(0xC4, b"\x10" + one_code_table)
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + b"\x3f"
        + b"\xff\xd9"
    )


def webp() -> bytes:
    """A lossless (VP8L) 1x1 WebP."""
    payload = b"\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07"
    # RIFF chunks are padded to an even length.
    body = b"WEBP" + b"VP8L" + struct.pack("<I", len(payload)) + payload + b"\x00"
    return b"RIFF" + struct.pack("<I", len(body)) + body


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


# ---- world --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def store(request, app, tmp_path, monkeypatch):
    """The app's photo store for the test: its own temporary folder (never the repository's instance folder), or
    with BOTH_STORES also a fresh bucket of the session's S3 server."""
    monkeypatch.setitem(app.config, "UPLOAD_DIR", str(tmp_path / "uploads"))
    if getattr(request, "param", "local") == "s3":
        return request.getfixturevalue("s3_store")
    return LocalBlobStore(tmp_path / "uploads")


# Storage behaviour runs against the local folder and the S3 server alike; access rules do not depend on it.
BOTH_STORES = pytest.mark.parametrize("store", ["local", "s3"], indirect=True)


@pytest.fixture()
def w(db):
    cells = make_two_district_grid()
    world = SimpleNamespace(
        cells=cells,
        category=make_category(hours=4, auto_dispatch=False),
        resident=make_user("resident"),
        resident2=make_user("resident"),
        worker=make_user("worker", served=[cells[SW]]),
        worker2=make_user("worker", served=[cells[SW]]),
        worker_ne=make_user("worker", served=[cells[NE]]),
        other_worker=make_user("worker", served=[cells[OTHER_GRID]]),
        supervisor=make_user("supervisor", cell=cells[COMMUNITY]),
        other_supervisor=make_user("supervisor", cell=cells[OTHER_COMMUNITY]),
        admin=make_user("admin"),
    )
    world.case = make_case(world.resident, world.category, cells[SW], status="in_progress", assignee_id=world.worker.id)
    return world


def url(report, suffix: str = "") -> str:
    return f"{API}/reports/{report.id if hasattr(report, 'id') else report}/attachments{suffix}"


def upload(
    client,
    report,
    user,
    data: bytes | None = b"",
    *,
    stage: str | None = "before",
    filename: str = "photo.jpg",
    part_type: str = "image/jpeg",
    extra: dict | None = None,
):
    form: dict = {}
    if stage is not None:
        form["stage"] = stage
    if data is not None:
        form["file"] = (io.BytesIO(data), filename, part_type)
    form.update(extra or {})
    headers = auth_header(user) if user is not None else {}
    return client.post(url(report), data=form, headers=headers, content_type="multipart/form-data")


def blobs(store) -> list[str]:
    return sorted(store.keys())


def stored(db, store) -> tuple:
    """What an upload can leave behind: rows, attach events, the case row itself, and blobs."""
    db.session.expire_all()
    return (
        db.session.scalar(select(func.count()).select_from(Attachment)),
        db.session.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.action == "attach")),
        db.session.execute(select(Report.status, Report.version, Report.updated_at)).all(),
        blobs(store),
    )


def version(db, report) -> int:
    db.session.expire_all()
    return db.session.scalar(select(Report.version).where(Report.id == report.id))


# ---- upload: accepted types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, media_type, size, part_type",
    [
        (jpeg, "image/jpeg", (8, 8), "image/jpeg"),
        (png, "image/png", (1, 1), "application/octet-stream"),
        (webp, "image/webp", (1, 1), "text/plain"),
    ],
    ids=["jpeg", "png", "webp"],
)
@BOTH_STORES
def test_each_image_type_is_accepted_by_its_bytes(client, db, w, store, make, media_type, size, part_type):
    data = make()
    before_version = version(db, w.case)
    # The part's Content-Type and the name's extension are deliberately wrong: only the bytes count.
    resp = upload(client, w.case, w.worker, data, stage="after", filename="现场.gif", part_type=part_type)
    assert resp.status_code == 201, resp.json
    body = resp.json
    digest = hashlib.sha256(data).hexdigest()
    assert body["media_type"] == media_type
    assert (body["width"], body["height"]) == size
    assert (body["stage"], body["sha256"], body["size_bytes"]) == ("after", digest, len(data))
    assert (body["report_id"], body["uploader_id"], body["original_name"]) == (w.case.id, w.worker.id, "现场.gif")
    row = db.session.get(Attachment, body["id"])
    assert (row.sha256, row.media_type, row.stage) == (digest, media_type, "after")
    with store.open(digest) as blob:
        assert blob.read() == data
    event = db.session.scalars(
        select(CaseEvent).where(CaseEvent.report_id == w.case.id, CaseEvent.action == "attach")
    ).one()
    assert event.data == {"attachment_id": body["id"], "stage": "after"}
    assert (event.actor_id, event.note, event.from_status, event.to_status) == (
        w.worker.id,
        None,
        "in_progress",
        "in_progress",
    )
    # A photo is no change of state: the case's ETag stays.
    assert version(db, w.case) == before_version


@BOTH_STORES
def test_the_same_bytes_twice_make_two_rows_and_one_file(client, db, w, store):
    data = png(2, 2)
    first = upload(client, w.case, w.resident, data, stage="before")
    second = upload(client, w.case, w.worker, data, stage="after")
    assert (first.status_code, second.status_code) == (201, 201), (first.json, second.json)
    assert first.json["id"] != second.json["id"]
    assert first.json["sha256"] == second.json["sha256"]
    assert blobs(store) == [hashlib.sha256(data).hexdigest()]
    assert stored(db, store)[:2] == (2, 2)


def test_a_file_of_exactly_the_limit_is_accepted(client, db, w, app, monkeypatch):
    data = png()
    monkeypatch.setitem(app.config, "ATTACHMENT_MAX_BYTES", len(data))
    assert upload(client, w.case, w.resident, data).status_code == 201


def test_the_original_name_is_cleaned(client, db, w):
    long_name = "长" * 300 + ".png"
    resp = upload(client, w.case, w.resident, png(), filename="..\\..\\photos/照片\t一.png")
    assert resp.json["original_name"] == "照片一.png"
    resp = upload(client, w.case, w.resident, png(3, 1), filename=long_name)
    assert resp.json["original_name"] == "长" * 196 + ".png"
    assert len(resp.json["original_name"]) == 200


# ---- upload: refusals store nothing -------------------------------------------------------------

REFUSALS = {
    "pdf_named_jpg": (dict(data=PDF, filename="photo.jpg", part_type="image/jpeg"), 415, "unsupported_image_type"),
    "text_file": (
        dict(data=b"just some text\n", filename="note.png", part_type="image/png"),
        415,
        "unsupported_image_type",
    ),
    "truncated_magic": (dict(data=b"\xff\xd8"), 415, "unsupported_image_type"),
    "zero_bytes": (dict(data=b""), 422, "validation_failed"),
    "missing_file": (dict(data=None), 422, "validation_failed"),
    "missing_stage": (dict(data=png(), stage=None), 422, "validation_failed"),
    "bad_stage": (dict(data=png(), stage="during"), 422, "validation_failed"),
    "empty_stage": (dict(data=png(), stage=""), 422, "validation_failed"),
    "unknown_field": (dict(data=png(), extra={"caption": "hi"}), 422, "validation_failed"),
    "unknown_file_part": (dict(data=png(), extra={"thumb": (io.BytesIO(png()), "t.png")}), 422, "validation_failed"),
    "two_files": (
        dict(data=None, extra={"file": [(io.BytesIO(png()), "a.png"), (io.BytesIO(jpeg()), "b.jpg")]}),
        422,
        "validation_failed",
    ),
    "file_as_text_field": (dict(data=None, extra={"file": "not a file part"}), 422, "validation_failed"),
}


FIELD_AT_FAULT = {
    "zero_bytes": "file",
    "missing_file": "file",
    "missing_stage": "stage",
    "bad_stage": "stage",
    "empty_stage": "stage",
    "unknown_field": "caption",
    "unknown_file_part": "thumb",
    "two_files": "file",
    "file_as_text_field": "file",
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_a_refused_upload_stores_nothing(client, db, w, store, name):
    kwargs, status, code = REFUSALS[name]
    before = stored(db, store)
    problem = assert_problem(upload(client, w.case, w.worker, **kwargs), status, code)
    if status == 422:
        assert set(problem["errors"]) == {FIELD_AT_FAULT[name]}, problem
    assert stored(db, store) == before
    assert blobs(store) == []


@pytest.mark.parametrize("store", ["s3"], indirect=True)
def test_refusals_by_content_store_nothing_in_the_object_store(client, db, w, store):
    before = stored(db, store)
    assert_problem(upload(client, w.case, w.worker, PDF, filename="a.jpg"), 415, "unsupported_image_type")
    assert_problem(upload(client, w.case, w.worker, b""), 422, "validation_failed")
    assert stored(db, store) == before
    assert blobs(store) == []


@BOTH_STORES
def test_an_oversized_file_is_413_and_stores_nothing(client, db, w, store, app, monkeypatch):
    monkeypatch.setitem(app.config, "ATTACHMENT_MAX_BYTES", 1000)
    before = stored(db, store)
    # Just past the limit (the body still fits the request limit): the file's own size is checked.
    just_over = png() + b"\x00" * (1001 - len(png()))
    assert_problem(upload(client, w.case, w.worker, just_over), 413, "payload_too_large")
    # Far past it: the request body is refused before it is read.
    far_over = png() + b"\x00" * 200_000
    assert_problem(upload(client, w.case, w.worker, far_over), 413, "payload_too_large")
    assert stored(db, store) == before


def test_the_default_body_limit_does_not_cap_uploads(client, db, w, app, monkeypatch):
    # The app-wide JSON limit is 1 MiB; a 1.5 MiB photo must still pass under the 10 MB default.
    data = png() + b"\x00" * (1536 * 1024)
    assert app.config["ATTACHMENT_MAX_BYTES"] == 10 * 1024 * 1024
    resp = upload(client, w.case, w.worker, data)
    assert resp.status_code == 201, resp.json
    assert resp.json["size_bytes"] == len(data)


@pytest.mark.parametrize("kind", ["json", "urlencoded", "raw_image", "no_body"])
def test_anything_but_multipart_is_415(client, db, w, store, kind):
    before = stored(db, store)
    headers = auth_header(w.worker)
    if kind == "json":
        resp = client.post(url(w.case), json={"stage": "before", "file": "aGVsbG8="}, headers=headers)
    elif kind == "urlencoded":
        resp = client.post(url(w.case), data={"stage": "before"}, headers=headers)
    elif kind == "raw_image":
        resp = client.post(url(w.case), data=png(), content_type="image/png", headers=headers)
    else:
        resp = client.post(url(w.case), headers=headers)
    assert_problem(resp, 415, "unsupported_media_type")
    assert stored(db, store) == before


def test_without_a_token_the_body_type_does_not_matter(client, db, w, store):
    before = stored(db, store)
    assert_problem(client.post(url(w.case), json={"stage": "before"}), 401, "missing_token")
    assert stored(db, store) == before


def test_a_broken_multipart_body_is_refused(client, db, w, store):
    before = stored(db, store)
    resp = client.post(
        url(w.case),
        data=b"--nope\r\nnot a part",
        headers=auth_header(w.worker),
        content_type="multipart/form-data; boundary=elsewhere",
    )
    # Nothing parses out of it, so the parts are missing.
    assert "stage" in assert_problem(resp, 422, "validation_failed")["errors"]
    assert stored(db, store) == before


# ---- upload: who may add what -------------------------------------------------------------------

STAGE_RULES = [
    ("resident", "before", 201),
    ("resident", "after", 403),
    ("resident", "verify", 403),
    ("worker", "before", 201),
    ("worker", "after", 201),
    ("worker", "verify", 403),
    ("worker2", "before", 201),
    ("worker2", "after", 201),
    ("worker2", "verify", 201),
    ("supervisor", "after", 201),
    ("supervisor", "verify", 201),
    ("admin", "before", 201),
    ("admin", "verify", 201),
]


@pytest.mark.parametrize("who, stage, status", STAGE_RULES, ids=[f"{w}-{s}" for w, s, _ in STAGE_RULES])
def test_stages_by_role(client, db, w, store, who, stage, status):
    before = stored(db, store)
    resp = upload(client, w.case, getattr(w, who), png(), stage=stage)
    if status == 201:
        assert resp.status_code == 201, resp.json
        assert resp.json["stage"] == stage
    else:
        assert_problem(resp, 403, "attachment_forbidden")
        assert stored(db, store) == before


def test_an_assignee_who_no_longer_serves_the_cell_still_documents_the_work(client, db, w):
    case = make_case(w.resident, w.category, w.cells[SW], status="in_progress", assignee_id=w.worker_ne.id)
    assert upload(client, case, w.worker_ne, png(), stage="after").status_code == 201
    assert_problem(upload(client, case, w.worker_ne, png(), stage="verify"), 403, "attachment_forbidden")


def test_a_worker_reporter_outside_their_cells_adds_only_before_photos(client, db, w):
    case = make_case(w.worker_ne, w.category, w.cells[SW], status="submitted")
    assert upload(client, case, w.worker_ne, png(), stage="before").status_code == 201
    assert_problem(upload(client, case, w.worker_ne, png(), stage="after"), 403, "attachment_forbidden")


@pytest.mark.parametrize("who", ["resident2", "worker_ne", "other_worker", "other_supervisor"])
def test_who_cannot_see_the_case_gets_404_and_nothing_is_stored(client, db, w, store, who):
    before = stored(db, store)
    assert_problem(upload(client, w.case, getattr(w, who), png()), 404, "report_not_found")
    assert_problem(client.get(url(w.case), headers=auth_header(getattr(w, who))), 404, "report_not_found")
    assert stored(db, store) == before


def test_no_token_is_401_and_an_unknown_case_404(client, db, w, store):
    before = stored(db, store)
    assert_problem(upload(client, w.case, None, png()), 401, "missing_token")
    assert_problem(client.get(url(w.case)), 401, "missing_token")
    assert_problem(upload(client, 999_999, w.admin, png()), 404, "report_not_found")
    assert stored(db, store) == before


@pytest.mark.parametrize("status", ["closed", "rejected", "duplicate", "cancelled"])
def test_a_final_case_takes_no_photos(client, db, w, store, status):
    case = make_case(w.resident, w.category, w.cells[SW], status=status, assignee_id=w.worker.id)
    before = stored(db, store)
    problem = assert_problem(upload(client, case, w.admin, png(), stage="verify"), 409, "case_final")
    assert problem["case_status"] == status
    assert stored(db, store) == before


# ---- list, metadata, content --------------------------------------------------------------------


def test_the_list_shows_every_photo_oldest_first_to_whoever_sees_the_case(client, db, w):
    ids = [
        upload(client, w.case, w.resident, png(1, 1)).json["id"],
        upload(client, w.case, w.worker, jpeg(), stage="after").json["id"],
    ]
    other = make_case(w.resident, w.category, w.cells[SW], status="in_progress", assignee_id=w.worker.id)
    upload(client, other, w.resident, webp())
    for viewer in (w.resident, w.worker, w.worker2, w.supervisor, w.admin):
        resp = client.get(url(w.case), headers=auth_header(viewer))
        assert resp.status_code == 200, resp.json
        assert [a["id"] for a in resp.json] == ids
        assert [a["stage"] for a in resp.json] == ["before", "after"]
    assert client.get(url(make_case(w.resident, w.category, w.cells[SW])), headers=auth_header(w.resident)).json == []


def _follower(client, w):
    """resident2 follows the case (it was offered to them) and sees its public view."""
    make_offered(w.resident2, w.case)
    resp = client.post(f"{API}/reports/{w.case.id}/actions/follow", json={}, headers=auth_header(w.resident2))
    assert resp.status_code == 200, resp.json
    return w.resident2


@pytest.mark.parametrize("public", [False, True], ids=["private-category", "public-category"])
def test_a_follower_sees_only_the_photos_of_the_public_view(client, db, w, public):
    """None at all, or the "after" photos when the category is public; never who took them or their file name."""
    w.category.public = public
    db.session.commit()
    uploaded = {
        stage: upload(client, w.case, user, png(), stage=stage, filename="王师傅.png").json
        for stage, user in (("before", w.resident), ("after", w.worker), ("verify", w.supervisor))
    }
    follower = _follower(client, w)
    listed = client.get(url(w.case), headers=auth_header(follower))
    assert listed.status_code == 200, listed.json
    shown = {"after"} if public else set()
    assert [a["stage"] for a in listed.json] == sorted(shown)
    for stage, attachment in uploaded.items():
        for path in (f"/{attachment['id']}", f"/{attachment['id']}/content"):
            resp = client.get(url(w.case, path), headers=auth_header(follower))
            if stage in shown:
                assert resp.status_code == 200, resp.get_data(as_text=True)
            else:
                assert_problem(resp, 404, "attachment_not_found")
    for item in listed.json:
        assert (item["uploader_id"], item["original_name"]) == (None, None)
        assert item["id"] == uploaded["after"]["id"]
    if public:
        content = client.get(url(w.case, f"/{uploaded['after']['id']}/content"), headers=auth_header(follower))
        assert content.get_data() == png()


def test_the_reporter_sees_every_photo_but_not_who_took_the_staffs(client, db, w):
    mine = upload(client, w.case, w.resident, png(), filename="我的.png").json
    theirs = upload(client, w.case, w.worker, jpeg(), stage="after", filename="王师傅.jpg").json
    listed = {a["id"]: a for a in client.get(url(w.case), headers=auth_header(w.resident)).json}
    assert (listed[mine["id"]]["uploader_id"], listed[mine["id"]]["original_name"]) == (w.resident.id, "我的.png")
    assert (listed[theirs["id"]]["uploader_id"], listed[theirs["id"]]["original_name"]) == (None, None)
    staff = {a["id"]: a for a in client.get(url(w.case), headers=auth_header(w.supervisor)).json}
    assert (staff[theirs["id"]]["uploader_id"], staff[theirs["id"]]["original_name"]) == (w.worker.id, "王师傅.jpg")


def test_metadata_of_one_photo_and_404_for_another_cases_photo(client, db, w):
    attachment = upload(client, w.case, w.resident, png()).json
    resp = client.get(url(w.case, f"/{attachment['id']}"), headers=auth_header(w.supervisor))
    assert resp.status_code == 200, resp.json
    assert resp.json == attachment
    other = make_case(w.resident, w.category, w.cells[SW], status="in_progress", assignee_id=w.worker.id)
    for path in (f"/{attachment['id']}", f"/{attachment['id']}/content"):
        assert_problem(client.get(url(other, path), headers=auth_header(w.admin)), 404, "attachment_not_found")
    assert_problem(client.get(url(w.case, "/999999"), headers=auth_header(w.admin)), 404, "attachment_not_found")
    for path in (f"/{attachment['id']}", f"/{attachment['id']}/content"):
        assert_problem(client.get(url(w.case, path), headers=auth_header(w.resident2)), 404, "report_not_found")
        assert_problem(client.get(url(w.case, path)), 401, "missing_token")


@BOTH_STORES
def test_the_content_is_the_uploaded_bytes_with_safe_headers(client, db, w, store):
    data = webp()
    attachment = upload(client, w.case, w.resident, data, filename="门口 照片.webp").json
    resp = client.get(url(w.case, f"/{attachment['id']}/content"), headers=auth_header(w.worker))
    assert resp.status_code == 200
    assert resp.data == data
    assert resp.mimetype == "image/webp"
    assert resp.headers["Content-Length"] == str(len(data))
    assert resp.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    # Named by the server: case number, stage, id and the extension of the sniffed type; the uploader's name
    # stays a label in the metadata.
    assert (
        resp.headers["Content-Disposition"]
        == f"attachment; filename={w.case.case_number}-before-{attachment['id']}.webp"
    )
    assert attachment["original_name"] == "门口 照片.webp"


@BOTH_STORES
def test_a_photo_whose_bytes_the_store_lacks_is_404_and_the_rest_reads(client, db, w, store):
    attachment = upload(client, w.case, w.worker, png()).json
    store.delete(attachment["sha256"])
    resp = client.get(url(w.case, f"/{attachment['id']}/content"), headers=auth_header(w.worker))
    problem = assert_problem(resp, 404, "attachment_content_missing")
    assert str(attachment["id"]) in problem["detail"]
    # The metadata and the case still read.
    assert client.get(url(w.case, f"/{attachment['id']}"), headers=auth_header(w.worker)).status_code == 200
    assert client.get(f"{API}/reports/{w.case.id}", headers=auth_header(w.worker)).status_code == 200


@pytest.mark.parametrize(
    "filename",
    [
        "",
        "invoice.pdf.exe",
        'a.png"; filename="evil.html',
        "x.png\tSet-Cookie: a=b\x07",
        "../../etc/passwd",
        "照片.gif",
    ],
)
def test_downloads_never_carry_the_uploaders_name(client, db, w, filename):
    attachment = upload(client, w.case, w.worker, png(), stage="after", filename=filename).json
    resp = client.get(url(w.case, f"/{attachment['id']}/content"), headers=auth_header(w.resident))
    assert resp.status_code == 200
    assert (
        resp.headers["Content-Disposition"] == f"attachment; filename={w.case.case_number}-after-{attachment['id']}.png"
    )
    assert "Set-Cookie" not in resp.headers


def test_if_none_match_answers_304(client, db, w):
    data = jpeg()
    attachment = upload(client, w.case, w.resident, data).json
    path = url(w.case, f"/{attachment['id']}/content")
    tag = f'"{attachment["sha256"]}"'
    for header in (tag, f'"other", {tag}', f"W/{tag}", "*"):
        resp = client.get(path, headers={**auth_header(w.resident), "If-None-Match": header})
        assert resp.status_code == 304, header
        assert resp.data == b""
        assert "Content-Type" not in resp.headers  # no content to describe, and the document declares none
        assert resp.headers["ETag"] == tag
    resp = client.get(path, headers={**auth_header(w.resident), "If-None-Match": '"something-else"'})
    assert resp.status_code == 200
    assert resp.data == data


# ---- categories.requires_after_photo ------------------------------------------------------------


def category_flags(db) -> list[tuple]:
    db.session.expire_all()
    return db.session.execute(select(Category.code, Category.requires_after_photo).order_by(Category.code)).all()


def test_categories_take_and_show_requires_after_photo(client, db, w):
    admin = auth_header(w.admin)
    resp = client.post(
        f"{API}/categories",
        headers=admin,
        json={"code": "0601", "name": "井盖缺失", "group": "部件", "time_limit_value": 6, "requires_after_photo": True},
    )
    assert resp.status_code == 201, resp.json
    assert resp.json["requires_after_photo"] is True
    default = client.post(
        f"{API}/categories",
        headers=admin,
        json={"code": "0602", "name": "路灯", "group": "部件", "time_limit_value": 6},
    )
    assert default.json["requires_after_photo"] is False
    patched = client.patch(f"{API}/categories/{resp.json['id']}", headers=admin, json={"requires_after_photo": False})
    assert patched.status_code == 200, patched.json
    assert patched.json["requires_after_photo"] is False
    listed = {c["code"]: c["requires_after_photo"] for c in client.get(f"{API}/categories").json["items"]}
    assert listed["0601"] is False and listed["0602"] is False


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_requires_after_photo_must_be_a_boolean(client, db, w, value):
    before = category_flags(db)
    admin = auth_header(w.admin)
    problem = assert_problem(
        client.patch(f"{API}/categories/{w.category.id}", headers=admin, json={"requires_after_photo": value}),
        422,
        "validation_failed",
    )
    assert "requires_after_photo" in problem["errors"]
    problem = assert_problem(
        client.post(
            f"{API}/categories",
            headers=admin,
            json={"code": "0603", "name": "x", "group": "y", "time_limit_value": 1, "requires_after_photo": value},
        ),
        422,
        "validation_failed",
    )
    assert "requires_after_photo" in problem["errors"]
    assert category_flags(db) == before


def test_category_writes_with_the_flag_need_an_admin(client, db, w):
    before = category_flags(db)
    resp = client.patch(
        f"{API}/categories/{w.category.id}", headers=auth_header(w.supervisor), json={"requires_after_photo": True}
    )
    assert_problem(resp, 403, "forbidden")
    assert category_flags(db) == before


# ---- resolving needs an after photo when the category says so -----------------------------------


def resolve(client, db, report, user, etag: int):
    return client.post(
        f"{API}/reports/{report.id}/actions/resolve",
        json={"note": "已处理"},
        headers={**auth_header(user), "If-Match": f'"{etag}"'},
    )


def test_resolving_without_an_after_photo_is_409_then_succeeds_with_one(client, db, w, store):
    w.category.requires_after_photo = True
    db.session.commit()
    etag = version(db, w.case)
    before = stored(db, store)
    events = db.session.scalar(select(func.count()).select_from(CaseEvent))
    assert_problem(resolve(client, db, w.case, w.worker, etag), 409, "after_photo_required")
    assert stored(db, store) == before
    assert db.session.scalar(select(func.count()).select_from(CaseEvent)) == events
    # A before photo is not enough.
    assert upload(client, w.case, w.worker, png(), stage="before").status_code == 201
    assert_problem(resolve(client, db, w.case, w.worker, etag), 409, "after_photo_required")
    # The after photo leaves the ETag alone, so the resolve prepared before taking it still applies.
    assert upload(client, w.case, w.worker, jpeg(), stage="after").status_code == 201
    resp = resolve(client, db, w.case, w.worker, etag)
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "resolved"


def test_a_category_without_the_flag_resolves_without_photos(client, db, w):
    resp = resolve(client, db, w.case, w.worker, version(db, w.case))
    assert resp.status_code == 200, resp.json


def test_the_after_photo_rule_comes_after_permission_and_if_match(client, db, w):
    w.category.requires_after_photo = True
    db.session.commit()
    etag = version(db, w.case)
    assert_problem(resolve(client, db, w.case, w.worker2, etag), 403, "action_forbidden")
    assert_problem(resolve(client, db, w.case, w.worker, etag + 1), 412, "version_mismatch")


# ---- flask attachments gc -----------------------------------------------------------------------


def test_gc_removes_old_unreferenced_blobs_only(client, db, w, app, store):
    kept = upload(client, w.case, w.resident, png()).json["sha256"]
    orphan, fresh_orphan = store.put(b"left by a rolled-back upload"), store.put(b"an upload still in flight")
    past = time.time() - 7200
    for key in (kept, orphan):
        os.utime(store.path(key), (past, past))
    result = app.test_cli_runner().invoke(args=["attachments", "gc"])
    assert result.exit_code == 0, result.output
    assert "removed 1 " in result.output
    assert sorted(store.keys()) == sorted([kept, fresh_orphan])
    result = app.test_cli_runner().invoke(args=["attachments", "gc", "--min-age", "0"])
    assert "removed 1 " in result.output
    assert list(store.keys()) == [kept]


@BOTH_STORES
def test_gc_spares_young_blobs_then_removes_the_unreferenced(client, db, w, app, store):
    kept = upload(client, w.case, w.resident, png()).json["sha256"]
    orphan = store.put(b"left by a rolled-back upload")
    result = app.test_cli_runner().invoke(args=["attachments", "gc"])
    assert (result.exit_code, "removed 0 " in result.output) == (0, True), result.output
    assert blobs(store) == sorted([kept, orphan])
    result = app.test_cli_runner().invoke(args=["attachments", "gc", "--min-age", "0"])
    assert (result.exit_code, "removed 1 " in result.output) == (0, True), result.output
    assert blobs(store) == [kept]
    resp = client.get(
        url(w.case, f"/{upload(client, w.case, w.resident, png()).json['id']}/content"), headers=auth_header(w.resident)
    )
    assert resp.data == png()


def test_gc_with_the_store_down_fails_with_a_message(app, s3_down):
    result = app.test_cli_runner().invoke(args=["attachments", "gc", "--min-age", "0"])
    assert result.exit_code == 1
    assert "The photo store did not answer" in result.output


# ---- a photo store that is down, a database that fails after the blob was put -------------------------------------


def test_an_upload_while_the_store_is_down_is_503_and_writes_nothing(client, db, w, store, s3_down):
    # `store` is the unused local folder here: only the rows, events and case of stored() count.
    before = stored(db, store)
    resp = upload(client, w.case, w.worker, png(), stage="after")
    problem = assert_problem(resp, 503, "storage_unavailable")
    assert resp.headers["Retry-After"] == "5"
    assert problem["detail"] == "照片存储未响应，请稍后重试。"
    assert stored(db, store) == before
    assert before[:2] == (0, 0)


def test_a_retried_upload_after_the_store_came_back_succeeds_once(
    client, db, w, app, monkeypatch, s3_down, s3_endpoint
):
    from tests.conftest import use_s3

    headers = {**auth_header(w.worker), "Idempotency-Key": "photo-down"}

    def send():
        form = {"stage": "after", "file": (io.BytesIO(png()), "a.png", "image/png")}
        return client.post(url(w.case), data=form, headers=headers, content_type="multipart/form-data")

    assert_problem(send(), 503, "storage_unavailable")
    back = use_s3(app, monkeypatch, s3_endpoint, f"photos-back-{w.case.id}")
    back.client.create_bucket(Bucket=back.bucket)
    first = send()
    assert first.status_code == 201, first.json
    assert "Idempotent-Replayed" not in first.headers
    assert send().headers["Idempotent-Replayed"] == "true"
    assert stored(db, back)[:2] == (1, 1)
    assert blobs(back) == [hashlib.sha256(png()).hexdigest()]


def test_a_download_while_the_store_is_down_is_503(client, db, w, app, monkeypatch, s3_store):
    attachment = upload(client, w.case, w.resident, jpeg()).json
    from tests.conftest import free_port

    monkeypatch.setitem(app.config, "S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    resp = client.get(url(w.case, f"/{attachment['id']}/content"), headers=auth_header(w.resident))
    assert_problem(resp, 503, "storage_unavailable")
    assert resp.headers["Retry-After"] == "5"
    # Who may not see the photo hears so first: the store is asked only after the access check.
    assert_problem(
        client.get(url(w.case, f"/{attachment['id']}/content"), headers=auth_header(w.resident2)),
        404,
        "report_not_found",
    )
    # The metadata comes from the database and stays readable.
    assert client.get(url(w.case, f"/{attachment['id']}"), headers=auth_header(w.resident)).status_code == 200


@BOTH_STORES
def test_a_failed_commit_after_the_blob_was_put_leaves_no_row_and_gc_removes_the_blob(
    client, db, w, app, monkeypatch, store
):
    from sqlalchemy.exc import OperationalError

    before = stored(db, store)
    headers = auth_header(w.worker)

    def failing_commit():
        raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    db.session.commit = failing_commit
    try:
        form = {"stage": "after", "file": (io.BytesIO(png(5, 5)), "a.png", "image/png")}
        resp = client.post(url(w.case), data=form, headers=headers, content_type="multipart/form-data")
    finally:
        del db.session.commit
    assert_problem(resp, 503, "database_unavailable")
    orphan = hashlib.sha256(png(5, 5)).hexdigest()
    after = stored(db, store)
    # No row, no event, the case untouched; only the blob, which no row names.
    assert after[:3] == before[:3]
    assert after[3] == sorted([*before[3], orphan])
    result = app.test_cli_runner().invoke(args=["attachments", "gc", "--min-age", "0"])
    assert "removed 1 " in result.output, result.output
    assert stored(db, store) == before


# ---- Idempotency-Key ----------------------------------------------------------------------------


@BOTH_STORES
def test_a_retried_upload_is_replayed_even_with_a_new_multipart_boundary(client, db, w, store):
    data = png(3, 3)
    headers = {**auth_header(w.worker), "Idempotency-Key": "photo-1"}

    def send(payload, boundary):
        form = {"stage": "after", "file": (io.BytesIO(payload), "a.png", "image/png")}
        return client.post(
            url(w.case), data=form, headers=headers, content_type=f"multipart/form-data; boundary={boundary}"
        )

    first = send(data, "first-boundary")
    assert first.status_code == 201, first.json
    after_first = stored(db, store)
    again = send(data, "another-boundary")
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (201, "true")
    assert again.get_data() == first.get_data()
    assert stored(db, store) == after_first
    other = send(png(4, 4), "first-boundary")
    assert_problem(other, 422, "idempotency_key_reused")
    assert stored(db, store) == after_first
