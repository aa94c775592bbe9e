"""Runs sent to another engine (a compute site of kind ``engine``): two real engines, each with its own data
dir and store, the other served over real HTTP on loopback. A run placed there is evaluated by the other
engine as an ad-hoc run of the identity its provider gave this one; this engine follows it, copies its results
here (checked against their checksums), charges this run's owner what the other engine recorded, and names
the other run in the provenance. A failure there is this run's, naming the site; an engine that goes away
mid-run is a lost site, and the run is rerun here. A run on a twin never goes there."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import RIVER_REACH, Engine
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import ValidationFailed

SITE = "partner"
SUM = {"process_graph": {"sum": {"process_id": "sum", "arguments": {"data": [{"from_parameter": "a"}, 2, 3]},
                                 "result": True}},
       "parameters": [{"name": "a", "description": "the first term", "schema": {"type": "number"}}]}


def _sleepy(seconds: float, steps: int = 1) -> dict[str, Any]:
    """A graph of ``steps`` UDFs in a row, each sleeping ``seconds``; the first doubles its data (a run is
    canceled between two of its nodes)."""
    double = f"import time\n\ndef udf(data, context):\n    time.sleep({seconds})\n    return [x * 2 for x in data]\n"
    same = f"import time\n\ndef udf(data, context):\n    time.sleep({seconds})\n    return data\n"
    graph: dict[str, Any] = {}
    for i in range(steps):
        graph[f"u{i}"] = {"process_id": "run_udf", "arguments": {
            "data": [1, 2, 3] if i == 0 else {"from_node": f"u{i - 1}"}, "udf": double if i == 0 else same,
            "runtime": "Python"}}
    graph[f"u{steps - 1}"]["result"] = True
    return {"process_graph": graph}


@dataclass
class Partner:
    url: str
    admin: Client
    token: str  # the identity ``partner`` on the other engine: what this engine's site holds
    server: Any


@pytest.fixture
def partner(tmp_path: Path) -> Iterator[Partner]:
    """Another engine on its own data dir, served over HTTP on a free loopback port."""
    from twinengine.api import create_app
    from twinengine.demo.server import InProcessServer
    from twinengine.runtime import Runtime

    runtime = Runtime.from_settings(Settings(data_dir=tmp_path / "partner", warm_routes=False))
    token = runtime.start()
    try:
        with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, token) as admin:
            yield Partner(server.url, admin, admin.create_token("partner", "user").token, server)
    finally:
        runtime.close()


def _site(engine: Engine, partner: Partner) -> None:
    engine.as_role("pat", "provider").compute.add_site(SITE, "engine", address=partner.url, cores=8,
                                                       memory_bytes=2**33,
                                                       credential={"kind": "bearer", "token": partner.token})


def test_a_run_placed_on_another_engine_runs_there_and_its_results_come_here(engine: Engine,
                                                                           partner: Partner) -> None:
    _site(engine, partner)
    uma = engine.as_role("uma", "user")
    run = uma.workflows.submit(SUM, {"a": 5}, sync=True, options={"site": SITE})
    assert run.status == "finished", run.error
    assert run.value == 10
    with engine.runtime.db.session(readonly=True) as session:
        from twinengine.workflows.models import WorkflowRun

        row = session.get(WorkflowRun, run.id)
        assert row is not None
        remote, assets = dict(row.options["remote"]), list(row.assets)
    assert remote["site"] == SITE and remote["engine"] == partner.url
    there = partner.admin.workflows.get(remote["run"])  # the other engine's own run, of its identity partner
    assert there.status == "finished" and there.owner == "partner" and there.value == 10
    assert [(a["name"], a["sha256"]) for a in assets] == [(a["name"], a["sha256"]) for a in there.assets]
    assert json.loads(uma.workflows.result(run.id).content) == 10  # kept here: readable with the other gone
    provenance = json.dumps(uma.workflows.provenance(run.id))
    assert SITE in provenance

    # usage: the other engine's record of its run, charged here to uma, from the source engine:<site>
    mine = {r.run_id: r for r in uma.compute.usage_records().items}[run.id]
    theirs = [r for r in partner.admin.compute.usage_records(identity="partner").items if r.run_id == remote["run"]]
    assert len(theirs) == 1 and theirs[0].identity == "partner"
    assert mine.site == SITE and mine.identity == "uma" and f"engine:{SITE}" in mine.source
    assert mine.remote_core_seconds == pytest.approx(theirs[0].core_seconds, abs=1e-6)


def test_a_failure_there_is_the_runs_own_and_names_the_site(engine: Engine, partner: Partner) -> None:
    _site(engine, partner)
    uma = engine.as_role("uma", "user")
    code = "def udf(data, context):\n    raise ValueError('no gauge reads ' + str(data))\n"
    bad = {"process_graph": {"udf": {"process_id": "run_udf", "result": True, "arguments": {
        "data": [1], "udf": code, "runtime": "Python"}}}}
    run = uma.workflows.submit(bad, sync=True, options={"site": SITE})
    assert run.status == "error"
    assert run.error is not None and f"on site {SITE}" in run.error["message"], run.error
    assert "no gauge reads [1]" in run.error["message"] and run.error["code"] == "ProcessFailed"


def test_a_run_on_a_twin_is_not_sent_to_another_engine(engine: Engine, partner: Partner) -> None:
    _site(engine, partner)
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    uma = engine.as_role("uma", "user")
    uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    with pytest.raises(ValidationFailed, match="stays with the twin") as refused:
        uma.workflows.submit(SUM, {"a": 1}, twin="reach", options={"site": SITE})
    assert "options.site" in str(refused.value.details)
    placed = uma.workflows.submit(SUM, {"a": 1}, twin="reach", sync=True)  # unpinned: placed here
    assert placed.status == "finished" and placed.value == 6


def test_an_engine_that_goes_away_mid_run_is_a_lost_site_and_the_run_reruns_here(engine: Engine,
                                                                                  partner: Partner) -> None:
    from twinengine.workflows.models import WorkflowRun

    _site(engine, partner)
    uma = engine.as_role("uma", "user")
    run = uma.workflows.submit(_sleepy(3.0), options={"site": SITE})
    deadline = time.monotonic() + 60
    while True:  # until the run is on the other engine
        with engine.runtime.db.session(readonly=True) as session:
            row = session.get(WorkflowRun, run.id)
            assert row is not None
            remote = (row.options or {}).get("remote")
        if remote is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert remote is not None
    partner.server.__exit__(None, None, None)  # the other engine stops answering
    done = uma.workflows.wait(run.id, timeout=120)
    assert done.status == "finished", done.error
    assert done.value == [2, 4, 6]
    with engine.runtime.db.session(readonly=True) as session:
        row = session.get(WorkflowRun, run.id)
        assert row is not None
        options = dict(row.options)
    assert options["site"] == "local" and options["faults"][0]["site"] == SITE
    records = [r for r in uma.compute.usage_records().items if r.run_id == run.id]
    assert sorted(r.status for r in records) == ["finished", "lost"]
    assert {r.site for r in records if r.status == "lost"} == {SITE}
    logs = " ".join(line.message for line in uma.workflows.logs(run.id))
    assert f"site {SITE} was lost under this run" in logs


def test_a_run_canceled_here_is_stopped_there(engine: Engine, partner: Partner) -> None:
    from twinengine.workflows.models import WorkflowRun

    _site(engine, partner)
    uma = engine.as_role("uma", "user")
    run = uma.workflows.submit(_sleepy(1.0, steps=20), options={"site": SITE})
    deadline, remote = time.monotonic() + 60, None
    while remote is None and time.monotonic() < deadline:
        with engine.runtime.db.session(readonly=True) as session:
            row = session.get(WorkflowRun, run.id)
            remote = (row.options or {}).get("remote") if row is not None else None
        time.sleep(0.05)
    assert remote is not None
    uma.workflows.cancel(run.id)
    ended = uma.workflows.wait(run.id, timeout=60)
    assert ended.status == "canceled", [line.message for line in uma.workflows.logs(run.id)]
    assert partner.admin.workflows.wait(remote["run"], timeout=60).status == "canceled"
