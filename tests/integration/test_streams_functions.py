"""Functions on arrival and retraining buffers, run by the engine's own workers on both stream logs: every
trigger kind, warm models, checkpoints that survive a restart, retries then dead letters, events and workflow
requests, bounded lag answered with 429, and buffers sealed by count, time and request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import MINIMAL_STATE, Engine, make_app
from streams_fixtures import drop_streams, eventually, start_engine, stream_backend, stream_engine, stream_settings  # noqa: F401
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import Conflict, StreamBackpressure

FUNCTIONS = '''
from test_app import model as _model

def latest(ctx, records):
    (r,) = records
    ctx.update_state(timestamp=r["time"], level=r["level"])

def windows(ctx, records):
    ctx.update_state(count=len(records) + (ctx.state.reported["count"].value if "count" in ctx.state.reported else 0))
    ctx.emit("window", size=len(records), first=records[0]["level"])

def high(ctx, records):
    ctx.update_state(label="high", config={"builds": _model.BUILDS, "loaded": _model.LOADED,
                                          "doubled": ctx.model(records[0]["level"])})
    ctx.start_workflow("nowcast", level=records[0]["level"])

def fragile(ctx, records):
    if records[0]["level"] < 0:
        raise ValueError(f"negative level {records[0]['level']}")
    ctx.update_state(on=True)

def every(ctx, records):
    ctx.update_state(count=len(records), label="high" if len(records) > 3 else "low")

def unknown_workflow(ctx, records):
    ctx.start_workflow("forecast")

def window_run(ctx, records):
    ctx.start_workflow("nowcast", level=records[-1]["level"])

def bad_request(ctx, records):
    ctx.update_state(level=records[0]["level"])
    ctx.start_workflow("nowcast", level="very high")

def stuck(ctx, records):
    raise RuntimeError("the downstream service is down")
'''
MODEL = '''
import secrets

BUILDS = 0
LOADED = secrets.token_hex(8)  # which import of this module (one per worker process) built the model

def build():
    global BUILDS
    BUILDS += 1
    return lambda x: 2 * x
'''
STREAMS = {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"},
                                   "station": {"type": "string", "nullable": True}}}}


GRAPH = ('{"process_graph": {"one": {"process_id": "add", "arguments": {"x": {"from_parameter": "level"}, '
         '"y": 2}, "result": true}}, "parameters": [{"name": "level", "schema": {"type": "number"}}]}')


def functions_app(root: Path, name: str, functions: dict[str, Any]) -> Path:
    return make_app(root, name=name, manifest={
        "streams": STREAMS, "state": MINIMAL_STATE, "workflows": {"nowcast": {"process_graph": "nowcast.json"}},
        "models": {"doubler": {"entrypoint": f"{name.replace('-', '_')}.model:build"}}, "functions": functions},
        files={f"{name.replace('-', '_')}/fns.py": FUNCTIONS.replace("test_app", name.replace("-", "_")),
               f"{name.replace('-', '_')}/model.py": MODEL, "nowcast.json": GRAPH})


ALL = {
    "latest": {"entrypoint": "fn_app.fns:latest", "stream": "readings"},
    "windows": {"entrypoint": "fn_app.fns:windows", "stream": "readings", "trigger": {"kind": "count", "count": 3}},
    "high": {"entrypoint": "fn_app.fns:high", "stream": "readings", "model": "doubler",
             "trigger": {"kind": "condition", "field": "level", "op": "gt", "value": 50}},
    "fragile": {"entrypoint": "fn_app.fns:fragile", "stream": "readings", "retries": 1},
}


@pytest.fixture
def settings(tmp_path: Path, stream_backend: str) -> Settings:  # noqa: F811
    return stream_settings(tmp_path / "data", stream_backend, function_backoff=0.05)


start = start_engine


@pytest.fixture
def engine(settings: Settings, drop_streams: list[Any]) -> Iterator[Engine]:  # noqa: F811
    with stream_engine(settings, drop_streams) as started:
        yield started


def rec(i: int, level: float) -> dict[str, Any]:
    return {"time": f"2026-03-01T{i // 60:02d}:{i % 60:02d}:00Z", "level": level, "station": "s1"}


@pytest.fixture
def uma(engine: Engine, tmp_path: Path) -> Client:
    engine.as_role("ada", "developer").publish_app(functions_app(tmp_path, "fn-app", ALL))
    client = engine.as_role("uma", "user")
    client.create_twin("fn-app@1.0.0", "pump", {"station": "P1"})
    return client


def test_every_trigger_kind_runs_with_effects_once(uma: Client) -> None:
    levels = [1.0, 2.0, 60.0, 3.0, -1.0, 70.0, 4.0]
    uma.streams.append("pump", "readings", [rec(i, v) for i, v in enumerate(levels)])

    def settled() -> Any:
        fns = {f.name: f for f in uma.streams.functions("pump")}
        wanted = {"latest": 7, "high": 7, "fragile": 7, "windows": 6}  # the seventh waits for its window of three
        return fns if {n: f.offset for n, f in fns.items()} == wanted else None

    fns = eventually(settled)
    state = uma.get_state("pump").reported
    assert state["level"].value == 4.0 and state["level"].timestamp.minute == 6  # record trigger: the last one
    assert fns["latest"].calls == 7 and fns["high"].calls == 2 and fns["windows"].calls == 2
    assert state["count"].value == 6  # two windows of three; the seventh waits for its window
    assert state["label"].value == "high"
    config = state["config"].value  # the model was built once, then kept warm
    assert (config["builds"], config["doubled"]) == (1, 140.0)
    authors = {r.author for r in uma.revisions("pump", limit=100).items}
    assert {"function:latest", "function:windows", "function:high", "function:fragile"} <= authors
    dead = uma.streams.dead_letters("pump")
    assert len(dead) == 1 and dead[0].function == "fragile" and dead[0].attempts == 2
    assert (dead[0].first_offset, dead[0].last_offset) == (4, 4) and "negative level -1.0" in dead[0].error
    assert fns["fragile"].calls == 6 and fns["fragile"].dead_letters == 1


def test_a_new_model_version_is_built_once_then_kept_warm(engine: Engine, uma: Client) -> None:
    worker = engine.app.state.stream_daemons.functions
    version = ["v1"]
    worker.model_versions = lambda _twin, _app, _name: version[0]
    uma.streams.append("pump", "readings", [rec(0, 60.0), rec(1, 61.0)])
    first = eventually(lambda: uma.get_state("pump").reported.get("config")).value
    assert first["builds"] == 1
    version[0] = "v2"  # the AI lifecycle promoted a new version
    uma.streams.append("pump", "readings", [rec(2, 62.0), rec(3, 63.0)])
    state = eventually(lambda: (s := uma.get_state("pump").reported)["config"].value["doubled"] == 126.0 and s)
    # One build per version in each worker process, not per call: the worker that built v1 builds v2 once
    # more; a fresh warm worker (the pool may hand the call to another) builds only v2.
    again = state["config"].value
    assert again["builds"] == (2 if again["loaded"] == first["loaded"] else 1)


def test_events_and_workflow_requests_are_recorded(engine: Engine, uma: Client) -> None:
    started: list[tuple[str, str, dict[str, Any]]] = []

    def starter(_session: Any, twin_id: str, workflow: str, parameters: dict[str, Any], _key: str) -> str:
        started.append((twin_id, workflow, parameters))
        return f"run-{len(started)}"

    engine.app.state.stream_daemons.functions.workflow_starter = starter  # as the workflow engine will
    uma.streams.append("pump", "readings", [rec(0, 1.0), rec(1, 99.0), rec(2, 3.0)])
    events = eventually(lambda: (ev := uma.streams.events("pump")) and len(ev) >= 2 and ev)
    found = {e.kind: e for e in events}
    assert found["window"].function == "windows" and found["window"].data == {"size": 3, "first": 1.0}
    requested = found["workflow.requested"]
    assert requested.function == "high"
    assert requested.data == {"workflow": "nowcast", "parameters": {"level": 99.0}, "run_id": "run-1"}
    assert started == [(uma.get_twin("pump").id, "nowcast", {"level": 99.0})]


def test_start_workflow_on_a_count_window_starts_one_run_per_window(engine: Engine, tmp_path: Path) -> None:
    functions = {"window_run": {"entrypoint": "win_app.fns:window_run", "stream": "readings",
                                "trigger": {"kind": "count", "count": 3}}}
    engine.as_role("ada", "developer").publish_app(functions_app(tmp_path, "win-app", functions))
    uma = engine.as_role("uma", "user")
    twin = uma.create_twin("win-app@1.0.0", "basin", {"station": "B1"})
    uma.streams.append("basin", "readings", [rec(i, float(i)) for i in range(7)])  # two windows, one waiting

    def two_runs_done() -> Any:
        found = [r for r in uma.workflows.runs(twin="basin").items if r.status == "finished"]
        return found if len(found) >= 2 else None

    finished = eventually(two_runs_done, timeout=60)
    (trigger,) = [t for t in uma.workflows.triggers("basin") if t.kind == "stream_window"]
    assert trigger.workflow == "nowcast" and trigger.name == "stream_nowcast"
    every = uma.workflows.runs(twin="basin").items
    assert len(every) == 2 and {r.trigger_id for r in every} == {trigger.id}
    assert sorted(uma.workflows.get(r.id).value for r in finished) == [4.0, 7.0]  # level + 2 per window

    def requested() -> list[Any] | None:
        """The function's events are appended after the commit that starts their runs: a run can end first."""
        found = [e for e in uma.streams.events("basin") if e.kind == "workflow.requested"]
        return found if len(found) >= 2 else None

    events = eventually(requested, timeout=60)
    assert sorted(e.data["run_id"] for e in events) == sorted(r.id for r in every)
    with engine.runtime.db.session() as session:  # the same event again starts nothing
        again = engine.runtime.start_stream_workflow(session, twin.id, "nowcast", {"level": 1.0},
                                                     "window_run:readings:3:0")  # the first window, once more
    assert again is None and len(uma.workflows.runs(twin="basin").items) == 2


