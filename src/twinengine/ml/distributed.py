"""Distributed data-parallel training with ``torch.distributed``: gloo on CPU, nccl on GPUs.

:func:`launch` starts N local processes (``--nproc N``) from the process that hosts the app's task (its
sandboxed worker) and relays rank 0's epochs, metrics and checkpoints to it while they train.
:func:`run_worker` is the one entry point every process runs; it reads its rank from its arguments or, when
started by torchrun, a Slurm allocation or on Dask workers, from the usual environment (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, or ``SLURM_PROCID``/``SLURM_NTASKS``): the seam for the
compute package.
"""

from __future__ import annotations

import importlib
import os
import pickle
import queue
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from twinengine.app.training import EpochReport, FitResult, TrainingData, TrainingTask, task_from
from twinengine.app.training_config import TrainingConfig
from twinengine.ml.trainer import fit

__all__ = ["DistributedJob", "Report", "launch", "run_worker", "task_of"]

# What rank 0 tells the launching process: ("epoch", EpochReport), ("metrics", (metrics, step)),
# ("checkpoint", None).
Report = tuple[str, Any]


@dataclass
class DistributedJob:
    """Everything a rank needs, picklable: the task's entrypoint, the config and the data."""

    entrypoint: str  # module:function returning the TrainingTask
    config: TrainingConfig
    data: TrainingData
    out: str  # rank 0 writes the trained weights and history here
    path: list[str] = field(default_factory=list)  # folders first on sys.path in each rank (the app's code)
    checkpoint: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def task_of(entrypoint: str, path: list[str] | None = None) -> TrainingTask:
    """Call ``module:function`` (importable, or found under ``path``) and check it is a TrainingTask."""
    for folder in reversed(path or []):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    module_name, _, attr = entrypoint.partition(":")
    return task_from(getattr(importlib.import_module(module_name), attr, None), entrypoint)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Relay:
    """Rank 0's metric sink and callbacks: each report goes to the launching process through a queue."""

    def __init__(self, reports: Any) -> None:
        self.reports = reports

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.reports.put(("metrics", (dict(metrics), step)))

    def epoch(self, report: EpochReport) -> None:
        self.reports.put(("epoch", report))

    def checkpoint(self) -> None:
        self.reports.put(("checkpoint", None))


def run_worker(rank: int | None, world: int | None, job: DistributedJob, reports: Any = None,
               stop: Any = None) -> None:
    """Join the process group, train, and (rank 0) write the result; ranks from the environment when None.
    ``reports`` (a queue) receives rank 0's reports; ``stop`` (an event), once set, ends every rank at the
    end of the same epoch."""
    os.environ.update(job.env)
    rank = rank if rank is not None else int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
    world = world if world is not None else int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1")))
    cuda = job.config.device != "cpu" and torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    try:
        task = task_of(job.entrypoint, job.path)
        relay = _Relay(reports) if rank == 0 and reports is not None else None
        result = fit(task, job.config, job.data, checkpoint=Path(job.checkpoint) if job.checkpoint else None,
                     sink=relay, on_epoch=relay.epoch if relay else None,
                     should_stop=(lambda: bool(stop.is_set())) if stop is not None else None,
                     on_checkpoint=relay.checkpoint if relay else None)
        if rank == 0:
            state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
            torch.save({"model": state, "history": result.history, "epochs_run": result.epochs_run,
                        "resumed_from": result.resumed_from, "stopped_early": result.stopped_early,
                        "device": result.device, "seconds": result.seconds}, job.out)
        # Leave together: a rank that tears its gloo connections down while a peer is still writing its
        # result can abort that peer's process (seen as "terminate called without an active exception").
        # Only on success: after a failure the peer may be gone, and a barrier would wait for it.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def launch(nproc: int, job: DistributedJob, *, on_report: Callable[[Report], None] | None = None,
           should_stop: Callable[[], bool] | None = None) -> FitResult:
    """Train on ``nproc`` local processes; returns rank 0's result with the model rebuilt in this process.
    ``on_report`` sees rank 0's reports in this process, in order, while the ranks train; after each epoch
    ``should_stop`` is asked, and a yes ends every rank at the end of its current epoch."""
    port = _free_port()
    job.env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), **job.env}
    pickle.dumps(job)  # fail here, not in a child, when something cannot travel
    spawn = mp.get_context("spawn")
    reports, stop = spawn.Queue(), spawn.Event()

    def drain() -> None:
        while True:
            try:
                report: Report = reports.get_nowait()
            except queue.Empty:
                return
            if on_report is not None:
                on_report(report)
            if report[0] == "epoch" and should_stop is not None and should_stop():
                stop.set()

    context = mp.start_processes(_spawned, args=(nproc, job, reports, stop), nprocs=nproc,  # type: ignore[attr-defined,no-untyped-call]
                                 join=False, start_method="spawn")
    while not context.join(timeout=0.2):
        drain()
    drain()
    saved: dict[str, Any] = torch.load(job.out, map_location="cpu", weights_only=False)
    model = task_of(job.entrypoint, job.path).build_model(dict(job.config.params))
    model.load_state_dict(saved["model"])
    return FitResult(model=model, history=saved["history"], epochs_run=saved["epochs_run"],
                     resumed_from=saved["resumed_from"], stopped_early=saved["stopped_early"],
                     device=saved["device"], seconds=saved["seconds"])


def _spawned(rank: int, world: int, job: DistributedJob, reports: Any, stop: Any) -> None:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    run_worker(rank, world, job, reports, stop)
    # Done, and rank 0's result is written: leave without the interpreter's teardown. In it, C++ threads
    # that gloo and the rendezvous store started can still be joinable when their objects are destroyed,
    # and the process aborts ("terminate called without an active exception", SIGABRT) after it succeeded.
    # The reports are flushed first: the queue's feeder thread would otherwise die with them unsent.
    if reports is not None:
        reports.close()
        reports.join_thread()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
