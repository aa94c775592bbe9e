"""Cycles planned on the records' Arrow columns: the observation times ``observations.next_time`` finds and
the cycles ``plan.plan_cycle`` makes, from numpy arrays instead of a dict per record and a tuple per reading.

A Lorenz-96 request of 1,000 cycles read 1,000 records of 40 observed fields: as dicts and named tuples that
was 40,000 small objects, and the garbage collector's passes over them (and over everything else the engine
holds) cost more than the planning itself. Here a cycle's observations are one slice of a (records, fields)
matrix. Used where every observed and forcing field is a number column and no observation takes each
record's own std (``error: record``); otherwise the records are planned as dicts (the same cycles: a test
holds the two equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from twinengine.catalog.assimilation_spec import AssimilationSpec
from twinengine.twin_assimilation.backlog import ticks_of
from twinengine.twin_assimilation.observations import ObservationTime
from twinengine.twin_assimilation.plan import Clock, Observed, Planned, steps

__all__ = ["Columns", "columnar"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _numeric(table: pa.Table, column: str) -> bool:
    kind = table.schema.field(column).type
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind))


def columnar(spec: AssimilationSpec, table: pa.Table) -> bool:
    """Whether the cycles on ``table`` can be planned on its columns."""
    if any(o.error.record for o in spec.observations.values()):
        return False
    fields = [o.field or name for name, o in spec.observations.items()] + list(spec.step.forcing.values())
    return all(f not in table.column_names or _numeric(table, f) for f in fields)


def _matrix(table: pa.Table, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Values (rows, columns) as floats (NaN where null) and where they are given; a column the table lacks
    gives nothing."""
    values = np.full((table.num_rows, len(columns)), np.nan)
    valid = np.zeros((table.num_rows, len(columns)), dtype=bool)
    for j, name in enumerate(columns):
        if name in table.column_names and not pa.types.is_null(table.schema.field(name).type):
            column = table[name]
            valid[:, j] = np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), dtype=bool)
            values[:, j] = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    values[~valid] = np.nan
    return values, valid


@dataclass
class Columns:
    """The records a request reads, as columns (offset order): offsets, event times (as Arrow's integers and
    as datetimes), each observed field's values and validity, each forcing field's."""

    offsets: np.ndarray
    ticks: np.ndarray
    unit: str
    names: list[str]  # the observations, in the manifest's order (a column of ``values`` each)
    values: np.ndarray
    valid: np.ndarray
    observes: np.ndarray  # per record: whether it carries any observed value
    forcing_names: list[str]
    forcing: np.ndarray
    forced: np.ndarray
    forces: np.ndarray  # per record: whether it carries any forcing value
    _by_field: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, spec: AssimilationSpec, table: pa.Table, time_field: str) -> Columns:
        names = list(spec.observations)
        values, valid = _matrix(table, [spec.observations[n].field or n for n in names])
        forcing, forced = _matrix(table, list(spec.step.forcing.values()))
        return cls(
            np.asarray(table["_offset"].to_numpy(zero_copy_only=False), dtype=np.int64),
            np.asarray(pc.cast(table[time_field], pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64),
            table.schema.field(time_field).type.unit,
            names,
            values,
            valid,
            np.asarray(valid.any(axis=1)),
            list(spec.step.forcing),
            forcing,
            forced,
            np.asarray(forced.any(axis=1)),
        )

    def time(self, row: int) -> datetime:
        """The event time of record ``row`` (as ``to_pylist`` gives it: UTC, to the microsecond)."""
        tick = int(self.ticks[row])
        micros = tick * _MICROS[self.unit] if self.unit != "ns" else tick // 1000
        return _EPOCH + timedelta(microseconds=micros)

    def next_time(self, after: datetime | None, start: int) -> tuple[ObservationTime, int, int] | None:
        """The next observation time from offset ``start`` after ``after`` (``observations.next_time``'s), with
        the rows of its observations [first, end); its ``readings`` are left empty (``plan`` reads the rows)."""
        begin = int(np.searchsorted(self.offsets, start))
        limit = None if after is None else ticks_of(after, self.unit)
        candidates = np.flatnonzero(self.observes[begin:]) + begin
        found = -1
        for i in candidates.tolist():
            if limit is None or self.ticks[i] > limit:
                found = i
                break
        if found < 0:
            return None
        tick, end = self.ticks[found], found + 1
        while end < len(self.ticks) and self.ticks[end] == tick:
            end += 1
        passed = self.ticks[begin:found]
        late = 0 if limit is None else int(np.count_nonzero(passed <= limit))
        forcing: list[tuple[datetime, dict[str, float]]] = []
        if self.forcing_names:
            for i in (np.flatnonzero(self.forces[begin:end]) + begin).tolist():
                if limit is None or self.ticks[i] > limit:
                    forcing.append(
                        (
                            self.time(i),
                            {
                                n: float(self.forcing[i, j])
                                for j, n in enumerate(self.forcing_names)
                                if self.forced[i, j]
                            },
                        )
                    )
        when = ObservationTime(
            self.time(found), [], forcing, first=start, end=int(self.offsets[end - 1]) + 1, late=late
        )
        return when, found, end

    def _layout(self, observed: dict[str, Observed]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str]]:
        """Per observation (a column of ``values``): its augmented column, position and constant std (NaN where
        an error function gives it), and those functions by column; worked out once a request."""
        if self._by_field is None or self._by_field[0] is not observed:
            layout = [observed[n] for n in self.names]
            self._by_field = (
                observed,
                np.asarray([o.column for o in layout], dtype=np.int64),
                np.asarray([o.position for o in layout], dtype=float),
                np.asarray([math.nan if o.std is None else o.std for o in layout], dtype=float),
                {j: str(o.entrypoint) for j, o in enumerate(layout) if o.std is None},
            )
        return self._by_field[1:]

    def plan(
        self, spec: AssimilationSpec, clock: Clock, number: int, stream: str, observed: dict[str, Observed]
    ) -> Planned | None:
        """The next cycle, numbered ``number`` (``plan.plan_cycle``'s), or None when the records hold no more;
        moves ``clock`` on past it."""
        got = self.next_time(clock.time, clock.offset)
        if got is None:
            return None
        when, first, end = got
        made = steps(spec, clock, when)
        rows, fields = np.nonzero(self.valid[first:end])  # row by row, each row's fields in the manifest's order
        column, position, std, computed = self._layout(observed)
        picked = fields.tolist()
        errors = [[k, computed[j], self.names[j]] for k, j in enumerate(picked) if j in computed] if computed else []
        planned = Planned(
            number,
            stream,
            when,
            made,
            dict(clock.forcing),
            [self.names[j] for j in picked],
            self.offsets[first + rows],
            self.values[first:end][rows, fields],
            std[fields],
            column[fields],
            position[fields],
            errors,
        )
        clock.time, clock.offset = when.time, when.end
        return planned
