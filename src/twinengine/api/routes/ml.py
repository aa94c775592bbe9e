"""HTTP routes of the AI lifecycle: a twin's models and their history, training runs (percent progress, live
metrics as Server-Sent Events), the trail, retraining policies, and predictions from the champion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import Body, Depends, Path, Query, Request, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy.orm import Session

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.held_access import HeldAccess, ended_by
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.api.text import takes_non_finite_numbers
from twinengine.auth.principal import Principal
from twinengine.compute.hooks import before_queue
from twinengine.compute.quotas import check_quota
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.compute.work import admit
from twinengine.errors import ModelNotFound, TwinEngineError, ValidationFailed
from twinengine.ml import service
from twinengine.ml.schemas import (
    FINAL,
    PolicyRead,
    PolicyWrite,
    TrailEntry,
    TrainingRequest,
    TrainingRunPage,
    TrainingRunRead,
    TwinModelRead,
)
from twinengine.runtime import Runtime
from twinengine.twins import service as twins
from twinengine.twins.models import Twin

__all__ = ["router"]

router = api_router("/twins", tag="ml")

TwinRef = Annotated[str, Path(max_length=64, description="The twin's id (tw-...) or name.")]
ModelName = Annotated[str, Path(max_length=64, description="A model the twin's app declares.")]
RunId = Annotated[str, Path(max_length=32)]


@router.get("/{twin}/models", name="models", summary="The twin's models: versions, aliases, gate decisions")
@acts("twin.read")
def models(twin: TwinRef, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> list[TwinModelRead]:
    return service.list_models(session, runtime.ml, principal=principal, twin_ref=twin)


@router.post("/{twin}/models/{model}/train", name="train", status_code=status.HTTP_202_ACCEPTED,
             summary="Queue a training run of the model (external trigger); poll it or follow its events")
@acts("twin.operate")
def train(twin: TwinRef, model: ModelName, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep,
          body: TrainingRequest | None = None) -> TrainingRunRead:
    run = service.request_training(session, principal=principal, twin_ref=twin, model=model,
                                   body=body or TrainingRequest(), admit=partial(_placed, principal))
    runtime.ml.wake()  # the loop also polls, so a wake before the commit only costs a second
    return run


def _placed(principal: Principal, session: Session, twin: Twin, body: TrainingRequest
            ) -> tuple[str | None, dict[str, Any]]:
    """Where a requested training run trains, and why: the engine's own site (None), unless the requester pins
    another (``site``) or asks for GPUs (``gpus``), when the rule runs are placed by chooses
    (``compute.placement``) among the sites that can take it: a Dask or Slurm site, whose workers run the app's
    sandboxed training worker (the app's code reached through a shared file system, as calibrations reach it,
    which is why it goes there only when asked); never another engine (the twin's records are here). The
    requester's quotas on the site hold: a run that would exceed them is refused."""
    if body.site is None and not body.gpus and not body.exclude_sites:
        check_quota(session, identity=principal.name, groups=principal.groups, site=DEFAULT_SITE,
                    outcome="the training run is refused")
        return None, {"site": DEFAULT_SITE, "reasons": ["trains on the engine's own site: no site pinned, no GPUs "
                                                        "asked for"]}
    options: dict[str, Any] = {"on_twin": True}
    if body.site is not None:
        options["site"] = body.site
    if body.exclude_sites:
        options["exclude_sites"] = list(body.exclude_sites)
    if body.gpus:
        options["gpus"] = body.gpus
    before_queue(session, principal=principal, options=options, app=f"{twin.app_name}@{twin.app_version}",
                 outcome="the training run is refused")
    site = str(options["site"])
    placement = dict(options.get("placement") or {"site": site})
    if body.gpus:
        placement["gpus"] = body.gpus  # a move after a lost site asks for as many
    return (None if site == DEFAULT_SITE else site), placement


@router.get("/{twin}/models/{model}/trail", name="trail",
            summary="trigger → data → run → version → decision, newest first")
@acts("twin.read")
def trail(twin: TwinRef, model: ModelName, session: SessionDep, principal: PrincipalDep) -> list[TrailEntry]:
    return service.trail(session, principal=principal, twin_ref=twin, model=model)


@router.put("/{twin}/models/{model}/policy", name="policy_set",
            summary="The retraining policy: schedule, buffer volume, drift (replaces the previous one)")
@acts("twin.operate")
def policy_set(twin: TwinRef, model: ModelName, body: PolicyWrite, session: SessionDep,
               principal: PrincipalDep, runtime: RuntimeDep) -> PolicyRead:
    policy = service.set_policy(session, principal=principal, twin_ref=twin, model=model, body=body)
    runtime.ml.wake()  # starts the loop that watches the policies, if it was not running
    return policy


@router.get("/{twin}/models/{model}/policy", name="policy_get", summary="The retraining policy and its last check")
@acts("twin.read")
def policy_get(twin: TwinRef, model: ModelName, session: SessionDep, principal: PrincipalDep) -> PolicyRead:
    return service.get_policy(session, principal=principal, twin_ref=twin, model=model)


@router.post("/{twin}/models/{model}/predict", name="predict",
             summary="Predict with the champion (or ?version=) kept warm; inputs as the app's predict takes them")
@takes_non_finite_numbers  # inputs are data for the model, not stored: a missing value may be NaN
@acts("twin.read")
def predict(twin: TwinRef, model: ModelName, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep,
            inputs: Annotated[Any, Body(embed=True)],
            version: Annotated[str | None, Query(max_length=16)] = None) -> dict[str, Any]:
    row = twins.get_twin(session, principal=principal, ref=twin)
    from twinengine.ml.serving import PredictInputInvalid, predict_with

    if model not in twins.manifest_for(session, row).models:
        raise ModelNotFound(f"the app of twin {row.name} declares no model {model!r}")
    admit(session, principal=principal, outcome="the prediction is refused")  # the caller's compute quota (429)
    session.commit()  # a read (POST for its body): ended before the model's worker is asked (store.guard)
    try:
        used, outputs = predict_with(runtime.ml, row, model, inputs, version=version)
    except LookupError as exc:
        raise ModelNotFound(str(exc)) from None
    except PredictInputInvalid as exc:
        raise ValidationFailed.one("inputs", str(exc)) from None
    return {"version": used, "outputs": outputs}


@router.get("/{twin}/training-runs", name="runs", summary="Training runs of the twin, newest first")
@acts("twin.read")
def runs(twin: TwinRef, session: SessionDep, principal: PrincipalDep,
         model: Annotated[str | None, Query(max_length=64)] = None,
         limit: Annotated[int, Query(ge=1, le=500)] = 50,
         offset: Annotated[int, Query(ge=0, le=2**31)] = 0) -> TrainingRunPage:
    items, total = service.list_runs(session, principal=principal, twin_ref=twin, model=model, limit=limit,
                                     offset=offset)
    return TrainingRunPage(items=items, total=total)


@router.get("/{twin}/training-runs/{run}", name="run", summary="One training run: status, percent, metrics")
@acts("twin.read")
def run(twin: TwinRef, run: RunId, session: SessionDep, principal: PrincipalDep) -> TrainingRunRead:
    return service.get_run(session, principal=principal, twin_ref=twin, run_id=run)


@router.post("/{twin}/training-runs/{run}/stop", name="run_stop", status_code=status.HTTP_202_ACCEPTED,
             summary="Stop a training run: a queued one now, a running one at the end of its epoch (nothing "
                     "registered)")
@acts("twin.operate")
def run_stop(twin: TwinRef, run: RunId, session: SessionDep, principal: PrincipalDep) -> TrainingRunRead:
    return service.stop_run(session, principal=principal, twin_ref=twin, run_id=run)


def _read(runtime: Runtime, principal: Principal, twin: str, run_id: str) -> TrainingRunRead:
    with runtime.db.session(readonly=True) as session:
        return service.get_run(session, principal=principal, twin_ref=twin, run_id=run_id)


def run_target(twin: TwinRef, run: RunId, principal: PrincipalDep, runtime: RuntimeDep) -> TrainingRunRead:
    """Resolved before the stream starts, so an unknown run is a 404, not a broken stream."""
    return _read(runtime, principal, twin, run)


@router.get("/{twin}/training-runs/{run}/events", name="run_events", response_class=EventSourceResponse,
            summary="Live epoch metrics as Server-Sent Events (id = epoch), then the final status")
@acts("twin.read")
async def run_events(twin: TwinRef, run: RunId, request: Request, principal: PrincipalDep, runtime: RuntimeDep,
                     first: Annotated[TrainingRunRead, Depends(run_target)]) -> AsyncIterator[ServerSentEvent]:
    current = first
    sent = 0
    access = await HeldAccess.of_request(request, runtime, lambda s, p: twins.get_twin(s, principal=p, ref=twin))
    while True:
        for point in current.history[sent:]:
            yield ServerSentEvent(data={"progress": current.progress, **point}, id=str(int(point["epoch"])),
                                  event="metrics")
        sent = len(current.history)
        if current.status in FINAL:
            yield ServerSentEvent(data=current.model_dump(mode="json", include={"status", "model_version", "error",
                                                                                "metrics"}), event="end")
            return
        if await request.is_disconnected():
            return
        await anyio.sleep(0.5)
        try:
            principal = await access.check() or principal
            current = await anyio.to_thread.run_sync(_read, runtime, principal, twin, run)
        except TwinEngineError as error:  # the token was revoked or expired, or the grant withdrawn
            yield ended_by(error)
            return
