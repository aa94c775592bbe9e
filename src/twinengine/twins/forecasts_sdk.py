"""The forecasts part of the Python SDK, reached as ``client.verification``: record forecasts, list them, and
read their skill scores per lead time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from twinengine.timeutil import TimeLike, as_instant, iso_instant
from twinengine.transport import segment
from twinengine.twins.forecast_schemas import ForecastRead, ForecastWrite, ScoreHistoryRead, VerificationRead

if TYPE_CHECKING:
    from twinengine.transport import Transport
    from twinengine.twins.assimilation_skill_schemas import AssimilationSkillRead

__all__ = ["VerificationClient"]


def _duration(value: timedelta | str | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    return str(value)


class VerificationClient:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _path(self, twin: str, tail: str) -> str:
        return f"/api/v1/twins/{segment(twin)}/{tail}"

    def add_forecast(self, twin: str, prop: str, values: Sequence[float], *, issued_at: TimeLike,
                     step: timedelta | str | None = None, **parts: Any) -> ForecastRead:
        """Record a forecast: ``values[i]`` valid at ``issued_at + (i + 1) * step`` (or ``valid_times=``);
        ``members``, ``quantiles``, ``lower``/``upper``, ``probabilities``, ``model_version``... as keywords."""
        body = ForecastWrite.model_validate({"property": prop, "values": list(values),
                                             "issued_at": as_instant(issued_at, "issued_at"),
                                             "step": step, **parts})
        return self._transport.send(ForecastRead, "POST", self._path(twin, "forecasts"),
                                    body.model_dump(mode="json", exclude_none=True))

    def forecasts(self, twin: str, prop: str | None = None, *, limit: int = 20,
                  values: bool = False) -> list[ForecastRead]:
        data = self._transport.request("GET", self._path(twin, "forecasts"), params={
            k: v for k, v in {"property": prop, "limit": limit, "values": values}.items() if v is not None}).json()
        return TypeAdapter(list[ForecastRead]).validate_python(data)

    def scores(self, twin: str, prop: str, *, lead: timedelta | str | None = None, since: TimeLike | None = None,
               until: TimeLike | None = None, tolerance: timedelta | str | None = None,
               threshold: float | None = None, workflow: str | None = None, model_version: str | None = None,
               pairs: bool = False) -> VerificationRead:
        """Skill scores per (workflow, model version, lead) of the forecasts valid in ``[since, until)``."""
        return self._transport.get(VerificationRead, self._path(twin, "verification"), property=prop,
                                   lead=_duration(lead), since=iso_instant(since, "since"),
                                   until=iso_instant(until, "until"), tolerance=_duration(tolerance),
                                   threshold=threshold, workflow=workflow, model_version=model_version,
                                   pairs=pairs or None)

    def history(self, twin: str, prop: str, *, period: timedelta | str | None = None,
                lead: timedelta | str | None = None, since: TimeLike | None = None, until: TimeLike | None = None,
                workflow: str | None = None, model_version: str | None = None) -> ScoreHistoryRead:
        """The kept scores per period of valid time (default a day), forecasting system and lead, oldest
        first: how skill evolved."""
        return self._transport.get(ScoreHistoryRead, self._path(twin, "verification/history"), property=prop,
                                   period=_duration(period), lead=_duration(lead),
                                   since=iso_instant(since, "since"),
                                   until=iso_instant(until, "until"), workflow=workflow,
                                   model_version=model_version)

    def assimilation(self, twin: str, prop: str | None = None, *,
                     leads: Sequence[timedelta | str] | None = None, starts: int | None = None,
                     tolerance: timedelta | str | None = None, since: TimeLike | None = None) -> AssimilationSkillRead:
        """Skill per lead of forecasts of an observed quantity from the twin's analyses (valid from ``since``)
        and without assimilation (the open loop), with the filter's innovations against their expected spread."""
        from twinengine.twins.assimilation_skill_schemas import AssimilationSkillRead

        return self._transport.get(AssimilationSkillRead, self._path(twin, "verification/assimilation"),
                                   property=prop, lead=[_duration(x) for x in leads] if leads else None,
                                   starts=starts, tolerance=_duration(tolerance),
                                   since=iso_instant(since, "since"))
