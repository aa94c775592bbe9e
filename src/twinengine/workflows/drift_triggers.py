"""Drift triggers: a workflow runs when the verified skill of the twin's forecasts breaks a rule (``skill``),
or when a retraining policy of the twin found its model's inputs drifted.

A skill rule is judged again only when the twin's change stamp moved (a reported value or a new forecast),
and fires once per breach: on the pass where it turns from kept to broken. The trigger's cursor keeps the
stamp and the verdict. A drift verdict fires once per (model, checked window).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.quality.verification import SkillRule
from twinengine.twins import forecasts
from twinengine.twins.models import Twin
from twinengine.workflows.models import Trigger
from twinengine.workflows.triggers import fire

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["due_drift"]


def _skill(session: Session, engine: WorkflowEngine, trigger: Trigger, twin: Twin, rule: SkillRule) -> int:
    seen: dict[str, Any] = json.loads(trigger.cursor) if trigger.cursor else {}
    stamp = forecasts.change_stamp(session, twin)
    if seen.get("stamp") == stamp:
        return 0
    check = forecasts.check_skill(session, twin, rule)
    was = bool(seen.get("broken"))
    broken = was if check["broken"] is None else bool(check["broken"])
    trigger.cursor = json.dumps({"stamp": stamp, "broken": broken, "value": check["value"], "pairs": check["pairs"]})
    if not broken or was:
        return 0
    data = {"kind": "skill", "property": rule.property, **check}
    return int(fire(session, engine, trigger, event_key=f"skill:{stamp}", data=data) is not None)


def _drift(session: Session, engine: WorkflowEngine, trigger: Trigger, twin: Twin) -> int:
    from twinengine.ml.models import RetrainPolicy

    fired = 0
    for policy in session.scalars(select(RetrainPolicy).where(RetrainPolicy.twin_id == twin.id)):
        report = policy.last_check or {}
        if report.get("drifted"):
            data = {"kind": "drift", "model": policy.model, **{k: v for k, v in report.items() if k != "skill"}}
            key = f"drift:{policy.model}:{report.get('end')}:{report.get('reference_run')}"
            fired += fire(session, engine, trigger, event_key=key, data=data) is not None
    return fired


def due_drift(session: Session, engine: WorkflowEngine, trigger: Trigger) -> int:
    """One pass of a drift trigger; returns the runs it started."""
    twin = session.get(Twin, trigger.twin_id)
    if twin is None:
        return 0
    rule = trigger.config.get("skill")
    if rule:
        return _skill(session, engine, trigger, twin, SkillRule.model_validate(rule))
    return _drift(session, engine, trigger, twin)
