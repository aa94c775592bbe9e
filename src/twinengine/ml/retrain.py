"""Retraining policies: one pass over the enabled policies queues a training run when one of its triggers fires.

Triggers: a schedule (``every_seconds``), a sealed fill of a stream buffer (its offsets are the run's data),
drift (the app's ``features`` of the champion's training records vs the latest ``window`` records), a skill
rule on the verified forecasts (``skill``: e.g. the 24 h NSE of the level below 0.8), and the
external trigger, which is simply ``POST .../train``. Every run records its trigger, so the trail shows why.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from twinengine.ml.drift import DriftSpec, detect
from twinengine.ml.models import RetrainPolicy, TrainingRun
from twinengine.ml.remote import features_of
from twinengine.ml.schemas import DataSelection, TrainingRequest
from twinengine.ml.service import enqueue
from twinengine.ml.usage import POLICY_CREATOR
from twinengine.quality.verification import SkillRule
from twinengine.streams import buffers
from twinengine.streams.hub import stream_key
from twinengine.streams.models import RetrainBuffer
from twinengine.twins.forecasts import change_stamp
from twinengine.twins.forecasts import check_skill as check_skill_of
from twinengine.twins.models import Twin

if TYPE_CHECKING:
    from twinengine.ml.lifecycle import Lifecycle
    from twinengine.store.engine import Database

__all__ = ["Drift", "check_drift", "check_skill", "drift_reports", "run_once"]

log = logging.getLogger("twinengine.ml")


def _busy(session: Session, twin_id: str, model: str) -> bool:
    return session.scalar(select(TrainingRun.id).where(
        TrainingRun.twin_id == twin_id, TrainingRun.model == model,
        TrainingRun.status.in_(("queued", "running"))).limit(1)) is not None


def _queue(session: Session, policy: RetrainPolicy, twin: Twin, trigger: dict[str, Any],
           data: DataSelection | None = None) -> TrainingRun:
    policy.last_triggered_at = datetime.now(UTC)
    return enqueue(session, twin, policy.model, body=TrainingRequest(trigger=trigger, data=data or DataSelection()),
                   created_by=POLICY_CREATOR)


def check_drift(ml: Lifecycle, session: Session, policy: RetrainPolicy, twin: Twin) -> dict[str, Any] | None:
    """Compare the champion's training inputs with the latest window; returns the report (None: no verdict),
    kept on the policy. The app's ``features`` run in a worker of the app, on the records the engine reads here:
    a pass works this out before its write (``drift_reports``), so no transaction waits on the app's code."""
    report = _drift_report(ml, policy, twin, _last_trained(session, policy, twin))
    if report is not None:
        _keep_report(policy, report)
    return report


Drift = dict[tuple[str, str], dict[str, Any] | Exception | None]
"""Drift verdicts by (twin id, model): a report, None (no verdict), or what refused the check."""


def drift_reports(ml: Lifecycle, db: Database, only: Collection[tuple[str, str]]) -> Drift:
    """The drift verdicts of the policies of ``only`` that watch drift, worked out before the pass that keeps
    them (``run_once``'s ``drift``): the policies and their last runs are read in a read-only unit of work,
    then each app's ``features`` run in its worker with no transaction open (``store.guard``). A policy its
    pass skips (its model training, its owner held) is left out."""
    found: list[tuple[RetrainPolicy, Twin, TrainingRun | None]] = []
    if only:
        with db.session(readonly=True) as session:
            query = select(RetrainPolicy).where(RetrainPolicy.enabled.is_(True),
                                                tuple_(RetrainPolicy.twin_id, RetrainPolicy.model).in_(sorted(only)))
            for policy in session.scalars(query):
                twin = session.get(Twin, policy.twin_id)
                if policy.drift is None or twin is None or _busy(session, twin.id, policy.model) or \
                        (ml.hold is not None and ml.hold(session, twin.owner) is not None):
                    continue
                found.append((policy, twin, _last_trained(session, policy, twin)))
    reports: Drift = {}
    for policy, twin, last in found:
        try:
            reports[(policy.twin_id, policy.model)] = _drift_report(ml, policy, twin, last)
        except Exception as exc:  # a broken app must not stop the other policies
            reports[(policy.twin_id, policy.model)] = exc
    return reports


def _last_trained(session: Session, policy: RetrainPolicy, twin: Twin) -> TrainingRun | None:
    return session.scalar(select(TrainingRun).where(
        TrainingRun.twin_id == twin.id, TrainingRun.model == policy.model, TrainingRun.status == "succeeded",
        TrainingRun.model_version.is_not(None)).order_by(TrainingRun.finished_at.desc()).limit(1))


def _drift_report(ml: Lifecycle, policy: RetrainPolicy, twin: Twin, last: TrainingRun | None) -> dict[str, Any] | None:
    if last is None or policy.drift is None:
        return None
    app = ml.app_of(twin)
    manifest = app.manifest
    stream = policy.stream or last.inputs.get("stream") or manifest.models[policy.model].stream or \
        next(iter(manifest.streams), None)
    if stream is None:
        return None
    end = ml.stream_hub().end(stream_key(twin.id, stream))
    checked_end = (policy.last_check or {}).get("end")
    if checked_end is not None and end - int(checked_end) < policy.window // 2:
        return None  # not enough new records since the last verdict
    reference, _ = ml.read_records(twin, manifest, {"stream": stream, "start": last.inputs.get("start", 0),
                                                    "end": last.inputs.get("end")})
    recent, _ = ml.read_records(twin, manifest, {"stream": stream, "start": max(end - policy.window, 0), "end": end})
    found = features_of(app.workers.call, manifest.models[policy.model].entrypoint, dict(twin.parameters),
                        reference, recent)
    if found is None:
        return None
    ref, new = found
    return detect(DriftSpec.model_validate(policy.drift), ref, new).to_dict() | {
        "stream": stream, "start": max(end - policy.window, 0), "end": end, "reference_run": last.id}


