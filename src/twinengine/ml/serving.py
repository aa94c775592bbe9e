"""Serving: predictions from a twin's champion (or a named version), made in a warm worker of the twin's app
that builds the version once from the model folder the engine hands it and keeps it built until the champion
moves (or the worker stops); the ``predict`` process uses it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twinengine.ml.engine import MLEngine
from twinengine.twins.models import Twin
from twinengine.workers.process import WorkerCrashed, WorkerError
from twinengine.workers.protocol import Message, ProtocolError, decode, pickled
from twinengine.workers.service import SERVING

__all__ = ["PredictInputInvalid", "predict_with"]


class PredictInputInvalid(ValueError):
    """Raised when the app's predict cannot take the inputs it was given."""


def predict_with(ml: MLEngine, twin: Twin, model: str, inputs: Any, *, version: str | None = None,
                 cpu: Callable[[float], None] | None = None,
                 gpu: Callable[[float], None] | None = None) -> tuple[str, Any]:
    """Resolve the champion once per call (the switch boundary), then predict with the app's ``predict``;
    ``cpu`` and ``gpu`` are told what its worker spent (a run's ``predict`` process charges its run)."""
    chosen = ml.champion_of(twin, model, version)
    app = ml.app_of(twin)
    entrypoint = app.manifest.models[model].entrypoint

    def answer(question: dict[str, Any], _blobs: list[bytes]) -> Message:
        if question.get("ask") != "model" or question.get("version") != chosen:
            raise ProtocolError(f"a predicting worker asked for {question.get('ask')!r}")
        return {"answer": "model"}, [pickled({"entrypoint": entrypoint, **ml.model_recipe(twin, model, chosen)})]

    slot = f"predict|{twin.id}|{model}"
    wanted = {"slot": slot, "version": chosen, "keep": ml.warm_models}
    try:  # on the serving shelf: function batches never take or stop the worker holding the warm model
        reply, blobs = app.workers.call({"op": "predict", "model": wanted}, [pickled(inputs)], ask=answer,
                                        prefer=slot, shelf=SERVING, cpu=cpu, gpu=gpu)
    except WorkerError as exc:
        if exc.remote.startswith("LookupError:"):
            raise LookupError(f"model {model!r} of {twin.name}: {exc.remote.removeprefix('LookupError: ')}") from None
        raise PredictInputInvalid(f"the model's predict cannot take these inputs: {exc.remote}") from None
    except WorkerCrashed as exc:  # killed on its time or memory limit, or died: these inputs did not work
        raise PredictInputInvalid(f"the model's predict did not finish: {exc}") from None
    return chosen, decode(reply.get("value"), blobs)
