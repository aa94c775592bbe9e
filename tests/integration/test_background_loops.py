"""Every background loop of a serving engine runs on its supervisor: its threads are the supervisor's, ``/health``
and ``/metrics`` report them, and closing the engine leaves none alive."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from helpers import admin_token
from twinengine.api import create_app
from twinengine.config import Settings
from twinengine.daemons.supervisor import THREAD_PREFIX

# Threads a serving engine starts that run no loop: the test client's event loop and request threads, and the
# local stream log's writer (the one owner of its files).
NOT_LOOPS = ("AnyIO worker thread", "asyncio-portal-", "twin-stream-log")
LOOPS = {"workflow-worker-0", "workflow-worker-1", "workflow-heartbeat", "workflow-triggers", "calibrations",
         "functions", "compactor", "buffers", "subscriptions", "compute-heartbeats", "assimilation", "lake-judge",
         "lake-conveyor", "lake-reaper", "twin-expiry", "dataspace-courier"}


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_every_loop_thread_belongs_to_the_supervisor_and_none_outlives_the_engine(tmp_path: Path) -> None:
    # the threads themselves, not their idents: a thread that ends meanwhile (another test's) can hand its
    # ident on to one the engine starts
    before = set(threading.enumerate())
    settings = Settings(data_dir=tmp_path / "data", warm_routes=False, lake_daemons=True)
    app = create_app(settings)
    supervisor = app.state.runtime.loops
    with TestClient(app) as http:
        eventually(lambda: all(s.passes > 0 for s in supervisor.status()))
        status = {s.name: s for s in supervisor.status()}
        assert set(status) == LOOPS and all(s.running for s in status.values())
        started = [t for t in threading.enumerate() if t not in before]
        loop_threads = {t.name for t in started if t.name.startswith(THREAD_PREFIX)}
        assert loop_threads == {THREAD_PREFIX + name for name in LOOPS}
        assert set(supervisor.threads()) == {t for t in started if t.name in loop_threads}
        others = [t.name for t in started if t.name not in loop_threads]
        assert all(name.startswith(NOT_LOOPS) for name in others), others

        health = http.get("/health").json()
        assert "primary" not in health  # one process alone: no election
        lines = {line["name"]: line for line in health["loops"]}
        assert set(lines) == LOOPS
        assert lines["functions"]["scope"] == "elected" and lines["workflow-worker-0"]["scope"] == "process"
        assert all(line["running"] and line["started_at"] for line in lines.values())
        metrics = http.get("/metrics", headers={"Authorization": f"Bearer {admin_token(settings)}"}).text
        assert 'twin_loop_running{loop="compactor",scope="elected"} 1.0' in metrics
        assert 'twin_loop_passes_total{loop="workflow-triggers",scope="process"}' in metrics
        threads = supervisor.threads()
    assert not any(t.is_alive() for t in threads)  # the engine closed with its app: every loop ended
    assert not any(s.running for s in supervisor.status())
    assert not [t.name for t in threading.enumerate() if t not in before and t.name.startswith(THREAD_PREFIX)]


def test_an_app_on_a_runtime_that_outlives_it_takes_its_elected_loops_along(tmp_path: Path) -> None:
    from twinengine.runtime import Runtime

    before = set(threading.enumerate())
    runtime = Runtime.from_settings(Settings(data_dir=tmp_path / "data", warm_routes=False))
    try:
        runtime.start()
        with TestClient(create_app(runtime=runtime)):
            eventually(lambda: {s.name for s in runtime.loops.status() if s.running} >= {"functions", "buffers"})
        running = {s.name for s in runtime.loops.status() if s.running}
        assert "functions" not in running and "workflow-worker-0" in running  # the runtime's own loops go on
    finally:
        runtime.close()
    assert not [t.name for t in threading.enumerate() if t not in before and t.name.startswith(THREAD_PREFIX)]
