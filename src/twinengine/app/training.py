"""What an app hands the AI lifecycle for one model, free of any framework: importing it loads neither torch
nor scikit-learn, so an app of either kind (and the engine's CLI) can name these types.

The framework a task is written for (``framework``) picks the flavour that trains, stores and serves it
(:mod:`twinengine.ml.flavours`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twinengine.app.training_config import TrainingConfig

__all__ = ["EpochReport", "FitResult", "MetricSink", "TrainingData", "TrainingTask", "task_from"]

Batch = Any


@dataclass
class TrainingData:
    """What the engine hands the app's ``datasets``: the twin's parameters and the input records.

    ``inputs`` describes where the records came from (stream offsets, buffer fill, lake ids with checksums);
    it is recorded with the model version.
    """

    parameters: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingTask:
    """What an app supplies for one model (returned by the manifest's model ``entrypoint``).

    PyTorch (``framework="pytorch"``, the default): ``build_model(params)`` returns an ``nn.Module``,
    ``datasets`` two torch datasets, ``loss(model, batch)`` a scalar tensor. scikit-learn
    (``framework="sklearn"``): ``build_model(params)`` returns an estimator, ``datasets`` two ``(X, y)`` pairs,
    ``loss(model, (X, y))`` a float. Keras 3 (``framework="keras"``): ``build_model(params)`` returns a
    compiled ``keras.Model``, ``datasets`` and ``loss`` as for scikit-learn. Each of ``metrics`` maps
    ``(model, batch)`` to a float averaged over the validation set (``val_loss`` is always computed).
    ``predict(model, inputs)`` serves it.
    """

    build_model: Callable[[dict[str, Any]], Any]
    datasets: Callable[[TrainingData], tuple[Any, Any]]
    loss: Callable[[Any, Batch], Any]
    metrics: dict[str, Callable[[Any, Batch], float]] = field(default_factory=dict)
    predict: Callable[[Any, Any], Any] | None = None
    config: TrainingConfig = field(default_factory=TrainingConfig)
    gate: dict[str, Any] = field(default_factory=dict)
    features: Callable[[TrainingData], Any] | None = None  # inputs a drift detector watches (an array)
    search_space: dict[str, Any] | None = None  # default Optuna space (see twinengine.ml.tune)
    framework: str = "pytorch"  # the flavour: pytorch, sklearn or keras (twinengine.ml.flavours)
    # (predicted, observed) arrays of a batch: with it, the version gets a split-conformal interval at
    # ``interval_level`` (metrics interval_half_width, interval_coverage; see twinengine.ml.intervals)
    predictions: Callable[[Any, Batch], tuple[Any, Any]] | None = None
    interval_level: float = 0.9
    # PyTorch: the version's own uncertainty (twinengine.ml.uncertainty). ``members`` > 1 trains a deep
    # ensemble (that many networks from seeds seed, seed + 1, ...; called, their mean); ``mc_dropout`` > 1
    # predicts that many times with dropout active. Served, either gives mean, std, members and the
    # calibrated interval.
    members: int = 1
    mc_dropout: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.members, int) or not 1 <= self.members <= 100:
            raise ValueError(f"TrainingTask.members must be an integer from 1 to 100, not {self.members!r}")
        if not isinstance(self.mc_dropout, int) or not 0 <= self.mc_dropout <= 10_000:
            raise ValueError(f"TrainingTask.mc_dropout must be an integer from 0 to 10000, not {self.mc_dropout!r}")
        if (self.members > 1 or self.mc_dropout > 1) and self.framework not in ("pytorch", "torch"):
            raise ValueError(f"TrainingTask.members and mc_dropout are for pytorch models, not {self.framework!r}")


class MetricSink(Protocol):
    """Where training metrics go (the registry's async batch logger, a test list, nothing)."""

    def log(self, metrics: dict[str, float], step: int) -> None: ...


@dataclass
class EpochReport:
    """The metrics of one finished epoch, handed to progress callbacks."""

    epoch: int
    epochs: int
    metrics: dict[str, float]


@dataclass
class FitResult:
    """A trained model and how it got there."""

    model: Any
    history: list[dict[str, float]]
    epochs_run: int
    resumed_from: int  # epochs already done when this process started (0: fresh)
    stopped_early: bool
    device: str
    seconds: float = 0.0  # wall time of the epochs run here (no start-up, no data loading)

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


def task_from(factory: Any, entrypoint: str) -> TrainingTask:
    """Call a model ``entrypoint``'s function and check it gave a TrainingTask (errors name the entrypoint)."""
    if not callable(factory):
        raise ValueError(f"model entrypoint {entrypoint!r} is not a function of the app")
    task = factory()
    if not isinstance(task, TrainingTask):
        raise ValueError(f"model entrypoint {entrypoint!r} returned {type(task).__name__}, not a TrainingTask")
    return task
