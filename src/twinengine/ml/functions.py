"""Warm champions for functions on arrival: the model versions the function worker asks for.

A function whose ``model:`` the AI lifecycle has trained for its twin gets that twin's champion, loaded once
through the ML engine; other models (and a model with no champion yet) stay the app-built object. Importing
this module imports neither torch nor MLflow: the worker of an engine without the ``ml`` extra uses it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from twinengine.ml.models import TrainingRun
from twinengine.twins.models import Twin

if TYPE_CHECKING:
    from twinengine.ml.trainer import TrainingTask
    from twinengine.runtime import Runtime

__all__ = ["ChampionModels", "ServedModel"]

_CHAMPION = ":champion:"


@dataclass(frozen=True)
class ServedModel:
    """What ``ctx.model`` is when the twin's model has a champion: its registry version, the network (eval
    mode) and the app's task; ``predict(inputs)`` runs the app's predict without gradients."""

    version: str
    net: Any
    task: TrainingTask

    def predict(self, inputs: Any) -> Any:
        import torch

        if self.task.predict is None:
            raise LookupError("the model defines no predict function")
        with torch.no_grad():
            return self.task.predict(self.net, inputs)


class ChampionModels:
    """``version`` and ``build`` plug into ``FunctionWorker.model_versions`` / ``model_builder``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.available = find_spec("torch") is not None and find_spec("mlflow") is not None

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
        from twinengine.ml.registry import CHAMPION, registered_name

        champion = self.runtime.ml.registry.alias(registered_name(name, model), CHAMPION)
        return app_sha if champion is None else f"{app_sha}{_CHAMPION}{champion}"

    def build(self, twin_id: str, app_sha: str, model: str, version: str, app_built: Callable[[], Any]) -> Any:
        """Load the champion named by ``version`` through the ML engine (kept warm there), or build the app's."""
        if _CHAMPION not in version:
            return app_built()
        champion = version.rpartition(_CHAMPION)[2]
        with self.runtime.db.session(readonly=True) as session:
            twin = session.get(Twin, twin_id)
            if twin is None:
                return app_built()
            session.expunge(twin)
        used, net, task = self.runtime.ml.champion_model(twin, model, champion)
        return ServedModel(version=used, net=net, task=task)
