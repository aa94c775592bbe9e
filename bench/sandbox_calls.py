"""The cost of running app and user code in sandboxed workers, measured beside the same work in-process.

1. A function on arrival (river-reach's ``gauge_to_state``, one call per record, reading the twin's state) on
   batches of 1, 10, 100 and 256 records (256 is the most one slice sends), the state sent with the calls as
   the function worker sends it to a function that read it before (``TWIN_BENCH_STATE_AHEAD=0``: asked for
   mid-batch, as on a function's first batch): in-process (the function called with a context, as
   the engine did before workers) vs a warm worker in bubblewrap vs a warm worker without a sandbox, the
   worker's answer read and checked as the engine does, and beside them what a worker's transport costs
   alone in one process (the calls pickled, each call's effects encoded and the answer checked; no pipe, no
   function call: its effects are those it made in-process); each in a loop of its own, or with ``--interleaved``
   in turn, round after round (they see the same load, and each the caches the others left). Per batch: wall
   milliseconds (median), the milliseconds a worker adds, and the ratio; and the CPU milliseconds of both
   processes (mean; the worker's from /proc), which a busy machine disturbs less than the wall time (a pipe
   round trip waits for the other process to get a CPU).
2. ``run_udf`` on a small array: a fresh sandbox per call vs calling the same function in-process.
3. App environments: creating one (resolve the lock, install a local wheel) cold vs finding it warm
   (another app version with the same lock).

Usage: python bench/sandbox_calls.py [--rounds 200] [--functions-only] [--interleaved]
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from twinengine.app import FunctionContext
from twinengine.catalog.manifest import Manifest
from twinengine.config import Settings
from twinengine.twins.schemas import PropertyValue, TwinState
from twinengine.workers.effects import EffectsWriter, read_effects
from twinengine.workers.envs import Environments
from twinengine.workers.protocol import PART_CALLS, pickled, unpickled
from twinengine.workers.sandbox import Sandbox, bwrap_works
from twinengine.workers.service import Workers

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "examples" / "apps" / "river-reach"
PARAMETERS = {"station": "RR-01", "area_km2": 95.0}
T0 = datetime(2026, 3, 1, tzinfo=UTC)
AHEAD = os.environ.get("TWIN_BENCH_STATE_AHEAD", "1") != "0"  # 0: the worker asks for the state (before)


def records(n: int) -> list[dict[str, Any]]:
    return [{"time": T0 + timedelta(minutes=15 * i), "station": "RR-01", "rain": 1.0 + i % 5, "level": 1.2 + i / 1e4}
            for i in range(n)]


def state() -> TwinState:
    now = T0
    return TwinState(twin_id="t", revision=1, at=None, reported={}, delta={},
                     desired={"alert_threshold": PropertyValue(value=1.8, unit="m", timestamp=now, revision=1)})


def median_ms(work: Callable[[], Any], rounds: int) -> float:
    work()  # warm
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def in_process(batch: list[dict[str, Any]]) -> Callable[[], Any]:
    sys.path.insert(0, str(APP))
    function = importlib.import_module("river_reach.functions").gauge_to_state
    snapshot = state()

    def run() -> Any:
        ctx = FunctionContext(twin_id="t", twin_name="reach", function="gauge_to_state", parameters=PARAMETERS,
                              read_state=lambda: snapshot)
        for record in batch:
            function(ctx, [record])
            ctx.applied += ctx.updates
            ctx.updates = []
        return ctx.applied

    return run


def transport(batch: list[dict[str, Any]]) -> Callable[[], Any]:
    """What a worker adds besides the pipe and the second process, in this one: the calls pickled and
    unpickled, each call's effects packed as it returns, the parts read and checked by the engine (one after
    the other here; with two processes the engine reads a part while the worker runs the next calls). The
    function is not called (its effects are those it made in-process); no sandbox design that keeps app
    code out of the engine's interpreter and checks what comes back does less."""
    sys.path.insert(0, str(APP))
    function = importlib.import_module("river_reach.functions").gauge_to_state
    snapshot = state()
    made = FunctionContext(twin_id="t", twin_name="reach", function="gauge_to_state", parameters=PARAMETERS,
                           read_state=lambda: snapshot)
    effects = []
    for record in batch:
        function(made, [record])
        effects.append(made.updates)
        made.applied += made.updates
        made.updates = []
    calls = [[r] for r in batch]

    def run() -> Any:
        unpickled(pickled(calls))
        writer = EffectsWriter()
        ctx = FunctionContext(twin_id="t", twin_name="reach", function="gauge_to_state", parameters=PARAMETERS)
        results = []
        for updates in effects:
            ctx.updates = updates
            writer.add(ctx, 0, 0, 0)
            if len(writer.rows) == PART_CALLS:  # in parts, as the worker sends them
                document, count, tagged = writer.take()
                results += read_effects(document, count, tagged=tagged)
        document, count, tagged = writer.take()
        return results + read_effects(document, count, tagged=tagged)

    return run


