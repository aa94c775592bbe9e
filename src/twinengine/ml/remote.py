"""The engine's side of a hosted training task (:mod:`twinengine.ml.task_host`): requests to one app worker
and answers to the questions it asks while it trains.

Everything a worker sends is validated here before the engine uses it: descriptions and metrics are parsed
by pydantic models, a model folder or checkpoint stays opaque bytes that the engine stores and hands back,
never unpacks into itself nor loads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from twinengine.app.training import TrainingData
from twinengine.app.training_config import TrainingConfig
from twinengine.workers.protocol import Message, ProtocolError, decode, pickled

__all__ = ["FitOutcome", "FitProgress", "RemoteTask", "TaskInfo", "TaskWorker"]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TaskInfo(_Answer):
    """What a worker tells of the task it loaded: its flavour, its config with the run's overrides merged,
    its gate and default search space, whether it gives prediction intervals."""

    framework: str = Field(max_length=32)
    config: TrainingConfig
    gate: dict[str, Any] = Field(default_factory=dict)
    search_space: dict[str, Any] | None = None
    predictions: bool = False


class FitOutcome(_Answer):
    """How a fit went; ``model`` is the trained model's folder (a plain tar) when it was asked for."""

    history: list[dict[str, float]]
    epochs_run: int = Field(ge=0)
    resumed_from: int = Field(ge=0)
    stopped_early: bool = False
    device: str = Field(default="cpu", max_length=64)
    seconds: float = 0.0
    stopped: bool = False  # the engine asked it to stop (a stop request, a pruned trial)
    points: list[tuple[str, float, int, int]] = Field(default_factory=list)
    model: bytes | None = None

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


class _Epoch(_Answer):
    epoch: int = Field(ge=0)
    epochs: int = Field(ge=0)
    metrics: dict[str, float]
    points: list[tuple[str, float, int, int]] = Field(default_factory=list)


class FitProgress(Protocol):
    """What the engine does with a fit's reports (progress rows, the registry's metric logger, checkpoints)."""

    def epoch(self, epoch: int, epochs: int, metrics: dict[str, float]) -> bool:
        """Record an epoch; True asks the fit to stop at the end of it."""

    def metrics(self, points: list[tuple[str, float, int, int]]) -> None:
        """Step metrics: (key, value, step, timestamp ms)."""

    def checkpoint(self, blob: bytes) -> None:
        """Keep the fit's latest checkpoint (opaque bytes handed back on resume)."""


def _parsed(model: type[_Answer], value: Any, what: str) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ProtocolError(f"the worker's {what} is malformed: {exc.errors()[0]['msg']}") from None


class TaskWorker(Protocol):
    """What a training run needs of the worker its task lives in: a ``Worker`` on the engine's machine, or a
    ``workers.site.SiteWorker`` on a compute site."""

    started: float  # monotonic, when it started

    def request(self, header: dict[str, Any], blobs: list[bytes] | None = None, *, timeout: float,
                ask: Callable[[dict[str, Any], list[bytes]], Message] | None = None) -> Message: ...

    def cpu_seconds(self, *, kept: bool = False) -> float: ...

    def gpus_held(self) -> int: ...

    def kill(self) -> None: ...


class RemoteTask:
    """One app worker holding one task and its training data (started for one training run)."""

    def __init__(self, worker: TaskWorker, *, timeout: float) -> None:
        self.worker, self.timeout = worker, timeout

    def load(self, entrypoint: str, framework: str | None, overrides: dict[str, Any], data: TrainingData) -> TaskInfo:
        reply, _ = self.worker.request({"op": "task.load", "entrypoint": entrypoint, "framework": framework,
                                        "overrides": overrides}, [pickled(data)], timeout=self.timeout)
        info: TaskInfo = _parsed(TaskInfo, reply, "description of its task")
        return info

    def fit(self, config: TrainingConfig, *, progress: FitProgress, nproc: int = 1, resume: bytes | None = None,
            save: bool = True, checkpoint: bool = True) -> FitOutcome:
        """Train in the worker; ``progress`` sees every epoch (and may stop it), step metrics and checkpoint."""

        def answer(question: dict[str, Any], blobs: list[bytes]) -> Message:
            kind = question.get("ask")
            if kind == "epoch":
                epoch: _Epoch = _parsed(_Epoch, question, "epoch report")
                if epoch.points:
                    progress.metrics(epoch.points)
                return {"answer": "epoch", "stop": bool(progress.epoch(epoch.epoch, epoch.epochs, epoch.metrics))}, []
            if kind == "checkpoint" and len(blobs) == 1:
                progress.checkpoint(blobs[0])
                return {"answer": "checkpoint"}, []
            raise ProtocolError(f"a training worker asked for {kind!r}")

        header = {"op": "task.fit", "config": config.model_dump(mode="json"), "nproc": nproc, "save": save,
                  "checkpoint": checkpoint}
        reply, blobs = self.worker.request(header, [resume] if resume is not None else [], timeout=self.timeout,
                                           ask=answer)
        outcome: FitOutcome = _parsed(FitOutcome, reply, "training result")
        if save and not outcome.stopped:
            if len(blobs) != 1:
                raise ProtocolError("the training worker sent no model")
            outcome.model = blobs[0]
        if outcome.points:
            progress.metrics(outcome.points)
        return outcome

    def evaluate(self, folder: bytes, params: dict[str, Any], config: TrainingConfig) -> dict[str, float]:
        """Another version (its model folder) on the held-out part of this task's data."""
        reply, _ = self.worker.request({"op": "task.evaluate", "params": params,
                                        "config": config.model_dump(mode="json")}, [folder], timeout=self.timeout)
        metrics = reply.get("metrics")
        if not isinstance(metrics, dict) or not all(isinstance(v, int | float) for v in metrics.values()):
            raise ProtocolError("the worker's metrics are malformed")
        return {str(k): float(v) for k, v in metrics.items()}


def features_of(call: Callable[[dict[str, Any], list[bytes]], Message], entrypoint: str,
                parameters: dict[str, Any], *record_sets: list[dict[str, Any]]) -> list[Any] | None:
    """The task's drift features of each record set, computed in an app worker (None: it declares none)."""
    import numpy as np

    reply, blobs = call({"op": "task.features", "entrypoint": entrypoint, "parameters": parameters},
                        [pickled(records) for records in record_sets])
    if not reply.get("features"):
        return None
    values = [decode(v, blobs) for v in reply.get("values") or []]
    if len(values) != len(record_sets) or not all(isinstance(v, np.ndarray) for v in values):
        raise ProtocolError("the worker's features are malformed")
    return values
