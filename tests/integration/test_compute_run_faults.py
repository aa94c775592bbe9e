"""Site faults for a plain run (not an ensemble's member): a Dask site (a real scheduler and worker,
separate processes) killed while the run's tasks are on it is marked down; the run is placed again without
it and rerun on ``local``; its log, provenance and usage records say so: the rerun's record, and the
lost attempt's (status ``lost``, counted by quotas). A run that loses a second site is moved again, never
back to one it lost. A run moved to a site with an endpoint near it has its lake input staged there again
before it reruns."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from test_compute_faults import Cluster, cluster, dask_cluster  # noqa: F401  (the fixture: a scheduler and a worker)

from helpers import Engine
from lake_fixtures import rain_field
from staging_fixtures import GRAPH
from twinengine.workflows import runner
from twinengine.workflows.models import WorkflowRun
from workflow_data import daily_graph, write_collection


def _kill_on_first_progress(monkeypatch: pytest.MonkeyPatch, dask_site: Cluster,
                            *more: tuple[str, Cluster]) -> list[str]:
    """Kill the cluster (SIGKILL) at the run's first progress report there (its tasks in the cluster), and
    each of ``more`` (site name, cluster) likewise; returns the sites the run's work waited on, in order."""
    sites: list[str] = []
    original = runner.watching
    doomed = {"cluster": dask_site, **dict(more)}

    def watching(engine: Any, site: str, progress: Any) -> Any:
        sites.append(site)
        inner = original(engine, site, progress)
        if site not in doomed:
            return inner
        fired: list[bool] = []

        def first(done: int, total: int) -> None:
            if not fired:
                fired.append(True)
                doomed[site].signal(signal.SIGKILL)
            inner(done, total)

        return first

    monkeypatch.setattr(runner, "watching", watching)
    return sites