class Timed:
    """A batch to time: the work, and the worker process that runs it (None: in-process)."""

    def __init__(self, work: Callable[[], Any], pid: Callable[[], int] | None = None) -> None:
        self.work, self.pid = work, pid


def in_worker(workers: Workers, batch: list[dict[str, Any]], key: str) -> Timed:
    app = workers.for_app(key, label="river-reach", code=APP, env=None)
    snapshot = state()
    header = {"entrypoint": "river_reach.functions:gauge_to_state", "model": None, "seconds": 10.0,
              "twin": {"id": "t", "name": "reach", "function": "gauge_to_state", "parameters": PARAMETERS}}

    def run() -> Any:  # the state goes with the calls, as the function worker sends it once a function read it
        results, failed = app.functions(header, [[r] for r in batch], ask=lambda _q: snapshot, prefer="bench",
                                        state=(lambda: snapshot) if AHEAD else None)
        assert failed is None and len(results) == len(batch), failed
        return results

    def pid() -> int:
        with app.lease("bench") as worker:
            return worker.process.pid

    return Timed(run, pid)


def tree_cpu_ms(root: int) -> float:
    """CPU time (ms) of process ``root`` and its descendants (bwrap and the sandboxed Python under it), from
    the scheduler's per-task counters."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(task.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total / 1e6


def paired(timed: list[Timed], rounds: int, interleaved: bool) -> list[tuple[float, float]]:
    """Each batch's median wall ms and mean CPU ms (this thread's, plus its worker's): each timed in a loop
    of its own (warm caches, as for a consumer that runs batch after batch), or all in turn round after round
    (each sees the same load, and caches the others left)."""
    for each in timed:
        each.work()  # warm
    pids = [each.pid() if each.pid else None for each in timed]
    walls: list[list[float]] = [[] for _ in timed]
    cpus = [0.0] * len(timed)
    before = [tree_cpu_ms(pid) if pid else 0.0 for pid in pids]
    order = [i for _ in range(rounds) for i in range(len(timed))] if interleaved else \
        [i for i in range(len(timed)) for _ in range(rounds)]
    for i in order:
        cpu = time.thread_time()
        start = time.perf_counter()
        timed[i].work()
        walls[i].append((time.perf_counter() - start) * 1000)
        cpus[i] += (time.thread_time() - cpu) * 1000
    workers = [(tree_cpu_ms(pid) - b) if pid else 0.0 for pid, b in zip(pids, before, strict=True)]
    return [(statistics.median(wall), (cpu + worker) / rounds)
            for wall, cpu, worker in zip(walls, cpus, workers, strict=True)]


def functions_table(rounds: int, root: Path, interleaved: bool) -> list[tuple[str, ...]]:
    modes = [("bwrap", "warm worker, bubblewrap")] if bwrap_works() is None else []
    modes.append(("none", "warm worker, no sandbox"))
    workers = {mode: Workers(sandbox=Sandbox(mode, hidden=[]), scratch_root=root, timeout=60, memory_bytes=8 << 30)
               for mode, _label in modes}
    rows = []
    try:
        for size in (1, 10, 100, 256):
            batch = records(size)
            (base, base_cpu), (floor, floor_cpu), *costs = paired(
                [Timed(in_process(batch)), Timed(transport(batch)),
                 *(in_worker(workers[mode], batch, f"{mode}-{size}") for mode, _label in modes)], rounds, interleaved)
            rows.append((f"{size:>4} records", "transport alone, 1 process", f"{base:.3f}", f"{base + floor:.3f}",
                         f"{floor:+.3f}", f"{(base + floor) / base:.1f}x", f"{base_cpu:.3f}",
                         f"{base_cpu + floor_cpu:.3f}", f"{floor_cpu:+.3f}"))
            for (_mode, label), (cost, cpu) in zip(modes, costs, strict=True):
                rows.append((f"{size:>4} records", label, f"{base:.3f}", f"{cost:.3f}", f"{cost - base:+.3f}",
                             f"{cost / base:.1f}x", f"{base_cpu:.3f}", f"{cpu:.3f}", f"{cpu - base_cpu:+.3f}"))
    finally:
        for each in workers.values():
            each.close()
    return rows


def udf_table(rounds: int, root: Path) -> list[tuple[str, ...]]:
    code = "def udf(data, context):\n    return data * context['k']\n"
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    data = np.arange(1000.0)
    base = median_ms(lambda: namespace["udf"](data, {"k": 2}), rounds)
    workers = Workers.from_settings(Settings(data_dir=root / "udf-data"))
    try:
        cost = median_ms(lambda: workers.run_udf(data, code, {"k": 2}, timeout=60, memory_bytes=2 << 30),
                         max(3, rounds // 20))
    finally:
        workers.close()
    where = "bubblewrap" if bwrap_works() is None else "no sandbox"
    return [("run_udf, 1000 values", f"fresh worker ({where})", f"{base:.3f}", f"{cost:.1f}",
             f"{cost - base:+.1f}", f"{cost / base:.0f}x")]


def env_table(root: Path) -> list[tuple[str, ...]]:
    """Building an environment cold, then finding it, with each installer (pip is the baseline)."""
    sys.path.insert(0, str(REPO / "tests"))
    from integration.test_workers_envs import wheel  # the test's hand-built wheel: no network needed
    from twinengine.workers.envs import find_uv

    wheels = root / "wheels"
    wheel(wheels, "benchlib", "1.0")
    manifest = Manifest.model_validate({"manifest_version": 1, "name": "bench-env", "version": "1.0.0",
                                        "title": "Environment bench", "domain": "testing",
                                        "authors": [{"name": "bench"}], "license": "MIT", "package": "bench_env",
                                        "requires": ["benchlib==1.0"]})
    rows: list[tuple[str, ...]] = []
    colds: dict[str, float] = {}
    for installer in ("pip", "uv") if find_uv() else ("pip",):
        envs = Environments(root / f"envs-{installer}", index_url="none", find_links=str(wheels),
                            installer=installer)
        start = time.perf_counter()
        envs.for_app(manifest, "a" * 64)
        cold = colds[installer] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        envs.for_app(manifest, "a" * 64)  # the same app version again
        warm_same = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        envs.for_app(manifest, "b" * 64)  # another version with the same requirements: its lock and environment
        warm_other = (time.perf_counter() - start) * 1000
        assert envs.builds == 1
        against = "" if installer == "pip" else f"{cold / colds['pip']:.2f}x pip's cold build"
        rows += [("environment, 1 wheel", f"cold: resolve (pip) + install ({installer})", f"{cold:.0f}", "", "",
                  against),
                 ("", f"warm: same app version ({installer})", f"{warm_same:.2f}", "", "",
                  f"{cold / warm_same:.0f}x faster"),
                 ("", f"warm: new version, same requires ({installer})", f"{warm_other:.2f}", "", "",
                  f"{cold / warm_other:.0f}x faster")]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200, help="timed rounds per row (median reported)")
    parser.add_argument("--functions-only", action="store_true", help="only the table of functions on arrival")
    parser.add_argument("--interleaved", action="store_true",
                        help="time in-process and worker batches in turn (a loaded machine) instead of each in a loop")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="twin-bench-sandbox-"))
    load = os.getloadavg()
    try:
        rows = functions_table(args.rounds, root, args.interleaved)
        udf = [] if args.functions_only else udf_table(args.rounds, root)
        envs = [] if args.functions_only else env_table(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nload average {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end ({os.cpu_count()} CPUs)")
    how = "in turn with the workers, round after round" if args.interleaved else "just before the workers"
    print(f"\nfunction on arrival (river-reach gauge_to_state), ms per batch, in-process baseline timed {how}\n")
    print(f"{'':<42}{'wall (median)':^40}{'CPU, both processes (mean)':^36}")
    print(f"{'batch':<14}{'path':<28}{'in-process':>12}{'worker':>10}{'added':>10}{'ratio':>8}"
          f"{'in-process':>12}{'worker':>12}{'added':>12}")
    for row in rows:
        print(f"{row[0]:<14}{row[1]:<28}{row[2]:>12}{row[3]:>10}{row[4]:>10}{row[5]:>8}"
              f"{row[6]:>12}{row[7]:>12}{row[8]:>12}")
    if udf:
        print("\nrun_udf, median ms per call\n")
        print(f"{'call':<24}{'path':<30}{'in-process':>12}{'sandboxed':>12}{'added':>12}{'ratio':>10}")
        for row in udf:
            print(f"{row[0]:<24}{row[1]:<30}{row[2]:>12}{row[3]:>12}{row[4]:>12}{row[5]:>10}")
    if envs:
        print("\napp environments, ms\n")
        for row in envs:
            print(f"{row[0]:<24}{row[1]:<50}{row[2]:>10}  {row[5]}")


if __name__ == "__main__":
    main()
