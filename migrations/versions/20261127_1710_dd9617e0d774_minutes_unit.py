"""categories: time limits and escalation windows may be counted in calendar minutes (the demo category 0999).

Revision ID: dd9617e0d774
Revises: a7c3e9d2f4b1
Create Date: 2026-11-27 17:10:00
"""

from alembic import op

revision = "dd9617e0d774"
down_revision = "a7c3e9d2f4b1"
branch_labels = None
depends_on = None

UNITS = "('hours', 'minutes', 'working_hours', 'working_days')"
OLD_UNITS = "('hours', 'working_hours', 'working_days')"


def _units(units: str) -> None:
    with op.batch_alter_table("categories") as batch:
        for column in ("time_limit_unit", "escalation_window_unit"):
            name = (
                "ck_categories_time_limit_unit"
                if column == "time_limit_unit"
                else "ck_categories_escalation_window_unit"
            )
            batch.drop_constraint(op.f(name), type_="check")
            batch.create_check_constraint(op.f(name), f"{column} IN {units}")


def upgrade():
    _units(UNITS)


def downgrade():
    # A category counted in minutes cannot be kept: it falls back to the same span in calendar hours (rounded up).
    for column, value in (("time_limit", "time_limit_value"), ("escalation_window", "escalation_window_value")):
        op.execute(
            f"UPDATE categories SET {value} = ({value} + 59) / 60, {column}_unit = 'hours' "
            f"WHERE {column}_unit = 'minutes'"
        )
    _units(OLD_UNITS)
