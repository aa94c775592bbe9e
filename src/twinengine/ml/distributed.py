"""Distributed data-parallel training with ``torch.distributed``: gloo on CPU, nccl on GPUs.

:func:`launch` starts N local processes (``--nproc N``). :func:`run_worker` is the one entry point every
process runs; it reads its rank from its arguments or, when started by torchrun, a Slurm allocation or on
Dask workers, from the usual environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, or
``SLURM_PROCID``/``SLURM_NTASKS``) — the seam for the compute package.
"""

from __future__ import annotations

import os
import pickle
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from twinengine.ml.config import TrainingConfig
from twinengine.ml.tasks import load_task
from twinengine.ml.trainer import FitResult, TrainingData, fit

__all__ = ["DistributedJob", "launch", "run_worker"]


@dataclass
class DistributedJob:
    """Everything a worker process needs, picklable: where the app's code is, the config and the data."""

    folder: str
    package: str
    entrypoint: str
    config: TrainingConfig
    data: TrainingData
    out: str  # rank 0 writes the trained weights and history here
    checkpoint: str | None = None
    tracking: tuple[str, str] | None = None  # (MLflow tracking uri, run id): rank 0 logs metrics there
    env: dict[str, str] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_worker(rank: int | None, world: int | None, job: DistributedJob) -> None:
    """Join the process group, train, and (rank 0) write the result; ranks from the environment when None."""
    os.environ.update(job.env)
    rank = rank if rank is not None else int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
    world = world if world is not None else int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1")))
    cuda = job.config.device != "cpu" and torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    sink = None
    try:
        task = load_task(Path(job.folder), job.package, job.entrypoint)
        if rank == 0 and job.tracking is not None:
            from twinengine.ml.registry import AsyncMetricLogger, ModelRegistry

            sink = AsyncMetricLogger(ModelRegistry(job.tracking[0]), job.tracking[1])
        result = fit(task, job.config, job.data, checkpoint=Path(job.checkpoint) if job.checkpoint else None,
                     sink=sink)
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
        if sink is not None:
            sink.close()
        dist.destroy_process_group()


def launch(nproc: int, job: DistributedJob) -> FitResult:
    """Train on ``nproc`` local processes; returns rank 0's result with the model rebuilt in this process."""
    port = _free_port()
    job.env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), **job.env}
    pickle.dumps(job)  # fail here, not in a child, when something cannot travel
    mp.start_processes(_spawned, args=(nproc, job), nprocs=nproc, join=True,  # type: ignore[attr-defined,no-untyped-call]
                       start_method="spawn")
    saved: dict[str, Any] = torch.load(job.out, map_location="cpu", weights_only=False)
    task = load_task(Path(job.folder), job.package, job.entrypoint)
    model = task.build_model(dict(job.config.params))
    model.load_state_dict(saved["model"])
    return FitResult(model=model, history=saved["history"], epochs_run=saved["epochs_run"],
                     resumed_from=saved["resumed_from"], stopped_early=saved["stopped_early"],
                     device=saved["device"], seconds=saved["seconds"])


def _spawned(rank: int, world: int, job: DistributedJob) -> None:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    run_worker(rank, world, job)
