"""Warm champions for functions on arrival: the model versions the function worker asks for.

A function whose ``model:`` the AI lifecycle has trained for its twin gets that twin's champion, built once
in the function's worker from the model folder the ML engine hands it; other models (and a model with no
champion yet) stay the app-built object. Importing
this module imports neither torch nor MLflow: the worker of an engine without the ``ml`` extra uses it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from twinengine.ml.models import TrainingRun
from twinengine.twins.models import Twin

if TYPE_CHECKING:
    from twinengine.app.training import TrainingTask
    from twinengine.ml.engine import MLEngine
    from twinengine.store.engine import Database

__all__ = ["ChampionModels", "ServedModel", "served_model"]

_CHAMPION = ":champion:"


@dataclass(frozen=True)
class ServedModel:
    """What ``ctx.model`` is when the twin's model has a champion (and what ``predict`` uses): its registry
    version, the network (eval mode) and the app's task; ``predict(inputs)`` runs the app's predict through
    the task's flavour."""

    version: str
    net: Any
    task: TrainingTask
    interval: dict[str, float] | None = None  # the version's calibrated interval (interval_level, _scale, ...)

    def predict(self, inputs: Any) -> Any:
        """The app's predict; a version with several draws per input (a deep ensemble, MC dropout) answers
        their mean, std and members, and its calibrated interval's bounds."""
        from twinengine.ml.flavours import flavour_of

        flavour = flavour_of(self.task)
        if flavour.name == "pytorch":
            from twinengine.ml.uncertainty import draws, each_draw, summary

            if draws(self.task, self.net) > 1:
                outputs = [flavour.predict(self.task, m, inputs) for m in each_draw(self.task, self.net)]
                return summary(outputs, self.interval)
        return flavour.predict(self.task, self.net, inputs)


def served_model(task: TrainingTask, version: str, params: dict[str, Any] | None, folder: bytes,
                 interval: dict[str, float] | None = None) -> ServedModel:
    """Inside an app's worker: a registered version built from the app's task and its model folder (a tar
    the engine handed in unopened), loaded by the task's flavour; ``params`` None: the task's own (a version
    registered without its hyper-parameters)."""
    import tempfile
    from pathlib import Path

    from twinengine.catalog.archive import unpack
    from twinengine.ml.flavours import flavour_of
    from twinengine.ml.task_host import MODEL_BYTES

    with tempfile.TemporaryDirectory(prefix="version-") as tmp:
        unpack(folder, Path(tmp), max_unpacked_bytes=MODEL_BYTES, compressed=False)
        net = flavour_of(task).load(task, dict(task.config.params) if params is None else params, Path(tmp))
    return ServedModel(version=version, net=net, task=task, interval=interval)


class TrainedModels(Protocol):
    """What a champion's lookup uses of the running engine (``runtime.Runtime`` is one)."""

    @property
    def db(self) -> Database: ...

    @property
    def ml(self) -> MLEngine: ...


class ChampionModels:
    """``version`` and ``recipe`` plug into ``FunctionWorker.model_versions`` / ``model_recipe``."""

    def __init__(self, runtime: TrainedModels) -> None:
        self.runtime = runtime
        self.available = find_spec("mlflow") is not None  # a champion of any flavour is kept in MLflow

    def version(self, twin_id: str, app_sha: str, model: str) -> str:
        """The champion's version when the lifecycle trained ``model`` for this twin and one is promoted, else
        the app version (the app-built model). Asked once per batch: a moved alias takes over at the next."""
        if not self.available:
            return app_sha
        with self.runtime.db.session(readonly=True) as session:
            trained = session.scalar(select(TrainingRun.id).where(
                TrainingRun.twin_id == twin_id, TrainingRun.model == model,
                TrainingRun.status == "succeeded").limit(1))
            twin = session.get(Twin, twin_id) if trained is not None else None
            name = twin.name if twin is not None else None
        if name is None:
            return app_sha
        from twinengine.ml.registry import registered_name

        champion = self.runtime.ml.own_alias(twin_id, registered_name(name, model))
        return app_sha if champion is None else f"{app_sha}{_CHAMPION}{champion}"

    def recipe(self, twin_id: str, app_sha: str, model: str, version: str) -> dict[str, Any]:
        """How a function's worker builds ``version``: ``{}`` for the app-built model, else the champion's
        registry version, parameters and model folder (bytes the engine keeps warm and never opens)."""
        if _CHAMPION not in version:
            return {}
        champion = version.rpartition(_CHAMPION)[2]
        with self.runtime.db.session(readonly=True) as session:
            twin = session.get(Twin, twin_id)
            if twin is None:
                return {}
            session.expunge(twin)
        return self.runtime.ml.model_recipe(twin, model, champion)
