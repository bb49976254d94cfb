"""Photos on reports: upload (multipart), list, metadata and content."""

import functools
from collections.abc import Callable, Mapping
from typing import Any

from flask import Response, current_app, request, send_file
from flask.views import MethodView
from marshmallow import RAISE

from app.api.access import auth_required, current_user
from app.api.boundary import accepts_multipart, body_limit
from app.api.idempotency import idempotent
from app.api.openapi import BEARER, Blueprint
from app.errors import UnsupportedMediaType
from app.lib.i18n import tr
from app.models import AttachmentStage
from app.schemas.attachments import AttachmentFileIn, AttachmentFormIn, AttachmentOut
from app.services.cases import reports as report_service
from app.services.field import attachments as attachment_service
from app.services.public import view as public_view

blp = Blueprint("attachments", __name__, description="Photos on reports")

# Room for the multipart framing (boundary, part headers, the stage field) around a file of the maximum size.
MULTIPART_OVERHEAD = 64 * 1024


def upload_body_limit(config: Mapping[str, Any]) -> int:
    """The upload's body may exceed the app-wide limit by the photo's own."""
    return config["ATTACHMENT_MAX_BYTES"] + MULTIPART_OVERHEAD


def multipart_only(view: Callable) -> Callable:
    """Refuse any body but multipart/form-data; inside auth_required, so a caller without a token hears 401."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMediaType(
                tr("Send the photo as multipart/form-data: a file part 'file' and a field 'stage'.")
            )
        return view(*args, **kwargs)

    return wrapper


@blp.route("/reports/<int:report_id>/attachments")
class Attachments(MethodView):
    @body_limit(upload_body_limit)
    @accepts_multipart
    @auth_required()
    @idempotent
    @multipart_only
    # Parsed as two locations (form field and file part), documented as the one multipart body it is.
    @blp.doc(
        security=BEARER,
        requestBody={
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "stage"],
                        "properties": {
                            "file": {"type": "string", "format": "binary", "description": "A JPEG, PNG or WebP photo"},
                            "stage": {"type": "string", "enum": [s.value for s in AttachmentStage]},
                        },
                    }
                }
            },
        },
    )
    @blp.arguments(AttachmentFormIn, location="form")
    @blp.arguments(AttachmentFileIn, location="files", unknown=RAISE)
    @blp.response(201, AttachmentOut)
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def post(self, form, files, report_id):
        """Attach a photo (JPEG, PNG or WebP, judged by its bytes) to a case the caller may see.

        Stages by role: the reporter adds `before`; the assignee and workers of the case's cell `before` and
        `after`; supervisors of its subtree, admins and a worker of the cell other than the assignee `verify`
        (supervisors and admins any stage). Others who can see the case 403; a closed, rejected, duplicate or
        cancelled case 409; over ATTACHMENT_MAX_BYTES 413; not an image 415. The same bytes are stored once.
        While the photo store does not answer: 503 `storage_unavailable` with Retry-After, and nothing is saved."""
        user = current_user()
        report = report_service.get_report_for(user, report_id)
        upload = files["file"]
        # One byte past the limit is enough to know the file is too large.
        data = upload.stream.read(current_app.config["ATTACHMENT_MAX_BYTES"] + 1)
        attachment = attachment_service.add_attachment(
            user, report, stage=form["stage"], data=data, filename=upload.filename
        )
        return public_view.present_photos(user, [attachment])[0]

    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, AttachmentOut(many=True))
    def get(self, report_id):
        """The case's photos, oldest first: all of them for whoever sees the case in full, none in its public view
        (a follower), or only the `after` photos when its category is public."""
        user = current_user()
        report = report_service.get_report_for(user, report_id)
        return public_view.present_photos(user, attachment_service.attachments_of(user, report))


def _attachment(report_id: int, attachment_id: int):
    """The case and one of its photos the caller may see (the public view shows few or none)."""
    user = current_user()
    report = report_service.get_report_for(user, report_id)
    return report, attachment_service.get_attachment(user, report, attachment_id)


@blp.route("/reports/<int:report_id>/attachments/<int:attachment_id>")
class AttachmentItem(MethodView):
    @auth_required()
    @blp.doc(security=BEARER)
    @blp.response(200, AttachmentOut)
    def get(self, report_id, attachment_id):
        """One photo's metadata."""
        return public_view.present_photos(current_user(), [_attachment(report_id, attachment_id)[1]])[0]


@blp.route("/reports/<int:report_id>/attachments/<int:attachment_id>/content")
class AttachmentContent(MethodView):
    @auth_required()
    @blp.doc(
        security=BEARER,
        responses={
            "200": {
                "description": "The photo's bytes, with its stored media type; ETag is its SHA-256.",
                "content": {
                    t: {"schema": {"type": "string", "format": "binary"}} for t in attachment_service.EXTENSIONS
                },
            },
            "304": {"description": "If-None-Match named the photo's ETag."},
        },
    )
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self, report_id, attachment_id):
        """Download the photo, named <case number>-<stage>-<id>.<ext>; If-None-Match with its ETag answers 304.

        The bytes stream through the service (no presigned URLs); a photo store that does not answer 503."""
        report, attachment = _attachment(report_id, attachment_id)
        if request.if_none_match.contains_weak(attachment.sha256):
            resp = Response(status=304)
        else:
            resp = send_file(
                attachment_service.open_content(attachment),
                mimetype=attachment.media_type,
                as_attachment=True,
                download_name=attachment_service.download_name(report, attachment),
                conditional=False,
                etag=False,
                max_age=None,
            )
            resp.content_length = attachment.size_bytes
        # The bytes never change: a client that keeps its own copy revalidates by their hash. HTTP caches keep
        # none (Cache-Control: no-store, app/api/headers.py): a photo of a case is personal data.
        resp.set_etag(attachment.sha256)
        return resp
