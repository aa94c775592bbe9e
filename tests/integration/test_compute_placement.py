"""Placement by data: a run whose input dataset sits on a lake endpoint near a Dask site is placed on that
site and computed by its cluster; pinning and excluding sites are obeyed; a pinned site that cannot take
the run is refused naming ``options.site``; the chosen site and the reasons reach the run's provenance and
its usage record. With data equal, the site with more work queued or running per core loses: each run
counts what its graph took before (its usage records), a minute where it never ran."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Engine
from lake_fixtures import rain_field
from twinengine.compute.placement import collection_inputs
from twinengine.errors import ValidationFailed
from workflow_data import daily_graph

GRAPH = json.loads(json.dumps(daily_graph("max", "add", 1)).replace('"id": "rain"', '"id": "wx.rain-2026"'))


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                      dashboard_address=None) as local:
        yield str(local.scheduler_address)


def _setup(engine: Engine, tmp_path: Path, cluster: str) -> Any:
    provider, user = engine.as_role("pat", "provider"), engine.as_role("uma", "user")
    provider.lake.add_endpoint("near", "file", str(tmp_path / "near"))
    provider.lake.add_endpoint("far", "file", str(tmp_path / "far"))
    provider.compute.add_site("cluster", "dask", address=cluster, cores=2, memory_bytes=2**31, endpoints=["near"])
    nc = tmp_path / "rain.nc"
    rain_field().to_netcdf(nc, engine="h5netcdf")
    user.lake.add_dataset("wx:rain-2026")
    user.lake.upload(nc, "wx:rain-2026/rain.nc", endpoint="near", dataset="wx:rain-2026")
    return provider, user


def test_collection_inputs_of_a_graph() -> None:
    assert collection_inputs(GRAPH) == ["wx.rain-2026"]
    assert collection_inputs({"process_graph": {"a": {"process_id": "add", "arguments": {"x": 1, "y": 2}}}}) == []


def test_a_run_goes_where_its_data_is(engine: Engine, tmp_path: Path, cluster: str) -> None:
    provider, user = _setup(engine, tmp_path, cluster)
    run = user.workflows.submit(GRAPH, sync=True)
    assert run.status == "finished", run.error
    provenance = json.dumps(user.workflows.provenance(run.id))
    assert '"twin:site": "cluster"' in provenance
    assert "chose cluster" in provenance and "input bytes near it" in provenance
    (record,) = [r for r in user.compute.usage_records().items if r.run_id == run.id]
    assert record.site == "cluster" and "dask-task-stream" in record.source and record.remote_core_seconds > 0

    pinned = user.workflows.submit(GRAPH, sync=True, options={"site": "local"})
    excluded = user.workflows.submit(GRAPH, sync=True, options={"exclude_sites": ["cluster"]})
    for other in (pinned, excluded):
        assert other.status == "finished", other.error
        assert '"twin:site": "local"' in json.dumps(user.workflows.provenance(other.id))
    assert {r.run_id: r.site for r in user.compute.usage_records().items}[pinned.id] == "local"

    provider.compute.drain_site("cluster")
    with pytest.raises(ValidationFailed) as refused:
        user.workflows.submit(GRAPH, options={"site": "cluster"})
    assert refused.value.problems[0].loc == "options.site" and "draining" in refused.value.message
    with pytest.raises(ValidationFailed) as unknown:
        user.workflows.submit(GRAPH, options={"exclude_sites": ["atlantis"]})
    assert unknown.value.problems[0].loc == "options.exclude_sites[0]"
    drained = user.workflows.submit(GRAPH, sync=True)  # the draining site takes nothing new
    assert '"twin:site": "local"' in json.dumps(user.workflows.provenance(drained.id))


def test_an_ensemble_is_placed_with_its_members(engine: Engine, cluster: str) -> None:
    """Placement applies to ensembles (their members run where the ensemble was placed): excluded, the
    Dask site takes nothing; pinned, it computes every member."""
    from helpers import RIVER_REACH
    from workflow_data import rain_cube, write_collection

    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    ds = rain_cube(days=2)
    ds["rain"].values[:] = 0.0
    ds["rain"].values[6:12] = 12.0
    write_collection(engine.runtime.data_dir / "collections", "rain-forecast", ds)
    token = engine.token("uma", "user")
    uma = engine.sdk(token)
    uma.create_twin("river-reach", "reach", {"station": "RR-01"})
    provider = engine.as_role("pat", "provider")
    provider.compute.add_site("cluster", "dask", address=cluster, cores=2, memory_bytes=2**31)
    headers = engine.headers(token)
    body = {"workflow": "forecast", "members": 3, "seed": 1, "mode": "sync"}
    provider.compute.drain_site("cluster")
    refused = engine.http.post("/api/v1/twins/reach/ensembles", json={**body, "options": {"site": "cluster"}},
                               headers=headers)
    assert refused.status_code == 422 and refused.json()["details"][0]["loc"] == "options.site", refused.text
    assert uma.workflows.runs().items == []  # nothing stored for a refused ensemble
    provider.compute.drain_site("cluster", undo=True)
    answer = engine.http.post("/api/v1/twins/reach/ensembles", json={**body, "options": {"exclude_sites": ["cluster"]}},
                              headers=headers)
    ensemble = answer.json()
    assert ensemble["status"] == "finished", ensemble.get("error")
    provenance = json.dumps(uma.workflows.provenance(ensemble["id"]))
    assert '"twin:site": "local"' in provenance and "excluded cluster" in provenance
    members = {m["run_id"] for m in ensemble["members"]}
    sites = {r.run_id: r.site for r in uma.compute.usage_records().items}
    assert members <= set(sites) and {sites[m] for m in members} == {"local"}
    logs = " ".join(entry.message for entry in uma.workflows.logs(ensemble["id"]))
    assert "(site local)" in logs

    pinned = engine.http.post("/api/v1/twins/reach/ensembles", json={**body, "options": {"site": "cluster"}},
                              headers=headers).json()
    assert pinned["status"] == "finished", pinned.get("error")
    sites = {r.run_id: r.site for r in uma.compute.usage_records().items}
    assert {sites[m["run_id"]] for m in pinned["members"]} == {"cluster"}


ADD = {"process_graph": {"a": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": True}}}


def _busy(engine: Engine, site: str, runs: int, graph: str = "0" * 64, *, started: Any = None) -> None:
    """A run (an ensemble of ``runs`` members when more than one, none of them written yet) of ``graph``
    running on ``site`` in another engine, since ``started`` (None: just now, nothing done yet)."""
    from twinengine.store.base import utcnow
    from twinengine.workflows.models import WorkflowRun

    options: dict[str, Any] = {"site": site}
    if runs > 1:
        options["ensemble"] = {"members": [{"run": f"member-{site}-{i}"} for i in range(runs)]}
    with engine.runtime.db.session() as session:
        session.add(WorkflowRun(id=f"busy-{site}", kind="ensemble" if runs > 1 else "run", owner="ola",
                                process=ADD, graph_sha256=graph, parameters={}, options=options,
                                status="running", assets=[], worker="another-engine", heartbeat_at=utcnow(),
                                started_at=started))


def _ran_before(engine: Engine, graph: str, core_seconds: list[float], *, days_ago: int = 0) -> None:
    """Finished runs of ``graph`` with their usage records: what it took before."""
    from datetime import timedelta

    from twinengine.compute.models import UsageRecord
    from twinengine.store.base import utcnow
    from twinengine.workflows.models import WorkflowRun

    ended = utcnow() - timedelta(days=days_ago)

    with engine.runtime.db.session() as session:
        for i, seconds in enumerate(core_seconds):
            run_id = f"before-{graph[:8]}-{i}"
            session.add(WorkflowRun(id=run_id, kind="run", owner="ola", process=ADD, graph_sha256=graph,
                                    parameters={}, options={}, status="finished", assets=[]))
            session.add(UsageRecord(run_id=run_id, kind="run", status="finished", identity="ola", site="local",
                                    started_at=ended, finished_at=ended, wall_seconds=seconds,
                                    core_seconds=seconds, source="rusage"))


def test_with_data_equal_the_busier_site_loses(engine: Engine) -> None:
    """Sites ``a`` and ``b`` alike and no input: ``a`` wins the tie by name, unless it is the busier; an
    ensemble running on a site counts as its members."""
    provider, user = engine.as_role("pat", "provider"), engine.as_role("uma", "user")
    for name in ("a", "b"):
        provider.compute.add_site(name, "local", cores=2, memory_bytes=2**31)
    away = {"exclude_sites": ["local"]}
    _busy(engine, "a", 1)
    run = user.workflows.submit(ADD, sync=True, options=away)
    assert run.status == "finished", run.error
    provenance = json.dumps(user.workflows.provenance(run.id))
    assert '"twin:site": "b"' in provenance, provenance
    assert "a: 60 core-seconds left in runs queued or running on 2 cores" in provenance and "chose b" in provenance
    _busy(engine, "b", 3)  # three members on b outweigh one run on a
    again = user.workflows.submit(ADD, sync=True, options={**away, "no_cache": True})
    assert '"twin:site": "a"' in json.dumps(user.workflows.provenance(again.id))


def test_the_queue_counts_what_the_runs_took_before_not_how_many_they_are(engine: Engine) -> None:
    """One run of a graph that took about 20 minutes before outweighs an ensemble of three members of a
    graph that took a second: the site with fewer, larger runs loses. The quick graph ran often since; each
    graph is sized by its own latest runs, so its many newer records do not hide the slow one's."""
    provider, user = engine.as_role("pat", "provider"), engine.as_role("uma", "user")
    for name in ("a", "b"):
        provider.compute.add_site(name, "local", cores=2, memory_bytes=2**31)
    slow, quick = "5" * 64, "1" * 64
    _ran_before(engine, slow, [1100.0, 1200.0, 1300.0], days_ago=1)
    _ran_before(engine, quick, [1.0] * 45)
    _busy(engine, "a", 1, graph=slow)
    _busy(engine, "b", 3, graph=quick)
    run = user.workflows.submit(ADD, sync=True, options={"exclude_sites": ["local"]})
    assert run.status == "finished", run.error
    provenance = json.dumps(user.workflows.provenance(run.id))
    assert '"twin:site": "b"' in provenance, provenance
    assert "a: 1.2e+03 core-seconds left in runs queued or running on 2 cores, queue 600 s" in provenance
    assert "b: 3 core-seconds left in runs queued or running on 2 cores, queue 1.5 s" in provenance


