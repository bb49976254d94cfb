"""Summarise a py-spy `--format raw` profile (collapsed stacks) of the gunicorn workers: share per known cost."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# (label, a regular expression matched against each frame "function (path:line)"); a sample counts once per label.
BUCKETS = [
    ("request total (Flask full_dispatch_request)", r"^full_dispatch_request "),
    ("auth: token + session check", r"^(caller_for_access_token|_bearer_token) "),
    ("category lookup", r"^(find_active_by_code|active_category) "),
    ("routing: route_wgs84", r"^route_wgs84 "),
    ("report insert (create_report body)", r"^create_report \(app/services/cases/reports"),
    ("ORM flush", r"^flush \(.*sqlalchemy/orm/session"),
    ("commit", r"^commit \("),
    ("auto-dispatch + clock (start_handling)", r"^start_handling "),
    ("answer: present + similar cases", r"^(present|with_similar_cases) "),
    ("similar cases query", r"^with_similar_cases "),
    ("marshmallow dump (response)", r"^_prepare_response_content |^dump \(.*marshmallow"),
    ("request parsing (webargs)", r"^_parse_request |^parse \(.*webargs"),
    ("JSON encode", r"^(dumps|jsonify|response) \(.*(flask/json|orjson)"),
    ("rate limiter", r"flask_limiter|/limits/"),
    ("idempotency", r"app/api/idempotency"),
    ("observe (metrics, request log)", r"app/api/observe|prometheus_client"),
    ("DB round trips (psycopg execute)", r"^(execute|_execute_gen|wait|_wait) \(.*psycopg/"),
    ("gunicorn outside the request", r"^(handle|accept|run_for_one|run) \(.*gunicorn/workers"),
]


def summarise(path: Path, top: int = 25) -> str:
    totals: Counter[str] = Counter()
    own: Counter[str] = Counter()
    all_samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        all_samples += n
        frames = stack.split(";")
        for label, pattern in BUCKETS:
            if any(re.search(pattern, f) for f in frames):
                totals[label] += n
        # Inclusive time per app function, counted once per stack.
        for name in {f for f in frames if "(app/" in f}:
            own[re.sub(r":\d+\)$", ")", name)] += n
    out = [f"{path.name}: {all_samples} samples (active threads of every worker)"]
    out += [f"  {label:<48} {100 * totals[label] / all_samples:5.1f} %" for label, _ in BUCKETS]
    out.append("  top app functions (inclusive):")
    out += [f"    {100 * n / all_samples:5.1f} %  {name}" for name, n in own.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(summarise(Path(arg)))
