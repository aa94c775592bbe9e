"""From a twin's stream records to the observation times of assimilation cycles (plain functions).

Records are taken in offset (arrival) order from where the last cycle stopped. A cycle's observation time is
the event time of the first record that carries an observed field; every following record of that same
time joins it. Records before it only bring forcing (rain). Records older than the last analysis are late:
they are passed over (an analysis is never revised backwards).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from twinengine.catalog.assimilation_spec import AssimilationSpec
from twinengine.catalog.manifest import UNCERTAINTY_FIELD

__all__ = ["Forcing", "ObservationTime", "Reading", "next_time", "pending_times"]


class Reading(NamedTuple):
    """One observed value: the observation's name, its value, the record's own std (if any), its offset. A
    named tuple, not a frozen dataclass: a cycle of a 40-variable state makes 40 of them, and a frozen
    dataclass's construction was most of the time spent finding a cycle's observations."""

    name: str
    value: float
    std: float | None
    offset: int


@dataclass
class ObservationTime:
    """The records of one cycle: its observations, the forcing records before them, where reading stops."""

    time: datetime
    readings: list[Reading]
    forcing: list[tuple[datetime, dict[str, float]]] = field(default_factory=list)
    first: int = 0
    end: int = 0  # offset after the last record taken
    late: int = 0  # records older than the last analysis, passed over


Forcing = dict[str, float]


def _observed(spec: AssimilationSpec) -> list[tuple[str, str]]:
    """(observation, the record field that carries it), in the manifest's order."""
    return [(name, obs.field or name) for name, obs in spec.observations.items()]


def _readings(observed: list[tuple[str, str]], record: dict[str, Any]) -> list[Reading]:
    found = []
    carried = record.get(UNCERTAINTY_FIELD) or {}
    offset = int(record["_offset"])
    for name, key in observed:
        value = record.get(key)
        if value is None or isinstance(value, bool):
            continue
        forms = carried.get(key) if carried else None
        std = forms.get("std") if forms else None
        found.append(Reading(name, float(value), float(std) if std is not None else None, offset))
    return found


def _forcing(spec: AssimilationSpec, record: dict[str, Any]) -> dict[str, float]:
    return {name: float(record[f]) for name, f in spec.step.forcing.items()
            if record.get(f) is not None and not isinstance(record.get(f), bool)}


def next_time(spec: AssimilationSpec, records: list[dict[str, Any]], time_field: str, after: datetime | None,
              start: int) -> ObservationTime | None:
    """The next observation time in ``records`` (offset order, from offset ``start``), or None when they hold
    no observation after ``after``."""
    found: ObservationTime | None = None
    forcing: list[tuple[datetime, dict[str, float]]] = []
    late = 0
    end = start
    observed = _observed(spec)
    for record in records[bisect.bisect_left(records, start, key=lambda r: int(r["_offset"])):]:
        offset = int(record["_offset"])
        when: datetime = record[time_field]
        if found is not None and when != found.time:
            break
        end = offset + 1
        if after is not None and when <= after:
            late += 1
            continue
        drive = _forcing(spec, record)
        if drive:
            forcing.append((when, drive))
        readings = _readings(observed, record)
        if readings:
            if found is None:
                found = ObservationTime(when, [], first=start)
            found.readings += readings
    if found is None:
        return None
    found.forcing, found.end, found.late = forcing, end, late
    return found


def _observes(spec: AssimilationSpec, record: dict[str, Any]) -> bool:
    for name, obs in spec.observations.items():
        value = record.get(obs.field or name)
        if value is not None and not isinstance(value, bool):
            return True
    return False


def pending_times(spec: AssimilationSpec, records: list[dict[str, Any]], time_field: str,
                  after: datetime | None, start: int) -> int:
    """How many observation times ``next_time`` would still find, in one pass over the records (a request
    counts them over every record it read, not over the cycles it runs)."""
    count, current = 0, None  # current: the time of the observation time being read
    for record in records[bisect.bisect_left(records, start, key=lambda r: int(r["_offset"])):]:
        when: datetime = record[time_field]
        if current is not None and when != current:
            count, after, current = count + 1, current, None
        if after is not None and when <= after:
            continue
        if current is None and _observes(spec, record):
            current = when
    return count + (current is not None)
