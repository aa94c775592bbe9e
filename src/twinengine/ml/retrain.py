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

__all__ = ["check_drift", "check_skill", "run_once"]

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
    """Compare the champion's training inputs with the latest window; returns the report (None: no verdict).
    The app's ``features`` run in a worker of the app, on the records the engine reads here."""
    last = session.scalar(select(TrainingRun).where(
        TrainingRun.twin_id == twin.id, TrainingRun.model == policy.model, TrainingRun.status == "succeeded",
        TrainingRun.model_version.is_not(None)).order_by(TrainingRun.finished_at.desc()).limit(1))
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
    report = detect(DriftSpec.model_validate(policy.drift), ref, new).to_dict() | {
        "stream": stream, "start": max(end - policy.window, 0), "end": end, "reference_run": last.id}
    policy.last_check = report | ({"skill": policy.last_check["skill"]}
                                  if policy.last_check and "skill" in policy.last_check else {})
    return report


def run_once(ml: Lifecycle, session: Session, only: Collection[tuple[str, str]] | None = None,
             busy: set[tuple[str, str]] | None = None) -> int:
    """One pass over the enabled policies, or over those ``only`` names (twin id, model: what a
    ``PolicyWatch`` says may have fired); returns the number of runs queued. Policies skipped because their
    model is training are added to ``busy``."""
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
            try:
                report = check_drift(ml, session, policy, twin)
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
