"""Inside an app's worker: the app's training task, hosted for the engine's AI lifecycle.

The engine never imports an app's task nor loads a model it trained. It asks a worker, in the app's
environment and sandbox, to ``load`` the task with its data, ``fit`` it (each epoch, each batch of step
metrics and each checkpoint travel back as questions the engine answers, the answer carrying a stop
request), ``evaluate`` another version on the same held-out data, and compute drift ``features``. What comes
back is JSON, arrays, and opaque bytes (the trained model's folder, a checkpoint) that the engine stores
without opening.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twinengine.app.training import EpochReport, FitResult, TrainingData, TrainingTask
from twinengine.app.training_config import TrainingConfig
from twinengine.catalog.archive import pack, unpack
from twinengine.ml.flavours import flavour_named, flavour_of
from twinengine.workers.protocol import Message, unpickled

__all__ = ["MODEL_BYTES", "TaskHost", "jsonable"]

Reply = tuple[dict[str, Any], list[bytes]]
Ask = Callable[[dict[str, Any], list[bytes]], Message]
MODEL_BYTES = 1 << 36  # a model folder or checkpoint unpacked here: no more than 64 GiB
CHECKPOINT = Path("checkpoint")  # in the worker's scratch folder (its working folder)


def jsonable(value: Any) -> Any:
    """Predictions as JSON values: tensors and arrays become lists, numpy scalars numbers."""
    torch = sys.modules.get("torch")  # a tensor can only come from a torch that is loaded already
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _finite(values: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[str(key)] = number
    return out


class _Reporter:
    """The fit's sink and callbacks inside the worker: step metrics are kept and sent with the next epoch
    (one question per epoch, not per step); an epoch's answer may ask the fit to stop."""

    def __init__(self, ask: Ask) -> None:
        self.ask = ask
        self.points: list[list[Any]] = []
        self.stopped = False

    def log(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.points += [[key, value, int(step), now] for key, value in _finite(metrics).items()]

    def take_points(self) -> list[list[Any]]:
        points, self.points = self.points, []
        return points

    def epoch(self, report: EpochReport) -> None:
        reply, _ = self.ask({"ask": "epoch", "epoch": report.epoch, "epochs": report.epochs,
                             "metrics": _finite(report.metrics), "points": self.take_points()}, [])
        self.stopped = self.stopped or bool(reply.get("stop"))

    def should_stop(self) -> bool:
        return self.stopped

    def checkpoint(self) -> None:
        self.ask({"ask": "checkpoint"}, [pack(CHECKPOINT, compress=False)])

    def relay(self, report: tuple[str, Any]) -> None:
        """A report of DDP's rank 0 (another process), handled as if the fit were here."""
        kind, value = report
        if kind == "epoch":
            self.epoch(value)
        elif kind == "metrics":
            self.log(*value)
        elif kind == "checkpoint":
            self.checkpoint()


class TaskHost:
    """One app task and its training data, held by a worker between the engine's requests."""

    def __init__(self, ask: Ask) -> None:
        self.ask = ask
        self.task: TrainingTask | None = None
        self.entrypoint = ""
        self.data = TrainingData()
        self.tasks: dict[str, TrainingTask] = {}  # by entrypoint, for features

    def load(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        """Import the task (``entrypoint``), keep the data; answer what the engine needs to know of it."""
        from twinengine.ml.distributed import task_of

        entrypoint = str(header["entrypoint"])
        task = task_of(entrypoint)
        flavour = flavour_of(task)
        declared = header.get("framework")
        if declared is not None and flavour_named(str(declared)) is not flavour:
            raise ValueError(f"the manifest declares framework {declared!r} but the task is written for "
                             f"{flavour.name!r}")
        self.task, self.entrypoint = task, entrypoint
        self.data = unpickled(blobs[0]) if blobs else TrainingData()
        config = task.config.merged(dict(header.get("overrides") or {}))
        return {"framework": flavour.name, "config": config.model_dump(mode="json"), "gate": dict(task.gate),
                "search_space": task.search_space, "predictions": task.predictions is not None}, []

    def _task(self) -> TrainingTask:
        if self.task is None:
            raise RuntimeError("no task is loaded in this worker")
        return self.task

    def fit(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        """Train under ``config`` (``nproc`` ranks); resume from the checkpoint blob when given; with
        ``save``, answer the trained model's folder as a tar."""
        task = self._task()
        flavour = flavour_of(task)
        config = TrainingConfig.model_validate(header["config"])
        nproc = int(header.get("nproc") or 1)
        shutil.rmtree(CHECKPOINT, ignore_errors=True)
        CHECKPOINT.mkdir()
        if blobs:
            unpack(blobs[0], CHECKPOINT, max_unpacked_bytes=MODEL_BYTES, compressed=False)
        checkpoint = CHECKPOINT / "last" if header.get("checkpoint", True) else None
        reporter = _Reporter(self.ask)
        if nproc > 1:
            result = self._distributed(nproc, config, checkpoint, reporter)
        else:
            result = flavour.fit(task, config, self.data, checkpoint=checkpoint, sink=reporter,
                                 on_epoch=reporter.epoch, should_stop=reporter.should_stop,
                                 on_checkpoint=reporter.checkpoint if checkpoint is not None else None)
        out: list[bytes] = []
        if header.get("save") and not reporter.stopped:
            folder = Path(tempfile.mkdtemp(prefix="model-", dir=".")) / "model"
            flavour.save(result.model, folder)
            out.append(pack(folder, compress=False))
            shutil.rmtree(folder.parent, ignore_errors=True)
        return {"history": [_finite(h) for h in result.history], "epochs_run": result.epochs_run,
                "resumed_from": result.resumed_from, "stopped_early": result.stopped_early, "device": result.device,
                "seconds": result.seconds, "stopped": reporter.stopped, "points": reporter.take_points()}, out

    def _distributed(self, nproc: int, config: TrainingConfig, checkpoint: Path | None,
                     reporter: _Reporter) -> FitResult:
        from twinengine.ml.distributed import DistributedJob, launch

        if flavour_of(self._task()).name != "pytorch":
            raise ValueError(f"nproc {nproc}: distributed training is for pytorch models")
        if self._task().members > 1:
            raise ValueError(f"nproc {nproc}: a deep ensemble (members {self._task().members}) trains in one process")
        out = Path(tempfile.mkdtemp(prefix="ddp-", dir=".")) / "result.pt"
        job = DistributedJob(entrypoint=self.entrypoint, config=config, data=self.data, out=str(out.resolve()),
                             path=list(sys.path),
                             checkpoint=str(checkpoint.resolve()) if checkpoint is not None else None)
        try:
            return launch(nproc, job, on_report=reporter.relay, should_stop=reporter.should_stop)
        finally:
            shutil.rmtree(out.parent, ignore_errors=True)

    def evaluate(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        """Another version (its model folder as a tar) on the loaded data's held-out part."""
        task = self._task()
        flavour = flavour_of(task)
        config = TrainingConfig.model_validate(header["config"])
        with tempfile.TemporaryDirectory(prefix="version-", dir=".") as tmp:
            unpack(blobs[0], Path(tmp), max_unpacked_bytes=MODEL_BYTES, compressed=False)
            model = flavour.load(task, dict(header.get("params") or {}), Path(tmp))
            metrics = flavour.evaluate(task, model, self.data, config)
        return {"metrics": _finite(metrics)}, []

    def features(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        """The task's drift features of two record sets (reference, recent), or ``features: false``."""
        import numpy as np

        from twinengine.ml.distributed import task_of
        from twinengine.workers.protocol import encode

        entrypoint = str(header["entrypoint"])
        task = self.tasks.get(entrypoint)
        if task is None:
            task = self.tasks[entrypoint] = task_of(entrypoint)
        if task.features is None:
            return {"features": False}, []
        parameters = dict(header.get("parameters") or {})
        out: list[bytes] = []
        values = [np.asarray(task.features(TrainingData(parameters=parameters, records=unpickled(blob))),
                             dtype="float64") for blob in blobs]
        return {"features": True, "values": [encode(v, out) for v in values]}, out
