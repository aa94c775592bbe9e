"""Code the engine did not write, written as an attacker would: a plain user's UDF sent to openEO's
``/result``, an app's function on arrival and an app's process in a workflow each try to read the engine's
secrets (admin token, issuer key, lake credentials, database), look at the engine's process through
``/proc``, write outside their scratch folder, reach the engine and PostgreSQL on loopback, change a global
kernel setting and hand the engine a pickle that runs code when loaded. Every attempt fails; the limits on
time and memory hold. Each runs twice: in workers started fresh, and in workers forked from a warm image."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Engine, make_app, need_sandbox
from sandbox_probe import (
    EVIL_RESULT,
    KINDS,
    PROBE,
    assert_nothing_leaked,
    listening,
    postgres_port,
    secrets_present,
    targets,
    workers_kind,
)
from streams_fixtures import eventually
from twinengine.config import Settings


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    need_sandbox()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest, engine: Engine) -> Iterator[str]:
    with workers_kind(engine, request.param) as chosen:
        yield chosen


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The embedded store (its file is one of the secrets tried); PostgreSQL is tried over loopback."""
    return Settings(data_dir=tmp_path / "data")


def udf_graph(code: str, data: Any) -> dict[str, Any]:
    return {"process_graph": {"udf": {"process_id": "run_udf", "result": True, "arguments": {
        "data": data, "udf": code, "runtime": "Python"}}}}


def test_a_users_udf_reaches_no_secret(engine: Engine, kind: str, tmp_path: Path) -> None:
    settings = engine.runtime.settings
    assert secrets_present(settings) == ["issuer key", "lake credentials"]  # there to be stolen
    user = engine.headers(engine.token("mallory", "user"))
    with listening() as port:
        wanted = targets(settings, tmp_path, [port, postgres_port()])
        code = PROBE + "\ndef udf(data, context):\n    return probe(data)\n"
        answer = engine.http.post("/openeo/1.2/result", json={"process": udf_graph(code, wanted)}, headers=user)
    assert answer.status_code == 200, answer.text
    assert_nothing_leaked(answer.json(), settings, tmp_path)


def test_a_udf_cannot_hand_the_engine_a_pickle(engine: Engine, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled-in-the-engine"
    code = EVIL_RESULT + "\ndef udf(data, context):\n    return Evil(data)\n"
    user = engine.headers(engine.token("mallory", "user"))
    answer = engine.http.post("/openeo/1.2/result", json={"process": udf_graph(code, str(marker))}, headers=user)
    assert answer.status_code == 400 and "cannot be sent back to the engine" in answer.text, answer.text
    assert not marker.exists()


def test_a_udf_that_loops_or_hogs_memory_fails_its_node_only(engine: Engine, kind: str) -> None:
    engine.runtime.workflows.udf_timeout = 3.0
    user = engine.headers(engine.token("mallory", "user"))
    loop = "def udf(data, context):\n    while True:\n        pass\n"
    answer = engine.http.post("/openeo/1.2/result", json={"process": udf_graph(loop, 1)}, headers=user)
    assert answer.status_code == 400 and "did not finish within 3 s" in answer.text, answer.text
    engine.runtime.workflows.udf_memory_bytes = 1 << 30
    hog = "def udf(data, context):\n    return len(bytearray(4 << 30))\n"
    answer = engine.http.post("/openeo/1.2/result", json={"process": udf_graph(hog, 1)}, headers=user)
    assert answer.status_code == 400 and "MemoryError" in answer.text, answer.text
    assert engine.http.get("/health").status_code == 200
    ok = "def udf(data, context):\n    return data + 1\n"
    answer = engine.http.post("/openeo/1.2/result", json={"process": udf_graph(ok, 41)}, headers=user)
    assert answer.status_code == 200 and json.loads(answer.text) == 42


HOSTILE_FUNCTIONS = '''
import json

TARGETS = json.loads({targets!r})
{probe}
{evil}

def steal(ctx, records):
    ctx.emit("loot", loot=probe(TARGETS))

def pickle_bomb(ctx, records):
    ctx.update_state(config=Evil(TARGETS["marker"]))
'''


def hostile_app(root: Path, wanted: dict[str, Any]) -> Path:
    return make_app(root, name="hostile-app", manifest={
        "streams": {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}}},
        "functions": {"steal": {"entrypoint": "hostile_app.fns:steal", "stream": "readings", "retries": 0},
                      "pickle_bomb": {"entrypoint": "hostile_app.fns:pickle_bomb", "stream": "readings",
                                      "retries": 0}}},
        files={"hostile_app/fns.py": HOSTILE_FUNCTIONS.format(targets=json.dumps(wanted), probe=PROBE,
                                                               evil=EVIL_RESULT)})


