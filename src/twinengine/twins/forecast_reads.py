"""The forecast values and observations of a window, read for verification and for the score history.

They live here, below ``forecasts`` (which records forecasts and refreshes the score history) and
``score_history`` (which scores periods), so that both read through one place without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.errors import ValidationFailed
from twinengine.quality.stored import unpack
from twinengine.quality.verification import ForecastPoint, Observation
from twinengine.twins import service as twins
from twinengine.twins.forecast_models import Forecast, ForecastValue
from twinengine.twins.models import StateValue, Twin
from twinengine.twins.schemas import StateKind

__all__ = ["MAX_VALUES", "forecast_points", "numeric_property", "observations_near"]

MAX_VALUES = 200_000  # forecast values (or observations) one verification reads: narrow the window beyond


def numeric_property(session: Session, twin: Twin, prop: str, loc: str = "property") -> str | None:
    """The declared unit of a numeric property of the twin's app; a 422 naming ``loc`` otherwise."""
    declared = twins.manifest_for(session, twin).state
    spec = declared.get(prop)
    if spec is None:
        known = ", ".join(sorted(declared)) or "none"
        raise ValidationFailed.one(loc, f"{prop!r} is not a state property of {twin.app_name} (declared: {known})")
    if spec.type.value not in ("number", "integer"):
        raise ValidationFailed.one(loc, f"{prop!r} is a {spec.type.value}: only numbers are forecast and verified")
    return spec.unit


def forecast_points(session: Session, twin: Twin, prop: str, *, lead: timedelta | None, since: datetime | None,
            until: datetime | None, workflow: str | None, model_version: str | None, threshold: float | None,
            newest: int | None = None, model: str | None = None,
            leads: Sequence[timedelta] | None = None) -> list[ForecastPoint]:
    """``lead``: one lead time; ``leads``: only these (a view's outlook reads a few of every lead)."""
    query = (select(ForecastValue, Forecast.workflow, Forecast.model_version, Forecast.interval_level)
             .join(Forecast, Forecast.id == ForecastValue.forecast_id)
             .where(ForecastValue.twin_id == twin.id, ForecastValue.property == prop))
    if lead is not None:
        query = query.where(ForecastValue.lead_seconds == round(lead.total_seconds()))
    if leads is not None:
        query = query.where(ForecastValue.lead_seconds.in_(sorted({round(d.total_seconds()) for d in leads})))
    if since is not None:
        query = query.where(ForecastValue.valid_time >= since)
    if until is not None:
        query = query.where(ForecastValue.valid_time < until)
    if workflow is not None:
        query = query.where(Forecast.workflow == workflow)
    if model_version is not None:
        query = query.where(Forecast.model_version == model_version)
    if model is not None:
        query = query.where(Forecast.model == model)
    order = ForecastValue.valid_time.desc() if newest else ForecastValue.valid_time
    rows = session.execute(query.order_by(order).limit(newest or MAX_VALUES + 1)).all()
    if len(rows) > MAX_VALUES:
        raise ValidationFailed.one("since", f"more than {MAX_VALUES} forecast values in the window: narrow it "
                                            "with since/until or pick a lead")
    return [ForecastPoint(valid_time=v.valid_time, lead_seconds=v.lead_seconds, value=v.value, workflow=wf,
                          model_version=version, members=v.members, lower=v.lower, upper=v.upper,
                          interval_level=level,
                          probability=_probability(v.probabilities, threshold))
            for v, wf, version, level in rows]


def _probability(given: dict[str, Any] | None, threshold: float | None) -> float | None:
    if not given or threshold is None:
        return None
    for key, value in given.items():
        try:
            if float(key) == threshold:
                return float(value)
        except ValueError:
            continue
    return None


def observations_near(session: Session, twin: Twin, prop: str, points: list[ForecastPoint],
                  tolerance: timedelta) -> list[Observation]:
    if not points:
        return []
    first = min(p.valid_time for p in points) - tolerance
    last = max(p.valid_time for p in points) + tolerance
    rows = session.execute(
        select(StateValue.timestamp, StateValue.value)
        .where(StateValue.twin_id == twin.id, StateValue.property == prop,
               StateValue.kind == StateKind.REPORTED.value, StateValue.timestamp >= first,
               StateValue.timestamp <= last)
        .order_by(StateValue.timestamp, StateValue.revision).limit(MAX_VALUES + 1)).all()
    if len(rows) > MAX_VALUES:
        raise ValidationFailed.one("since", f"more than {MAX_VALUES} observations in the window: narrow it")
    values = [(t, unpack(stored).value) for t, stored in rows]  # the value, not what it carries
    return [Observation(t, float(v)) for t, v in values
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
