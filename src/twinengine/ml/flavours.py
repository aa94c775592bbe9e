"""Flavours: how the lifecycle trains, stores, reloads and serves a model of one framework.

The engine speaks only to :class:`Flavour`; a task's ``framework`` picks the implementation. PyTorch is the
reference (our training loop, weights kept as a state dict that loads without running code); scikit-learn
fits the estimator once and keeps it as an MLflow ``sklearn`` model, so MLflow's own tools load it too; Keras 3
trains with its own ``fit`` (PyTorch backend by default) and is kept as an MLflow ``keras`` model.
Frameworks are imported by the methods that need them, never by this module.
"""

from __future__ import annotations

import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from twinengine.app.training import EpochReport, FitResult, MetricSink, TrainingData, TrainingTask
from twinengine.app.training_config import TrainingConfig

__all__ = ["Flavour", "KerasFlavour", "PyTorchFlavour", "SklearnFlavour", "UnknownFramework", "flavour_named",
           "flavour_of"]


class UnknownFramework(ValueError):
    """Raised when a task or manifest names a framework no flavour implements."""


class Flavour(ABC):
    """One framework's side of the lifecycle. Its methods run where the app's code runs (the app's sandboxed
    worker, or a developer's own process in ``twin app test``), never in the engine."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def fit(self, task: TrainingTask, config: TrainingConfig, data: TrainingData, *, checkpoint: Path | None = None,
            sink: MetricSink | None = None, on_epoch: Callable[[EpochReport], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            on_checkpoint: Callable[[], None] | None = None) -> FitResult:
        """Train ``task`` under ``config`` on ``data``; ``on_checkpoint`` is called each time ``checkpoint``
        (a file or folder the flavour owns) has been written whole."""

    @abstractmethod
    def save(self, model: Any, folder: Path) -> None:
        """Write ``model`` into ``folder`` (absent until then): it becomes the registry run's ``model/``."""

    @abstractmethod
    def load(self, task: TrainingTask, params: dict[str, Any], folder: Path) -> Any:
        """The model :meth:`save` wrote into ``folder`` (a registered version's ``model/``), ready to predict.
        Called in the app's worker only: the engine never loads a model."""

    @abstractmethod
    def evaluate(self, task: TrainingTask, model: Any, data: TrainingData, config: TrainingConfig) -> dict[str, float]:
        """``val_loss`` and the task's metrics on the held-out part of ``data`` (the gate compares these)."""

    def predict(self, task: TrainingTask, model: Any, inputs: Any) -> Any:
        """The app's ``predict(model, inputs)``."""
        if task.predict is None:
            raise LookupError("the model defines no predict function")
        return task.predict(model, inputs)


class PyTorchFlavour(Flavour):
    """The reference: :func:`twinengine.ml.trainer.fit`, weights as ``model.pt`` (a state dict)."""

    name = "pytorch"
    description = "PyTorch nn.Module trained by the engine's loop (checkpoints, early stopping, DDP)"
    MODEL_FILE = "model.pt"

    def fit(self, task: TrainingTask, config: TrainingConfig, data: TrainingData, *, checkpoint: Path | None = None,
            sink: MetricSink | None = None, on_epoch: Callable[[EpochReport], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            on_checkpoint: Callable[[], None] | None = None) -> FitResult:
        from twinengine.ml.trainer import fit

        return fit(task, config, data, checkpoint=checkpoint, sink=sink, on_epoch=on_epoch, should_stop=should_stop,
                   on_checkpoint=on_checkpoint)

    MEMBERS_FILE = "members.json"  # a deep ensemble's size, beside its weights

    def save(self, model: Any, folder: Path) -> None:
        import json

        import torch

        from twinengine.ml.uncertainty import Ensemble

        folder.mkdir(parents=True)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / self.MODEL_FILE)
        if isinstance(model, Ensemble):
            (folder / self.MEMBERS_FILE).write_text(json.dumps({"members": len(model.members)}))

    def load(self, task: TrainingTask, params: dict[str, Any], folder: Path) -> Any:
        import json

        import torch

        from twinengine.ml.uncertainty import Ensemble

        net = task.build_model(params)
        if (folder / self.MEMBERS_FILE).is_file():
            count = int(json.loads((folder / self.MEMBERS_FILE).read_text())["members"])
            net = Ensemble([net, *(task.build_model(params) for _ in range(count - 1))])
        net.load_state_dict(torch.load(folder / self.MODEL_FILE, map_location="cpu", weights_only=True))
        net.eval()
        return net

    def evaluate(self, task: TrainingTask, model: Any, data: TrainingData, config: TrainingConfig) -> dict[str, float]:
        from torch.utils.data import DataLoader

        from twinengine.ml.trainer import _evaluate, pick_device

        device = pick_device(config.device)
        _train, val = task.datasets(data)
        wanted = config.metrics or sorted(task.metrics)
        return _evaluate(task, model.to(device), DataLoader(val, batch_size=256), wanted, device)

    def predict(self, task: TrainingTask, model: Any, inputs: Any) -> Any:
        import torch

        with torch.no_grad():
            return super().predict(task, model, inputs)


