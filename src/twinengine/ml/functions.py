"""Warm champions for functions on arrival: the model versions the function worker asks for.

A function whose ``model:`` the AI lifecycle has trained for its twin gets that twin's champion, loaded once
through the ML engine; other models (and a model with no champion yet) stay the app-built object. Importing
this module imports neither torch nor MLflow: the worker of an engine without the ``ml`` extra uses it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from twinengine.ml.models import TrainingRun
from twinengine.twins.models import Twin

if TYPE_CHECKING:
    from twinengine.ml.task import TrainingTask
    from twinengine.runtime import Runtime

__all__ = ["ChampionModels", "ServedModel", "served_model"]

_CHAMPION = ":champion:"


@dataclass(frozen=True)
class ServedModel:
    """What ``ctx.model`` is when the twin's model has a champion: its registry version, the network (eval
    mode) and the app's task; ``predict(inputs)`` runs the app's predict through the task's flavour."""

    version: str
    net: Any
    task: TrainingTask

    def predict(self, inputs: Any) -> Any:
        from twinengine.ml.flavours import flavour_of

        return flavour_of(self.task).predict(self.task, self.net, inputs)


def served_model(task: TrainingTask, version: str, params: dict[str, Any], state: bytes) -> ServedModel:
    """Inside a function's worker: the champion built from the app's task and the bytes the engine handed in
    (its flavour's ``dumps``: for PyTorch a state dict read with ``weights_only``, tensors and no code)."""
    from twinengine.ml.flavours import flavour_of

    return ServedModel(version=version, net=flavour_of(task).loads(task, params, state), task=task)


class ChampionModels:
    """``version`` and ``recipe`` plug into ``FunctionWorker.model_versions`` / ``model_recipe``."""

    def __init__(self, runtime: Runtime) -> None:
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
        from twinengine.ml.registry import CHAMPION, registered_name

        champion = self.runtime.ml.registry.alias(registered_name(name, model), CHAMPION)
        return app_sha if champion is None else f"{app_sha}{_CHAMPION}{champion}"

    def recipe(self, twin_id: str, app_sha: str, model: str, version: str) -> dict[str, Any]:
        """How a function's worker builds ``version``: ``{}`` for the app-built model, else the champion's
        registry version, parameters and model bytes (its flavour's ``dumps``), loaded once here and
        kept warm through the ML engine."""
        if _CHAMPION not in version:
            return {}
        champion = version.rpartition(_CHAMPION)[2]
        with self.runtime.db.session(readonly=True) as session:
            twin = session.get(Twin, twin_id)
            if twin is None:
                return {}
            session.expunge(twin)
        from twinengine.ml.flavours import flavour_of
        from twinengine.ml.registry import registered_name

        used, net, task = self.runtime.ml.champion_model(twin, model, champion)
        tags = self.runtime.ml.registry.version(registered_name(twin.name, model), used).tags
        params = json.loads(tags["params"]) if "params" in tags else dict(task.config.params)
        return {"version": used, "params": params, "state": flavour_of(task).dumps(net)}
