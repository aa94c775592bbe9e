"""How much a sandboxed worker costs to start: from spawning it (bubblewrap where it works) to its first
answer, wall time and the CPU of its processes (read from /proc, as usage accounting reads it), beside the
bare interpreter starting and stopping (``python -I -B -c pass``) measured in the same run.

Every app process call, function batch, UDF and training run is served by such a worker; a whole run of the
test suite starts about 1,800 of them. What a worker imports before it answers is listed too (the
engine's own modules only), since that is most of what it costs beyond the interpreter.

Usage: python bench/worker_start.py [--runs 10]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


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


def workers(runs: int) -> tuple[float, float, str]:
    """Median wall and CPU seconds of a worker started to its first answer; the sandbox it ran in."""
    from twinengine.workers.sandbox import Sandbox, bwrap_works
    from twinengine.workers.service import Workers

    mode = "bwrap" if bwrap_works() is None else "none"
    walls, cpus = [], []
    with tempfile.TemporaryDirectory(prefix="twin-bench-workers-") as folder:
        pool = Workers(sandbox=Sandbox(mode, hidden=[]), scratch_root=Path(folder), timeout=60,
                       memory_bytes=4 << 30)
        try:
            for _ in range(runs):
                started = time.perf_counter()
                worker = pool.start(label="bench")
                walls.append(time.perf_counter() - started)
                cpus.append(worker.cpu_seconds())
                worker.close()
        finally:
            pool.close()
    return statistics.median(walls), statistics.median(cpus), mode


def imported() -> list[str]:
    """The engine's modules a worker process has imported once it can serve a function call."""
    probe = ("import sys, twinengine.workers._child, twinengine.app._context, twinengine.workers.effects\n"
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('twinengine'))))")
    done = subprocess.run([sys.executable, "-I", "-B", "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    base_wall, base_cpu = bare(args.runs)
    wall, cpu, mode = workers(args.runs)
    print(f"bare interpreter:        {base_wall * 1000:7.1f} ms wall   {base_cpu * 1000:7.1f} ms CPU")
    print(f"worker ({mode:5}) answers: {wall * 1000:7.1f} ms wall   {cpu * 1000:7.1f} ms CPU   "
          f"(x{wall / base_wall:.1f} wall, x{cpu / max(base_cpu, 1e-9):.1f} CPU of the bare interpreter)")
    modules = imported()
    print(f"engine modules a worker imports to serve a call: {len(modules)}: {' '.join(modules)}")


if __name__ == "__main__":
    main()
