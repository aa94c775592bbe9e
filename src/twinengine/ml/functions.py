"""Warm champions for functions on arrival: the model versions the function worker asks for.

A function whose ``model:`` the AI lifecycle has trained for its twin gets that twin's champion, built once
in the function's worker from the model folder the ML engine hands it; other models (and a model with no
champion yet) stay the app-built object. This is the engine's side (the store's lookups); the worker's
side, the served version itself, is ``twinengine.ml.served``.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from twinengine.ml.models import TrainingRun
from twinengine.twins.models import Twin

if TYPE_CHECKING:
    from twinengine.ml.engine import MLEngine
    from twinengine.store.engine import Database

__all__ = ["ChampionModels"]

_CHAMPION = ":champion:"


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