def test_an_apps_function_on_arrival_reaches_no_secret(engine: Engine, kind: str, tmp_path: Path) -> None:
    settings = engine.runtime.settings
    marker = tmp_path / "unpickled-in-the-engine"
    with listening() as port:
        wanted = targets(settings, tmp_path, [port, postgres_port()]) | {"marker": str(marker)}
        engine.as_role("eve", "developer").publish_app(hostile_app(tmp_path / "apps", wanted))
        uma = engine.as_role("uma", "user")
        uma.create_twin("hostile-app@1.0.0", "victim", {"station": "V1"})
        uma.streams.append("victim", "readings", [{"time": "2026-03-01T00:00:00Z", "level": 1.0}])
        events = eventually(lambda: [e for e in uma.streams.events("victim") if e.kind == "loot"], timeout=60)
    assert_nothing_leaked(events[0].data["loot"], settings, tmp_path)
    dead = eventually(lambda: uma.streams.dead_letters("victim"), timeout=60)
    assert dead[0].function == "pickle_bomb" and "cannot be sent back to the engine" in dead[0].error
    assert not marker.exists()


HOSTILE_PROCESSES = '''
import json

from twinengine.app import app_process

TARGETS = json.loads({targets!r})
{probe}
{evil}
AT_IMPORT = probe(TARGETS)  # what the package sees while it is indexed at publish time
if any(v is not None for k, v in AT_IMPORT["read"].items() if not k.startswith("proc/")):
    raise RuntimeError("stolen at import: " + json.dumps(AT_IMPORT))


@app_process(summary="Steals", cacheable=False)
def steal(targets: dict) -> dict:
    return probe(targets)


@app_process(summary="Hands back a pickle", cacheable=False)
def pickle_bomb(marker: str) -> dict:
    return {{"result": Evil(marker)}}
'''


def test_an_apps_process_in_a_workflow_reaches_no_secret(engine: Engine, kind: str, tmp_path: Path) -> None:
    settings = engine.runtime.settings
    marker = tmp_path / "unpickled-in-the-engine"
    with listening() as port:
        wanted = targets(settings, tmp_path, [port, postgres_port()])
        code = HOSTILE_PROCESSES.format(targets=json.dumps(wanted), probe=PROBE, evil=EVIL_RESULT)
        folder = make_app(tmp_path / "apps", name="thief-app", files={"thief_app/procs.py": code})
        engine.as_role("eve", "developer").publish_app(folder)  # indexed in a sandbox: nothing stolen at import
        uma = engine.as_role("uma", "user")
        graph = {"process_graph": {"s": {"process_id": "steal", "namespace": "thief-app",
                                         "arguments": {"targets": wanted}, "result": True}}}
        run = uma.workflows.submit(graph, sync=True)
    assert run.status == "finished", run.error
    assert_nothing_leaked(run.value, settings, tmp_path)
    bomb = {"process_graph": {"b": {"process_id": "pickle_bomb", "namespace": "thief-app",
                                    "arguments": {"marker": str(marker)}, "result": True}}}
    run = uma.workflows.submit(bomb, sync=True)
    assert run.status == "error" and "cannot be sent back to the engine" in run.error["message"], run.error
    assert not marker.exists()


def test_an_app_process_that_loops_is_stopped_and_its_worker_replaced(engine: Engine, kind: str,
                                                                      tmp_path: Path) -> None:
    code = ("from twinengine.app import app_process\n\n\n@app_process(cacheable=False)\n"
            "def spin(seconds: float) -> float:\n    import time\n    time.sleep(seconds)\n    return seconds\n")
    engine.as_role("eve", "developer").publish_app(make_app(tmp_path, name="spin-app",
                                                            files={"spin_app/procs.py": code}))
    engine.runtime.workers.timeout = 2.0
    uma = engine.as_role("uma", "user")

    def spin(seconds: float) -> Any:
        return uma.workflows.submit({"process_graph": {"s": {"process_id": "spin", "namespace": "spin-app",
                                                             "arguments": {"seconds": seconds}, "result": True}}},
                                    sync=True)

    stuck = spin(60)
    assert stuck.status == "error" and "no answer within 2 s" in stuck.error["message"], stuck.error
    assert spin(0.1).value == 0.1  # a fresh worker took its place


