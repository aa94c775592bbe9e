"""Site faults: a Dask site (a real scheduler and worker, separate processes) killed or frozen while an
ensemble's members compute on it is marked down; its unfinished members are placed again on the other
site (``local``) and rerun; every member's end, result and usage record is written exactly once (a lost
attempt's usage has a record of its own, status ``lost``); the ensemble's log and its members' provenance
tell the story; a frozen site holds a run no longer than a heartbeat interval plus one probe. An ensemble
whose shared part is on the site when it dies is placed again, staged again near its new site, and rerun
there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import RIVER_REACH, Engine, free_port, stop_process
from twinengine.ensembles import run as ensemble_run
from twinengine.workflows import member_faults, members
from workflow_data import rain_cube, write_collection

MEMBERS = 6


@dataclass
class Cluster:
    address: str
    processes: list[subprocess.Popen[bytes]]

    def signal(self, sig: int) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, sig)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A Dask scheduler and one worker as processes of their own (no nanny), so a test can kill them."""
    with dask_cluster() as found:
        yield found


@contextmanager
def dask_cluster() -> Iterator[Cluster]:
    """A Dask scheduler and one worker as processes of their own (no nanny), stopped on leaving."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "2",
                               "--no-dashboard", "--no-nanny"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found = Cluster(address, [scheduler, worker])
    try:
        _wait_for_worker(address)
        yield found
    finally:
        found.signal(signal.SIGCONT)
        for process in (worker, scheduler):
            stop_process(process, timeout=10)


def _wait_for_worker(address: str) -> None:
    from distributed import Client

    with Client(address, timeout="30s", set_as_default=False) as client:
        client.wait_for_workers(1, timeout=60)


def _reach(engine: Engine, cluster: Cluster) -> tuple[Any, dict[str, str]]:
    """River-reach with one rain collection per member, so each member's loading and reducing is its own
    work on the site (a shared load would be computed once, before the members)."""
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    for i in range(MEMBERS):
        ds = rain_cube(days=2)
        ds["rain"].values[:] = 0.0
        ds["rain"].values[6:12] = 4.0 + i
        write_collection(engine.runtime.data_dir / "collections", f"rain-{i}", ds)
    token = engine.token("uma", "user")
    uma = engine.sdk(token)
    uma.create_twin("river-reach", "reach", {"station": "RR-01"})
    engine.as_role("pat", "provider").compute.add_site("cluster", "dask", address=cluster.address, cores=2,
                                                       memory_bytes=2**31)
    return uma, engine.headers(token)


def _on_third_attempt(monkeypatch: pytest.MonkeyPatch, act: Callable[[], None]) -> list[str]:
    """Call ``act`` while the third member attempt on ``cluster`` computes there (at its first progress
    report, its tasks in the cluster); returns the sites of every attempt, in order."""
    attempts: list[str] = []
    original = member_faults.MemberFaults.watching

    def watching(self: member_faults.MemberFaults, site: str, progress: Any) -> Any:
        attempts.append(site)
        inner = original(self, site, progress)
        if site != "cluster" or attempts.count("cluster") != 3:
            return inner
        fired: list[bool] = []

        def first(done: int, total: int) -> None:
            if not fired:
                fired.append(True)
                act()
            inner(done, total)

        return first

    monkeypatch.setattr(member_faults.MemberFaults, "watching", watching)
    return attempts


def _count_ends(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    ends: Counter[str] = Counter()
    original = members._store_end

    def counted(engine: Any, run_id: str, *args: Any, **kwargs: Any) -> None:
        ends[run_id] += 1
        original(engine, run_id, *args, **kwargs)

    monkeypatch.setattr(members, "_store_end", counted)
    return ends


def _ensemble(engine: Engine, headers: dict[str, str]) -> dict[str, Any]:
    body = {"workflow": "forecast", "parameter_sets": [{"collection": f"rain-{i}"} for i in range(MEMBERS)],
            "mode": "sync", "options": {"site": "cluster"}}
    answer = engine.http.post("/api/v1/twins/reach/ensembles", json=body, headers=headers)
    assert answer.status_code in (200, 201, 202), answer.text
    return dict(answer.json())


def _check_each_member_once(engine: Engine, uma: Any, ensemble: dict[str, Any], ends: Counter[str],
                            head: int) -> dict[str, str]:
    assert ensemble["status"] == "finished", ensemble.get("error")
    ids = [m["run_id"] for m in ensemble["members"]]
    assert {m["status"] for m in ensemble["members"]} == {"finished"}
    assert {i: ends[i] for i in ids} == dict.fromkeys(ids, 1)  # each member's end written once
    records = Counter(r.run_id for r in uma.compute.usage_records().items if r.status != "lost")
    assert {i: records[i] for i in ids} == dict.fromkeys(ids, 1)  # one usage record each (lost attempts apart)
    for i in ids:
        assets = [a["name"] for a in uma.workflows.get(i).assets]
        assert assets.count("result.json") == 1, assets
    assert uma.get_twin("reach").head_revision == head + 1  # the statistics, written once
    return {r.run_id: r.site for r in uma.compute.usage_records().items if r.run_id in ids}


def test_a_site_killed_mid_ensemble_costs_a_rerun_of_its_members(engine: Engine, cluster: Cluster,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    uma, headers = _reach(engine, cluster)
    head = uma.get_twin("reach").head_revision
    ends = _count_ends(monkeypatch)
    attempts = _on_third_attempt(monkeypatch, lambda: cluster.signal(signal.SIGKILL))
    ensemble = _ensemble(engine, headers)
    sites = _check_each_member_once(engine, uma, ensemble, ends, head)
    assert attempts.count("local") >= 1 and "local" in set(sites.values())
    site = uma.compute.site("cluster")
    assert site.status == "down" and site.health_error
    logs = " ".join(e.message for e in uma.workflows.logs(ensemble["id"]))
    assert "site cluster was lost mid-ensemble" in logs and "rerun on site local" in logs
    member_logs = {i: " ".join(e.message for e in uma.workflows.logs(i)) for i, s in sites.items() if s == "local"}
    rerun = [i for i, text in member_logs.items() if "site cluster was lost under this member" in text]
    assert rerun, member_logs  # the third attempt's member at least
    assert all(i in rerun or "site cluster was lost earlier in the ensemble" in text
               for i, text in member_logs.items())
    for i in member_logs:
        provenance = json.dumps(uma.workflows.provenance(i))
        assert '"twin:site": "local"' in provenance and "site cluster was lost mid-run" in provenance
    assert "site cluster was lost mid-run" in json.dumps(uma.workflows.provenance(ensemble["id"]))
    lost = [r for r in uma.compute.usage_records().items if r.status == "lost"]
    assert lost and {r.site for r in lost} == {"cluster"} and {r.run_id for r in lost} <= set(rerun)


@pytest.mark.ci_only  # a Dask cluster frozen (SIGSTOP) for longer than a heartbeat: half a minute
def test_a_frozen_site_holds_members_no_longer_than_a_heartbeat(engine: Engine, cluster: Cluster,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGSTOP: the scheduler's connections stay open and nothing answers. The members waiting on it
    probe it once its last heartbeat is older than the interval (1 s here), and give it up when the probe
    times out."""
    uma, headers = _reach(engine, cluster)
    engine.runtime.workflows.services["sites"].watch.every = 1.0
    head = uma.get_twin("reach").head_revision
    ends = _count_ends(monkeypatch)
    _on_third_attempt(monkeypatch, lambda: cluster.signal(signal.SIGSTOP))
    ensemble = _ensemble(engine, headers)  # it returns: nothing waits on the frozen site for good
    sites = _check_each_member_once(engine, uma, ensemble, ends, head)
    assert "local" in set(sites.values())
    site = uma.compute.site("cluster")
    assert site.status == "down" and "does not answer" in (site.health_error or "")