class SklearnFlavour(Flavour):
    """scikit-learn: one ``fit(X, y)`` per run, kept as an MLflow ``sklearn`` model; ``predict`` defaults to
    the estimator's own."""

    name = "sklearn"
    description = "scikit-learn estimator, fitted once per run, stored with MLflow's sklearn flavour"

    def fit(self, task: TrainingTask, config: TrainingConfig, data: TrainingData, *, checkpoint: Path | None = None,
            sink: MetricSink | None = None, on_epoch: Callable[[EpochReport], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            on_checkpoint: Callable[[], None] | None = None) -> FitResult:
        """One epoch: a refit from scratch is what a restart does, so there is no checkpoint to resume."""
        import numpy as np

        random.seed(config.seed)
        np.random.seed(config.seed % 2**32)
        wanted = _wanted(task, config)
        train, val = task.datasets(data)
        model = task.build_model(dict(config.params))
        started = time.perf_counter()
        x, y = _pair(train, "train")
        model.fit(x, y)
        metrics = {"train_loss": float(task.loss(model, train))} | _measure(task, model, val, wanted)
        seconds = time.perf_counter() - started
        if sink is not None:
            sink.log(metrics, 1)
        if on_epoch is not None:
            on_epoch(EpochReport(1, 1, metrics))
        return FitResult(model=model, history=[{"epoch": 1.0, **metrics}], epochs_run=1, resumed_from=0,
                         stopped_early=False, device="cpu", seconds=seconds)

    def save(self, model: Any, folder: Path) -> None:
        import mlflow.sklearn
        import sklearn

        # Requirements named here: MLflow would otherwise infer them by loading the model in a subprocess.
        # skops (MLflow's default format) refuses types it does not know, such as the app's own estimator
        # classes: those are named as trusted, since the model is only ever loaded where the app's code runs.
        import skops.io

        own = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        mlflow.sklearn.save_model(model, str(folder), pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                                  skops_trusted_types=own or None)

    def load(self, task: TrainingTask, params: dict[str, Any], folder: Path) -> Any:
        import mlflow.sklearn

        return mlflow.sklearn.load_model(str(folder))

    def evaluate(self, task: TrainingTask, model: Any, data: TrainingData, config: TrainingConfig) -> dict[str, float]:
        _train, val = task.datasets(data)
        return _measure(task, model, val, _wanted(task, config))

    def predict(self, task: TrainingTask, model: Any, inputs: Any) -> Any:
        if task.predict is not None:
            return task.predict(model, inputs)
        return model.predict(inputs)


class KerasFlavour(Flavour):
    """Keras 3, on its PyTorch backend unless ``KERAS_BACKEND`` names another installed one (TensorFlow, JAX).

    ``build_model(params)`` returns a ``keras.Model``, compiled by the app (its loss is what Keras minimises);
    one left uncompiled gets the config's optimizer and mean squared error. Keras' own ``fit`` trains it; each
    epoch the engine computes ``val_loss`` and the app's metrics with the app's functions (as for scikit-learn),
    reports progress, checkpoints (``model.keras`` and the epoch reached, so a restart resumes) and applies
    the config's early stopping. Versions are MLflow ``keras`` models, loaded (in the app's worker) in
    Keras' safe mode: no arbitrary code from the file.
    """

    name = "keras"
    description = "Keras 3 model (PyTorch backend by default) fitted by Keras, stored with MLflow's keras flavour"
    MODEL_FILE = "model.keras"
    EPOCH_FILE = "epoch.txt"

    def fit(self, task: TrainingTask, config: TrainingConfig, data: TrainingData, *, checkpoint: Path | None = None,
            sink: MetricSink | None = None, on_epoch: Callable[[EpochReport], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            on_checkpoint: Callable[[], None] | None = None) -> FitResult:
        keras = _keras()
        keras.utils.set_random_seed(config.seed)
        wanted = _wanted(task, config)
        train, val = task.datasets(data)
        x, y = _pair(train, "train")
        model, done = self._resume(keras, checkpoint)
        if model is None:
            model = task.build_model(dict(config.params))
            if not model.compiled:
                model.compile(optimizer=_keras_optimizer(keras, config), loss="mean_squared_error")
        history: list[dict[str, float]] = []
        stop = _EarlyStop(config)
        flavour = self

        class Epochs(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                number = epoch + 1
                metrics = {"train_loss": float((logs or {}).get("loss", math.nan))} | _measure(task, self.model,
                                                                                                 val, wanted)
                history.append({"epoch": float(number), **metrics})
                if sink is not None:
                    sink.log(metrics, number)
                if on_epoch is not None:
                    on_epoch(EpochReport(number, config.epochs, metrics))
                if checkpoint is not None and number % config.checkpoint_every == 0:
                    flavour._checkpoint(self.model, checkpoint, number)
                    if on_checkpoint is not None:
                        on_checkpoint()
                if stop.should_stop(metrics) or (should_stop is not None and should_stop()):
                    self.model.stop_training = True

        started = time.perf_counter()
        if done < config.epochs:
            model.fit(x, y, epochs=config.epochs, initial_epoch=done, batch_size=config.batch_size,
                      shuffle=config.shuffle, verbose=0, callbacks=[Epochs()])
        seconds = time.perf_counter() - started
        return FitResult(model=model, history=history, epochs_run=len(history), resumed_from=done,
                         stopped_early=stop.stopped, device=_keras_device(keras), seconds=seconds)

    def _resume(self, keras: Any, checkpoint: Path | None) -> tuple[Any, int]:
        if checkpoint is None or not (checkpoint / self.EPOCH_FILE).is_file():
            return None, 0
        return (keras.saving.load_model(checkpoint / self.MODEL_FILE),
                int((checkpoint / self.EPOCH_FILE).read_text()))

    def _checkpoint(self, model: Any, folder: Path, epoch: int) -> None:
        """The model first, then the epoch that names it: a crash between the two resumes one epoch early."""
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"partial-{self.MODEL_FILE}"
        model.save(partial)
        partial.replace(folder / self.MODEL_FILE)
        (folder / f"{self.EPOCH_FILE}.tmp").write_text(str(epoch))
        (folder / f"{self.EPOCH_FILE}.tmp").replace(folder / self.EPOCH_FILE)

    def save(self, model: Any, folder: Path) -> None:
        keras = _keras()
        import mlflow.keras

        mlflow.keras.save_model(model, str(folder), pip_requirements=[f"keras=={keras.__version__}"])

    def load(self, task: TrainingTask, params: dict[str, Any], folder: Path) -> Any:
        _keras()
        import mlflow.keras

        return mlflow.keras.load_model(str(folder), load_model_kwargs={"safe_mode": True})

    def evaluate(self, task: TrainingTask, model: Any, data: TrainingData, config: TrainingConfig) -> dict[str, float]:
        _train, val = task.datasets(data)
        return _measure(task, model, val, _wanted(task, config))

    def predict(self, task: TrainingTask, model: Any, inputs: Any) -> Any:
        if task.predict is not None:
            return task.predict(model, inputs)
        import numpy as np

        return model.predict(np.asarray(inputs, dtype="float32"), verbose=0)


def _keras() -> Any:
    """Keras, on the backend ``twinengine`` set (PyTorch) unless the process chose one before."""
    import keras

    return keras


def _keras_optimizer(keras: Any, config: TrainingConfig) -> Any:
    chosen = config.optimizer
    if chosen.name == "sgd":
        return keras.optimizers.SGD(learning_rate=chosen.lr, momentum=chosen.momentum)
    if chosen.name == "adamw":
        return keras.optimizers.AdamW(learning_rate=chosen.lr, weight_decay=chosen.weight_decay or 0.004)
    return keras.optimizers.Adam(learning_rate=chosen.lr)


def _keras_device(keras: Any) -> str:
    if keras.backend.backend() == "torch":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(keras.backend.backend())


class _EarlyStop:
    """The config's early stopping over the epochs' metrics (the PyTorch loop's rule, for Keras' loop)."""

    def __init__(self, config: TrainingConfig) -> None:
        self.rule, self.waited, self.stopped = config.early_stopping, 0, False
        self.best: float | None = None

    def should_stop(self, metrics: dict[str, float]) -> bool:
        if self.rule is None or self.rule.metric not in metrics:
            return False
        value = metrics[self.rule.metric]
        better = self.best is None or (value < self.best - self.rule.min_delta if self.rule.mode == "min"
                                       else value > self.best + self.rule.min_delta)
        if better:
            self.best, self.waited = value, 0
            return False
        self.waited += 1
        self.stopped = self.waited >= self.rule.patience
        return self.stopped


def _wanted(task: TrainingTask, config: TrainingConfig) -> list[str]:
    wanted = config.metrics or sorted(task.metrics)
    unknown = [m for m in wanted if m not in task.metrics]
    if unknown:
        raise ValueError(f"metrics {unknown} are not defined by the model (it has {sorted(task.metrics)})")
    return wanted


def _pair(split: Any, which: str) -> tuple[Any, Any]:
    if not (isinstance(split, tuple | list) and len(split) == 2):
        raise ValueError(f"datasets must return ((X, y), (X, y)) for a scikit-learn model; the {which} part is "
                         f"a {type(split).__name__}")
    return split[0], split[1]


def _measure(task: TrainingTask, model: Any, val: Any, wanted: list[str]) -> dict[str, float]:
    x, _y = _pair(val, "validation")
    if len(x) == 0:
        return {"val_loss": math.nan, **{m: math.nan for m in wanted}}
    return {"val_loss": float(task.loss(model, val)), **{m: float(task.metrics[m](model, val)) for m in wanted}}


_FLAVOURS: dict[str, Flavour] = {f.name: f for f in (PyTorchFlavour(), SklearnFlavour(), KerasFlavour())}
_ALIASES = {"torch": "pytorch", "scikit-learn": "sklearn", "keras3": "keras"}


def flavour_named(framework: str) -> Flavour:
    """The flavour of ``framework`` (``pytorch``, ``sklearn``, ``keras``, or the aliases ``torch``,
    ``scikit-learn``, ``keras3``)."""
    found = _FLAVOURS.get(_ALIASES.get(framework, framework))
    if found is None:
        raise UnknownFramework(f"framework {framework!r} has no flavour; known: {sorted(_FLAVOURS)}")
    return found


def flavour_of(task: TrainingTask) -> Flavour:
    """The flavour a task is written for (its ``framework``)."""
    return flavour_named(task.framework)
