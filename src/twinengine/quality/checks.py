"""The checks as pure functions over one batch of one source (arrays in offset order) and a small carried
state, returning the records that fail and the state for the next batch. Numbers are float64 with NaN for
null (a null is never judged); times are µs since the epoch.

Everything is vectorised with numpy: a batch costs a few array passes whatever its size. The remembering
checks also come in a segmented form (``*_segments``) for a batch of several sources sorted by source, each
source's rows one segment with its own carried state: the same passes judge all sources at once, and flag
exactly as the one-source functions would on each segment apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from twinengine.quality.expr import Expression

__all__ = ["FlatState", "GapState", "SpikeState", "consistency", "flatline", "flatline_segments", "gap",
           "gap_segments", "late", "range_", "spike", "spike_segments"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
_NO_TIME = np.iinfo(np.int64).min
_INT_MAX = np.iinfo(np.int64).max
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


def _segments(values: Floats, times: Ints, bounds: Ints) -> tuple[Mask | None, Floats, Ints, Ints, Ints, Ints]:
    """The non-null readings (as ``_valid``) with the segments that have any: their numbers, and where each
    begins and ends (its last reading) among those readings."""
    valid, v, t = _valid(values, times)
    if valid is not None:
        kept = np.zeros(values.size + 1, dtype=np.int64)
        np.cumsum(valid, out=kept[1:])
        bounds = kept[bounds]
    filled = (bounds[1:] > bounds[:-1]).nonzero()[0]  # the others have nothing to judge and keep their state
    return valid, v, t, filled, bounds[filled], bounds[filled + 1] - 1


def _previous(first: npt.NDArray[G], values: npt.NDArray[G], starts: Ints) -> npt.NDArray[G]:
    """The value before each one in its segment; before a segment's first one (at ``starts``), that segment's
    carried ``first``."""
    out = np.empty_like(values)
    out[1:] = values[:-1]
    out[starts] = first
    return out


def _unsorted(valid: Mask | None, flagged: Mask) -> Mask:
    """Flags of the non-null readings spread back over all readings (nulls are never flagged)."""
    if valid is None:
        return flagged
    out = np.zeros(valid.shape, dtype=bool)
    out[valid] = flagged
    return out


def spike_segments(values: Floats, times: Ints, bounds: Ints, states: Sequence[SpikeState], max_change: float,
                   per_us: float | None) -> tuple[Mask, list[SpikeState]]:
    """``spike`` on each segment ``bounds[s]:bounds[s + 1]`` with its carried ``states[s]``, in one set of
    passes: a reading's predecessor is the one before it in its segment, or the segment's carried one."""
    valid, v, t, filled, starts, lasts = _segments(values, times, bounds)
    new = list(states)
    if filled.size == 0:
        return np.zeros(values.shape, dtype=bool), new
    carried = [states[s] for s in filled.tolist()]
    v1 = np.array([c.v1 for c in carried], dtype=np.float64)
    t1 = np.array([c.t1 for c in carried], dtype=np.int64)
    before_v, before_t = _previous(v1, v, starts), _previous(t1, t, starts)
    with np.errstate(invalid="ignore"):
        change = np.subtract(v, before_v)
        np.abs(change, out=change)
        if per_us is None:
            jump = change > max_change
        else:
            elapsed = np.subtract(t, before_t).astype(np.float64)
            jump = elapsed > 0
            jump[starts[t1 == _NO_TIME]] = False
            np.multiply(elapsed, max_change / per_us, out=elapsed)
            jump &= change > elapsed
    # a return is only looked for right after a jump in the same segment (its reading two before is the
    # one before the jump), or first in a segment after a carried jump (then two before is the carried v2)
    inside = jump.copy()
    inside[lasts] = False
    after = inside.nonzero()[0]
    two_v, two_t = before_v[after], before_t[after]
    after += 1
    jumped = [k for k, c in enumerate(carried) if c.jumped]
    if jumped:
        after = np.concatenate((starts[jumped], after))
        two_v = np.concatenate(([carried[k].v2 for k in jumped], two_v))
        two_t = np.concatenate((np.array([carried[k].t2 for k in jumped], dtype=np.int64), two_t))
    flagged = jump
    if after.size:
        with np.errstate(invalid="ignore"):
            back = np.abs(v[after] - two_v) <= _allowed(max_change, per_us, t[after], two_t)
        flagged = jump.copy()
        flagged[after[back]] = False
    last_v, last_t, last_jump = v[lasts].tolist(), t[lasts].tolist(), jump[lasts].tolist()
    prev_v, prev_t, alone = before_v[lasts].tolist(), before_t[lasts].tolist(), (lasts == starts).tolist()
    for k, s in enumerate(filled.tolist()):
        c = carried[k]  # after a single reading, the carried ones move back as they are
        new[s] = SpikeState(last_v[k], last_t[k], c.v1 if alone[k] else prev_v[k], c.t1 if alone[k] else prev_t[k],
                            last_jump[k])
    return _unsorted(valid, flagged), new


def flatline_segments(values: Floats, times: Ints, bounds: Ints, states: Sequence[FlatState], *,
                      records: int | None, duration_us: int | None,
                      tolerance: float = 0.0) -> tuple[Mask, list[FlatState]]:
    """``flatline`` on each segment ``bounds[s]:bounds[s + 1]`` with its carried ``states[s]``, in one set of
    passes. The running maximum of run starts must not cross segments: a segment's first reading is given
    its own index as start when it begins a run, and the index before it when it repeats the carried value;
    both exceed every start before them. The latter marks the run carried in, whose readings' lengths then
    add the carried run; as the starts never decrease, where each such run ends is a binary search."""
    valid, v, t, filled, starts, lasts = _segments(values, times, bounds)
    new = list(states)
    if filled.size == 0:
        return np.zeros(values.shape, dtype=bool), new
    carried = [states[s] for s in filled.tolist()]
    value = np.array([c.value for c in carried], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        steps = np.subtract(v, _previous(value, v, starts))
        same = np.abs(steps, out=steps) <= tolerance
    index = np.arange(v.size)
    start = np.where(same, -1, index)
    start[starts] = np.where(same[starts], starts - 1, starts)
    np.maximum.accumulate(start, out=start)
    length = index - start
    length += 1
    # the readings in the runs carried in: each segment's first ones, up to its first that begins a run
    ends = np.searchsorted(start, starts)
    counts = ends - starts
    of = np.repeat(np.arange(starts.size), counts)  # their segments
    in_carried = np.arange(of.size) + (starts - (np.cumsum(counts) - counts))[of]
    run = np.array([c.run for c in carried], dtype=np.int64)
    length[in_carried] += run[of] - 1
    flat = np.zeros(v.size, dtype=bool) if records is None else length >= records
    if duration_us is not None:
        began = t[np.maximum(start, 0)]
        began[in_carried] = np.array([c.since for c in carried], dtype=np.int64)[of]
        flat |= (began != _NO_TIME) & (length > 1) & (t - began >= duration_us)
    last_v, last_length, last_start = v[lasts].tolist(), length[lasts].tolist(), start[lasts].tolist()
    for k, (s, first) in enumerate(zip(filled.tolist(), starts.tolist(), strict=True)):
        # a segment that only continued its carried run keeps when that began
        began_last = carried[k].since if last_start[k] < first else int(t[last_start[k]])
        new[s] = FlatState(last_v[k], last_length[k], began_last)
    return _unsorted(valid, flat), new


def gap_segments(times: Ints, bounds: Ints, states: Sequence[GapState], *, every_us: int,
                 tolerance_us: int) -> tuple[Mask, list[GapState]] | None:
    """``gap`` on each segment ``bounds[s]:bounds[s + 1]`` with its carried ``states[s]``, in one set of
    passes: each segment is shifted into a range of its own above the previous segments' ones, so one
    running maximum is each segment's own. None where the shifted times would not fit in int64 (judge each
    segment apart then)."""
    sizes = bounds[1:] - bounds[:-1]
    filled = sizes.nonzero()[0]
    new = list(states)
    if filled.size == 0:
        return np.zeros(times.shape, dtype=bool), new
    latest = np.array([states[s].latest for s in filled.tolist()], dtype=np.int64)
    starts = bounds[filled]
    # a segment's range: its times, and the carried latest (no time is the least int64: never the highest)
    high = np.maximum(np.maximum.reduceat(times, starts), latest)
    shifts, above = [], 0  # above: the first value free above the segments shifted so far
    for low, last in zip(np.minimum.reduceat(times, starts).tolist(), high.tolist(), strict=True):
        shifts.append(above - low)
        above += last - low + 1
    if above - 1 > _INT_MAX or min(shifts) < _NO_TIME or max(shifts) > _INT_MAX:
        return None
    shift = np.array(shifts, dtype=np.int64)
    shifted = times + np.repeat(shift, sizes[filled])
    # a segment's first reading stands in for the carried latest too, when that is later
    shifted[starts] = np.maximum(times[starts], latest) + shift
    running = np.maximum.accumulate(shifted)
    out = np.empty(times.size, dtype=bool)
    np.greater(shifted[1:] - running[:-1], every_us + tolerance_us, out=out[1:])
    out[starts] = (latest != _NO_TIME) & (times[starts] - latest > every_us + tolerance_us)
    for s, last in zip(filled.tolist(), high.tolist(), strict=True):
        new[s] = GapState(last)
    return out, new


def late(times: Ints, arrival_us: int, max_delay_us: int) -> Mask:
    """Records that arrived more than ``max_delay_us`` after their event time."""
    return arrival_us - times > max_delay_us


def consistency(expression: Expression, columns: dict[str, Floats], size: int) -> Mask:
    """Records where the condition is known (no field it reads is null) and does not hold."""
    return expression.false_where(columns, size)
