"""Calibrations of twins: start one (checked against the app's ``calibration:`` section and the parameters
schema), read its progress and result, list its runs, and accept or reject what it proposes.

The work itself runs in the engine's ``CalibrationRunner`` (``runner.py``); this module only writes and reads
rows. Accepting applies the best parameters to the twin; until then the twin is unchanged.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from twinengine.auth.policy import require
from twinengine.auth.principal import SYSTEM, Principal
from twinengine.calibration.models import Calibration, CalibrationRun
from twinengine.calibration.schemas import CalibrationCreate, CalibrationRead, CalibrationRunRead
from twinengine.calibration.sites import check_site
from twinengine.catalog.calibration_checks import parameter_bounds
from twinengine.catalog.calibration_spec import CalibrationSpec
from twinengine.catalog.manifest import Manifest
from twinengine.compute.quotas import check_quota
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.errors import Conflict, InvalidInput, NotFound, Problem, ValidationFailed
from twinengine.store.base import utcnow
from twinengine.twins import service as twins
from twinengine.twins.models import Twin
from twinengine.twins.parameter_index import reindex_parameters
from twinengine.twins.validation import check_parameters

__all__ = ["CalibrationNotFound", "cancel", "decide", "get_calibration", "list_calibrations", "list_runs", "read",
           "start_calibration"]


class CalibrationNotFound(NotFound):
    """Raised when no calibration has that id, or the caller may not read its twin."""

    code = "CalibrationNotFound"


def _spec(manifest: Manifest, twin: Twin) -> CalibrationSpec:
    if manifest.calibration is None:
        raise InvalidInput(f"twin: the app {twin.app_name}@{twin.app_version} declares no calibration section: "
                           "it says which parameters may be fitted, through which model (docs/calibration.md)")
    return manifest.calibration


def _space(manifest: Manifest, spec: CalibrationSpec, body: CalibrationCreate) -> dict[str, list[Any]]:
    """The calibrated parameters with their bounds and priors; every problem names the request's field."""
    names = body.params or list(spec.parameters)
    problems: list[Problem] = []
    for i, name in enumerate(names):
        if name not in spec.parameters:
            problems.append(Problem(f"params[{i}]", f"{name!r} is not a parameter the app lets calibrate "
                                                    f"(calibration.parameters: {', '.join(spec.parameters)})"))
    if len(set(names)) != len(names):
        problems.append(Problem("params", "a parameter is named twice"))
    for name in body.bounds:
        if name not in names:
            problems.append(Problem(f"bounds.{name}", f"{name!r} is not among the calibrated parameters"))
    if problems:
        raise ValidationFailed(problems)
    space: dict[str, list[Any]] = {}
    for name in names:
        declared = spec.parameters[name]
        low, high = body.bounds.get(name, (declared.min, declared.max))
        found, wrong = parameter_bounds(manifest, name, low, high, f"bounds.{name}")
        problems += wrong
        if found is not None:
            space[name] = [found[0], found[1], declared.prior.model_dump()]
    if problems:
        raise ValidationFailed(problems)
    return space


def start_calibration(session: Session, *, principal: Principal, twin_ref: str,
                      body: CalibrationCreate) -> Calibration:
    """Queue a calibration of the twin's parameters (the engine's runner picks it up after the commit);
    refused (429 QuotaExceeded) when its owner's compute quota on its site is used up."""
    twin = twins.get_twin(session, principal=principal, ref=twin_ref, action="twin.operate")
    require(principal, "calibration.run", twin)
    manifest = twins.manifest_for(session, twin)
    spec = _spec(manifest, twin)
    space = _space(manifest, spec, body)
    if body.since is not None and body.until is not None and body.since >= body.until:
        raise ValidationFailed.one("until", "must be after since")
    site = check_site(session, principal=principal, site=body.site, app=f"{twin.app_name}@{twin.app_version}")
    if site is None:  # the engine's own workers: its quotas, as an unplaced run's (a named site's: check_site)
        check_quota(session, identity=principal.name, groups=principal.groups, site=DEFAULT_SITE)
    row = Calibration(
        id=f"cal-{uuid.uuid4().hex[:20]}", twin_id=twin.id, owner=principal.name, status="queued",
        decision="pending", method=(body.method or spec.method).value,
        objective=(body.objective or spec.objective).value, seed=body.seed, max_runs=body.runs or spec.runs,
        max_seconds=body.seconds if body.seconds is not None else spec.seconds, workers=body.workers,
        settings={"space": space, "role": principal.role.value, "groups": sorted(principal.groups),
                  "since": body.since.isoformat() if body.since else None,
                  "until": body.until.isoformat() if body.until else None,
                  "posterior_share": body.posterior_share, "site": site},
        runs_done=0, percent=0.0)
    session.add(row)
    session.flush()
    return row


