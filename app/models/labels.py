"""The case vocabulary as people read it: statuses, actions and escalation levels as catalogue messages."""

from __future__ import annotations

from app.lib.i18n import Message, tr

# English keeps the API's own words (what `status` and the action URLs say); the catalogue gives the Chinese.
STATUS_LABELS: dict[str, Message] = {
    "submitted": tr("submitted"),
    "accepted": tr("accepted"),
    "assigned": tr("assigned"),
    "in_progress": tr("in_progress"),
    "on_hold": tr("on_hold"),
    "resolved": tr("resolved"),
    "closed": tr("closed"),
    "rejected": tr("rejected"),
    "duplicate": tr("duplicate"),
    "cancelled": tr("cancelled"),
}
ACTION_LABELS: dict[str, Message] = {
    "accept": tr("accept"),
    "reject": tr("reject"),
    "assign": tr("assign"),
    "start": tr("start"),
    "resolve": tr("resolve"),
    "verify": tr("verify"),
    "close": tr("close"),
    "rework": tr("rework"),
    "return": tr("return"),
    "reroute": tr("reroute"),
    "hold": tr("hold"),
    "resume": tr("resume"),
    "request_extension": tr("request extension"),
    "approve_extension": tr("approve extension"),
    "deny_extension": tr("deny extension"),
    "mark_duplicate": tr("mark duplicate"),
    "supervise": tr("supervise"),
    "cancel": tr("cancel"),
    "rate": tr("rate"),
}
# By escalation level (ESCALATION_LEVELS): the level of the grid answering for a case.
LEVEL_LABELS: dict[str, Message] = {
    "grid": tr("grid"),
    "community": tr("community"),
    "street": tr("street"),
    "district": tr("district"),
}


def label(labels: dict[str, Message], value: str) -> Message | str:
    """The label of a vocabulary word; a word the table lacks stays as it is."""
    return labels.get(value, value)
