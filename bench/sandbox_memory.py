"""What a sandbox's process tree holds in memory, bounded three ways, measured side by side in one run.

1. A UDF whose three forked children each touch ``--child-mib`` MiB (4 MiB at a time) and hold it, under a
   memory limit of ``--limit-mib`` MiB (the defaults are the case of a UDF with 1.5 GiB per child under the
   default 2 GiB), run in bubblewrap: with the address-space limit per process only (the bound before: each
   child is within it, together they are not), with a memory cgroup of its own (the kernel's bound, where the
   host lets the engine make one), and with the engine's watch of the tree (the fallback). For each: how the
   call ended, the most the sandboxes held at one look (their processes' proportional set sizes summed, looked
   at every 10 ms from outside), that peak over the limit, and the wall seconds.
2. What bounding costs: ``run_udf`` of a one-line UDF in a fresh sandbox with and without the memory bound
   (cgroup made, entered, removed; the watch started and stopped), in turn, round after round; and one look of
   the watch at a sandbox (the cgroup's count of kills; the fallback's walk of the tree and its sizes).

Usage: python bench/sandbox_memory.py [--limit-mib 2048] [--child-mib 1536] [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from twinengine.workers import cgroups, memory_watch
from twinengine.workers.cpu import tree_pids
from twinengine.workers.process import Worker, WorkerCrashed
from twinengine.workers.sandbox import Layout, Sandbox

MiB = 1 << 20
FORKS = """
import os
import time


def udf(data, context):
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            held = [b"x" * (4 << 20) for _ in range(data // 4)]
            time.sleep(2)
            os._exit(0)
        children.append(pid)
    return [os.waitpid(pid, 0)[1] for pid in children]
"""


def sandboxes_bytes() -> int:
    """The proportional set sizes of every sandbox under this process (bwrap's trees), summed."""
    total = 0
    for pid in tree_pids(os.getpid()):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "bwrap":
                continue
            parent = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1]
            if Path(f"/proc/{parent}/comm").read_text().strip() == "bwrap":
                continue
        except OSError:
            continue
        total += memory_watch.tree_memory_bytes(pid)
    return total


@contextmanager
def peak_held() -> Iterator[Callable[[], int]]:
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], sandboxes_bytes())
            stop.wait(0.01)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak[0]
    finally:
        stop.set()
        thread.join()


@contextmanager
def bounded_by(how: str) -> Iterator[None]:
    """``cgroup``: as the host allows; ``watch``: no memory cgroup (the fallback); ``none``: as before."""
    kept = list(cgroups._roots())
    if how != "cgroup":
        cgroups._ROOTS[:] = [[r for r in kept if "memory" not in r.controllers]]
    try:
        yield
    finally:
        cgroups._ROOTS[:] = [kept]


def run_forks(limit: int, child_mib: int, how: str, scratch: Path) -> tuple[str, int, float]:
    with bounded_by(how):
        worker = Worker(Sandbox("bwrap", hidden=[]), Layout(scratch=Path(tempfile.mkdtemp(dir=scratch))),
                        memory_bytes=limit, label="run_udf", tree_bytes=0 if how == "none" else limit)
        started = time.perf_counter()
        try:
            from twinengine.workers.protocol import pickled

            with peak_held() as peak:
                try:
                    worker.request({"op": "udf"}, [pickled({"data": child_mib, "code": FORKS, "context": None})],
                                   timeout=120)
                    outcome = "finished"
                except WorkerCrashed as exc:
                    outcome = f"{type(exc).__name__}"
            return outcome, peak(), time.perf_counter() - started
        finally:
            worker.close()


def one_udf(limit: int, tree: int, scratch: Path) -> float:
    """A one-line UDF in a fresh sandbox, as ``Workers.run_udf`` runs it: started, greeted, called, stopped."""
    from twinengine.workers.protocol import pickled

    started = time.perf_counter()
    worker = Worker(Sandbox("bwrap", hidden=[]), Layout(scratch=Path(tempfile.mkdtemp(dir=scratch))),
                    memory_bytes=limit, label="run_udf", tree_bytes=tree)
    try:
        worker.request({"op": "hello"}, timeout=60)
        worker.request({"op": "udf"}, [pickled({"data": 1, "code": "def udf(data, context):\n    return data + 1\n",
                                                "context": None})], timeout=60)
    finally:
        worker.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit-mib", type=int, default=2048)
    parser.add_argument("--child-mib", type=int, default=1536)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    limit = args.limit_mib * MiB
    scratch = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    print(f"load average {os.getloadavg()[0]:.1f}; memory cgroup here: "
          f"{cgroups.available('memory') or 'none'}; pids cgroup: {cgroups.available() or 'none'}")
    print(f"\n3 children x {args.child_mib} MiB under {args.limit_mib} MiB (bubblewrap):")
    print(f"{'bound':<36}{'how it ended':<20}{'peak MiB':>10}{'over limit':>12}{'wall s':>9}")
    for how, label in (("none", "address space per process (before)"), ("cgroup", "memory cgroup"),
                       ("watch", "watch of the tree (fallback)")):
        if how == "cgroup" and cgroups.available("memory") is None:
            print(f"{label:<36}(no memory cgroup on this host)")
            continue
        outcome, peak, wall = run_forks(limit, args.child_mib, how, scratch)
        print(f"{label:<36}{outcome:<20}{peak / MiB:>10.0f}{peak / limit:>11.2f}x{wall:>9.2f}")

    print(f"\nrun_udf, a fresh sandbox per call, {args.rounds} rounds in turn (median):")
    times: dict[str, list[float]] = {"none": [], "cgroup": [], "watch": []}
    for _ in range(args.rounds):
        for how in times:
            with bounded_by(how):
                times[how].append(one_udf(limit, 0 if how == "none" else limit, scratch))
    base = statistics.median(times["none"])
    for how, spent in times.items():
        median = statistics.median(spent)
        print(f"  {how:<8} {median * 1000:8.1f} ms  ({median / base:.2f}x of no memory bound)")

    print("\none look of the watch at a sandbox, median of 200:")
    for how in ("cgroup", "watch"):
        if how == "cgroup" and cgroups.available("memory") is None:
            continue
        with bounded_by(how):
            worker = Worker(Sandbox("bwrap", hidden=[]), Layout(scratch=Path(tempfile.mkdtemp(dir=scratch))),
                            memory_bytes=limit, label="look", tree_bytes=limit)
            try:
                worker.request({"op": "hello"}, timeout=60)
                assert worker.memory is not None
                looks = []
                for _ in range(200):
                    started = time.perf_counter()
                    worker.memory.check()
                    looks.append(time.perf_counter() - started)
                print(f"  {how:<8} {statistics.median(looks) * 1e6:8.1f} µs")
            finally:
                worker.close()


if __name__ == "__main__":
    sys.exit(main())
