"""Summarise a py-spy `--format raw` profile (collapsed stacks) of the gunicorn workers: share per known cost.

Samples whose innermost frame waits (for the database's answer, for a connection) are counted apart, so the shares
are of the CPU the workers spent, not of their wall time."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# A stack ends waiting when its innermost frame is one of these (psycopg waits for the server in Python frames).
WAITING = re.compile(r"^(Connection\.wait|wait|wait_c|EpollSelector\.select|select|poll|sleep|accept|recv_into) ")

# (label, a regular expression matched against each frame "function (path:line)"); a sample counts once per label.
BUCKETS = [
    ("the view: POST /reports (Reports.post)", r"^Reports\.post \(app/api/reports"),
    ("auth: token + session check", r"^caller_for_access_token "),
    ("connection checkout (the pool; with pre-ping before)", r"^_ConnectionFairy\._checkout "),
    ("category lookup", r"^find_active_by_code "),
    ("file_report (routing, reads, the write, dispatch)", r"^file_report \(app/services/cases/reports"),
    ("  routing: route_wgs84", r"^route_wgs84 "),
    ("  a worker's filing: their cells (cached) and the pick", r"^(cells_served_on|pick_worker) "),
    ("  the write with the similar cases (one round trip)", r"^run_chained_inserts "),
    ("  ORM flush", r"^Session\.flush \(sqlalchemy/orm/session"),
    ("  notices (announce_event)", r"^announce_event \(app/services/cases/notifications"),
    ("answer: similar cases' rows", r"^rows_of_driver "),
    ("answer: present_all (views, cell points)", r"^present_all "),
    ("answer: marshmallow dump", r"^Schema\.dump \(marshmallow"),
    ("request parsing (webargs)", r"^Parser\.parse \(webargs"),
    ("commit", r"^Session\.commit \(sqlalchemy"),
    ("rate limiter", r"flask_limiter/"),
    ("JSON encode (Flask JSON provider)", r"^DefaultJSONProvider\.(dumps|response) \(flask/json"),
]


def summarise(path: Path, top: int = 0) -> str:
    totals: Counter[str] = Counter()
    own: Counter[str] = Counter()
    cpu = waiting = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if WAITING.search(frames[-1]):
            waiting += n
            continue
        cpu += n
        for label, pattern in BUCKETS:
            if any(re.search(pattern, f) for f in frames):
                totals[label] += n
        for name in {re.sub(r":\d+\)$", ")", f) for f in frames if "(app/" in f}:
            own[name] += n
    out = [f"{path.name}: {cpu} samples on CPU, {waiting} waiting (left out); shares of the CPU samples:"]
    out += [f"  {label:<52} {100 * totals[label] / max(cpu, 1):5.1f} %" for label, _ in BUCKETS]
    if top:
        out.append("  top app functions (inclusive):")
        out += [f"    {100 * n / max(cpu, 1):5.1f} %  {name}" for name, n in own.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(summarise(Path(arg)))
