"""Working-time deadlines per call against a raw floor (plain timedelta addition), in one run."""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from app.lib.hours import DEFAULT_WORK_HOURS, parse_week
from app.services.calendar.worktime import Calendar

# 2026 National Day and Spring Festival as holidays, their make-up Saturdays/Sundays worked.
OVERRIDES = {
    **{datetime(2026, 10, d).date(): () for d in range(1, 8)},
    **{datetime(2026, 2, d).date(): () for d in range(15, 24)},
    datetime(2026, 9, 20).date(): None,
    datetime(2026, 10, 10).date(): None,
    datetime(2026, 2, 14).date(): None,
    datetime(2026, 2, 28).date(): None,
}
CASES = [("working_hours", 4), ("working_days", 0.8), ("working_days", 5), ("working_days", 20)]


def per_call(fn, starts) -> float:
    began = time.perf_counter()
    for start in starts:
        fn(start)
    return (time.perf_counter() - began) / len(starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--zone", default="Asia/Shanghai")
    args = parser.parse_args()
    rng = random.Random(1)
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    starts = [origin + timedelta(seconds=rng.randrange(365 * 86400)) for _ in range(args.calls)]
    calendar = Calendar(args.zone, parse_week(DEFAULT_WORK_HOURS), OVERRIDES)
    floor = per_call(lambda s: s + timedelta(hours=4), starts)
    print(f"floor: start + timedelta  {floor * 1e6:8.2f} us/call")
    for unit, value in CASES:
        cost = per_call(lambda s: calendar.deadline(s, value, unit), starts)
        print(f"deadline {value:>4} {unit:<13} {cost * 1e6:8.2f} us/call  {cost / floor:6.1f} x floor")
    cost = per_call(lambda s: calendar.seconds_between(s, s + timedelta(days=14), "working_hours"), starts)
    print(f"seconds_between 14 days      {cost * 1e6:8.2f} us/call  {cost / floor:6.1f} x floor")


if __name__ == "__main__":
    main()