def test_a_refused_workflow_request_is_an_error_event_not_a_dead_letter(engine: Engine, tmp_path: Path) -> None:
    functions = {"bad_request": {"entrypoint": "bad_app.fns:bad_request", "stream": "readings"}}
    engine.as_role("ada", "developer").publish_app(functions_app(tmp_path, "bad-app", functions))
    uma = engine.as_role("uma", "user")
    uma.create_twin("bad-app@1.0.0", "weir", {"station": "W1"})
    uma.streams.append("weir", "readings", [rec(0, 3.0)])
    (event,) = eventually(lambda: [e for e in uma.streams.events("weir") if e.kind == "workflow.requested"])
    assert event.data["run_id"] is None and "level" in event.data["error"]
    assert uma.get_state("weir").reported["level"].value == 3.0  # the call's other effects committed
    assert uma.streams.dead_letters("weir") == [] and uma.workflows.runs(twin="weir").items == []


def test_checkpoints_survive_a_restart(settings: Settings, tmp_path: Path, drop_streams: list[Any]) -> None:  # noqa: F811
    runtime, http = start(settings, drop_streams)
    with http:
        engine = Engine(runtime=runtime, app=http.app, http=http, admin_token="")  # type: ignore[arg-type]
        engine.as_role("ada", "developer").publish_app(functions_app(tmp_path, "fn-app", {"latest": ALL["latest"]}))
        uma = engine.as_role("uma", "user")
        uma.create_twin("fn-app@1.0.0", "pump", {"station": "P1"})
        uma.streams.append("pump", "readings", [rec(i, float(i)) for i in range(5)])
        eventually(lambda: uma.streams.functions("pump")[0].offset == 5)
        token = engine.token("uma", "user")
    runtime.close()
    runtime, http = start(settings, drop_streams)
    with http:
        uma = Client("http://testserver", token, http=http)
        uma.streams.append("pump", "readings", [rec(10, 10.0)])
        eventually(lambda: uma.streams.functions("pump")[0].offset == 6)
        fn = uma.streams.functions("pump")[0]
        assert fn.calls == 6  # nothing was run twice across the restart
        assert uma.get_twin("pump").head_revision == 6
    runtime.close()


