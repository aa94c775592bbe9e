"""Refused work leaves nothing behind, and lists of runs carry summaries, never values.

A synchronous result over ``sync_max_result_bytes`` is refused while it is written, in the child process that
evaluates it as an engine does by default: the run ends as an error ``ResultTooLarge`` naming the size and the
limit, and the data dir holds nothing of it (measured before and after, the store checkpointed). A batch run's
large value lives in its ``result.json`` only; ``GET /api/v1/runs`` and the openEO job list stay small. The
limit is lowered here so that the payloads stay small (megabytes, not the gigabytes it bounds)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from helpers import Engine
from streams_fixtures import eventually
from twinengine.config import Settings
from twinengine.workflows.models import CacheEntry, RunLog, WorkflowRun

LIMIT = 256 << 10  # sync_max_result_bytes here
PAYLOAD = 16 * LIMIT  # what each refused graph makes: 4 MiB
BIG_UDF = f"def udf(data, context):\n    return 'A' * {PAYLOAD}\n"


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    """Synchronous graphs in a child process, as by default; the result limit lowered to 256 KiB."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, warm_routes=False,
                    sync_isolation="process", sync_processes=1, sync_max_result_bytes=LIMIT)


def _result(engine: Engine, graph: dict[str, Any]) -> Any:
    return engine.http.post("/openeo/1.2/result", json={"process": {"process_graph": graph}},
                            headers=engine.headers(engine.token("uma", "user")))


def _disk(settings: Settings) -> int:
    """Bytes under the data dir, the store's write-ahead log folded into its file first."""
    store = settings.data_dir / "twin.db"
    if store.exists():  # the embedded store (a server database keeps its data elsewhere)
        with sqlite3.connect(store) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(f.stat().st_size for f in settings.data_dir.rglob("*") if f.is_file())


def _strings(size: int) -> dict[str, Any]:
    """array_create of 1 kB strings: ``size`` bytes of JSON, well within workflow_max_array_elements."""
    return {"process_id": "array_create", "arguments": {"data": ["A" * 1000], "repeat": size // 1004}}


GRAPHS = {
    "a UDF's string": {"u": {"process_id": "run_udf", "arguments": {"data": [1], "udf": BIG_UDF,
                                                                      "runtime": "Python"}, "result": True}},
    "array_create's array": {"a": {**_strings(PAYLOAD), "result": True}},
    "save_result's JSON": {"a": _strings(PAYLOAD),
                           "s": {"process_id": "save_result", "arguments": {"data": {"from_node": "a"},
                                                                            "format": "JSON"}, "result": True}},
}


@pytest.mark.slow
def test_a_result_over_the_limit_is_refused_and_leaves_nothing_behind(engine: Engine, settings: Settings) -> None:
    assert _result(engine, {"a": {**_strings(10_000), "result": True}}).status_code == 200  # the child is warm
    for what, graph in GRAPHS.items():
        before = _disk(settings)
        answer = _result(engine, graph)
        grew = _disk(settings) - before
        assert answer.status_code == 413, (what, answer.text)
        body = answer.json()
        assert body["code"] == "ResultTooLarge", (what, body)
        assert str(LIMIT) in body["message"] and "sync_max_result_bytes" in body["message"], body
        assert grew < LIMIT, f"{what}: the data dir grew by {grew} bytes"
        with engine.runtime.db.session(readonly=True) as session:
            run = session.scalars(select(WorkflowRun).order_by(WorkflowRun.created_at.desc())).first()
            assert run is not None and run.kind == "sync"
            assert run.status == "error" and run.error is not None and run.error["code"] == "ResultTooLarge", what
            assert run.value is None and run.assets == []
            assert session.scalar(select(func.count()).select_from(CacheEntry)
                                  .where(CacheEntry.run_id == run.id)) == 0
            logged = session.scalar(select(func.sum(func.length(RunLog.message))).where(RunLog.run_id == run.id))
            assert (logged or 0) < 10_000
        assert not (settings.data_dir / "results" / run.id).exists(), what
    listed = engine.http.get("/api/v1/runs", headers=engine.headers(engine.token("uma", "user")))
    assert listed.status_code == 200 and len(listed.content) < LIMIT

    # The same graph kept by a batch run first: its cached result is no way around the limit
    saved = GRAPHS["save_result's JSON"]
    uma = engine.headers(engine.token("uma", "user"))
    batch = engine.http.post("/api/v1/runs", json={"process": {"process_graph": saved}, "mode": "sync"},
                             headers=uma).json()
    assert batch["status"] == "finished" and batch["assets"][0]["size"] > LIMIT, batch["error"]
    before = _disk(settings)
    again = _result(engine, saved)
    assert again.status_code == 413 and again.json()["code"] == "ResultTooLarge", again.text
    assert _disk(settings) - before < LIMIT
    assert engine.http.get(f"/api/v1/runs/{batch['id']}/results/{batch['assets'][0]['name']}",
                           headers=uma).status_code == 200  # the batch run keeps its own


@pytest.mark.slow
def test_lists_of_runs_carry_summaries_and_links_never_values(engine: Engine) -> None:
    uma = engine.headers(engine.token("uma", "user"))
    big = {"process_graph": {"a": {**_strings(2 << 20), "result": True}},  # a 2 MiB value, a batch run
           "parameters": [{"name": "note", "description": "a long parameter", "schema": {"type": "string"}}]}
    made = engine.http.post("/api/v1/runs", json={"process": big, "parameters": {"note": "n" * 100_000}},
                            headers=uma)
    assert made.status_code == 202, made.text
    run_id = made.json()["id"]
    done = eventually(lambda: (r := engine.http.get(f"/api/v1/runs/{run_id}", headers=uma).json())["status"]
                      in ("finished", "error") and r)
    assert done["status"] == "finished", done["error"]
    assert done["value"] is None  # more than a run's record keeps: its result.json has it
    (asset,) = done["assets"]
    assert asset["name"] == "result.json" and asset["size"] > 1 << 20  # over what a record keeps
    href = next(link["href"] for link in done["links"] if link["rel"] == "item")
    assert len(engine.http.get(href, headers=uma).json()) == (2 << 20) // 1004
    with engine.runtime.db.session(readonly=True) as session:
        assert session.get_one(WorkflowRun, run_id).value is None

    for path in ("/api/v1/runs", "/api/v1/runs?limit=500", "/api/v1/runs?status=finished"):
        listed = engine.http.get(path, headers=uma)
        assert listed.status_code == 200 and len(listed.content) < 64 << 10, (path, len(listed.content))
        (item,) = listed.json()["items"]
        assert {"value", "parameters", "nodes"}.isdisjoint(item), sorted(item)
        links = {link["rel"]: link["href"] for link in item["links"]}
        assert links["self"] == f"/api/v1/runs/{run_id}" and links["item"] == href
    admin = engine.http.get("/api/v1/runs?limit=5", headers=engine.headers(engine.admin_token))
    assert admin.status_code == 200 and len(admin.content) < 64 << 10
    jobs = engine.http.get("/openeo/1.2/jobs", headers=uma)
    assert jobs.status_code == 200 and len(jobs.content) < 64 << 10
    assert [job["id"] for job in jobs.json()["jobs"]] == [run_id]
