"""Engine processes of the AI lifecycle for process graphs: ``train_model`` and ``predict``.

They are registered in the workflows' process registry when the runtime is built; torch is imported only
when one runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twinengine.errors import ProcessParameterInvalid
from twinengine.ml.schemas import FINAL
from twinengine.workflows.context import current
from twinengine.workflows.registry import ProcessRegistry

if TYPE_CHECKING:
    from twinengine.ml.engine import MLEngine

__all__ = ["register_processes"]


def _spec(pid: str, summary: str, params: list[tuple[str, Any, bool, str]], returns: Any) -> dict[str, Any]:
    return {"id": pid, "summary": summary, "description": summary, "categories": ["engine", "machine learning"],
            "parameters": [{"name": n, "schema": s, "optional": opt, "description": d} | ({"default": None}
                           if opt else {}) for n, s, opt, d in params],
            "returns": {"description": summary, "schema": returns}}


_TWIN = ("twin", [{"type": "string"}, {"type": "null"}], True, "Default: the run's twin")


def _twin(session: Any, twin: str | None) -> Any:
    from twinengine.twins import service as twins

    ctx = current()
    ref = twin or ctx.twin
    if ref is None:
        raise ProcessParameterInvalid("this run has no twin; pass twin")
    return twins.get_twin(session, principal=ctx.principal, ref=ref, action="twin.operate")


def train_model(ml: Callable[[], MLEngine], model: str, twin: str | None = None,
                config: dict[str, Any] | None = None, timeout: float = 3600.0) -> dict[str, Any]:
    """Queue a training run, wait for it, and return its version and the gate's decision."""
    from twinengine.compute.work import admit
    from twinengine.ml import service
    from twinengine.ml.models import GateDecision, TrainingRun
    from twinengine.ml.schemas import TrainingRequest

    ctx = current()
    if ctx.db is None:
        raise ProcessParameterInvalid("train_model: no store in this context")
    engine = ml()
    with ctx.db.session() as session:
        row = _twin(session, twin)
        admit(session, principal=ctx.principal, outcome="the training run is refused")  # as one asked for by REST
        run = service.enqueue(session, row, model, body=TrainingRequest(
            config=config or {}, trigger={"kind": "workflow", "run": ctx.run_id}), created_by=ctx.principal.name)
        run_id = run.id
    engine.wake()
    ctx.log("info", f"train_model: training run {run_id} of {model}")
    deadline = time.monotonic() + timeout
    while True:
        with ctx.db.session(readonly=True) as session:
            found = session.get(TrainingRun, run_id)
            assert found is not None
            if found.status in FINAL:
                decision = session.query(GateDecision).filter_by(run_id=run_id).one_or_none()
                if found.status != "succeeded":
                    raise ProcessParameterInvalid(f"train_model: run {run_id} {found.status}: {found.error}")
                return {"run": run_id, "version": found.model_version, "metrics": dict(found.metrics),
                        "accepted": bool(decision.accepted) if decision else False,
                        "reason": decision.reason if decision else None}
        if time.monotonic() > deadline:
            raise ProcessParameterInvalid(f"train_model: run {run_id} did not end within {timeout:g} s")
        time.sleep(0.5)


def predict(ml: Callable[[], MLEngine], model: str, data: Any, twin: str | None = None,
            version: str | None = None) -> Any:
    """Outputs of the champion (or ``version``) for ``data`` (as the app's predict takes it)."""
    from twinengine.compute.metering import charge_worker, charge_worker_gpu
    from twinengine.ml.serving import PredictInputInvalid, predict_with

    ctx = current()
    if ctx.db is None:
        raise ProcessParameterInvalid("predict: no store in this context")
    with ctx.db.session(readonly=True) as session:
        row = _twin(session, twin)
        session.expunge(row)
    try:
        used, outputs = predict_with(ml(), row, model, data, version=version, cpu=charge_worker,
                                     gpu=charge_worker_gpu)  # its worker's CPU and GPUs: the run's
    except (LookupError, PredictInputInvalid) as exc:
        raise ProcessParameterInvalid(f"predict: {exc}") from None
    _note_model(ctx, row, model, used)
    return outputs


def _note_model(ctx: Any, twin: Any, model: str, version: str) -> None:
    """Keep the version a run's ``predict`` used, its training run and the gate's decision, for the run's
    provenance (once per version, however often the graph predicts with it)."""
    from twinengine.ml.registry import registered_name
    from twinengine.ml.service import version_decision
    from twinengine.workflows.provenance import model_used

    if any(m["twin"] == twin.id and m["model"] == model and m["version"] == version for m in ctx.models):
        return
    with ctx.db.session(readonly=True) as session:
        decision = version_decision(session, twin.id, model, version)
    ctx.models.append(model_used(twin_id=twin.id, model=model, registered=registered_name(twin.name, model),
                                 version=version, training_run=decision.run_id if decision else None,
                                 accepted=decision.accepted if decision else None,
                                 reason=decision.reason if decision else None))


def register_processes(registry: ProcessRegistry, ml: Callable[[], MLEngine]) -> None:
    def train_impl(model: str, twin: str | None = None, config: dict[str, Any] | None = None,
                   timeout: float = 3600.0) -> dict[str, Any]:
        return train_model(ml, model, twin, config, timeout)

    def predict_impl(model: str, data: Any, twin: str | None = None, version: str | None = None) -> Any:
        return predict(ml, model, data, twin, version)

    registry.register(_spec("train_model", "Train a model of the twin, register it and pass it through the gate",
                            [("model", {"type": "string"}, False, "A model the twin's app declares"), _TWIN,
                             ("config", [{"type": "object"}, {"type": "null"}], True, "TrainingConfig overrides"),
                             ("timeout", {"type": "number"}, True, "Seconds to wait for the run")],
                            {"type": "object"}), train_impl, cacheable=False)
    registry.register(_spec("predict", "Predict with the twin's champion model (kept warm)",
                            [("model", {"type": "string"}, False, "A model the twin's app declares"),
                             ("data", {}, False, "Inputs as the app's predict takes them"), _TWIN,
                             ("version", [{"type": "string"}, {"type": "null"}], True, "Default: the champion")],
                            {}), predict_impl, cacheable=False)