def test_the_queue_counts_what_is_left_of_the_runs(engine: Engine) -> None:
    """An ensemble of four on ``a`` with three members done and the fourth half-way weighs what that member
    has left; a run on ``b`` that has not started weighs its whole size: ``a`` wins."""
    from datetime import timedelta

    from twinengine.store.base import utcnow
    from twinengine.workflows.models import WorkflowRun

    provider, user = engine.as_role("pat", "provider"), engine.as_role("uma", "user")
    for name in ("a", "b"):
        provider.compute.add_site(name, "local", cores=2, memory_bytes=2**31)
    graph = "7" * 64
    _ran_before(engine, graph, [100.0, 100.0, 100.0])
    _busy(engine, "a", 4, graph=graph, started=utcnow() - timedelta(seconds=60))
    _busy(engine, "b", 1, graph=graph)
    with engine.runtime.db.session() as session:
        session.get(WorkflowRun, "busy-b").status = "queued"
        for i, status in enumerate(["finished", "finished", "error", "running"]):
            session.add(WorkflowRun(id=f"member-a-{i}", kind="member", owner="ola", process=ADD, graph_sha256=graph,
                                    parameters={}, options={"ensemble": "busy-a", "member": i}, status=status,
                                    assets=[], started_at=utcnow() - timedelta(seconds=50)))
    run = user.workflows.submit(ADD, sync=True, options={"exclude_sites": ["local"]})
    assert run.status == "finished", run.error
    provenance = json.dumps(user.workflows.provenance(run.id))
    assert '"twin:site": "a"' in provenance, provenance
    left = float(re.search(r"a: ([0-9.e+]+) core-seconds left in runs", provenance).group(1))  # type: ignore[union-attr]
    assert 40 <= left <= 50  # the running member's 100 less the 50 s it has run (and the test's own seconds)
    assert "b: 100 core-seconds left in runs queued or running on 2 cores, queue 50 s" in provenance
