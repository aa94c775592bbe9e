"""Issued forecasts of a twin's properties and their verification against what the twin reported.

A forecast is recorded when a workflow (``save_forecast``) or a client writes it: a series of values with
valid times after its issue time. Verification reads the forecast values of a window and the property's
reported values around it, matches each forecast value with the nearest observation within a tolerance, and
scores the pairs per (workflow, model version, lead) through ``quality.verification``. Nothing is cached: the
pairs are recomputed for the window asked, so a late or corrected observation counts at once.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.errors import Problem, ValidationFailed
from twinengine.quality.verification import (
    SkillRule,
    interval_from_quantiles,
    pooled,
    verify,
)
from twinengine.store.base import utcnow
from twinengine.twins import service as twins
from twinengine.twins.forecast_models import Forecast, ForecastValue
from twinengine.twins.forecast_reads import MAX_VALUES, forecast_points, numeric_property, observations_near
from twinengine.twins.forecast_schemas import (
    ForecastRead,
    ForecastValueRead,
    ForecastWrite,
    LeadScores,
    PairRead,
    VerificationRead,
)
from twinengine.twins.models import StateValue, Twin
from twinengine.twins.schemas import StateKind
from twinengine.twins.score_history import hold, refresh_after_forecast

__all__ = ["MAX_VALUES", "add_forecast", "change_stamp", "check_skill", "forecast_points", "list_forecasts",
           "numeric_property", "observations_near", "record_forecast", "verification"]

MAX_LEAD_SECONDS = 10 * 366 * 86400  # leads are stored as 32-bit seconds; ten years is plenty
MAX_TOLERANCE = timedelta(days=366)


def _aligned(body: ForecastWrite) -> list[Problem]:
    n, problems = len(body.values), []
    for name in ("valid_times", "members", "lower", "upper"):
        part = getattr(body, name)
        if part is not None and len(part) != n:
            problems.append(Problem(name, f"has {len(part)} entries, values {n}"))
    for name in ("quantiles", "probabilities"):
        for key, series in (getattr(body, name) or {}).items():
            try:
                level = float(key)
            except ValueError:
                problems.append(Problem(f"{name}.{key}", "is not a number"))
                continue
            if name == "quantiles" and not 0 < level < 1:
                problems.append(Problem(f"{name}.{key}", "a quantile level is in (0, 1)"))
            if len(series) != n:
                problems.append(Problem(f"{name}.{key}", f"has {len(series)} entries, values {n}"))
    if body.members is not None and len({len(m) for m in body.members}) > 1:
        problems.append(Problem("members", "every value needs the same number of members"))
    if (body.lower is None) != (body.upper is None):
        problems.append(Problem("lower" if body.lower is None else "upper", "give lower and upper together"))
    numbers = {"values": body.values, "lower": body.lower or [], "upper": body.upper or [],
               "members": [x for m in body.members or [] for x in m],
               **{f"quantiles.{k}": v for k, v in (body.quantiles or {}).items()},
               **{f"probabilities.{k}": v for k, v in (body.probabilities or {}).items()}}
    for name, series in numbers.items():
        if not all(math.isfinite(v) for v in series):
            problems.append(Problem(name, "every value must be a finite number"))
    for key, series in (body.probabilities or {}).items():
        if not all(0 <= v <= 1 for v in series):
            problems.append(Problem(f"probabilities.{key}", "a probability is between 0 and 1"))
    if body.issued_at.tzinfo is None:
        problems.append(Problem("issued_at", "needs a time zone (e.g. 2026-01-01T00:00:00Z)"))
    if body.valid_times is not None and any(t.tzinfo is None for t in body.valid_times):
        problems.append(Problem("valid_times", "every time needs a time zone"))
    return problems


def record_forecast(session: Session, twin: Twin, body: ForecastWrite) -> Forecast:
    """Keep a forecast of an already authorized twin: one row for the issue, one per value (bulk insert)."""
    unit = numeric_property(session, twin, body.property)
    problems = _aligned(body)
    if problems:
        raise ValidationFailed(problems)
    step = body.step or timedelta(0)
    try:
        times = body.valid_times or [body.issued_at + step * (i + 1) for i in range(len(body.values))]
    except OverflowError:
        raise ValidationFailed.one("step", "the forecast would reach past the year 9999") from None
    if any(abs((t - body.issued_at).total_seconds()) > MAX_LEAD_SECONDS for t in times):
        raise ValidationFailed.one("valid_times" if body.valid_times else "step",
                                   f"a lead is longer than {MAX_LEAD_SECONDS // 86400} days")
    level = body.interval_level
    if body.lower is None and body.quantiles:
        derived = interval_from_quantiles({k: 0.0 for k in body.quantiles})
        level = level or (derived[2] if derived else None)
    hold(session, twin, body.property)  # before recorded_at: forecasts of one property commit in its order
    row = Forecast(id=f"fc-{secrets.token_hex(8)}", twin_id=twin.id, property=body.property, workflow=body.workflow,
                   run_id=body.run_id, model=body.model, model_version=body.model_version,
                   unit=body.unit or unit, interval_level=level, issued_at=body.issued_at, recorded_at=utcnow(),
                   steps=len(body.values))
    session.add(row)
    session.flush()
    rows = []
    for i, (value, at) in enumerate(zip(body.values, times, strict=True)):
        quantiles = {k: v[i] for k, v in body.quantiles.items()} if body.quantiles else None
        lower = body.lower[i] if body.lower is not None else None
        upper = body.upper[i] if body.upper is not None else None
        if lower is None and quantiles:
            derived = interval_from_quantiles(quantiles)
            lower, upper = (derived[0], derived[1]) if derived else (None, None)
        rows.append({"forecast_id": row.id, "twin_id": twin.id, "property": body.property, "valid_time": at,
                     "lead_seconds": round((at - body.issued_at).total_seconds()), "value": float(value),
                     "members": body.members[i] if body.members is not None else None, "quantiles": quantiles,
                     "lower": lower, "upper": upper,
                     "probabilities": {k: v[i] for k, v in body.probabilities.items()} if body.probabilities
                     else None})
    session.execute(insert(ForecastValue), rows)
    refresh_after_forecast(session, twin, body.property)
    return row


def _read(row: Forecast, values: list[ForecastValue] | None = None) -> ForecastRead:
    return ForecastRead(id=row.id, twin_id=row.twin_id, property=row.property, issued_at=row.issued_at,
                        recorded_at=row.recorded_at, workflow=row.workflow, run_id=row.run_id, model=row.model,
                        model_version=row.model_version, unit=row.unit, interval_level=row.interval_level,
                        steps=row.steps,
                        values=None if values is None else [
                            ForecastValueRead(valid_time=v.valid_time, lead_seconds=v.lead_seconds, value=v.value,
                                              members=v.members, quantiles=v.quantiles, lower=v.lower,
                                              upper=v.upper, probabilities=v.probabilities) for v in values])


def add_forecast(session: Session, *, principal: Principal, ref: str, body: ForecastWrite) -> ForecastRead:
    twin = twins.get_twin(session, principal=principal, ref=ref, action="twin.operate")
    return _read(record_forecast(session, twin, body))


def list_forecasts(session: Session, *, principal: Principal, ref: str, prop: str | None = None, limit: int = 20,
                   values: bool = False) -> list[ForecastRead]:
    """The newest forecasts by issue time, with their values when asked."""
    twin = twins.get_twin(session, principal=principal, ref=ref)
    query = select(Forecast).where(Forecast.twin_id == twin.id)
    if prop is not None:
        query = query.where(Forecast.property == prop)
    rows = list(session.scalars(query.order_by(Forecast.issued_at.desc(), Forecast.recorded_at.desc()).limit(limit)))
    if not values:
        return [_read(r) for r in rows]
    found: dict[str, list[ForecastValue]] = {r.id: [] for r in rows}
    for value in session.scalars(select(ForecastValue).where(ForecastValue.forecast_id.in_(list(found)))
                                 .order_by(ForecastValue.valid_time)):
        found[value.forecast_id].append(value)
    return [_read(r, found[r.id]) for r in rows]


def verification(session: Session, *, principal: Principal, ref: str, prop: str, lead: timedelta | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 tolerance: timedelta = timedelta(minutes=30), threshold: float | None = None,
                 workflow: str | None = None, model_version: str | None = None,
                 pairs: bool = False, leads: Sequence[timedelta] | None = None) -> VerificationRead:
    """Scores per (workflow, model version, lead) of the forecasts valid in ``[since, until)``; ``leads``: of
    these lead times only."""
    twin = twins.get_twin(session, principal=principal, ref=ref)
    unit = numeric_property(session, twin, prop)
    if not timedelta(0) <= tolerance <= MAX_TOLERANCE:
        raise ValidationFailed.one("tolerance", f"must be between 0 and {MAX_TOLERANCE.days} days")
    if lead is not None and abs(lead.total_seconds()) > MAX_LEAD_SECONDS:
        raise ValidationFailed.one("lead", f"must be shorter than {MAX_LEAD_SECONDS // 86400} days")
    points = forecast_points(session, twin, prop, lead=lead, since=since, until=until, workflow=workflow,
                     model_version=model_version, threshold=threshold, leads=leads)
    observations = observations_near(session, twin, prop, points, tolerance)
    groups = verify(points, observations, tolerance=tolerance, threshold=threshold, keep_pairs=pairs)
    scored: list[LeadScores] = []
    for group in groups:
        scores = {k: v for k, v in group.scores.items() if k != "n"}
        scored.append(LeadScores(workflow=group.workflow, model_version=group.model_version,
                                lead_seconds=group.lead_seconds, members=group.members,
                                n=int(group.scores.get("n") or 0), rank_histogram=group.rank_histogram,
                                reliability=group.reliability, **scores,
                                pairs=[PairRead(valid_time=t, forecast=f, observed=o) for t, f, o in group.pairs]
                                if pairs else None))
    return VerificationRead(twin_id=twin.id, property=prop, unit=unit, tolerance_seconds=tolerance.total_seconds(),
                            threshold=threshold, forecast_values=len(points), observations=len(observations),
                            leads=scored)


def change_stamp(session: Session, twin: Twin) -> str:
    """Changes when the twin reports a value or records a forecast: rules are judged again only then."""
    newest = session.scalar(select(func.max(Forecast.recorded_at)).where(Forecast.twin_id == twin.id))
    return f"{twin.head_revision}:{newest.isoformat() if newest else '-'}"


def check_skill(session: Session, twin: Twin, rule: SkillRule, *, model: str | None = None,
                model_version: str | None = None) -> dict[str, Any]:
    """Judge a skill rule on the latest ``rule.pairs`` matched pairs (of the forecasts ``model`` at
    ``model_version`` issued, when given): the score, the pairs, and whether the rule is broken (None: too few
    pairs for a verdict)."""
    observed_until = session.scalar(select(func.max(StateValue.timestamp)).where(
        StateValue.twin_id == twin.id, StateValue.property == rule.property,
        StateValue.kind == StateKind.REPORTED.value))
    if observed_until is None:
        return {"metric": rule.metric, "value": None, "pairs": 0, "broken": None}
    points = forecast_points(session, twin, rule.property, lead=rule.lead, since=None,
                     until=observed_until + rule.tolerance + timedelta(microseconds=1), workflow=rule.workflow,
                     model_version=model_version, threshold=rule.threshold, newest=rule.pairs * 2, model=model)
    points.reverse()
    observations = observations_near(session, twin, rule.property, points, rule.tolerance)
    scores = pooled(points, observations, tolerance=rule.tolerance, threshold=rule.threshold, newest=rule.pairs)
    n = int(scores.get("n") or 0)
    value = scores.get(rule.metric)
    broken = rule.broken_by(value) if n >= rule.min_pairs else None
    return {"metric": rule.metric, "value": value, "pairs": n, "broken": broken,
            "lead_seconds": rule.lead.total_seconds() if rule.lead else None}
