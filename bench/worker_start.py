"""How much a sandboxed worker costs to start: started fresh (bubblewrap, a new interpreter, its imports) against
forked from the warm image of its kind (``workers/zygote.py``), side by side in one run, the two taking turns
round after round so they see the same load. Beside them the bare interpreter (``python -I -B -c pass``).

1. ready: from asking for a worker to its first answer (UDF kind); the image's own start is printed apart.
2. river-reach: from asking for a worker of the app to its first function call answered (``gauge_to_state``
   on one record, the twin's state sent with it): p50 and p99 (goal for a forked one: <= 50 ms p50, <= 150 ms
   p99).
3. training: from asking for a training run's worker to its PyTorch task loaded (river-reach's
   ``runoff_correction``: torch and the model imported) (goal for a forked one: <= 0.3 s).
4. memory: what each of ``--idle`` idle workers holds (the proportional set size of its sandbox's processes,
   shared pages split among their sharers, and its private pages), fresh against forked (copy-on-write
   shared with the image), and the image itself.
5. end to end through the REST API of an in-process engine (``warm_workers`` 0, so each batch starts a
   worker; ``warm_images`` 0 against 8): a new twin's first function call (its record appended, until its state
   shows it) and a training run's start (requested, until its first epoch is reported).

Also listed: what a fresh worker imports of the engine before it answers.

Usage: python bench/worker_start.py [--runs 30] [--train-runs 5] [--idle 6] [--api-runs 5] [--no-api]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from twinengine.catalog.manifest import Manifest
from twinengine.workers.apps import preloads
from twinengine.workers.cpu import tree_pids
from twinengine.workers.images import UDF
from twinengine.workers.memory_watch import tree_memory_bytes
from twinengine.workers.process import Worker
from twinengine.workers.protocol import pickled
from twinengine.workers.sandbox import Sandbox, bwrap_works
from twinengine.workers.service import Workers

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "examples" / "apps" / "river-reach"
MANIFEST = Manifest.model_validate(yaml.safe_load((APP / "twinapp.yaml").read_text()))
KINDS = ("fresh", "forked")
T0 = datetime(2026, 3, 1, tzinfo=UTC)
CALL = {"op": "functions", "parts": 1, "entrypoint": "river_reach.functions:gauge_to_state", "model": None,
        "seconds": 10.0, "twin": {"id": "t", "name": "reach", "function": "gauge_to_state",
                                  "parameters": {"station": "RR-01"}}}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare(runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``python -I -B -c pass``."""
    walls, cpus = [], []
    for _ in range(runs):
        started, cpu = time.perf_counter(), _children_cpu()
        subprocess.run([sys.executable, "-I", "-B", "-c", "pass"], check=True)
        walls.append(time.perf_counter() - started)
        cpus.append(_children_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def pick(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def sides(root: Path) -> dict[str, Workers]:
    """Workers of each kind: every worker fresh, or forked from its kind's image from the first one on."""
    mode = "bwrap" if bwrap_works() is None else "none"
    made = {}
    for kind in KINDS:
        (root / kind).mkdir()
        made[kind] = Workers(sandbox=Sandbox(mode, hidden=[]), scratch_root=root / kind, timeout=600,
                             memory_bytes=8 << 30, idle=0, images=0 if kind == "fresh" else 8, images_after=0)
    return made


def in_turn(runs: int, work: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each kind's ``work`` (returning seconds) ``runs`` times, the kinds taking turns."""
    times: dict[str, list[float]] = {k: [] for k in work}
    for i in range(runs):
        for kind in (KINDS if i % 2 == 0 else KINDS[::-1]):
            times[kind].append(work[kind]())
    return times


def ready(workers: Workers) -> float:
    started = time.perf_counter()
    worker = workers.start(label="bench", preload=UDF)
    took = time.perf_counter() - started
    worker.close()
    return took


def river_reach(workers: Workers) -> float:
    record = [[{"time": T0, "station": "RR-01", "rain": 1.0, "level": 1.2}]]
    started = time.perf_counter()
    worker = workers.start(label="river-reach", code=APP, env=None, preload=preloads(MANIFEST)["calls"])
    reply, _ = worker.request(CALL, [pickled(record), pickled(None)], timeout=120, note=lambda _r, _b: None)
    took = time.perf_counter() - started
    assert reply.get("failed") is None and reply.get("calls") == 1, reply
    worker.close()
    return took


def training(workers: Workers) -> float:
    from twinengine.app import TrainingData
    from twinengine.ml.remote import RemoteTask

    started = time.perf_counter()
    app = workers.for_app("river-reach", label="river-reach", code=APP, env=None, preloads=preloads(MANIFEST))
    with app.dedicated(label="bench training") as worker:
        RemoteTask(worker, timeout=600).load("river_reach.model:runoff_correction", "pytorch", {},
                                             TrainingData(parameters={"station": "RR-01"}))
        return time.perf_counter() - started


def held(root: int) -> tuple[int, int]:
    """(proportional set size, private bytes) of the processes of the tree under ``root``."""
    private = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith(("Private_Clean:", "Private_Dirty:")):
                        private += int(line.split()[1]) * 1024
        except OSError:
            continue
    return tree_memory_bytes(root), private


def _resident(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))


def idle_memory(workers: Workers, count: int) -> tuple[list[tuple[int, int]], int | None]:
    """What each of ``count`` idle river-reach workers holds (after one function call each), and what the
    image's process has resident (shared with them)."""
    record = [[{"time": T0, "station": "RR-01", "rain": 1.0, "level": 1.2}]]
    started: list[Worker] = []
    try:
        for _ in range(count):
            worker = workers.start(label="river-reach", code=APP, env=None, preload=preloads(MANIFEST)["calls"])
            worker.request(CALL, [pickled(record), pickled(None)], timeout=120, note=lambda _r, _b: None)
            started.append(worker)
        time.sleep(1.0)
        each = [held(w.process.pid) for w in started]
        image = started[0].image
        return each, None if image is None else _resident(image.host_pid)
    finally:
        for worker in started:
            worker.close()


def api(runs: int) -> dict[str, dict[str, list[float]]]:
    """A new twin's first function call and a training run's start through the REST API, per kind."""
    from twinengine.api import create_app
    from twinengine.client import Client
    from twinengine.config import Settings
    from twinengine.demo.server import InProcessServer
    from twinengine.runtime import Runtime

    root = Path(tempfile.mkdtemp(prefix="bench-worker-api-"))
    engines: dict[str, tuple[Runtime, InProcessServer, Client]] = {}
    times: dict[str, dict[str, list[float]]] = {k: {"first call": [], "training start": []} for k in KINDS}
    try:
        for kind in KINDS:
            settings = Settings(data_dir=root / kind, warm_workers=0, warm_images=0 if kind == "fresh" else 8)
            runtime = Runtime.from_settings(settings)
            token = runtime.start()
            assert token is not None
            server = InProcessServer(create_app(runtime=runtime))
            server.__enter__()
            client = Client(server.url, token)
            client.publish_app(APP)
            engines[kind] = (runtime, server, client)
            first_call(client, f"{kind}-warm")  # the image of function calls warm (and the routes built)
            client.streams.append(f"{kind}-warm", "gauges", gauges(96))
            for _ in range(2):  # the image of its models is started for the second training worker
                training_start(client, f"{kind}-warm")
        for i in range(runs):
            for kind in (KINDS if i % 2 == 0 else KINDS[::-1]):
                client = engines[kind][2]
                times[kind]["first call"].append(first_call(client, f"{kind}-{i}"))
                times[kind]["training start"].append(training_start(client, f"{kind}-warm"))
    finally:
        for runtime, server, client in engines.values():
            client.close()
            server.__exit__(None, None, None)
            runtime.close()
        shutil.rmtree(root, ignore_errors=True)
    return times


def gauges(n: int) -> list[dict[str, Any]]:
    return [{"time": (T0 + timedelta(minutes=15 * i)).isoformat(), "station": "RR-01", "rain": float(i % 7),
             "level": 1.0 + 0.01 * (i % 50)} for i in range(n)]


def first_call(client: Any, twin: str) -> float:
    """A new twin, one record appended: seconds until its state shows what the function made of it."""
    client.create_twin("river-reach@0.1.0", twin, {"station": "RR-01"})
    started = time.perf_counter()
    client.streams.append(twin, "gauges", gauges(1))
    while "level" not in client.get_state(twin).reported:
        if time.perf_counter() - started > 300:
            raise RuntimeError(f"{twin}'s first record never reached its state")
        time.sleep(0.01)
    return time.perf_counter() - started


def training_start(client: Any, twin: str) -> float:
    """A training run requested: seconds until its first epoch is reported (then it is canceled)."""
    started = time.perf_counter()
    run = client.ml.train(twin, "runoff_correction", config={"epochs": 50})
    while True:
        read = client.ml.run(twin, run.id)
        if read.epoch >= 1:
            took = time.perf_counter() - started
            break
        if read.status in ("failed", "canceled", "succeeded"):
            raise RuntimeError(f"training run {run.id} ended as {read.status} before its first epoch: {read.error}")
        if time.perf_counter() - started > 600:
            raise RuntimeError(f"training run {run.id} reported no epoch")
        time.sleep(0.02)
    client.ml.stop(twin, run.id)
    client.ml.wait(twin, run.id, timeout=300)
    return took


def imported() -> list[str]:
    """The engine's modules a fresh worker process has imported once it can serve a function call."""
    probe = ("import sys, twinengine.workers._child, twinengine.app._context, twinengine.workers.effects\n"
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('twinengine'))))")
    done = subprocess.run([sys.executable, "-I", "-B", "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


def line(name: str, times: dict[str, list[float]], goal: str = "") -> None:
    fresh, forked = times["fresh"], times["forked"]
    print(f"{name:<34} fresh p50 {statistics.median(fresh) * 1000:8.1f} ms p99 {pick(fresh, 0.99) * 1000:8.1f} ms"
          f" | forked p50 {statistics.median(forked) * 1000:7.1f} ms p99 {pick(forked, 0.99) * 1000:7.1f} ms"
          f" | fresh/forked x{statistics.median(fresh) / statistics.median(forked):.1f}{goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--train-runs", type=int, default=5)
    parser.add_argument("--idle", type=int, default=6)
    parser.add_argument("--api-runs", type=int, default=5)
    parser.add_argument("--no-api", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    base_wall, base_cpu = bare(args.runs)
    print(f"bare interpreter: {base_wall * 1000:.1f} ms wall, {base_cpu * 1000:.1f} ms CPU")
    root = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    workers = sides(root)
    try:
        mode = workers["fresh"].sandbox.effective()
        started = time.perf_counter()
        workers["forked"].start(label="bench", preload=UDF).close()  # the UDFs' image
        print(f"sandbox: {mode}; the UDFs' image started (numpy, xarray imported) in "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")
        line("ready (start to first answer)", in_turn(args.runs, {k: lambda k=k: ready(workers[k]) for k in KINDS}))
        started = time.perf_counter()
        river_reach(workers["forked"])
        print(f"river-reach's image started in {(time.perf_counter() - started) * 1000:.0f} ms")
        line("river-reach: first call answered",
             in_turn(args.runs, {k: lambda k=k: river_reach(workers[k]) for k in KINDS}),
             " (goal forked <= 50 ms p50, <= 150 ms p99)")
        if _has_torch():
            started = time.perf_counter()
            training(workers["forked"])
            print(f"river-reach's image of its models started (torch imported) in "
                  f"{(time.perf_counter() - started) * 1000:.0f} ms")
            line("training: PyTorch task loaded",
                 in_turn(args.train_runs, {k: lambda k=k: training(workers[k]) for k in KINDS}),
                 " (goal forked <= 300 ms)")
        else:
            print("training: skipped (torch is not installed: the ml extra)")
        for kind in KINDS:
            each, image = idle_memory(workers[kind], args.idle)
            pss = statistics.mean(p for p, _ in each) / (1 << 20)
            private = statistics.mean(u for _, u in each) / (1 << 20)
            extra = "" if image is None else f"; the image's own process {image / (1 << 20):.1f} MiB resident"
            print(f"memory per idle {kind:<6} worker ({args.idle} idle river-reach workers): {pss:6.1f} MiB "
                  f"proportional, {private:6.1f} MiB private{extra}")
    finally:
        for side in workers.values():
            side.close()
        shutil.rmtree(root, ignore_errors=True)
    if not args.no_api and _has_torch():
        times = api(args.api_runs)
        for what in ("first call", "training start"):
            line(f"API: {what}", {k: times[k][what] for k in KINDS})
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    modules = imported()
    print(f"engine modules a fresh worker imports to serve a call: {len(modules)}: {' '.join(modules)}")


def _has_torch() -> bool:
    from importlib.util import find_spec

    return find_spec("torch") is not None


if __name__ == "__main__":
    main()
