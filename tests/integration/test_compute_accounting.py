"""Usage matched against the executors' own records: on a Dask cluster, the core-seconds charged to a run
are the compute intervals of its own tasks in the scheduler's task stream (each task holds one worker
thread while it computes, so they are at least the CPU the tasks measured themselves), and another
computation on the same cluster at the same time is not charged to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from twinengine.compute.dask_usage import SOURCE, task_stream_core_seconds
from twinengine.compute.metering import Reading, start_meter
from twinengine.workflows.executors import DistributedExecutor


def spin(seconds: float) -> float:
    """Keep one core busy for ``seconds`` of CPU; return the CPU time this thread spent."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        sum(range(1000))
    return time.thread_time() - start


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as local:
        yield str(local.scheduler_address)


def _measured(executor: DistributedExecutor, name: str, seconds: list[float]) -> tuple[Reading, float]:
    import dask

    meter = start_meter()
    tasks = [dask.delayed(spin, pure=False)(s, dask_key_name=f"spin-{name}-{i}") for i, s in enumerate(seconds)]
    values = executor.compute(*tasks)
    return meter.stop(), float(sum(values))


def _own(records: list[dict[str, Any]], name: str) -> float:
    return task_stream_core_seconds([r for r in records if str(r["key"]).startswith(f"spin-{name}-")])


def test_concurrent_runs_are_charged_their_own_tasks_from_the_task_stream(cluster: str) -> None:
    from distributed import get_task_stream

    executor = DistributedExecutor(cluster)
    results: dict[str, tuple[Reading, float]] = {}

    def one(name: str, seconds: list[float]) -> None:
        results[name] = _measured(executor, name, seconds)

    try:
        with get_task_stream(client=executor.client) as stream:  # the scheduler's record, read independently
            threads = [threading.Thread(target=one, args=("small", [0.1])),
                       threading.Thread(target=one, args=("large", [0.3, 0.3, 0.2]))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        records = list(stream.data)
    finally:
        executor.close()
    assert {r["key"] for r in records} >= {"spin-small-0", "spin-large-0", "spin-large-1", "spin-large-2"}
    import dask

    # Runs on a cluster never set dask's process-wide scheduler: local computations beside them stay local.
    assert dask.config.get("scheduler", None) is None
    for name in ("small", "large"):
        reading, spent = results[name]
        assert SOURCE in reading.sources
        assert reading.remote_core_seconds == pytest.approx(_own(records, name), rel=1e-6), name
        assert reading.remote_core_seconds >= spent * 0.99, name  # a task's thread is held at least its CPU time
        assert reading.core_seconds >= reading.remote_core_seconds


def test_a_run_on_a_dask_cluster_records_the_task_stream_figure(cluster: str, tmp_path: Any) -> None:
    import dask
    from starlette.testclient import TestClient

    from helpers import admin_token
    from twinengine.api import create_app
    from twinengine.client import Client
    from twinengine.config import Settings
    from twinengine.runtime import Runtime
    from workflow_data import daily_graph, write_collection

    with dask.config.set(scheduler="threads"):  # not the cluster a client of the test before left as default
        write_collection(tmp_path / "data" / "collections")
    runtime = Runtime.from_settings(Settings(data_dir=tmp_path / "data", dask_address=cluster, warm_routes=False))
    try:
        with TestClient(create_app(runtime=runtime)) as http:
            client = Client("http://testserver", admin_token(runtime.settings), http=http)
            run = client.workflows.submit(daily_graph("max", "add", 1), sync=True)
            assert run.status == "finished", run.error
            (record,) = client.compute.usage_records().items
            sites = client.compute.sites().items
    finally:
        runtime.close()
    assert record.run_id == run.id and record.site == "local" and record.executor == "distributed"
    assert SOURCE in record.source and record.remote_core_seconds > 0
    assert record.core_seconds >= record.remote_core_seconds
    assert [(s.name, s.kind, s.address) for s in sites] == [("local", "dask", cluster)]


BUSY = '''
import time

from twinengine.workflows.apps import app_process


@app_process(summary="Keeps its worker busy for about a second of CPU", cacheable=False)
def busy(seconds: float) -> float:
    start = time.process_time()
    while time.process_time() - start < seconds:
        sum(range(1000))
    return seconds


@app_process(summary="Sleeps: wall time, no CPU", cacheable=False)
def idle(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
'''


def test_app_code_is_charged_what_its_sandboxed_worker_spent(engine: Any, tmp_path: Any) -> None:
    """The CPU app code takes in its worker (a process the engine's rusage never sees) is read from the
    kernel's figures for the worker's processes and charged to the run that called it; sleeping costs none."""
    from helpers import make_app
    from twinengine.compute.metering import WORKER_CPU

    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="busy-app",
                                                            files={"busy_app/procs.py": BUSY}))
    uma = engine.as_role("uma", "user")

    def graph(process: str) -> dict[str, Any]:
        return {"process_graph": {"p": {"process_id": process, "namespace": "busy-app",
                                        "arguments": {"seconds": 1.0}, "result": True}}}

    busy, idle = (uma.workflows.submit(graph(p), sync=True) for p in ("busy", "idle"))
    assert busy.status == idle.status == "finished", (busy.error, idle.error)
    records = {r.run_id: r for r in uma.compute.usage_records().items}
    assert WORKER_CPU in records[busy.id].source and records[busy.id].remote_core_seconds >= 0.9
    assert records[busy.id].core_seconds >= records[busy.id].remote_core_seconds
    assert records[idle.id].remote_core_seconds < 0.5 and records[idle.id].wall_seconds >= 1.0


