"""Synchronous processing out of the engine's process (``sync_isolation = process``, the default): a graph a
request waits for is evaluated in a child process, which is killed at the time budget whatever it is doing,
and whose memory limit ends the run, not the engine. Stream history reaches the child through the engine (the
local log's one writer), read as the run's own identity."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from helpers import RIVER_REACH, Engine
from streams_fixtures import gauge
from twinengine.config import Settings
from twinengine.workflows.models import WorkflowRun
from twinengine.workflows.sync_processes import SyncProcesses

SUM = {"a": {"process_id": "array_create", "arguments": {"data": [1], "repeat": 1000}},
       "s": {"process_id": "sum", "arguments": {"data": {"from_node": "a"}}, "result": True}}
# load_stream runs before update_twin_state (nodes without dependencies run in the order listed)
STREAM_GRAPH = {"process_graph": {
    "load": {"process_id": "load_stream", "arguments": {"stream": "gauges"}},
    "state": {"process_id": "update_twin_state", "arguments": {"reported": {"forecast_peak_level": 1.4}}},
    "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "state"}, "format": "JSON"},
             "result": True}}}


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, warm_routes=False,
                    sync_isolation="process", sync_processes=1)


def _pool(engine: Engine) -> SyncProcesses:
    pool = engine.runtime.workflows.services["sync_processes"]
    assert isinstance(pool, SyncProcesses)
    return pool


def _result(engine: Engine, graph: dict[str, Any]) -> Any:
    return engine.http.post("/openeo/1.2/result", json={"process": {"process_graph": graph}},
                            headers=engine.headers(engine.token("uma", "user")))


def _children(engine: Engine) -> list[int]:
    return [child.process.pid for child in _pool(engine)._all]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_synchronous_graph_is_evaluated_in_a_child_process(engine: Engine) -> None:
    answer = _result(engine, SUM)
    assert answer.status_code == 200, answer.text
    assert answer.json() == 1000
    (child,) = _children(engine)
    assert child != os.getpid()
    (run,) = engine.sdk(engine.admin_token).workflows.runs().items
    assert run.status == "finished"
    with engine.runtime.db.session(readonly=True) as session:
        row = session.get(WorkflowRun, run.id)
        assert row is not None and f":{child}:" in row.worker  # claimed by the child, not by this process
    assert _result(engine, SUM).json() == 1000
    assert _children(engine) == [child]  # kept warm for the next run


def test_a_child_that_does_not_answer_is_killed_at_the_budget_and_the_next_run_gets_a_new_one(
        engine: Engine) -> None:
    assert _result(engine, SUM).status_code == 200
    (child,) = _children(engine)
    engine.runtime.workflows.sync_timeout = 1.0
    os.killpg(child, signal.SIGSTOP)  # a node that never yields: on a request thread, nothing could stop it
    answer = _result(engine, SUM)
    assert answer.status_code == 408, answer.text
    assert answer.json()["code"] == "ProcessingTimeLimit" and "sync_timeout" in answer.json()["message"]
    assert _gone(child) and _children(engine) == []
    (run, _) = engine.sdk(engine.admin_token).workflows.runs().items
    assert run.status == "error" and run.error is not None and run.error["code"] == "ProcessingTimeLimit"
    assert engine.http.get("/health").status_code == 200
    engine.runtime.workflows.sync_timeout = 120.0
    assert _result(engine, SUM).json() == 1000
    (fresh,) = _children(engine)
    assert fresh != child


def test_a_child_past_its_memory_limit_ends_the_run_as_an_error_naming_the_limit(
        engine: Engine) -> None:
    _pool(engine).memory_bytes = 64 << 20  # less than the child's own libraries need: it dies starting
    answer = _result(engine, SUM)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "ProcessingMemoryLimit"
    assert "sync_memory_bytes" in answer.json()["message"] and str(64 << 20) in answer.json()["message"]
    assert engine.http.get("/health").status_code == 200
    (run,) = engine.sdk(engine.admin_token).workflows.runs().items
    assert run.status == "error" and run.error is not None and run.error["code"] == "ProcessingMemoryLimit"


def test_stream_history_reaches_the_child_through_the_engine_as_the_runs_identity(engine: Engine) -> None:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    uma = engine.as_role("uma", "user")
    uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    uma.streams.append("reach", "gauges", [gauge(i) for i in range(6)])
    run = uma.workflows.submit(STREAM_GRAPH, twin="reach", sync=True)
    assert run.status == "finished", run.error
    (stream,) = uma.workflows.quality(run.id).model_dump()["inputs"]  # the records the child read
    assert sum(stream["records"].values()) == 6
    engine.as_role("eve", "user")  # no grant on uma's twin: the engine reads as eve, and refuses
    graph = {"load": {"process_id": "load_stream", "arguments": {"stream": "gauges", "twin": "reach"},
                      "result": True}}
    refused = engine.http.post("/openeo/1.2/result", json={"process": {"process_graph": graph}},
                               headers=engine.headers(engine.token("eve", "user")))
    assert 400 <= refused.status_code < 500, refused.text
    assert refused.json()["code"] in ("TwinNotFound", "PermissionsInsufficient"), refused.text


def test_closing_the_engine_ends_its_children_and_the_runs_they_were_evaluating(engine: Engine) -> None:
    assert _result(engine, SUM).status_code == 200
    (child,) = _children(engine)
    os.killpg(child, signal.SIGSTOP)
    answers: list[Any] = []
    waiting = threading.Thread(target=lambda: answers.append(_result(engine, SUM)))
    waiting.start()
    while len(engine.sdk(engine.admin_token).workflows.runs().items) < 2:
        threading.Event().wait(0.05)
    _pool(engine).close()  # as the runtime does when it stops
    waiting.join(timeout=30)
    assert not waiting.is_alive() and _gone(child)
    assert answers and answers[0].status_code >= 400
    (run, _) = engine.sdk(engine.admin_token).workflows.runs().items
    assert run.status == "error" and run.error is not None and run.error["code"] == "EngineStopped"
