"""The ``save_forecast`` engine process: a workflow records a forecast of one of its twin's properties, so the
engine can verify it once the observations arrive (``twins.forecasts``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import ValidationError

from twinengine.errors import ProcessParameterInvalid, ValidationFailed
from twinengine.workflows.context import current

__all__ = ["FORECAST_SPECS", "forecast_body", "record", "save_forecast", "time_label"]

_MEMBER_DIMS = ("member", "members", "realization", "ensemble", "number")


def _time_of(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    moment: datetime = (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)).to_pydatetime()
    return moment


def _series(data: Any) -> tuple[list[float], list[list[float]] | None, list[datetime] | None]:
    """(values, members, valid times): a cube with a time dimension gives its times; a member dimension
    (or a list of lists) gives an ensemble, whose mean is the value."""
    times = None
    if isinstance(data, xr.DataArray):
        (data,) = current().compute(data)
        dims = [d for d in data.dims if data.sizes[d] > 1 or d in ("t", "time")]
        time_dim = next((d for d in data.dims if d in ("t", "time")), None)
        if time_dim is not None:
            times = [_time_of(t) for t in data[time_dim].values]
        member = next((d for d in data.dims if d in _MEMBER_DIMS), None)
        if member is not None and time_dim is not None:
            data = data.transpose(time_dim, member).values
        elif len(dims) > 1:
            raise ProcessParameterInvalid(f"save_forecast: data has dimensions {list(data.dims)}; reduce it to "
                                          "time (and member)")
        else:
            data = data.values.ravel()
    array = np.asarray(data, dtype="float64")
    if array.ndim == 2:
        return array.mean(axis=1).tolist(), array.tolist(), times
    if array.ndim != 1:
        raise ProcessParameterInvalid(f"save_forecast: data of shape {array.shape} is not a series")
    return array.tolist(), None, times


def forecast_body(data: Any, property: str, step: str = "PT1H", issued_at: str | None = None, like: Any = None,
                  model: str | None = None, model_version: str | None = None, twin: str | None = None,
                  interval: float | None = None, interval_level: float = 0.9) -> dict[str, Any]:
    """What ``save_forecast`` records, as a ``ForecastWrite`` body (its ``twin`` kept apart): an ensemble's
    members hand theirs to the ensemble, which records one forecast with every member."""
    values, members, times = _series(data)
    if issued_at is None and isinstance(like, xr.DataArray):
        axis = next((d for d in like.dims if d in ("t", "time")), None)
        if axis is not None and like.sizes[axis]:
            issued_at = _time_of(like[axis].values[0]).isoformat()
    body: dict[str, Any] = {"property": property, "values": values, "members": members, "step": step,
                            "issued_at": issued_at or datetime.now(UTC).isoformat(), "run_id": current().run_id,
                            "model": model, "model_version": model_version, "twin": twin}
    if times is not None:
        body["valid_times"] = [t.isoformat() for t in times]
    if interval is not None:
        body.update(lower=[v - float(interval) for v in values], upper=[v + float(interval) for v in values],
                    interval_level=interval_level)
    return body


def save_forecast(data: Any, property: str, step: str = "PT1H", issued_at: str | None = None, like: Any = None,
                  model: str | None = None, model_version: str | None = None, twin: str | None = None,
                  interval: float | None = None, interval_level: float = 0.9) -> str:
    """Record ``data`` as a forecast of ``property`` of the run's twin (or ``twin``); returns its id.

    Value i is valid at ``issued_at + (i + 1) * step``; ``issued_at`` defaults to the first time of ``like``
    (the cube the forecast was driven by; ``time_label`` of it is the cached way), then to now. A cube with a
    time dimension gives its own times.
    ``interval``: half-width of a prediction interval at ``interval_level`` (e.g. a model's conformal one)."""
    ctx = current()
    if (twin or ctx.twin) is None or ctx.db is None:
        raise ProcessParameterInvalid("save_forecast: this run has no twin (or no store); pass twin")
    body = forecast_body(data, property, step, issued_at, like, model, model_version, twin, interval, interval_level)
    forecast_id = record(body, ctx.run_id)
    ctx.log("info", f"save_forecast: {len(body['values'])} values of {property} as forecast {forecast_id}")
    return forecast_id


def record(body: dict[str, Any], run_id: str) -> str:
    """Record a forecast body (``forecast_body``) for its twin (default: the run's), as run ``run_id`` of its
    workflow; a malformed one is a ProcessParameterInvalid naming the field."""
    from twinengine.twins import forecasts
    from twinengine.twins import service as twins
    from twinengine.twins.forecast_schemas import ForecastWrite
    from twinengine.workflows.models import WorkflowRun

    ctx = current()
    ref = body.get("twin") or ctx.twin
    if ref is None or ctx.db is None:
        raise ProcessParameterInvalid("save_forecast: this run has no twin (or no store); pass twin")
    try:
        write = ForecastWrite.model_validate({k: v for k, v in body.items() if k != "twin"} | {"run_id": run_id})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ProcessParameterInvalid(f"save_forecast: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    with ctx.db.session() as session:
        row = twins.get_twin(session, principal=ctx.principal, ref=ref, action="twin.operate")
        run = session.get(WorkflowRun, run_id)
        write.workflow = run.workflow if run is not None else None
        try:
            forecast = forecasts.record_forecast(session, row, write)
        except ValidationFailed as exc:
            raise ProcessParameterInvalid(f"save_forecast: {exc}") from None
        return forecast.id


def time_label(data: Any, index: int = 0, dimension: str | None = None) -> str:
    """The label of a cube's time dimension at ``index`` as ISO 8601 text: small and JSON, so it is cached
    and a rerun that needs only it does not load the cube again."""
    if not isinstance(data, xr.DataArray):
        raise ProcessParameterInvalid("time_label: data is not a cube")
    axis = dimension or next((d for d in data.dims if d in ("t", "time")), None)
    if axis is None or axis not in data.dims:
        raise ProcessParameterInvalid(f"time_label: the cube has no time dimension {dimension or 't'!r} "
                                      f"(it has {list(data.dims)})")
    labels = data[axis].values
    if not -len(labels) <= index < len(labels):
        raise ProcessParameterInvalid(f"time_label: index {index} is outside the {len(labels)} labels")
    return _time_of(labels[index]).isoformat()


def _spec(pid: str, summary: str, params: list[tuple[str, Any, bool, str]], returns: Any) -> dict[str, Any]:
    return {"id": pid, "summary": summary, "description": summary, "categories": ["engine"],
            "parameters": [{"name": n, "schema": s, "optional": opt, "description": d} | ({"default": None}
                           if opt else {}) for n, s, opt, d in params],
            "returns": {"description": summary, "schema": returns}}


_TEXT = [{"type": "string"}, {"type": "null"}]
FORECAST_SPECS: list[tuple[dict[str, Any], Any, bool]] = [
    (_spec("time_label", "The label of a cube's time dimension at an index, as ISO 8601 text",
           [("data", {"type": "object", "subtype": "datacube"}, False, "A cube with a time dimension"),
            ("index", {"type": "integer"}, True, "Position (default 0, the first; -1 the last)"),
            ("dimension", _TEXT, True, "Default: t or time")],
           {"type": "string", "format": "date-time"}), time_label, True),
    (_spec("save_forecast", "Record a forecast of a twin's property so the engine verifies it against observations",
           [("data", {}, False, "Values per step (array, array of member arrays, or a cube over time)"),
            ("property", {"type": "string"}, False, "The forecast state property"),
            ("step", {"type": "string"}, True, "Spacing of the values (ISO 8601 or 1h)"),
            ("issued_at", _TEXT, True, "Reference time (default: first time of like, else now)"),
            ("like", {}, True, "The cube whose first time is the reference time"),
            ("model", _TEXT, True, "Model that made the forecast"),
            ("model_version", _TEXT, True, "Its version"),
            ("twin", _TEXT, True, "Default: the run's twin"),
            ("interval", [{"type": "number"}, {"type": "null"}], True, "Half-width of a prediction interval"),
            ("interval_level", {"type": "number"}, True, "Its nominal level (default 0.9)")],
           {"type": "string"}), save_forecast, False),
]
