"""A Dask site's scheduler (a real ``dask scheduler`` and worker, processes of their own) lost and back: an
attempt lost with its site keeps the core-seconds the site computed for it before it died (the task stream is
read while the work runs, not only at its end), and a scheduler that died while its site was idle and came back
on the same address takes runs again (its client, closed meanwhile, is made anew)."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from test_compute_faults import Cluster, _wait_for_worker

from helpers import Engine, free_port, stop_process
from streams_fixtures import eventually
from twinengine.compute import dask_client, dask_usage
from twinengine.compute.metering import start_meter
from twinengine.workflows.executors import ClusterLost, DistributedExecutor
from workflow_data import daily_graph, write_collection


@contextmanager
def scheduler_on(port: int, threads: int = 2) -> Iterator[Cluster]:
    """A scheduler on ``port`` and one worker (no nanny), stopped on leaving."""
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--no-dashboard"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads",
                               str(threads), "--no-dashboard", "--no-nanny"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found = Cluster(address, [scheduler, worker])
    try:
        _wait_for_worker(address)
        yield found
    finally:
        for process in (worker, scheduler):
            stop_process(process, timeout=10)


def test_an_attempt_lost_with_its_site_keeps_what_the_site_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Twelve tasks of 0.3 s on a worker of one thread (each holds the thread for that long: its core-seconds,
    as the task stream counts them); the site is killed (SIGKILL) once two have ended: the computation is
    lost, and its meter holds the core-seconds of the tasks that ended before (the lost attempt's usage record
    is that meter's), not nothing."""
    import dask

    monkeypatch.setattr(dask_usage, "POLL_SECONDS", 0.0)  # read at every look at the futures (each 0.5 s)
    with scheduler_on(free_port(), threads=1) as cluster:
        charged: list[float] = []
        original = dask_usage.charge

        def noted(seconds: float, source: str) -> None:
            charged.append(seconds)
            original(seconds, source)

        monkeypatch.setattr(dask_usage, "charge", noted)

        def kill_after_two(done: int, total: int) -> None:
            if done >= 2:  # the stream was read just before this look, the two tasks in it
                cluster.signal(signal.SIGKILL)

        executor = DistributedExecutor(cluster.address)
        try:
            meter = start_meter()
            # select.select(..., 0.3): a wait of 0.3 s the worker can import (the suite wraps time.sleep)
            tasks = [dask.delayed(select.select, pure=False)([], [], [], 0.3) for _ in range(12)]
            with pytest.raises(ClusterLost):
                executor.compute(*tasks, progress=kill_after_two)
            reading = meter.stop()
        finally:
            executor.close()
    assert reading.remote_core_seconds == pytest.approx(sum(charged))
    assert reading.remote_core_seconds >= 2 * 0.3  # the two tasks' compute intervals, at least
    assert reading.remote_core_seconds < 12 * 0.3 * 0.9, "charged as if the lost tasks had run"
    assert dask_usage.SOURCE in reading.sources


def test_a_site_that_died_idle_and_came_back_takes_runs_again(engine: Engine,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dask_client, "TIMEOUT", "3s")  # the client gives up reconnecting sooner than 20 s
    write_collection(engine.runtime.data_dir / "collections")
    provider, uma = engine.as_role("pat", "provider"), engine.as_role("uma", "user")
    port = free_port()
    with scheduler_on(port) as cluster:
        provider.compute.add_site("cluster", "dask", address=cluster.address, cores=2, memory_bytes=2**31)
        first = uma.workflows.submit(daily_graph("max", "add", 1), sync=True, options={"site": "cluster"})
        assert first.status == "finished", first.error
        cluster.signal(signal.SIGKILL)  # dies while the site is idle
        executor: Any = engine.runtime.workflows.services["sites"].get("cluster")
        eventually(lambda: executor.connection.status == "closed")  # its client gave up on the scheduler
    with scheduler_on(port) as back:  # on the same address
        assert provider.compute.heartbeat("cluster").status == "healthy"
        second = uma.workflows.submit(daily_graph("max", "add", 2), sync=True, options={"site": "cluster"})
        assert second.status == "finished", second.error
        assert back.address == cluster.address and executor.connection.made == 2
    records = sorted((r.run_id == first.id, r.status, r.site) for r in uma.compute.usage_records().items)
    assert records == [(False, "finished", "cluster"), (True, "finished", "cluster")]  # no lost attempt, no move
