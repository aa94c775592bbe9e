"""The AI lifecycle's domain functions: request and read training runs, list model histories with the gate's
decisions, follow the trail, and keep retraining policies. Keyword-only ``session``; no HTTP."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from twinengine.app.training_config import TrainingConfig
from twinengine.auth.principal import Principal
from twinengine.errors import Conflict, ModelNotFound, Problem, TrainingRunNotFound, ValidationFailed, join_loc
from twinengine.ml.models import GateDecision, RetrainPolicy, TrainingRun
from twinengine.ml.schemas import (
    DecisionRead,
    ModelVersionRead,
    PolicyRead,
    PolicyWrite,
    TrailEntry,
    TrainingRequest,
    TrainingRunRead,
    TwinModelRead,
)
from twinengine.quality.pedigree import QualityReport, quality_report
from twinengine.store.base import utcnow
from twinengine.twins import service as twins
from twinengine.twins.models import Twin

if TYPE_CHECKING:  # torch and MLflow are imported when the AI lifecycle is first used, not with the API
    from twinengine.ml.lifecycle import Lifecycle

__all__ = ["enqueue", "get_policy", "get_run", "list_models", "list_runs", "request_training", "run_decision",
           "run_read", "set_policy", "stop_run", "trail", "version_decision"]


def _model_of(session: Session, twin: Twin, model: str) -> None:
    declared = twins.manifest_for(session, twin).models
    if model not in declared:
        raise ModelNotFound(f"the app of twin {twin.name} declares no model {model!r} (it has {sorted(declared)})")


def _trained_here(twin: Twin, model: str) -> Select[TrainingRun]:
    """The twin's own training runs that registered a version of ``model``: whose a version is. A registered
    model is named after the twin's name, which a later twin may take again; the versions an earlier twin of
    that name trained are not this twin's, in its listing or on a version's page."""
    return select(TrainingRun).where(TrainingRun.twin_id == twin.id, TrainingRun.model == model,
                                     TrainingRun.model_version.is_not(None))


def _check_config(overrides: dict[str, Any]) -> None:
    try:
        TrainingConfig().merged(overrides)
    except ValidationError as exc:
        raise ValidationFailed([Problem(join_loc(("config", *e["loc"])), e["msg"]) for e in exc.errors()]) from None


def _check_space(space: dict[str, Any]) -> None:
    from twinengine.ml.tune import parse_space

    try:
        parse_space(space)
    except ValidationError as exc:
        raise ValidationFailed([Problem(join_loc(("tune", "space", *e["loc"])), e["msg"])
                                for e in exc.errors()]) from None


Admit = Callable[[Session, Twin, TrainingRequest], tuple[str | None, dict[str, Any] | None]]


def enqueue(session: Session, twin: Twin, model: str, *, body: TrainingRequest, created_by: str,
            admit: Admit | None = None) -> TrainingRun:
    """Queue a run of ``model`` for ``twin`` (the engine loop picks it up after the commit). ``admit``, called
    once the request is known to be good, places it (its site, None for the engine's own, and the reasons) or
    refuses it (the requester's compute quota, a site that cannot take it); without it the run trains on the
    engine's own site."""
    _model_of(session, twin, model)
    _check_config(body.config)
    stream = body.data.stream
    if stream is not None and stream not in twins.manifest_for(session, twin).streams:
        raise ValidationFailed.one("data.stream", f"the app declares no stream {stream!r}")
    trigger = dict(body.trigger)
    if body.tune is not None:
        if body.tune.space is not None:
            _check_space(body.tune.space)
        trigger = {"kind": "tune", **body.tune.model_dump(), "requested": trigger}
    site, placement = admit(session, twin, body) if admit is not None else (None, None)
    row = TrainingRun(id=f"tr-{secrets.token_hex(6)}", twin_id=twin.id, model=model, status="queued", progress=0.0,
                      nproc=body.nproc, config=body.config, inputs={"selection": body.data.model_dump()},
                      trigger=trigger, history=[], metrics={}, created_by=created_by,
                      site=site, placement=placement)
    session.add(row)
    session.flush()
    return row


def request_training(session: Session, *, principal: Principal, twin_ref: str, model: str,
                     body: TrainingRequest, admit: Admit | None = None) -> TrainingRunRead:
    """Queue a training run the requester asked for (``admit``: placed, or refused, as ``enqueue`` says)."""
    twin = twins.get_twin(session, principal=principal, ref=twin_ref, action="twin.operate")
    return run_read(enqueue(session, twin, model, body=body, created_by=principal.name, admit=admit))


def run_read(row: TrainingRun) -> TrainingRunRead:
    return TrainingRunRead.model_validate(row, from_attributes=True)


def get_run(session: Session, *, principal: Principal, twin_ref: str, run_id: str) -> TrainingRunRead:
    twin = twins.get_twin(session, principal=principal, ref=twin_ref)
    row = session.get(TrainingRun, run_id)
    if row is None or row.twin_id != twin.id:
        raise TrainingRunNotFound(f"twin {twin.name} has no training run {run_id!r}")
    return run_read(row)


def stop_run(session: Session, *, principal: Principal, twin_ref: str, run_id: str) -> TrainingRunRead:
    """Ask a run to stop: a queued one is canceled now, a running one ends at the end of its current epoch
    (``stopping``, then ``canceled``; nothing is registered, MLflow marks its run KILLED). Asking again is
    harmless; a run that has already ended is a conflict."""
    twin = twins.get_twin(session, principal=principal, ref=twin_ref, action="twin.operate")
    row = session.get(TrainingRun, run_id, with_for_update=True)
    if row is None or row.twin_id != twin.id:
        raise TrainingRunNotFound(f"twin {twin.name} has no training run {run_id!r}")
    if row.status in ("succeeded", "failed"):
        raise Conflict(f"training run {run_id} has already ended ({row.status})")
    if row.status == "queued":
        row.status, row.finished_at, row.error = "canceled", utcnow(), "stopped on request"
    elif row.status == "running":
        row.status = "stopping"
    session.flush()
    return run_read(row)


def list_runs(session: Session, *, principal: Principal, twin_ref: str, model: str | None = None, limit: int = 50,
              offset: int = 0) -> tuple[list[TrainingRunRead], int]:
    twin = twins.get_twin(session, principal=principal, ref=twin_ref)
    query = select(TrainingRun).where(TrainingRun.twin_id == twin.id)
    if model is not None:
        query = query.where(TrainingRun.model == model)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(TrainingRun.created_at.desc()).limit(limit).offset(offset))
    return [run_read(r) for r in rows], total


def _decision(row: GateDecision) -> DecisionRead:
    return DecisionRead(version=row.version, run_id=row.run_id, accepted=row.accepted, reason=row.reason,
                        metrics=row.metrics, champion_before=row.champion_before, created_at=row.created_at)


def run_decision(session: Session, run_id: str) -> DecisionRead | None:
    """The gate's decision on the version a training run registered (None: the run registered none), so
    that a run that succeeded but whose version was rejected can say why."""
    row = session.scalar(select(GateDecision).where(GateDecision.run_id == run_id).limit(1))
    return _decision(row) if row is not None else None


def version_decision(session: Session, twin_id: str, model: str, version: str) -> DecisionRead | None:
    """The gate's decision on a twin's model version, with the training run that registered it."""
    row = session.scalar(select(GateDecision).where(GateDecision.twin_id == twin_id, GateDecision.model == model,
                                                    GateDecision.version == version)
                         .order_by(GateDecision.id.desc()).limit(1))
    return _decision(row) if row is not None else None


def list_models(session: Session, ml: Lifecycle, *, principal: Principal, twin_ref: str) -> list[TwinModelRead]:
    """Each declared model with its versions (oldest first), aliases and the gate's decision on each."""
    from twinengine.ml.registry import CHAMPION, registered_name

    twin = twins.get_twin(session, principal=principal, ref=twin_ref)
    decisions = {(d.model, d.version): d for d in session.scalars(
        select(GateDecision).where(GateDecision.twin_id == twin.id))}
    out = []
    for model, spec in twins.manifest_for(session, twin).models.items():
        name = registered_name(twin.name, model)
        own = set(session.scalars(_trained_here(twin, model).with_only_columns(TrainingRun.model_version)))
        versions = [v for v in ml.registry.versions(name) if v.version in own]
        reads = [ModelVersionRead(version=v.version, aliases=v.aliases, run_id=v.run_id, tags=v.tags,
                                  decision=_decision(decisions[(model, v.version)])
                                  if (model, v.version) in decisions else None) for v in versions]
        champion = next((v.version for v in versions if CHAMPION in v.aliases), None)
        out.append(TwinModelRead(name=model, registered_name=name, description=spec.description,
                                 champion=champion, versions=reads))
    return out


def trail(session: Session, *, principal: Principal, twin_ref: str, model: str) -> list[TrailEntry]:
    """trigger → data → run → version → decision, newest first, in one query."""
    twin = twins.get_twin(session, principal=principal, ref=twin_ref)
    _model_of(session, twin, model)
    rows = session.execute(
        select(TrainingRun, GateDecision).outerjoin(GateDecision, GateDecision.run_id == TrainingRun.id)
        .where(TrainingRun.twin_id == twin.id, TrainingRun.model == model)
        .order_by(TrainingRun.created_at.desc()))
    return [TrailEntry(trigger=run.trigger, inputs=run.inputs, run=run.id, status=run.status,
                       version=run.model_version, decision=_decision(dec) if dec is not None else None,
                       created_at=run.created_at) for run, dec in rows]


def _policy_read(row: RetrainPolicy) -> PolicyRead:
    return PolicyRead.model_validate(row, from_attributes=True)


def set_policy(session: Session, *, principal: Principal, twin_ref: str, model: str, body: PolicyWrite) -> PolicyRead:
    twin = twins.get_twin(session, principal=principal, ref=twin_ref, action="twin.operate")
    _model_of(session, twin, model)
    manifest = twins.manifest_for(session, twin)
    if body.stream is not None and body.stream not in manifest.streams:
        raise ValidationFailed.one("stream", f"the app declares no stream {body.stream!r}")
    if body.drift is not None and body.stream is None and not manifest.streams:
        raise ValidationFailed.one("stream", "a drift policy needs a stream to watch")
    row = session.get(RetrainPolicy, (twin.id, model))
    if row is None:
        row = RetrainPolicy(twin_id=twin.id, model=model, created_by=principal.name)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # the same PUT from another request made it meanwhile (PostgreSQL): change it
            found = session.get(RetrainPolicy, (twin.id, model), populate_existing=True)
            if found is None:  # not that: the twin went (a 409 StoredConflict, see store/conflicts.py)
                raise
            row = found
    row.every_seconds, row.buffer, row.stream, row.window, row.enabled = (body.every_seconds, body.buffer,
                                                                          body.stream, body.window, body.enabled)
    row.drift = body.drift.model_dump() if body.drift is not None else None
    if body.skill is not None:
        from twinengine.twins.forecasts import numeric_property

        numeric_property(session, twin, body.skill.property, loc="skill.property")
    row.skill = body.skill.model_dump(mode="json", exclude_none=True) if body.skill is not None else None
    if row.last_check and "skill" in row.last_check:  # a replaced rule is judged afresh
        row.last_check = {k: v for k, v in row.last_check.items() if k != "skill"}
    session.flush()
    return _policy_read(row)


def get_policy(session: Session, *, principal: Principal, twin_ref: str, model: str) -> PolicyRead:
    twin = twins.get_twin(session, principal=principal, ref=twin_ref)
    row = session.get(RetrainPolicy, (twin.id, model))
    if row is None:
        raise ModelNotFound(f"twin {twin.name} has no retraining policy for model {model!r}")
    return _policy_read(row)


def version_quality(session: Session, *, principal: Principal, twin_ref: str, model: str, version: str
                    ) -> QualityReport:
    """The quality of the records a model version was trained on (the training run's inputs; a version
    trained before inputs were rated lists its stream as unchecked)."""
    twin = twins.get_twin(session, principal=principal, ref=twin_ref)
    _model_of(session, twin, model)
    run = session.scalar(_trained_here(twin, model).where(TrainingRun.model_version == version).limit(1))
    if run is None:
        raise ModelNotFound(f"model {model!r} of twin {twin.name} has no version {version!r}")
    inputs = run.inputs or {}
    used = []
    if inputs.get("kind") == "stream":
        used.append({"collection": f"stream:{twin.id}/{inputs['stream']}",
                     "version": f"{inputs.get('start', 0)}-{inputs.get('end')}", "quality": inputs.get("quality")})
    return quality_report(f"model:{twin.name}/{model}/{version}", used)
