"""Every model, imported so that Alembic and the mappers see them all."""

from app.models.api_keys import ApiKey
from app.models.attachments import Attachment, AttachmentStage
from app.models.cache import CacheVersion
from app.models.calendar import CalendarDay, DayKind, DaySource
from app.models.categories import CALENDAR_UNIT_SECONDS, WORKING_UNITS, Category, LimitUnit
from app.models.grid import (
    CODE_LENGTHS,
    LEVEL_ORDER,
    Cell,
    CellLevel,
    code_in_subtree,
    in_subtree,
    subtree_bounds,
    subtree_cell_ids,
)
from app.models.idempotency import IdempotencyKey
from app.models.patrols import PatrolCheckin
from app.models.reports import (
    CLOCK_RUNNING_STATUSES,
    ESCALATION_LEVELS,
    FINAL_STATUSES,
    LISTABLE_TASK_STATUSES,
    OPEN_STATUSES,
    SLA_STATES,
    TASK_STATUSES,
    CaseEvent,
    Notification,
    Report,
    ReportFollower,
    ReportStatus,
    RoutedBy,
)
from app.models.sync import SyncChange
from app.models.users import (
    AuthSession,
    Duty,
    DutyLog,
    RefreshToken,
    Role,
    User,
    WorkerCell,
)

__all__ = [
    "ApiKey",
    "Attachment",
    "AttachmentStage",
    "AuthSession",
    "CacheVersion",
    "CLOCK_RUNNING_STATUSES",
    "CalendarDay",
    "CODE_LENGTHS",
    "CaseEvent",
    "DayKind",
    "DaySource",
    "Duty",
    "DutyLog",
    "ESCALATION_LEVELS",
    "FINAL_STATUSES",
    "LISTABLE_TASK_STATUSES",
    "SLA_STATES",
    "TASK_STATUSES",
    "IdempotencyKey",
    "Notification",
    "OPEN_STATUSES",
    "Category",
    "Cell",
    "CellLevel",
    "LEVEL_ORDER",
    "LimitUnit",
    "CALENDAR_UNIT_SECONDS",
    "WORKING_UNITS",
    "PatrolCheckin",
    "RefreshToken",
    "Report",
    "ReportFollower",
    "ReportStatus",
    "Role",
    "RoutedBy",
    "SyncChange",
    "User",
    "code_in_subtree",
    "in_subtree",
    "subtree_cell_ids",
    "WorkerCell",
    "subtree_bounds",
]
