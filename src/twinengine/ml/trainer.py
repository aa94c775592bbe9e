"""The PyTorch flavour's training loop (the task types live in :mod:`twinengine.app.training`, re-exported here).

An app's model entrypoint returns a :class:`TrainingTask`: how to build the model, its datasets, its loss and
its custom metrics. :func:`fit` trains it under a :class:`TrainingConfig` with checkpoints (a restart resumes
from the last one), early stopping, and metrics handed to a sink in batches. Under ``torch.distributed`` the
same loop wraps the model in DDP and splits each global batch over the processes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from twinengine.app.training import EpochReport, FitResult, MetricSink, TrainingData, TrainingTask
from twinengine.app.training_config import TrainingConfig

__all__ = ["EpochReport", "FitResult", "MetricSink", "TrainingData", "TrainingTask", "fit", "pick_device"]

Batch = Any


def pick_device(wanted: str = "auto") -> torch.device:
    """cuda when asked for or available (auto), else cpu: nothing in the loop is tied to either."""
    if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
        if dist.is_available() and dist.is_initialized() and torch.cuda.device_count() > 1:
            return torch.device("cuda", dist.get_rank() % torch.cuda.device_count())
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _optimizer(config: TrainingConfig, params: Any) -> torch.optim.Optimizer:
    opt = config.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
    cls = torch.optim.AdamW if opt.name == "adamw" else torch.optim.Adam
    return cls(params, lr=opt.lr, weight_decay=opt.weight_decay)


def _scheduler(config: TrainingConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    s = config.schedule
    if s.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _epoch: 1.0)


def _to(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, list | tuple):
        return type(batch)(_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _mean_over_world(values: dict[str, float], device: torch.device) -> dict[str, float]:
    _rank, world = _world()
    if world == 1 or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return {k: float(v) / world for k, v in zip(keys, tensor.tolist(), strict=True)}


def _any_rank(flag: bool, device: torch.device) -> bool:
    """True when any process says so: under DDP every rank must leave the loop at the same epoch, or the
    others would wait for it in the next all-reduce."""
    _rank, world = _world()
    if world == 1:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def _save(path: Path, state: dict[str, Any]) -> None:
    """Write then rename, so a kill mid-write leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def fit(task: TrainingTask, config: TrainingConfig, data: TrainingData, *, checkpoint: Path | None = None,
        sink: MetricSink | None = None, on_epoch: Callable[[EpochReport], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_checkpoint: Callable[[], None] | None = None) -> FitResult:
    """Train ``task`` under ``config``; resumes from ``checkpoint`` when that file exists. ``should_stop`` is
    asked after each epoch (under DDP every rank asks and all stop when any says so); ``on_checkpoint`` is
    called on rank 0 after each checkpoint is written whole."""
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        if task.members > 1:
            return _fit_members(task, config, data, checkpoint=checkpoint, sink=sink, on_epoch=on_epoch,
                                should_stop=should_stop, on_checkpoint=on_checkpoint)
        return _fit(task, config, data, checkpoint=checkpoint, sink=sink, on_epoch=on_epoch, should_stop=should_stop,
                    on_checkpoint=on_checkpoint)
    finally:
        torch.set_num_threads(threads)


def _fit(task: TrainingTask, config: TrainingConfig, data: TrainingData, *, checkpoint: Path | None,
         sink: MetricSink | None, on_epoch: Callable[[EpochReport], None] | None,
         should_stop: Callable[[], bool] | None, on_checkpoint: Callable[[], None] | None) -> FitResult:
    rank, world = _world()
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {world} processes")
    seed_everything(config.seed)
    device = pick_device(config.device)
    train_set, val_set = task.datasets(data)
    model: nn.Module = task.build_model(dict(config.params)).to(device)
    optimizer = _optimizer(config, model.parameters())
    scheduler = _scheduler(config, optimizer)
    history: list[dict[str, float]] = []
    start_epoch, best, stale, step = 0, None, 0, 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history, best, stale, step = (state["epoch"], state["history"], state["best"], state["stale"],
                                                   state["step"])
        torch.set_rng_state(state["rng"])
    trained: nn.Module = model
    if world > 1:
        trained = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    per_rank = config.batch_size // world
    generator = torch.Generator().manual_seed(config.seed)
    sampler: DistributedSampler[Any] | None = None
    if world > 1:
        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=config.shuffle,
                                     seed=config.seed, drop_last=False)
    loader = DataLoader(train_set, batch_size=per_rank, shuffle=config.shuffle and sampler is None,
                        sampler=sampler, generator=generator, pin_memory=device.type == "cuda")
    val_loader = DataLoader(val_set, batch_size=max(per_rank, 256))
    wanted = config.metrics or sorted(task.metrics)
    unknown = [m for m in wanted if m not in task.metrics]
    if unknown:
        raise ValueError(f"metrics {unknown} are not defined by the model (it has {sorted(task.metrics)})")
    stopped_early = False
    epoch = start_epoch
    started = time.perf_counter()
    for epoch in range(start_epoch + 1, config.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        generator.manual_seed(config.seed + epoch)
        trained.train()
        running = torch.zeros((), device=device)
        total = torch.zeros((), device=device)
        pending = 0
        for batch in loader:
            batch = _to(batch, device)
            optimizer.zero_grad(set_to_none=True)
            loss: torch.Tensor = task.loss(trained, batch)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            step += 1
            detached = loss.detach()
            running += detached
            total += detached
            pending += 1
            if sink is not None and pending == config.log_every:
                sink.log({"train_loss_step": float(running) / pending}, step)  # one sync per log_every steps
                running.zero_()
                pending = 0
        scheduler.step()
        metrics = {"train_loss": float(total) / max(len(loader), 1), "lr": optimizer.param_groups[0]["lr"]}
        metrics |= _evaluate(task, model, val_loader, wanted, device)
        metrics = _mean_over_world(metrics, device)
        history.append({"epoch": float(epoch), **metrics})
        if sink is not None and rank == 0:
            sink.log(metrics, step)
        if on_epoch is not None and rank == 0:
            on_epoch(EpochReport(epoch, config.epochs, metrics))
        stop = config.early_stopping
        if stop is not None:
            value = metrics.get(stop.metric)
            if value is None:
                raise ValueError(f"early_stopping.metric {stop.metric!r} is not computed (have {sorted(metrics)})")
            if _improved(value, best, stop.mode, stop.min_delta):
                best, stale = value, 0
            else:
                stale += 1
        if checkpoint is not None and rank == 0 and (epoch % config.checkpoint_every == 0 or epoch == config.epochs):
            _save(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "epoch": epoch, "history": history,
                               "best": best, "stale": stale, "step": step, "rng": torch.get_rng_state()})
            if on_checkpoint is not None:
                on_checkpoint()
        if stop is not None and stale >= stop.patience:
            stopped_early = True
            break
        if should_stop is not None and _any_rank(should_stop(), device):
            break
    if task.predictions is not None and history and rank == 0:
        from twinengine.ml.intervals import interval_metrics

        history[-1] = history[-1] | interval_metrics(task, model, val_loader, device, _to)
    return FitResult(model=model, history=history, epochs_run=epoch - start_epoch, resumed_from=start_epoch,
                     stopped_early=stopped_early, device=str(device), seconds=time.perf_counter() - started)


