"""Photos on reports: who may add which stage, what counts as a photo, and where its bytes go."""

from __future__ import annotations

import os
import re
import struct
import time
import unicodedata
from typing import BinaryIO

from flask import current_app
from sqlalchemy import Select, select

from app.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    UnsupportedImage,
    ValidationFailed,
)
from app.extensions import db
from app.lib.i18n import tr
from app.models import FINAL_STATUSES, Attachment, AttachmentStage, Report, Role, User
from app.models.base import utcnow
from app.models.labels import STATUS_LABELS, label
from app.services.cases import lifecycle as cases, reports as report_service
from app.services.field.storage import blob_store
from app.services.people import workers
from app.services.public import view as public_view

NAME_MAX = 200
# Media type and file extension by signature; only the bytes decide, never the name or the part's Content-Type.
JPEG, PNG, WEBP = "image/jpeg", "image/png", "image/webp"
EXTENSIONS = {JPEG: "jpg", PNG: "png", WEBP: "webp"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (every coding process); C4, C8 and CC share the range but are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def sniff(data: bytes) -> str | None:
    """The image type the file's leading bytes announce, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return JPEG
    if data[:8] == _PNG_SIGNATURE:
        return PNG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    return None


def dimensions(data: bytes, media_type: str) -> tuple[int, int] | None:
    """Width and height from the image's header, or None when the header cannot be read (kept as unknown)."""
    try:
        size = {PNG: _png_size, WEBP: _webp_size, JPEG: _jpeg_size}[media_type](data)
    except (struct.error, IndexError):
        return None
    return size if size and size[0] > 0 and size[1] > 0 else None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data with no frame header before it
            return None
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return None


def clean_name(name: str | None) -> str | None:
    """The client's file name as a label: no folders, no control characters, at most NAME_MAX characters."""
    if not name:
        return None
    name = unicodedata.normalize("NFC", re.split(r"[/\\]", name)[-1])
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if len(name) > NAME_MAX:
        root, ext = os.path.splitext(name)
        name = root[: NAME_MAX - len(ext)] + ext if len(ext) <= 16 else name[:NAME_MAX]
    return name or None


def allowed_stages(user: User, report: Report) -> frozenset[str]:
    """Which photos a user may add to a case they can see (README: "Photos").

    The reporter shows the problem (before); the assignee and the cell's workers document the work (before,
    after); whoever may verify the case records the check (verify): supervisors of the subtree, admins, and a
    worker of the cell other than the assignee, as in cases.may."""
    if user.role == Role.admin.value or (
        user.role == Role.supervisor.value and report_service.in_subtree(user, report)
    ):
        return frozenset(s.value for s in AttachmentStage)
    stages: set[str] = set()
    if report.reporter_id == user.id:
        stages.add(AttachmentStage.before.value)
    if user.role == Role.worker.value:
        serves_cell = report.cell_id is not None and workers.serves(user.id, report.cell_id)
        if serves_cell or report.assignee_id == user.id:
            stages.update((AttachmentStage.before.value, AttachmentStage.after.value))
        if serves_cell and report.assignee_id != user.id:
            stages.add(AttachmentStage.verify.value)
    return frozenset(stages)


def add_attachment(user: User, report: Report, *, stage: str, data: bytes, filename: str | None) -> Attachment:
    """Check, store the bytes, then write the row and an "attach" event; a refused upload stores nothing.

    The blob is written before the transaction commits, so a rollback can leave a blob no row names. It is
    harmless (content-addressed: a later upload of the same bytes reuses it) and `flask attachments gc`
    removes it. The case's version (ETag) stays: a photo is not a change of state, and a worker's pending
    resolve with the ETag read before taking the "after" photo must not fail with 412."""
    stages = allowed_stages(user, report)
    if stage not in stages:
        detail = (
            tr(
                "Your account may add {stages} photos to this case, not {stage}.",
                stages=", ".join(sorted(stages)),
                stage=stage,
            )
            if stages
            else tr("Your account may not add photos to this case.")
        )
        raise Forbidden(detail, code="attachment_forbidden")
    if report.status in FINAL_STATUSES:
        raise Conflict(
            tr("The case is {status}; it takes no more photos.", status=label(STATUS_LABELS, report.status)),
            code="case_final",
            case_status=report.status,
        )
    limit = current_app.config["ATTACHMENT_MAX_BYTES"]
    if not data:
        raise ValidationFailed(errors={"file": [tr("The file is empty.")]})
    if len(data) > limit:
        raise PayloadTooLarge(tr("The file is larger than {limit} bytes.", limit=limit))
    media_type = sniff(data)
    if media_type is None:
        raise UnsupportedImage(tr("Send a JPEG, PNG or WebP photo; the file's content is none of these."))
    size = dimensions(data, media_type)
    key = blob_store().put(data)
    attachment = Attachment(
        report_id=report.id,
        uploader_id=user.id,
        stage=stage,
        sha256=key,
        size_bytes=len(data),
        media_type=media_type,
        original_name=clean_name(filename),
        width=size[0] if size else None,
        height=size[1] if size else None,
        created_at=utcnow(),
    )
    db.session.add(attachment)
    db.session.flush()
    cases.record_side_event(
        user, report, "attach", attachment.created_at, data={"attachment_id": attachment.id, "stage": stage}
    )
    return attachment


def _visible(viewer: User, report: Report) -> Select:
    """The case's photos the viewer may see: all in the full view, the public ones in the public view."""
    stmt = select(Attachment).where(Attachment.report_id == report.id)
    stages = public_view.photos_filter(viewer, report)
    return stmt if stages is None else stmt.where(stages)


def attachments_of(viewer: User, report: Report) -> list[Attachment]:
    return list(db.session.scalars(_visible(viewer, report).order_by(Attachment.id)))


def get_attachment(viewer: User, report: Report, attachment_id: int) -> Attachment:
    attachment = db.session.scalars(_visible(viewer, report).where(Attachment.id == attachment_id)).first()
    if attachment is None:
        raise NotFound(
            tr(
                "No attachment {attachment_id} on report {report_id}.", attachment_id=attachment_id, report_id=report.id
            ),
            code="attachment_not_found",
        )
    return attachment


def open_content(attachment: Attachment) -> BinaryIO:
    """The photo's bytes. A row whose bytes the store lacks (a store restored from an older copy, a blob removed by
    hand) is the client's 404, not the server's 500: the rest of the case reads as before, and the log says which
    blob to restore."""
    try:
        return blob_store().open(attachment.sha256)
    except FileNotFoundError:
        current_app.logger.warning("attachment %s: blob %s is not in the photo store", attachment.id, attachment.sha256)
        raise NotFound(
            tr("The bytes of attachment {attachment_id} are not in the photo store.", attachment_id=attachment.id),
            code="attachment_content_missing",
        ) from None


def download_name(report: Report, attachment: Attachment) -> str:
    """Named by the server, e.g. 202611270000123-after-17.jpg: the uploader's name is only a label in the metadata,
    so a hostile one can neither pass an executable's extension on nor bend the Content-Disposition header."""
    return f"{report.case_number}-{attachment.stage}-{attachment.id}.{EXTENSIONS[attachment.media_type]}"


def collect_garbage(min_age_s: float) -> list[str]:
    """Delete the blobs no attachment names and that are older than min_age_s; returns their keys.

    The age guard spares blobs of uploads whose transaction has not committed yet."""
    store = blob_store()
    cutoff = time.time() - min_age_s
    referenced = set(db.session.scalars(select(Attachment.sha256).distinct()))
    removed = []
    for key in list(store.keys()):
        if key not in referenced and store.modified_at(key) < cutoff:
            store.delete(key)
            removed.append(key)
    return removed
