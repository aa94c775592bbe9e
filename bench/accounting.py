"""The engine's core-seconds for a run beside a reference measured independently in the same run.

For a Slurm site the reference would be ``sacct``'s TotalCPU of the worker jobs; ``sacct`` answers only with
a Slurm database daemon (slurmdbd), and this machine's Slurm (22.05, Debian) has none: the bench says so and
measures what it can. On a Dask cluster (the Slurm executor is Dask workers in Slurm jobs, so its figure comes
from the same task stream) the engine charges each run the compute intervals of its own tasks; the reference
is the CPU time each task measured itself (``time.thread_time``), and on the local site it is the process's
own ``getrusage`` around the run. Ratios near 1 mean the accounting matches; above 1 on a busy host, a task
held its worker thread longer than it had the CPU (core-seconds are held time, as in batch accounting).

Usage: python bench/accounting.py [--tasks 8] [--seconds 0.5] [--workers 2]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import time


def spin(seconds: float) -> float:
    """Keep one core busy for ``seconds`` of CPU; the CPU time this thread spent."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        sum(range(1000))
    return time.thread_time() - start


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def local(tasks: int, seconds: float) -> tuple[float, float]:
    """Engine's figure and the process's rusage for the tasks on the local (threaded) executor."""
    import dask

    from twinengine.compute.metering import start_meter
    from twinengine.workflows.executors import LocalExecutor

    executor = LocalExecutor(2)
    before = _cpu()
    meter = start_meter()
    executor.compute(*[dask.delayed(spin, pure=False)(seconds) for _ in range(tasks)])
    reading = meter.stop()
    return reading.core_seconds, _cpu() - before


def distributed(tasks: int, seconds: float, workers: int) -> tuple[float, float]:
    """Engine's figure (task stream) and the tasks' own CPU on a Dask cluster of ``workers`` processes."""
    import dask
    from distributed import LocalCluster

    from twinengine.compute.metering import start_meter
    from twinengine.workflows.executors import DistributedExecutor

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        executor = DistributedExecutor(cluster.scheduler_address)
        try:
            meter = start_meter()
            spent = executor.compute(*[dask.delayed(spin, pure=False)(seconds) for _ in range(tasks)])
            reading = meter.stop()
        finally:
            executor.close()
    return reading.remote_core_seconds, float(sum(spent))


def sacct_answers() -> str:
    sacct = shutil.which("sacct")
    if sacct is None:
        return "sacct is not installed"
    done = subprocess.run([sacct, "-n", "-X", "-P", "-o", "JobID"], capture_output=True, text=True, timeout=30)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return "sacct answers" if done.returncode == 0 else "sacct cannot answer: " + " | ".join(lines[-2:])[:300]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.5, help="CPU seconds each task spends")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"slurm: {sacct_answers()} (no slurmdbd: the Slurm reference is not measured here)")
    engine, reference = local(args.tasks, args.seconds)
    print(f"local site:  engine {engine:8.3f} core-s   process rusage {reference:8.3f} s   ratio "
          f"{engine / reference:.3f}")
    engine, reference = distributed(args.tasks, args.seconds, args.workers)
    print(f"dask site:   engine {engine:8.3f} core-s   tasks' own CPU {reference:8.3f} s   ratio "
          f"{engine / reference:.3f}")


if __name__ == "__main__":
    main()