def test_consumers_behind_slow_producers_down_without_dropping(engine: Engine, tmp_path: Path) -> None:
    engine.runtime.streams.max_lag = 5  # as TWIN_STREAM_MAX_LAG=5 would
    stuck = {"stuck": {"entrypoint": "slow_app.fns:stuck", "stream": "readings", "retries": 100}}
    engine.as_role("ada", "developer").publish_app(functions_app(tmp_path, "slow-app", stuck))
    uma = engine.as_role("uma", "user")
    uma.create_twin("slow-app@1.0.0", "slow", {"station": "P1"})
    uma.streams.append("slow", "readings", [rec(i, 1.0) for i in range(6)])
    eventually(lambda: uma.streams.list("slow")[0].lag == 6)  # once the worker tracks the function: 6 > 5
    with pytest.raises(StreamBackpressure) as caught:
        uma.streams.append("slow", "readings", [rec(7, 1.0)])
    assert caught.value.status == 429
    r = engine.http.post("/api/v1/twins/slow/streams/readings/records", json=[rec(8, 1.0)],
                         headers=engine.headers(engine.token("uma", "user")))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert uma.streams.read("slow", "readings").count == 6  # refused batches left nothing behind
    metrics = engine.http.get("/metrics", headers=engine.headers(engine.admin_token)).text
    assert "twin_stream_records_appended_total 6.0" in metrics
    assert f'twin_stream_lag_records{{stream="{uma.get_twin("slow").id}/readings"}} 6.0' in metrics