HOLDS_GPU = '''
import pathlib
import time

from twinengine.workflows.apps import app_process


@app_process(summary="Stands for code that puts a model on a GPU and keeps it there", cacheable=False)
def on_gpu(seconds: float) -> float:
    pathlib.Path("holds-gpu").write_text("")  # in its scratch folder, its working folder
    time.sleep(seconds)
    return seconds
'''


class MarkedHolders:
    """NVML as the driver would answer on a machine with one GPU, held by each process whose working folder
    holds ``holds-gpu`` (seen from outside its sandbox through ``/proc``). A stand-in: the suite's machines have
    no GPU; tests/integration/test_gpu_usage.py runs the same path on a real one."""

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        import os
        from types import SimpleNamespace

        return [SimpleNamespace(pid=int(pid)) for pid in os.listdir("/proc")
                if pid.isdigit() and os.path.exists(f"/proc/{pid}/cwd/holds-gpu")]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: int) -> list[Any]:
        return []


def test_a_run_is_charged_the_gpu_seconds_its_app_code_held(engine: Any, tmp_path: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A call whose worker holds a GPU when it ends is charged its wall seconds on that GPU (``GpuCall``): the
    run's usage record has them, from the source ``nvml``, and the summaries count them as GPU-hours; a run
    whose app code holds no GPU is charged none."""
    from helpers import make_app
    from twinengine.compute.metering import WORKER_GPU
    from twinengine.workers import gpu

    monkeypatch.setattr(gpu, "_FOUND", [gpu.GpuHolders(MarkedHolders())])
    ada = engine.as_role("ada", "developer")
    ada.publish_app(make_app(tmp_path / "g", name="gpu-app", files={"gpu_app/procs.py": HOLDS_GPU}))
    ada.publish_app(make_app(tmp_path / "b", name="busy-app", files={"busy_app/procs.py": BUSY}))
    uma = engine.as_role("uma", "user")
    held = uma.workflows.submit({"process_graph": {"p": {"process_id": "on_gpu", "namespace": "gpu-app",
                                                         "arguments": {"seconds": 1.0}, "result": True}}}, sync=True)
    plain = uma.workflows.submit({"process_graph": {"p": {"process_id": "idle", "namespace": "busy-app",
                                                          "arguments": {"seconds": 0.2}, "result": True}}}, sync=True)
    assert held.status == plain.status == "finished", (held.error, plain.error)
    records = {r.run_id: r for r in uma.compute.usage_records().items}
    gpu_run = records[held.id]
    assert WORKER_GPU in gpu_run.source and 1.0 <= gpu_run.gpu_seconds <= gpu_run.wall_seconds
    assert records[plain.id].gpu_seconds == 0.0 and WORKER_GPU not in records[plain.id].source
    [mine] = uma.compute.usage(by="identity").groups
    assert mine.gpu_seconds == pytest.approx(records[held.id].gpu_seconds)
    assert mine.gpu_hours == pytest.approx(mine.gpu_seconds / 3600, abs=1e-9)
