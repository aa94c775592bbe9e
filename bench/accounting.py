"""The engine's core-seconds for a run beside a reference measured independently in the same run.

On the local site the reference is the process's own ``getrusage`` around the run. On a Dask cluster the
engine charges each run the compute intervals of its own tasks (the scheduler's task stream); the reference
is the CPU time each task measured itself (``time.thread_time``). On a Slurm site (Dask workers in Slurm jobs,
so the engine's figure is the same task stream's) the reference is the cluster's own accounts: ``sacct``'s
TotalCPU of the worker job, less that of the same worker job left idle as long. The bench starts a private
single-node cluster with its accounting daemon (tests/slurm_fixtures.py: root, Debian's slurm-wlm, munge and
slurmdbd, and a MariaDB answering on loopback); where it cannot, it says why. Ratios near 1 mean the
accounting matches; above 1 on a busy host, a task held its worker thread longer than it had the CPU
(core-seconds are held time, as in batch accounting).

Usage: python bench/accounting.py [--tasks 8] [--seconds 0.5] [--workers 2] [--slurm-tasks 4]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


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


def slurm(tasks: int) -> str:
    """The engine's figure for CPU-bound tasks on a Slurm worker job beside ``sacct``'s, or why not measured."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    try:
        from slurm_fixtures import BINARIES, private_slurm, which_sbin
    except ImportError as exc:  # the dev extra (pytest) is not installed
        return f"not measured ({exc})"
    missing = [name for name in BINARIES if which_sbin(name) is None]
    if missing or os.geteuid() != 0:
        return f"not measured ({'missing ' + ', '.join(missing) if missing else 'a private cluster needs root'})"
    with tempfile.TemporaryDirectory(prefix="twin-bench-slurm-") as folder:
        root = Path(folder)
        with private_slurm(root, {name: str(which_sbin(name)) for name in BINARIES}) as cluster:
            if not cluster.accounting:
                return f"not measured (no accounts: {cluster.no_accounting})"
            from slurm_fixtures import compare_with_sacct
            from twinengine.workflows.executors import slurm_options

            jobs = str(root / "jobs")
            options = slurm_options(queue=cluster.partition, cores=1, memory="2GiB", walltime="00:10:00", jobs=1,
                                    extra={"interface": "lo", "log_directory": jobs, "local_directory": jobs,
                                           "scheduler_options": {"dashboard_address": "127.0.0.1:0"},
                                           "job_extra_directives": [f"--chdir={jobs}"]})
            got = compare_with_sacct(cluster, options, tasks=tasks, iterations=6_000_000)
    return (f"engine {got.charged:8.3f} core-s   sacct {got.work_cpu:8.3f} s   ratio "
            f"{got.charged / got.work_cpu:.3f}\n             ({got})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.5, help="CPU seconds each task spends")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slurm-tasks", type=int, default=8,
                        help="tasks of 6,000,000 PBKDF2 rounds (2-3 CPU-seconds) on one Slurm job")
    args = parser.parse_args()
    engine, reference = local(args.tasks, args.seconds)
    print(f"local site:  engine {engine:8.3f} core-s   process rusage {reference:8.3f} s   ratio "
          f"{engine / reference:.3f}")
    engine, reference = distributed(args.tasks, args.seconds, args.workers)
    print(f"dask site:   engine {engine:8.3f} core-s   tasks' own CPU {reference:8.3f} s   ratio "
          f"{engine / reference:.3f}")
    print(f"slurm site:  {slurm(args.slurm_tasks)}")


if __name__ == "__main__":
    main()