def test_buffers_seal_by_count_on_request_and_discard_after_retraining(engine: Engine, uma: Client) -> None:
    uma.streams.create_buffer("pump", "retrain", "readings", policy="count", records=3)
    uma.streams.create_buffer("pump", "growing", "readings", policy="external", discard_after=False)
    with pytest.raises(Conflict):
        uma.streams.create_buffer("pump", "retrain", "readings", policy="external")
    uma.streams.append("pump", "readings", [rec(i, float(i)) for i in range(7)])
    buffer = eventually(lambda: (b := uma.streams.buffer("pump", "retrain")) and len(b.fills) == 2 and b)
    assert [(f.start_offset, f.end_offset, f.status) for f in buffer.fills] == [(0, 3, "ready"), (3, 6, "ready")]
    assert buffer.filled == 1
    table = uma.streams.fill_records("pump", "retrain", buffer.fills[1].id)
    assert table.column("level").to_pylist() == [3.0, 4.0, 5.0]
    failed = uma.streams.consume_fill("pump", "retrain", buffer.fills[0].id, success=False, note="diverged")
    assert failed.status == "ready" and failed.note == "diverged"
    done = uma.streams.consume_fill("pump", "retrain", buffer.fills[0].id, success=True, note="model v2")
    assert done.status == "discarded"
    with pytest.raises(Conflict, match="discarded"):
        uma.streams.fill_records("pump", "retrain", buffer.fills[0].id)
    first = uma.streams.seal_buffer("pump", "growing")
    uma.streams.append("pump", "readings", [rec(9, 9.0)])
    second = uma.streams.seal_buffer("pump", "growing")
    assert (first.start_offset, first.end_offset) == (0, 7) and (second.start_offset, second.end_offset) == (0, 8)
    with pytest.raises(Conflict, match="no new records"):
        uma.streams.seal_buffer("pump", "growing")


