"""`make run` (scripts/run.sh): gunicorn and the escalation sweep start together and stop together, no orphan."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "run.sh"
# Upgrading and seeding a fresh SQLite file, then gunicorn's start, on a loaded 2-core machine.
READY_WITHIN_S = 240
STOPPED_WITHIN_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every process we can read."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # The command name in parentheses may hold spaces: split after its closing one.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        found[int(entry.name)] = (int(ppid), state, cmdline)
    return found


def descendants(pid: int) -> dict[int, str]:
    table = processes()
    result, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, state, cmdline) in table.items():
            if ppid == parent and state != "Z" and child not in result:
                result[child] = cmdline
                frontier.append(child)
    return result


def alive(pid: int) -> bool:
    entry = processes().get(pid)
    return entry is not None and entry[1] != "Z"


def wait_until(check, timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table from /proc")
def test_run_serves_and_sweeps_and_sigterm_stops_both(tmp_path):
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEST_", "DATABASE_URL", "REDIS_URL", "APP_ENV", "JWT_SECRET"))
    }
    env.update(
        APP_ENV="development",
        DATABASE_URL=f"sqlite:///{tmp_path / 'grid.sqlite'}",
        INSTANCE_PATH=str(tmp_path),
        UPLOAD_DIR=str(tmp_path / "uploads"),
        PORT=str(port),
        WEB_WORKERS="1",
        ESCALATE_EVERY_S="1",
        PASSWORD_TIME_COST="1",
        PASSWORD_MEMORY_KIB="1024",
    )
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(
        ["bash", str(SCRIPT)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        served = wait_until(lambda: ready(port) or proc.poll() is not None, READY_WITHIN_S)
        assert served and proc.poll() is None, (tmp_path / "run.log").read_text(errors="replace")[-3000:]
        assert ready(port)
        # Both run under the script: the sweep (and it has swept at least once) and gunicorn.
        assert wait_until(lambda: "escalate:" in (tmp_path / "run.log").read_text(errors="replace"), 60)
        children = descendants(proc.pid)
        sweeps = [pid for pid, cmd in children.items() if "flask" in cmd and "escalate" in cmd]
        servers = [pid for pid, cmd in children.items() if "gunicorn" in cmd]
        assert len(sweeps) == 1, children
        assert servers, children

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=STOPPED_WITHIN_S)
        assert wait_until(lambda: not any(alive(pid) for pid in children), STOPPED_WITHIN_S), {
            pid: cmd for pid, cmd in children.items() if alive(pid)
        }
        assert not ready(port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