def _keep_report(policy: RetrainPolicy, report: dict[str, Any]) -> None:
    policy.last_check = report | ({"skill": policy.last_check["skill"]}
                                  if policy.last_check and "skill" in policy.last_check else {})


def run_once(ml: Lifecycle, session: Session, only: Collection[tuple[str, str]] | None = None,
             busy: set[tuple[str, str]] | None = None, drift: Drift | None = None) -> int:
    """One pass over the enabled policies, or over those ``only`` names (twin id, model: what a
    ``PolicyWatch`` says may have fired); returns the number of runs queued. Policies skipped because their
    model is training are added to ``busy``. ``drift``: the verdicts ``drift_reports`` worked out before this
    pass's transaction; a drift policy without one is looked at again next pass (it is added to ``busy``)."""
    queued = 0
    now = datetime.now(UTC)
    query = select(RetrainPolicy).where(RetrainPolicy.enabled.is_(True))
    if only is not None:
        if not only:
            return 0
        query = query.where(tuple_(RetrainPolicy.twin_id, RetrainPolicy.model).in_(sorted(only)))
    for policy in session.scalars(query):
        twin = session.get(Twin, policy.twin_id)
        if twin is None:
            continue
        if _busy(session, twin.id, policy.model):
            if busy is not None:
                busy.add((policy.twin_id, policy.model))
            continue
        held = ml.hold(session, twin.owner) if ml.hold is not None else None
        if held != (policy.last_check or {}).get("held"):  # said on the policy while it waits, gone after
            rest = {k: v for k, v in (policy.last_check or {}).items() if k != "held"}
            policy.last_check = {**rest, "held": held} if held else (rest or None)
        if held is not None:  # its twin's owner's quota is used up: nothing fires, nothing is used up
            if busy is not None:
                busy.add((policy.twin_id, policy.model))  # looked at again on the next pass
            continue
        if policy.buffer:
            buffer = session.scalar(select(RetrainBuffer).where(RetrainBuffer.twin_id == twin.id,
                                                                RetrainBuffer.name == policy.buffer))
            fills = [f for f in buffers.ready_fills(session, twin_id=twin.id)
                     if buffer is not None and f.buffer_id == buffer.id]
            if fills:
                fill = fills[0]
                _queue(session, policy, twin, {"kind": "buffer", "buffer": policy.buffer, "fill": fill.id},
                       DataSelection(stream=fill.stream, start=fill.start_offset, end=fill.end_offset,
                                     buffer=policy.buffer, fill=fill.id,
                                     exclude_quality=buffers.excluded_flags(buffer)))
                buffers.mark_consumed(session, fill, success=True, note="queued for retraining")
                queued += 1
                continue
        if policy.every_seconds and (policy.last_triggered_at is None
                                     or (now - policy.last_triggered_at).total_seconds() >= policy.every_seconds):
            _queue(session, policy, twin, {"kind": "schedule", "every_seconds": policy.every_seconds})
            queued += 1
            continue
        if policy.drift is not None:
            key = (policy.twin_id, policy.model)
            if drift is not None and key not in drift:  # it became due since its verdict was worked out
                if busy is not None:
                    busy.add(key)
                continue
            try:
                if drift is None:
                    report = check_drift(ml, session, policy, twin)
                else:
                    verdict = drift[key]
                    if isinstance(verdict, Exception):
                        raise verdict
                    report = verdict
                    if report is not None:
                        _keep_report(policy, report)
            except Exception as exc:  # a broken app must not stop the other policies
                log.warning("drift check of %s/%s failed: %s", twin.name, policy.model, exc)
                policy.last_check = {"error": str(exc)}
                continue
            if report is not None and report["drifted"]:
                _queue(session, policy, twin, {"kind": "drift", **report},
                       DataSelection(stream=report["stream"], start=report["start"], end=report["end"]))
                queued += 1
                continue
        if policy.skill is not None:
            check = check_skill(session, policy, twin)
            if check is not None:
                _queue(session, policy, twin, {"kind": "skill", **check})
                queued += 1
    return queued


def check_skill(session: Session, policy: RetrainPolicy, twin: Twin) -> dict[str, Any] | None:
    """Judge the policy's skill rule when the twin changed since the last verdict; returns the verdict when
    the rule has just broken (kept → broken), so one breach queues one run."""
    rule = SkillRule.model_validate(policy.skill)
    seen = (policy.last_check or {}).get("skill") or {}
    stamp = change_stamp(session, twin)
    if seen.get("stamp") == stamp:
        return None
    check = check_skill_of(session, twin, rule)
    was = bool(seen.get("broken"))
    broken = was if check["broken"] is None else bool(check["broken"])
    policy.last_check = {**(policy.last_check or {}), "skill": {"stamp": stamp, "broken": broken, **check}}
    return {"property": rule.property, **check} if broken and not was else None
