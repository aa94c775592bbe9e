"""The backlog a request reads: how many observation times wait in the records since the last cycle, and
which leading records its cycles need, worked out on the Arrow columns. Only those records become Python
dicts: a request of 200 cycles over a backlog of thousands of records used to convert every one of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from twinengine.catalog.assimilation_spec import AssimilationSpec

__all__ = ["ticks_of", "usable", "window"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def usable(table: pa.Table) -> pa.Table:
    """The records not flagged bad by the stream's quality checks (an implausible reading never corrects a
    state)."""
    if "_quality" not in table.column_names:
        return table
    return table.filter(pc.invert(pc.fill_null(pc.equal(table["_quality"], "bad"), False)))


def ticks_of(when: datetime, unit: str) -> int:
    """``when`` as an Arrow timestamp of ``unit`` (floored: a record's time t is at or before ``when`` exactly
    when its integer is at or below this one)."""
    micros = (when - _EPOCH) // timedelta(microseconds=1)
    per = _PER_SECOND[unit]
    return micros * per // 1_000_000 if per >= 1_000_000 else micros // (1_000_000 // per)


def _observed(spec: AssimilationSpec, table: pa.Table) -> np.ndarray:
    """Per record: whether it carries a value of an observed field (a boolean field observes nothing)."""
    out = np.zeros(table.num_rows, dtype=bool)
    for name, obs in spec.observations.items():
        column = obs.field or name
        if column in table.column_names and not pa.types.is_boolean(table.schema.field(column).type):
            out |= np.asarray(pc.is_valid(table[column]).to_numpy(zero_copy_only=False), dtype=bool)
    return out


def window(spec: AssimilationSpec, table: pa.Table, time_field: str, after: datetime | None,
           cycles: int) -> tuple[int, int]:
    """(the observation times ``table`` holds after ``after``, as ``observations.pending_times`` counts them;
    how many leading records ``cycles`` cycles read). ``table``: records in offset order from where the last
    cycle stopped."""
    unit = table.schema.field(time_field).type.unit
    times = pc.cast(table[time_field], pa.int64()).to_numpy(zero_copy_only=False).tolist()
    observed = _observed(spec, table).tolist()
    last = None if after is None else ticks_of(after, unit)
    count, current, cut = 0, None, len(times)
    for i, when in enumerate(times):
        if current is not None and when != current:
            count, last, current = count + 1, current, None
            if count == cycles:
                cut = i + 1  # the record that ended the last cycle's time is read too (and left for the next)
        if last is not None and when <= last:
            continue
        if current is None and observed[i]:
            current = when
    return count + (current is not None), cut