def get_calibration(session: Session, *, principal: Principal, calibration_id: str,
                    action: str = "twin.read") -> tuple[Calibration, Twin]:
    row = session.get(Calibration, calibration_id)
    if row is None:
        raise CalibrationNotFound(f"no calibration {calibration_id!r}")
    twin = twins.get_twin(session, principal=principal, ref=row.twin_id, action=action)
    return row, twin


def list_calibrations(session: Session, *, principal: Principal, twin_ref: str, limit: int,
                      offset: int) -> tuple[list[CalibrationRead], int]:
    twin = twins.get_twin(session, principal=principal, ref=twin_ref)
    query = select(Calibration).where(Calibration.twin_id == twin.id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Calibration.created_at.desc()).limit(limit).offset(offset))
    return [read(session, r, twin) for r in rows], total


def list_runs(session: Session, *, principal: Principal, calibration_id: str, limit: int,
              offset: int) -> tuple[list[CalibrationRunRead], int]:
    row, _ = get_calibration(session, principal=principal, calibration_id=calibration_id)
    names = list(row.settings["space"])
    total = session.scalar(select(func.count()).where(CalibrationRun.calibration_id == row.id)) or 0
    runs = session.scalars(select(CalibrationRun).where(CalibrationRun.calibration_id == row.id)
                           .order_by(CalibrationRun.number).limit(limit).offset(offset))
    return [CalibrationRunRead(number=r.number, params=dict(zip(names, r.params, strict=True)), score=r.score,
                               log_likelihood=r.log_likelihood) for r in runs], total


def read(session: Session, row: Calibration, twin: Twin) -> CalibrationRead:
    result = row.result or {}
    fork = session.get(Twin, row.fork_id) if row.fork_id else None
    summary = result.get("summary")
    return CalibrationRead(
        id=row.id, twin=twin.name, twin_id=twin.id, owner=row.owner, status=row.status, decision=row.decision,
        method=row.method, objective=row.objective, seed=row.seed, parameters=list(row.settings["space"]),
        bounds={k: (v[0], v[1]) for k, v in row.settings["space"].items()}, runs=row.max_runs,
        seconds=row.max_seconds, workers=row.workers, site=row.settings.get("site") or DEFAULT_SITE,
        runs_done=row.runs_done, percent=round(row.percent, 2),
        best_score=row.best_score, best=summary.get("best") if summary else None, summary=summary,
        stopped=result.get("stopped"), fork=fork.name if fork is not None else None,
        figure=f"/api/v1/calibrations/{row.id}/figure" if result.get("figure") else None, error=row.error,
        core_seconds=result.get("core_seconds"),
        created_at=row.created_at, finished_at=row.finished_at, decided_at=row.decided_at,
        decided_by=row.decided_by)


def decide(session: Session, *, principal: Principal, calibration_id: str, accept: bool) -> tuple[Calibration, Twin]:
    """Accept (the best parameters become the twin's; the earlier ones are kept on the calibration) or reject
    (the twin stays as it is; the proposed fork is removed). Only a finished proposal can be decided."""
    row, twin = get_calibration(session, principal=principal, calibration_id=calibration_id,
                                action="twin.operate")
    require(principal, "calibration.decide", twin)
    if row.status != "done" or row.decision != "proposed":
        state = row.decision if row.status == "done" else row.status
        raise Conflict(f"calibration {row.id} is {state}: only a finished proposal can be accepted or rejected")
    best = ((row.result or {}).get("summary") or {}).get("best") or {}
    if accept:
        if not best:
            raise Conflict(f"calibration {row.id} found no parameters to apply (every run failed)")
        manifest = twins.manifest_for(session, twin)
        filled, problems = check_parameters(manifest, {**twin.parameters, **best})
        if problems:
            raise ValidationFailed(problems)
        row.previous = dict(twin.parameters)
        twin.parameters = filled
        session.flush()
        reindex_parameters(session, twin.id)
    elif row.fork_id is not None:
        fork = session.get(Twin, row.fork_id)
        if fork is not None:
            twins.delete_twin(session, principal=SYSTEM, ref=fork.id)
        row.fork_id = None
    row.decision = "accepted" if accept else "rejected"
    row.decided_at, row.decided_by, row.updated_at = utcnow(), principal.name, utcnow()
    session.flush()
    return row, twin


def cancel(session: Session, *, principal: Principal, calibration_id: str) -> tuple[Calibration, Twin]:
    """Stop a queued or running calibration: the runner ends it after its current batch; its runs are kept."""
    row, twin = get_calibration(session, principal=principal, calibration_id=calibration_id,
                                action="twin.operate")
    require(principal, "calibration.run", twin)
    if row.status not in ("queued", "running"):
        raise Conflict(f"calibration {row.id} is {row.status}: only a queued or running one can be canceled")
    row.status, row.updated_at = "canceled", utcnow()
    if row.finished_at is None:
        row.finished_at = utcnow()
    session.flush()
    return row, twin
