"""``twin serve --processes N``: several engine processes on one socket, on PostgreSQL and a NATS stream log.

Both processes answer, exactly one runs the elected loops (its ``/health`` says ``primary``), concurrent
writers lose nothing, functions on arrival run once per record whichever process took the record, a
kill -9 of the primary hands its loops to the other process while the supervisor replaces the dead one, and
SIGTERM stops them all within the bound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from helpers import RIVER_REACH, admin_token, free_port, serve_engine
from streams_fixtures import eventually, gauge, require_nats
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.daemons.primary import PRIMARY_LOCK

# ci_only: twin serve --processes on PostgreSQL and NATS, kill -9 and SIGTERM
# the store itself, its concurrency, or engines in several processes: both stores
pytestmark = [pytest.mark.every_store, pytest.mark.ci_only]

WRITERS = 24
WRITE_SECONDS = 4.0
STOP_BOUND = 10.0


def children(pid: int) -> set[int]:
    """The live engine processes the supervisor ``pid`` started (from /proc; not multiprocessing's resource
    tracker, which it starts too)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in command:
                found.add(int(entry.name))
    return found


def lock_holder(lock: Path) -> int | None:
    """The process holding an flock on ``lock`` (waiters are the lines marked ``->`` in /proc/locks)."""
    inode = f":{lock.stat().st_ino} "
    for line in Path("/proc/locks").read_text().splitlines():
        if "FLOCK" in line and inode in line and "->" not in line:
            return int(line.split()[4])
    return None


def roles(url: str) -> set[bool | str]:
    """What ``/health`` says of ``primary`` over 20 new connections (the kernel spreads them); ``"starting"``
    for a process whose engine is not up yet (a replacement answers while it starts)."""
    def role(body: dict[str, Any]) -> bool | str:
        return "starting" if body.get("engine") == "starting" or body.get("status") == "starting" else body["primary"]

    return {role(httpx.get(f"{url}/health", timeout=10).json()) for _ in range(20)}


def test_processes_need_a_shared_stream_log(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "twinengine.cli.main", "serve", "--processes", "2",
                             "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "TWIN_STREAM_BACKEND": "local"})
    assert result.returncode == 1
    assert "stream_backend" in result.stderr and "nats" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "twin.db").exists()  # refused before anything was opened


def test_processes_that_cannot_start_stop_with_the_reason(tmp_path: Path) -> None:
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "twinengine.cli.main", "serve", "--processes", "2", "--port",
                             str(port), "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TWIN_STREAM_BACKEND": "nats",
                                 "TWIN_DATABASE_URL": f"postgresql+psycopg://nobody@127.0.0.1:{port}/none"})
    assert result.returncode == 1
    assert "the engine did not start: OperationalError" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["postgresql"])
def test_processes_serve_one_engine(settings: Settings) -> None:
    assert settings.database_url is not None
    nats = require_nats()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"TWIN_DATABASE_URL": settings.database_url, "TWIN_STREAM_BACKEND": "nats", "TWIN_NATS_URL": nats}
    lock = settings.data_dir / PRIMARY_LOCK
    with serve_engine(settings.data_dir, port, args=["--processes", "2"], **env) as process:
        assert len(children(process.pid)) == 2
        assert eventually(lambda: roles(url) == {True, False}, timeout=60)  # both serve, one is primary
        first_primary = lock_holder(lock)
        assert first_primary in children(process.pid)

        with Client(url, admin_token(settings)) as admin:
            dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
        Client(url, dev).publish_app(RIVER_REACH)
        with Client(url, user) as uma:
            for t in range(WRITERS // 4):
                uma.create_twin("river-reach@0.1.0", f"reach-{t}", {"station": "RR-01"})
            uma.create_twin("river-reach@0.1.0", "gauged", {"station": "RR-01"})

        # Writers on connections of their own, spread over both processes: every acknowledged revision is
        # stored, and each twin's revisions are numbered without a gap.
        acknowledged: dict[str, set[int]] = {}
        failures: list[str] = []
        guard = threading.Lock()
        until = time.monotonic() + WRITE_SECONDS

        def write(n: int) -> None:
            twin = f"reach-{n % (WRITERS // 4)}"
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {user}"}, timeout=60) as http:
                i = 0
                while time.monotonic() < until:
                    answer = http.patch(f"/api/v1/twins/{twin}/state", json={"reported": {"level": {"value": i}}})
                    with guard:
                        if answer.status_code != 200:
                            failures.append(f"{answer.status_code} {answer.text[:200]}")
                            return
                        acknowledged.setdefault(twin, set()).add(int(answer.json()["revision"]))
                    i += 1

        threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert failures == []
        with Client(url, user) as uma:
            for twin, revisions in acknowledged.items():
                stored = {r.revision for r in uma.revisions(twin, limit=1000, order="asc").items}
                assert stored == revisions | {1} or stored == revisions, twin  # creation may be revision 1
                assert sorted(stored) == list(range(min(stored), max(stored) + 1)), twin

        # Functions on arrival: batches sent on new connections land in both processes; the primary's function
        # worker turns each record into one level value, once.
        def send(first: int, count: int) -> None:
            for batch in range(first, first + count, 5):
                with Client(url, user) as once:  # a new connection per batch
                    once.streams.append("gauged", "gauges", [gauge(i) for i in range(batch, batch + 5)])

        def levels() -> int:
            with Client(url, user) as uma:
                return len(uma.history("gauged", "level", limit=1000).items)

        send(0, 60)
        eventually(lambda: levels() == 60, timeout=60)
        time.sleep(2)  # a second function worker would have doubled them by now
        assert levels() == 60

        # kill -9 of the primary: the other process takes the lock and the loops; the supervisor replaces the dead
        # process, which waits for the lock in turn.
        os.kill(first_primary, signal.SIGKILL)
        second = eventually(lambda: (holder := lock_holder(lock)) not in (None, first_primary) and holder, timeout=30)
        assert second in children(process.pid)
        send(60, 20)
        eventually(lambda: levels() == 80, timeout=60)
        eventually(lambda: len(children(process.pid)) == 2 and first_primary not in children(process.pid), timeout=60)
        assert eventually(lambda: roles(url) == {True, False}, timeout=60)

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=STOP_BOUND + 20)
        assert time.monotonic() - started < STOP_BOUND
        assert children(process.pid) == set()
