"""Training runs placed on a compute site: river-reach's PyTorch model trained by the app's sandboxed worker
started on a ``dask`` site's worker (a separate process), its epochs, metrics and checkpoints coming back to
the engine, its model registered and gated here, its usage charged on the site with the CPU read there. A run
that asks for GPUs no site has is refused naming the field; a site killed mid-run is found down, the run
placed again without it and resumed here from the last checkpoint that reached the engine. A run nobody
pinned trains on the engine's own site."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from helpers import RIVER_REACH, Engine, free_port, need_sandbox, stop_process
from ml_fixtures import gauge_records, need_torch
from twinengine.client import Client
from twinengine.errors import ValidationFailed

pytestmark = pytest.mark.sandbox

MODEL = "runoff_correction"
NEVER_EARLY = {"early_stopping": {"patience": 10_000}}


@dataclass
class Cluster:
    address: str
    processes: list[subprocess.Popen[bytes]]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A Dask scheduler and one worker, each a process of its own (so a test can kill them)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--dashboard-address", ":0", "--no-show"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                               "--nthreads", "2", "--no-dashboard", "--no-nanny"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        from distributed import Client as DaskClient

        deadline = time.monotonic() + 60
        with DaskClient(address, timeout="30s", set_as_default=False) as observer:
            while len(observer.scheduler_info()["workers"]) < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
        yield Cluster(address, [scheduler, worker])
    finally:
        for process in (worker, scheduler):
            stop_process(process)


@pytest.fixture
def reach(engine: Engine, cluster: Cluster) -> Client:
    need_torch()
    need_sandbox()
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    engine.as_role("pat", "provider").compute.add_site("cluster", "dask", address=cluster.address, cores=2,
                                                       memory_bytes=2**31)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    client.streams.append("reach", "gauges", gauge_records(96))
    return client


def _worker_started_on(cluster: Cluster) -> bool:
    """Whether a sandboxed worker (``twinengine.workers._child``) runs under the Dask worker's process."""
    import psutil

    dask_worker = psutil.Process(cluster.processes[1].pid)
    return any("twinengine.workers._child" in " ".join(child.cmdline())
               for child in dask_worker.children(recursive=True) if child.is_running())


def test_a_training_run_on_a_dask_site_trains_there_and_registers_here(engine: Engine, reach: Client,
                                                                      cluster: Cluster) -> None:
    seen: list[bool] = []
    started = reach.ml.train("reach", MODEL, config={"epochs": 6, "checkpoint_every": 1}, site="cluster")
    assert started.site == "cluster" and "pinned to cluster" in started.placement["reasons"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        run = reach.ml.run("reach", started.id)
        if run.status == "running" and run.epoch >= 1 and not seen:
            seen.append(_worker_started_on(cluster))  # its worker is on the site while it trains
        if run.status in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.1)
    assert run.status == "succeeded", run.error
    assert seen == [True]
    assert run.model_version == "1" and [h["epoch"] for h in run.history] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert reach.ml.predict("reach", MODEL, {"parameters": {}, "records": gauge_records(6)})["version"] == "1"
    [record] = [r for r in reach.compute.usage_records().items if r.run_id == started.id]
    assert record.site == "cluster" and record.kind == "training" and record.core_seconds > 0


def test_unasked_it_trains_here_and_gpus_no_site_has_are_refused(engine: Engine, reach: Client) -> None:
    with pytest.raises(ValidationFailed) as refused:
        reach.ml.train("reach", MODEL, gpus=2)
    assert "no site can take the run" in refused.value.message and "GPUs" in refused.value.message
    assert reach.ml.runs("reach").total == 0
    # with an idle Dask site beside it, a run nobody pinned trains on the engine's own site: the site must reach
    # the app's code through a shared file system, so work goes there only when asked (as calibrations do)
    local = reach.ml.train("reach", MODEL, config={"epochs": 1})
    assert local.site is None and local.placement is not None
    assert local.placement["reasons"][0].startswith("trains on the engine's own site")
    assert reach.ml.wait("reach", local.id, timeout=300).status == "succeeded"


def test_a_site_lost_mid_run_is_left_and_the_run_resumes_here_from_its_checkpoint(
        engine: Engine, reach: Client, cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from twinengine.ml import engine as ml_engine

    seen: list[int] = []  # every epoch the engine hears of, from either site, in order
    record = ml_engine._RunProgress.epoch

    def spy(self: object, epoch: int, epochs: int, metrics: dict[str, float]) -> bool:
        seen.append(epoch)
        return record(self, epoch, epochs, metrics)  # type: ignore[arg-type]

    monkeypatch.setattr(ml_engine._RunProgress, "epoch", spy)
    started = reach.ml.train("reach", MODEL, config={"epochs": 60, "checkpoint_every": 1, **NEVER_EARLY},
                             site="cluster")
    checkpoint = engine.runtime.settings.data_dir / "ml" / "checkpoints" / started.id / "checkpoint.tar"
    deadline = time.monotonic() + 300
    while reach.ml.run("reach", started.id).epoch < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert checkpoint.is_file()  # checkpoints reach the engine from the site
    reached = reach.ml.run("reach", started.id).epoch
    for process in cluster.processes:  # the site dies: scheduler and worker at once
        os.killpg(process.pid, signal.SIGKILL)
    done = reach.ml.wait("reach", started.id, timeout=300)
    assert done.status == "succeeded", done.error
    assert done.site is None and done.placement is not None  # the engine's own site now
    assert done.placement["lost"] == ["cluster"]
    assert any(r.startswith("site cluster was lost mid-run") for r in done.placement["reasons"])
    assert [int(h["epoch"]) for h in done.history] == list(range(1, 61))
    # resumed from its checkpoint, not started over: epoch 1 once, each later one at most twice (the one the kill
    # cut short runs again)
    assert seen.count(1) == 1 and sorted(set(seen)) == list(range(1, 61)) and len(seen) <= 61, seen
    assert reached >= 3
    records = sorted((r.status, r.site) for r in reach.compute.usage_records().items if r.run_id == started.id)
    assert records == [("lost", "cluster"), ("succeeded", "local")]
    status = {s.name: s.status for s in engine.as_role("pat", "provider").compute.sites().items}
    assert status["cluster"] == "down"