class _MemberSink:
    """A member's step metrics under names of its own (``member2/train_loss_step``)."""

    def __init__(self, sink: MetricSink, member: int) -> None:
        self.sink, self.prefix = sink, f"member{member}/"

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.sink.log({self.prefix + k: v for k, v in metrics.items()}, step)


def _fit_members(task: TrainingTask, config: TrainingConfig, data: TrainingData, *, checkpoint: Path | None,
                 sink: MetricSink | None, on_epoch: Callable[[EpochReport], None] | None,
                 should_stop: Callable[[], bool] | None, on_checkpoint: Callable[[], None] | None) -> FitResult:
    """A deep ensemble: ``task.members`` networks trained one after the other from seeds ``seed + i``, each with
    its own checkpoint (a restart resumes the member it was in; finished ones load as they are). Epochs are
    numbered across members; the last history entry is the ensemble's own (its mean on the held-out set, and
    its scaled split-conformal interval when the task gives ``predictions``)."""
    from twinengine.ml.uncertainty import Ensemble

    if _world()[1] > 1:
        raise ValueError(f"members {task.members}: a deep ensemble trains in one process (drop nproc)")
    count, epochs = task.members, config.epochs
    single = dataclasses.replace(task, members=1, mc_dropout=0, predictions=None)
    history: list[dict[str, float]] = []
    results: list[FitResult] = []
    started = time.perf_counter()
    for member in range(count):

        def numbered(report: EpochReport, member: int = member) -> None:
            if on_epoch is not None:
                on_epoch(EpochReport(member * epochs + report.epoch, count * epochs, report.metrics))

        result = _fit(single, config.merged({"seed": config.seed + member}), data,
                      checkpoint=checkpoint.with_name(f"{checkpoint.name}.member{member}") if checkpoint else None,
                      sink=_MemberSink(sink, member) if sink is not None else None, on_epoch=numbered,
                      should_stop=should_stop, on_checkpoint=on_checkpoint)
        results.append(result)
        history += [h | {"epoch": h["epoch"] + member * epochs} for h in result.history]
        if should_stop is not None and should_stop():
            break
    device = pick_device(config.device)
    ensemble = Ensemble([r.model for r in results]).to(device)
    _train, val_set = task.datasets(data)
    val_loader = DataLoader(val_set, batch_size=max(config.batch_size, 256))
    metrics = {"train_loss": float(np.mean([r.final.get("train_loss", math.nan) for r in results]))}
    metrics |= _evaluate(task, ensemble, val_loader, config.metrics or sorted(task.metrics), device)
    if task.predictions is not None and len(results) > 1:
        from twinengine.ml.intervals import interval_metrics

        metrics |= interval_metrics(task, ensemble, val_loader, device, _to)
    history.append({"epoch": float(count * epochs), **metrics})
    if sink is not None:
        sink.log(metrics, count * epochs)
    return FitResult(model=ensemble, history=history, epochs_run=sum(r.epochs_run for r in results),
                     resumed_from=results[0].resumed_from, stopped_early=any(r.stopped_early for r in results),
                     device=str(device), seconds=time.perf_counter() - started)


def _evaluate(task: TrainingTask, model: nn.Module, loader: DataLoader[Any], wanted: list[str],
              device: torch.device) -> dict[str, float]:
    """Validation loss and the custom metrics, averaged over batches weighted by their size."""
    model.eval()
    sums: dict[str, float] = {"val_loss": 0.0, **{m: 0.0 for m in wanted}}
    count = 0
    with torch.no_grad():
        for batch in loader:
            batch = _to(batch, device)
            size = _batch_size(batch)
            sums["val_loss"] += float(task.loss(model, batch)) * size
            for name in wanted:
                sums[name] += float(task.metrics[name](model, batch)) * size
            count += size
    return {k: (v / count if count else math.nan) for k, v in sums.items()}


def _batch_size(batch: Batch) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, list | tuple) and batch:
        return _batch_size(batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_size(next(iter(batch.values())))
    return 1