def test_a_run_whose_site_dies_is_placed_again_and_rerun(engine: Engine, cluster: Cluster,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    write_collection(engine.runtime.data_dir / "collections")
    engine.as_role("pat", "provider").compute.add_site("cluster", "dask", address=cluster.address, cores=2,
                                                       memory_bytes=2**31)
    uma = engine.as_role("uma", "user")
    sites = _kill_on_first_progress(monkeypatch, cluster)
    run = uma.workflows.submit(daily_graph("max", "add", 1), sync=True, options={"site": "cluster"})
    assert run.status == "finished", run.error
    assert sites == ["cluster", "local"]  # started on the cluster, rerun once on local
    assert uma.compute.site("cluster").status == "down"
    logs = " ".join(e.message for e in uma.workflows.logs(run.id))
    assert "site cluster was lost under this run" in logs and "rerun on site local" in logs
    provenance = json.dumps(uma.workflows.provenance(run.id))
    assert '"twin:site": "local"' in provenance and "site cluster was lost mid-run" in provenance
    records = [r for r in uma.compute.usage_records().items if r.run_id == run.id]
    # the attempt that ended, and the one lost with the cluster: what the lost site consumed
    assert sorted((r.status, r.site) for r in records) == [("finished", "local"), ("lost", "cluster")]
    assets = [a["name"] for a in uma.workflows.get(run.id).assets]
    assert len(assets) == len(set(assets)) == 1, assets  # the result kept once


def test_a_run_that_loses_a_second_site_moves_again_never_back(engine: Engine, cluster: Cluster,  # noqa: F811
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Pinned to ``cluster``, which dies under it; placed on ``cluster-b`` (more cores than ``edge``), which
    dies too; placed on ``edge``, where it finishes: a lost attempt's record for each site, one result."""
    write_collection(engine.runtime.data_dir / "collections")
    pat = engine.as_role("pat", "provider")
    with dask_cluster() as second:
        pat.compute.add_site("cluster", "dask", address=cluster.address, cores=2, memory_bytes=2**31)
        pat.compute.add_site("cluster-b", "dask", address=second.address, cores=8, memory_bytes=2**31)
        pat.compute.add_site("edge", "local", cores=1, memory_bytes=2**31)
        uma = engine.as_role("uma", "user")
        sites = _kill_on_first_progress(monkeypatch, cluster, ("cluster-b", second))
        run = uma.workflows.submit(daily_graph("max", "add", 1), sync=True,
                                   options={"site": "cluster", "exclude_sites": ["local"]})
    assert run.status == "finished", run.error
    assert sites == ["cluster", "cluster-b", "edge"]
    assert {uma.compute.site(s).status for s in ("cluster", "cluster-b")} == {"down"}
    logs = " ".join(e.message for e in uma.workflows.logs(run.id))
    assert "site cluster was lost under this run" in logs and "rerun on site cluster-b" in logs
    assert "site cluster-b was lost under this run" in logs and "rerun on site edge" in logs
    with engine.runtime.db.session(readonly=True) as session:
        faults = session.get(WorkflowRun, run.id).options["faults"]  # type: ignore[union-attr]
    assert [(f["site"], f["rerun_on"]) for f in faults] == [("cluster", "cluster-b"), ("cluster-b", "edge")]
    records = sorted((r.status, r.site) for r in uma.compute.usage_records().items if r.run_id == run.id)
    assert records == [("finished", "edge"), ("lost", "cluster"), ("lost", "cluster-b")]
    assets = [a["name"] for a in uma.workflows.get(run.id).assets]
    assert len(assets) == len(set(assets)) == 1, assets


def test_a_run_moved_off_a_lost_site_is_staged_again_near_its_new_site(
        lake_engine: Engine, cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The input is on ``home``; the run, pinned to ``cluster`` (near ``cluster-disk``), stages it there; the
    cluster is killed under it, and it is placed again on ``edge`` (near ``edge-disk``; ``local`` excluded),
    where it is staged again before it reruns. Each copy is made once; the lost attempt's usage is recorded
    and counts against a quota on the lost site."""
    provider, user = lake_engine.as_role("pat", "provider"), lake_engine.as_role("uma", "user")
    for name in ("disk", "home", "cluster-disk", "edge-disk"):
        provider.lake.add_endpoint(name, "file", str(tmp_path / name))
    provider.compute.add_site("cluster", "dask", address=cluster.address, cores=2, memory_bytes=2**31,
                              endpoints=["cluster-disk"])
    provider.compute.add_site("edge", "local", cores=4, memory_bytes=2**31, endpoints=["edge-disk"])
    nc = tmp_path / "rain.nc"
    rain_field().to_netcdf(nc, engine="h5netcdf")
    user.lake.add_dataset("wx:rain-2026")
    user.lake.upload(nc, "wx:rain-2026/rain.nc", endpoint="home", dataset="wx:rain-2026")
    lake_engine.sdk(lake_engine.admin_token).compute.set_quota("uma", 100, site="cluster", period="day")
    sites = _kill_on_first_progress(monkeypatch, cluster)
    run = user.workflows.submit(GRAPH, sync=True, options={"site": "cluster", "exclude_sites": ["local"]})
    assert run.status == "finished", run.error
    assert sites == ["cluster", "edge"]
    staging = user.workflows.get(run.id).staging
    assert staging is not None and staging["site"] == "edge" and staging["percent"] == 100.0, staging
    assert [s["did"] for s in staging["staged"]] == ["wx:rain-2026"]
    assert [e["site"] for e in staging["earlier"]] == ["cluster"]
    transfers = sorted((t.did, t.destination, t.state) for t in provider.lake.transfers())
    assert transfers == [("wx:rain-2026/rain.nc", "cluster-disk", "DONE"),
                         ("wx:rain-2026/rain.nc", "edge-disk", "DONE")]  # each copy made once
    logs = " ".join(e.message for e in user.workflows.logs(run.id))
    assert "rerun on site edge" in logs and "near site edge" in logs and "again: site cluster was lost" in logs
    provenance = json.dumps(user.workflows.provenance(run.id))
    assert '"twin:site": "edge"' in provenance
    assert "before site cluster was lost: wx:rain-2026 -> cluster-disk" in provenance
    assert "wx:rain-2026 -> edge-disk" in provenance and "outputs to home" in provenance
    records = {r.status: r for r in user.compute.usage_records().items if r.run_id == run.id}
    assert sorted(records) == ["finished", "lost"] and records["lost"].site == "cluster"
    assert records["finished"].site == "edge" and records["finished"].bytes_transferred == 2 * nc.stat().st_size
    assert records["lost"].bytes_transferred == 0 and records["lost"].core_seconds > 0
    (quota,) = [q for q in user.compute.quotas().items if q.site == "cluster"]
    assert quota.used_core_hours == pytest.approx(records["lost"].core_seconds / 3600, abs=1e-8)
