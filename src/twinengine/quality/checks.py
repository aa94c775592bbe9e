"""The checks as pure functions over one batch of one source (arrays in offset order) and a small carried
state, returning the records that fail and the state for the next batch. Numbers are float64 with NaN for
null (a null is never judged); times are µs since the epoch.

Everything is vectorised with numpy: a batch costs a few array passes whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from twinengine.quality.expr import Comparison

__all__ = ["FlatState", "GapState", "SpikeState", "consistency", "flatline", "gap", "late", "range_", "spike"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
_NO_TIME = np.iinfo(np.int64).min
G = TypeVar("G", bound=np.generic)


def range_(values: Floats, low: float | None, high: float | None) -> Mask:
    """Values below ``low`` or above ``high``."""
    with np.errstate(invalid="ignore"):
        bad = np.zeros(values.shape, dtype=bool)
        if low is not None:
            bad |= values < low
        if high is not None:
            bad |= values > high
    return bad


@dataclass(frozen=True)
class SpikeState:
    """The last two valid values and times, and whether the last one was a jump."""

    v1: float = np.nan
    t1: int = _NO_TIME
    v2: float = np.nan
    t2: int = _NO_TIME
    jumped: bool = False


def _allowed(max_change: float, per_us: float | None, now: Ints, then: Ints) -> Floats | float:
    if per_us is None:
        return max_change
    elapsed = (now - then).astype(np.float64)
    elapsed[then == _NO_TIME] = np.inf  # no earlier reading: nothing to judge against
    # a reading at the same time or older than the one before it (a late record) has no rate to judge
    elapsed[elapsed <= 0] = np.inf
    return elapsed * (max_change / per_us)


def _valid(values: Floats, times: Ints) -> tuple[Mask | None, Floats, Ints]:
    """The non-null readings (no copy when there is no null, the usual case)."""
    nulls = np.isnan(values)
    if not nulls.any():
        return None, values, times
    valid = ~nulls
    return valid, values[valid], times[valid]


def _steps(first: Any, values: npt.NDArray[G]) -> npt.NDArray[G]:
    """Each value minus the one before it, the first one minus the carried ``first`` (no shifted copy)."""
    out = np.empty_like(values)
    np.subtract(values[:1], first, out=out[:1])
    np.subtract(values[1:], values[:-1], out=out[1:])
    return out


def spike(values: Floats, times: Ints, state: SpikeState, max_change: float,
          per_us: float | None) -> tuple[Mask, SpikeState]:
    """A change from the previous valid value above ``max_change`` (per record, or per ``per_us`` of event
    time; then readings not after the previous one are not judged). A jump followed by a return within the
    limit of the value before it is a one-record spike: the jump is flagged, the return is not; a step
    change flags only its first record.

    The jumps take one pass over the batch; returns are only looked for right after a jump (few rows), and
    judged exactly as a whole-batch pass would judge them."""
    valid, v, t = _valid(values, times)
    if v.size == 0:
        return np.zeros(values.shape, dtype=bool), state
    with np.errstate(invalid="ignore"):
        change = _steps(state.v1, v)
        np.abs(change, out=change)
        if per_us is None:
            jump = change > max_change
        else:
            # the limit of ``_allowed``; where it is infinite (no earlier reading, or not later than it) no
            # change exceeds it, so those readings are not jumps
            elapsed = _steps(state.t1, t).astype(np.float64)
            jump = elapsed > 0
            if state.t1 == _NO_TIME:
                jump[0] = False
            np.multiply(elapsed, max_change / per_us, out=elapsed)
            jump &= change > elapsed
    after = np.flatnonzero(jump[:-1])  # only a reading after a jump can be a return
    after += 1
    if state.jumped:
        after = np.concatenate(([0], after))
    flagged = jump
    if after.size:
        # the two readings before each candidate, the carried ones in front of the batch
        v2 = np.concatenate(([state.v2, state.v1], v))[after]
        t2 = np.concatenate(([state.t2, state.t1], t))[after]
        with np.errstate(invalid="ignore"):
            back = np.abs(v[after] - v2) <= _allowed(max_change, per_us, t[after], t2)
        flagged = jump.copy()
        flagged[after[back]] = False
    if v.size >= 2:
        new = SpikeState(float(v[-1]), int(t[-1]), float(v[-2]), int(t[-2]), bool(jump[-1]))
    else:
        new = SpikeState(float(v[-1]), int(t[-1]), state.v1, state.t1, bool(jump[-1]))
    if valid is None:
        return flagged, new
    out = np.zeros(values.shape, dtype=bool)
    out[valid] = flagged
    return out, new


@dataclass(frozen=True)
class FlatState:
    """The last valid value, how many readings in a row had it, and when that run began."""

    value: float = np.nan
    run: int = 0
    since: int = _NO_TIME


def flatline(values: Floats, times: Ints, state: FlatState, *, records: int | None, duration_us: int | None,
             tolerance: float = 0.0) -> tuple[Mask, FlatState]:
    """Readings that repeat the previous one (within ``tolerance``) for the ``records``-th time in a row or
    later, or whose run of repeats has lasted ``duration_us`` of event time.

    Each reading's run starts at the latest reading that differs from its predecessor (a running maximum);
    the run carried in from the last batch is given the start ``-state.run``, so one subtraction gives
    every run's length."""
    valid, v, t = _valid(values, times)
    if v.size == 0:
        return np.zeros(values.shape, dtype=bool), state
    with np.errstate(invalid="ignore"):
        steps = _steps(state.value, v)
        same = np.abs(steps, out=steps) <= tolerance
    index = np.arange(v.size)
    start = np.where(same, -state.run, index)
    np.maximum.accumulate(start, out=start)
    length = index - start
    length += 1
    carried = v.size if same.all() else int(np.argmin(same))  # readings in the run carried in
    flat = np.zeros(v.size, dtype=bool) if records is None else length >= records
    if duration_us is not None:
        began = t[np.maximum(start, 0)]
        began[:carried] = state.since
        flat |= (began != _NO_TIME) & (length > 1) & (t - began >= duration_us)
    since = state.since if carried == v.size else int(t[start[-1]])
    new = FlatState(float(v[-1]), int(length[-1]), since)
    if valid is None:
        return flat, new
    out = np.zeros(values.shape, dtype=bool)
    out[valid] = flat
    return out, new


@dataclass(frozen=True)
class GapState:
    """The latest event time seen."""

    latest: int = _NO_TIME


def gap(times: Ints, state: GapState, *, every_us: int, tolerance_us: int) -> tuple[Mask, GapState]:
    """Records whose event time is more than ``every + tolerance`` after the latest one before them (late,
    out-of-order records are not gaps)."""
    if times.size == 0:
        return np.zeros(0, dtype=bool), state
    latest = np.maximum.accumulate(np.concatenate(([state.latest], times)))
    before = latest[:-1]
    out = (before != _NO_TIME) & (times - before > every_us + tolerance_us)
    return out, GapState(int(latest[-1]))


def late(times: Ints, arrival_us: int, max_delay_us: int) -> Mask:
    """Records that arrived more than ``max_delay_us`` after their event time."""
    return arrival_us - times > max_delay_us


def consistency(comparison: Comparison, columns: dict[str, Floats], size: int) -> Mask:
    """Records where the comparison chain does not hold."""
    return comparison.fails(columns, size)