def test_a_time_window_collects_what_arrived_meanwhile(engine: Engine, tmp_path: Path) -> None:
    timed = {"every": {"entrypoint": "timer_app.fns:every", "stream": "readings",
                       "trigger": {"kind": "time", "seconds": 3.0}}}
    engine.as_role("ada", "developer").publish_app(functions_app(tmp_path, "timer-app", timed))
    uma = engine.as_role("uma", "user")
    uma.create_twin("timer-app@1.0.0", "clock", {"station": "P1"})
    eventually(lambda: uma.streams.functions("clock"))
    # the window opens with the first record: the five appends land in it with room for a loaded machine
    for i in range(5):
        uma.streams.append("clock", "readings", [rec(i, float(i))])
    fn = eventually(lambda: (f := uma.streams.functions("clock")[0]).offset == 5 and f)
    assert fn.calls == 1  # one call for the window, not one per record
    assert uma.get_state("clock").reported["count"].value == 5


def test_asking_for_an_undeclared_workflow_fails_the_call(engine: Engine, tmp_path: Path) -> None:
    bad = {"bad": {"entrypoint": "wf_app.fns:unknown_workflow", "stream": "readings", "retries": 0}}
    engine.as_role("ada", "developer").publish_app(functions_app(tmp_path, "wf-app", bad))
    uma = engine.as_role("uma", "user")
    uma.create_twin("wf-app@1.0.0", "wf", {"station": "P1"})
    uma.streams.append("wf", "readings", [rec(0, 1.0)])
    dead = eventually(lambda: uma.streams.dead_letters("wf"))
    assert "'forecast' is not a workflow of wf-app@1.0.0 (workflows: nowcast)" in dead[0].error


def test_a_process_can_leave_functions_to_another(tmp_path: Path, drop_streams: list[Any]) -> None:  # noqa: F811
    settings = stream_settings(tmp_path / "data", "local", run_functions=False)
    runtime, http = start(settings, drop_streams)
    with http:
        assert http.app.state.stream_daemons.functions is None  # type: ignore[attr-defined]
        engine = Engine(runtime=runtime, app=http.app, http=http, admin_token="")  # type: ignore[arg-type]
        engine.as_role("ada", "developer").publish_app(functions_app(tmp_path, "fn-app", {"latest": ALL["latest"]}))
        uma = engine.as_role("uma", "user")
        uma.create_twin("fn-app@1.0.0", "pump", {"station": "P1"})
        uma.streams.append("pump", "readings", [rec(0, 1.0)])
        time.sleep(1.0)
        assert uma.streams.functions("pump")[0].offset == 0 and uma.get_twin("pump").head_revision == 0
    runtime.close()


SPREAD = '''
def spread(ctx, records):
    (r,) = records
    ctx.update_state(timestamp=r["time"], level={"value": r["level"], "uncertainty": {"std": 0.1}})
'''


def test_a_function_reports_a_value_with_its_uncertainty(engine: Engine, tmp_path: Path) -> None:
    from twinengine.quality.uncertainty import Uncertainty

    state = {**MINIMAL_STATE, "level": {**MINIMAL_STATE["level"], "uncertainty": "std"}}
    app = make_app(tmp_path, name="sd-app", manifest={
        "streams": STREAMS, "state": state,
        "functions": {"spread": {"entrypoint": "sd_app.fns:spread", "stream": "readings"}}},
        files={"sd_app/fns.py": SPREAD})
    engine.as_role("ada", "developer").publish_app(app)
    client = engine.as_role("uma", "user")
    client.create_twin("sd-app@1.0.0", "gauge", {"station": "G1"})
    client.streams.append("gauge", "readings", [rec(0, 2.5)])
    level = eventually(lambda: client.get_state("gauge").reported.get("level"))
    assert level.value == 2.5 and level.uncertainty == Uncertainty(std=0.1)
