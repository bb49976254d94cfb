"""Finding a case by what a caller says: its case number, the reporter's phone, or words of its text."""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, and_, or_, select

from app.dialect.queries import contains_text
from app.errors import ValidationFailed
from app.lib.i18n import tr
from app.models import Report, User
from app.models.reports import parse_case_number
from app.services.people.users import valid_phone
from app.services.public import view as public_view

# What people type between the digits of a phone number.
PHONE_SEPARATORS = re.compile(r"[\s\-()]")


def case_number_filter(text: str) -> ColumnElement[bool]:
    """Exactly the case with this number; the format is checked by the schema, a number of no case matches none."""
    found = parse_case_number(text.strip())
    if found is None:
        raise ValidationFailed(errors={"case_number": [tr("Not a case number: {text}.", text=text)]})
    day, report_id = found
    return and_(Report.id == report_id, Report.case_day == day)


def q_filter(user: User, visibility: ColumnElement[bool], q: str) -> tuple[str, ColumnElement[bool]]:
    """(the filter's name for the list's scope, its condition) for `q`: a case number finds that case; a phone
    number, for those who may see reporters' personal data, the cases of that reporter (an account's phone or an
    Open311 contact phone) among those whose personal data they see; anything else is text in the description or
    address. Only the case number is a public filter: text and phone match only what the caller sees in full."""
    text = q.strip()
    if not text:
        raise ValidationFailed(errors={"q": [tr("Send a case number, a phone number or some text to look for.")]})
    if parse_case_number(text) is not None:
        return "case_number", case_number_filter(text)
    phone = PHONE_SEPARATORS.sub("", text)
    personal = public_view.personal_data_scope(user, visibility)
    if personal is not None and valid_phone(phone):
        reporters = select(User.id).where(User.phone == phone)
        return "phone", and_(personal, or_(Report.reporter_id.in_(reporters), Report.contact_phone == phone))
    return "q", or_(contains_text(Report.description, text), contains_text(Report.address, text))
