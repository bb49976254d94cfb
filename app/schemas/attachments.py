"""Photos on reports: the multipart upload in, metadata out."""

from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.datastructures import FileStorage

from app.models import AttachmentStage
from app.schemas.common import LocalDateTime


class SingleUpload(Upload):
    """One file part; a repeated part is refused rather than silently dropped."""

    # Makes webargs hand over every part of this name, so the field can count them.
    is_multiple = True

    def _deserialize(self, value, attr, data, **kwargs):
        if len(value) != 1:
            raise ValidationError("Send exactly one file.")
        if not isinstance(value[0], FileStorage):
            raise ValidationError("Not a file.")
        return value[0]


class AttachmentFormIn(Schema):
    stage = fields.String(
        required=True,
        validate=validate.OneOf([s.value for s in AttachmentStage]),
        metadata={"description": "before (the problem), after (the result), verify (the check)"},
    )


class AttachmentFileIn(Schema):
    file = SingleUpload(required=True, metadata={"description": "A JPEG, PNG or WebP photo, judged by its bytes"})


class AttachmentOut(Schema):
    id = fields.Integer()
    report_id = fields.Integer()
    uploader_id = fields.Integer(
        allow_none=True, metadata={"description": "Null for residents, unless they uploaded it."}
    )
    stage = fields.String()
    media_type = fields.String()
    size_bytes = fields.Integer()
    sha256 = fields.String()
    original_name = fields.String(
        allow_none=True,
        metadata={"description": "The uploader's file name, as a label for staff and the uploader (null for others)."},
    )
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    created_at = LocalDateTime()