CRASHING = '''
import os
import time


def crash(ctx, records):
    if records[0]["level"] < 0:
        os._exit(3)  # takes its worker down
    if records[0]["level"] > 100:
        time.sleep(600)  # never answers
    ctx.update_state(level=records[0]["level"])
'''


def test_a_function_that_kills_or_hangs_its_worker_is_dead_lettered_and_the_rest_run(engine: Engine, kind: str,
                                                                                    tmp_path: Path) -> None:
    engine.runtime.workers.timeout = 3.0
    app = make_app(tmp_path, name="crash-app", manifest={
        "streams": {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}}},
        "functions": {"crash": {"entrypoint": "crash_app.fns:crash", "stream": "readings", "retries": 0}}},
        files={"crash_app/fns.py": CRASHING})
    engine.as_role("eve", "developer").publish_app(app)
    uma = engine.as_role("uma", "user")
    uma.create_twin("crash-app@1.0.0", "pump", {"station": "P1"})
    levels = [1.0, -1.0, 2.0, 500.0, 3.0]
    uma.streams.append("pump", "readings", [{"time": f"2026-03-01T00:0{i}:00Z", "level": v}
                                            for i, v in enumerate(levels)])
    dead = eventually(lambda: (d := uma.streams.dead_letters("pump")) and len(d) == 2 and d, timeout=90)
    reasons = sorted((d.first_offset, d.error) for d in dead)
    assert reasons[0][0] == 1 and "exited with status 3" in reasons[0][1]
    assert reasons[1][0] == 3 and "no answer within 3 s" in reasons[1][1]
    state = eventually(lambda: (s := uma.get_state("pump").reported).get("level") and s["level"].value == 3.0 and s,
                       timeout=60)
    assert state["level"].value == 3.0  # the records after each failure still ran
    assert engine.http.get("/health").status_code == 200


CACHE_PROCESSES = '''
import os

from twinengine.app import app_process


@app_process(summary="Keeps a note in its app's cache folder", cacheable=False)
def remember(text: str) -> dict:
    folder = os.environ["XDG_CACHE_HOME"]
    path = os.path.join(folder, "note.txt")
    before = open(path).read() if os.path.exists(path) else None
    with open(path, "w") as fh:
        fh.write(text)
    return {{"folder": folder, "before": before, "numba": os.environ.get("NUMBA_CACHE_DIR"), "app": {app!r}}}
'''


def test_an_app_versions_cache_outlives_its_workers_and_no_other_app_sees_it(engine: Engine, kind: str,
                                                                            tmp_path: Path) -> None:
    """Compiled kernels (numba's, what goes to the XDG cache) are kept per app version between its workers, in
    a folder of its own: the one writable place besides the scratch folder, never shared with another app."""
    eve = engine.as_role("eve", "developer")
    for name in ("cache-a", "cache-b"):
        eve.publish_app(make_app(tmp_path / "apps", name=name, files={
            f"{name.replace('-', '_')}/procs.py": CACHE_PROCESSES.format(app=name)}))
    uma = engine.as_role("uma", "user")

    def remember(app: str, text: str) -> dict[str, Any]:
        graph = {"process_graph": {"r": {"process_id": "remember", "namespace": app, "arguments": {"text": text},
                                         "result": True}}}
        run = uma.workflows.submit(graph, sync=True)
        assert run.status == "finished", run.error
        value: dict[str, Any] = run.value
        return value

    first = remember("cache-a", "kept")
    assert first["before"] is None and first["folder"] == "/twin/cache" and first["numba"] == "/twin/cache/numba"
    engine.runtime.workers.pool.close()  # every warm worker stops: the next call starts a new one
    assert remember("cache-a", "again")["before"] == "kept"
    assert remember("cache-b", "other")["before"] is None  # another app's folder
    caches = engine.runtime.settings.envs_root / "caches"
    notes = sorted(p.read_text() for p in caches.glob("*/note.txt"))
    assert notes == ["again", "other"]  # on the engine's disk, one folder per app version