def test_removing_a_site_closes_its_client_while_its_scheduler_still_answers(engine: Engine, cluster: Cluster) -> None:
    """A client left open to a removed site would try to reach its scheduler again once that is gone (for
    20 s, then log an error): the demo's compute chapter removes its site, then stops the cluster."""
    pat = engine.as_role("pat", "provider")
    pat.compute.add_site("cluster", "dask", address=cluster.address, cores=2, memory_bytes=2**31)
    client = engine.runtime.workflows.services["sites"].get("cluster").client  # as a run placed there makes it
    assert client.status == "running"
    pat.compute.remove_site("cluster")
    assert client.status == "closed"


def test_an_ensemble_whose_shared_part_loses_its_site_is_staged_again_and_rerun(
        lake_engine: Engine, cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every member reads one lake input (on ``home``), so loading it is the ensemble's shared part, computed
    on ``cluster`` (near ``cluster-disk``, where it was staged). The cluster is killed (SIGKILL) under the
    shared part: the ensemble is placed again on ``edge`` (``local`` excluded), its input staged near it
    and the shared part and members run there, each member's end written once."""
    provider = lake_engine.as_role("pat", "provider")
    for name in ("disk", "home", "cluster-disk", "edge-disk"):
        provider.lake.add_endpoint(name, "file", str(tmp_path / name))
    provider.compute.add_site("cluster", "dask", address=cluster.address, cores=2, memory_bytes=2**31,
                              endpoints=["cluster-disk"])
    provider.compute.add_site("edge", "local", cores=4, memory_bytes=2**31, endpoints=["edge-disk"])
    lake_engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    token = lake_engine.token("uma", "user")
    uma = lake_engine.sdk(token)
    ds = rain_cube(days=2)
    ds["rain"].values[:] = 0.0
    ds["rain"].values[6:12] = 5.0
    nc = tmp_path / "forecast.nc"
    ds.to_netcdf(nc, engine="h5netcdf")
    uma.lake.add_dataset("wx:rain-forecast")
    uma.lake.upload(nc, "wx:rain-forecast/forecast.nc", endpoint="home", dataset="wx:rain-forecast")
    uma.create_twin("river-reach", "reach", {"station": "RR-01"})
    head = uma.get_twin("reach").head_revision
    ends = _count_ends(monkeypatch)
    shared: list[str] = []
    original = ensemble_run.watching

    def watching(engine: Any, site: str, progress: Any) -> Any:  # the ensemble's own work, on each site
        shared.append(site)
        inner = original(engine, site, progress)
        if site != "cluster":
            return inner

        def first(done: int, total: int) -> None:
            cluster.signal(signal.SIGKILL)
            inner(done, total)

        return first

    monkeypatch.setattr(ensemble_run, "watching", watching)
    body = {"workflow": "forecast", "parameter_sets": [{"collection": "wx.rain-forecast"}] * 3, "mode": "sync",
            "options": {"site": "cluster", "exclude_sites": ["local"]}}
    answer = lake_engine.http.post("/api/v1/twins/reach/ensembles", json=body, headers=lake_engine.headers(token))
    ensemble = answer.json()
    assert ensemble["status"] == "finished", ensemble.get("error")
    assert shared == ["cluster", "edge"]
    sites = _check_each_member_once(lake_engine, uma, ensemble, ends, head)
    assert set(sites.values()) == {"edge"}
    assert uma.compute.site("cluster").status == "down"
    logs = " ".join(e.message for e in uma.workflows.logs(ensemble["id"]))
    assert "site cluster was lost mid-ensemble" in logs and "its shared part and members rerun on site edge" in logs
    assert "near site edge" in logs and "again: site cluster was lost" in logs
    assert '"twin:site": "edge"' in json.dumps(uma.workflows.provenance(ensemble["id"]))
    for member in ensemble["members"]:
        text = " ".join(e.message for e in uma.workflows.logs(member["run_id"]))
        assert "placed on site edge: site cluster was lost earlier in the ensemble" in text
    transfers = sorted((t.did, t.destination, t.state) for t in provider.lake.transfers())
    assert transfers == [("wx:rain-forecast/forecast.nc", "cluster-disk", "DONE"),
                         ("wx:rain-forecast/forecast.nc", "edge-disk", "DONE")]  # each copy made once
    staging = uma.workflows.get(ensemble["id"]).staging
    assert staging is not None and staging["site"] == "edge" and [e["site"] for e in staging["earlier"]] == ["cluster"]
    records = {r.run_id: r for r in uma.compute.usage_records().items}
    charged = [records[m["run_id"]].bytes_transferred for m in ensemble["members"]]
    assert charged == [2 * nc.stat().st_size, 0, 0]  # both stagings, charged to the first member once
    # the shared part's own records: its attempt lost with cluster, and the one that ran on edge
    own = sorted((r.status, r.site, r.bytes_transferred) for r in records.values() if r.run_id == ensemble["id"])
    assert own == [("finished", "edge", 0)], own
    lost = [(r.status, r.site) for r in uma.compute.usage_records().items
            if r.run_id == ensemble["id"] and r.status == "lost"]
    assert lost == [("lost", "cluster")]
