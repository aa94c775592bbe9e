"""Cycles planned before they run: what each needs from the stream (model steps with their forcing, the
observations it weighs and where), known from the records alone, so that many cycles go to the app's worker
in one call (``twinengine.twin_assimilation.worker_side.cycles``) and their analyses do not depend on how they were
grouped."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from twinengine.catalog.assimilation_spec import AssimilationSpec
from twinengine.errors import ValidationFailed
from twinengine.twin_assimilation.observations import ObservationTime

__all__ = ["MAX_STEPS", "Clock", "Observed", "Planned", "layout", "payload", "plan_cycle", "steps"]

MAX_STEPS = 100_000  # model steps between two observation times


@dataclass
class Clock:
    """Where planning stands: the last analysis time (later observations only), the stream offset read up to,
    the forcing carried on, and, before the first cycle, the first guess's time the model steps start from."""

    time: datetime | None
    offset: int
    forcing: dict[str, float] = field(default_factory=dict)
    steps_from: datetime | None = None


@dataclass
class Planned:
    """One cycle: its number, the stream it reads, its observation time, the forcing of each model step, the
    forcing carried on after it (kept in its record), and the observations it weighs, a list per field (a
    cycle of 40 observations made 40 dictionaries here and 80 more in its record): their names, stream
    offsets, values and error stds (NaN until the app's error function gives it), the augmented column each
    observes, its position (LETKF), and which take their std from an error function ([index, entrypoint,
    name]). The numeric columns are lists, or numpy arrays where the cycles were planned on the records'
    columns (``columns.Columns``)."""

    number: int
    stream: str
    when: ObservationTime
    steps: list[dict[str, float]]
    forcing: dict[str, float]
    names: list[str]
    offsets: list[int] | np.ndarray
    values: list[float] | np.ndarray
    stds: list[float] | np.ndarray
    columns: list[int] | np.ndarray
    positions: list[float] | np.ndarray
    errors: list[list[Any]]

    @property
    def observed(self) -> int:
        """How many observations the cycle weighs."""
        return len(self.names)


def steps(spec: AssimilationSpec, clock: Clock, when: ObservationTime) -> list[dict[str, float]]:
    """The forcing of each model step from the clock's time to the observation time: the latest value read at
    or before the step's end (a rain gauge reports the interval that ends at its reading). The first cycle's
    steps start at the first guess's time (none when its time is unknown)."""
    start = clock.steps_from or clock.time
    clock.steps_from = None
    if start is None:
        return []
    dt = spec.step.dt.total_seconds()
    count = round((when.time - start).total_seconds() / dt)
    if count > MAX_STEPS:
        raise ValidationFailed.one("assimilation.step.dt", f"{count} steps of {dt:g} s between "
                                                           f"{start.isoformat()} and {when.time.isoformat()}; "
                                                           f"at most {MAX_STEPS}")
    drive, out, k = dict(clock.forcing), [], 0
    for j in range(count):
        at = start.timestamp() + (j + 1) * dt  # a reading reports the interval that ends at it
        while k < len(when.forcing) and when.forcing[k][0].timestamp() <= at:
            drive.update(when.forcing[k][1])
            k += 1
        out.append(dict(drive))
    for _t, values in when.forcing[k:]:
        drive.update(values)
    clock.forcing = drive
    return out


@dataclass(frozen=True)
class Observed:
    """What planning needs of one declared observation, looked up once a request, not once a reading."""

    column: int
    position: float
    std: float | None  # a constant error
    record: bool  # the error is the record's own std
    entrypoint: str | None  # else an error function


def layout(spec: AssimilationSpec, coords: np.ndarray) -> dict[str, Observed]:
    """Each observation's augmented column (a state entry, or past them the operators' in order), position
    and error, as ``plan_cycle`` takes them."""
    operators = [name for name, o in spec.observations.items() if o.operator is not None]
    n = len(spec.state)
    out = {}
    for name, obs in spec.observations.items():
        column = spec.state.index(obs.observes) if obs.observes is not None else n + operators.index(name)
        position = obs.position if obs.position is not None else (float(coords[column]) if column < n else 0.0)
        out[name] = Observed(column, position, obs.error.std, bool(obs.error.record), obs.error.entrypoint)
    return out


def plan_cycle(spec: AssimilationSpec, clock: Clock, when: ObservationTime, number: int, stream: str,
               observed: dict[str, Observed]) -> Planned:
    """Cycle ``number`` on the observations of ``when`` (``observed``: the spec's ``layout``); moves ``clock``
    on past it."""
    made = steps(spec, clock, when)
    names: list[str] = []
    offsets: list[int] = []
    values: list[float] = []
    stds: list[float] = []
    columns: list[int] = []
    positions: list[float] = []
    errors: list[list[Any]] = []
    for reading in when.readings:
        obs = observed[reading.name]
        sd: float
        if obs.std is not None:
            sd = obs.std
        elif obs.record:
            if reading.std is None or reading.std <= 0:
                continue  # a record without its std cannot be weighed: left out, and said in the record
            sd = reading.std
        else:
            sd = math.nan
            errors.append([len(names), obs.entrypoint, reading.name])
        columns.append(obs.column)
        positions.append(obs.position)
        names.append(reading.name)
        offsets.append(reading.offset)
        values.append(reading.value)
        stds.append(sd)
    planned = Planned(number, stream, when, made, dict(clock.forcing), names, offsets, values, stds, columns,
                      positions, errors)
    clock.time, clock.offset = when.time, when.end
    return planned


def payload(planned: Planned) -> dict[str, Any]:
    """The cycle as the worker takes it (numpy arrays; NaN where an error function gives the std)."""
    return {"number": planned.number, "forcing": planned.steps,
            "columns": np.asarray(planned.columns, dtype=int), "values": np.asarray(planned.values, dtype=float),
            "sd": np.asarray(planned.stds, dtype=float), "positions": np.asarray(planned.positions, dtype=float),
            "errors": planned.errors}
