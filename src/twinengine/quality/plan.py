"""A stream's declared checks compiled into one pass over an Arrow batch: every record gets a flag
(``_quality``: 0 good, 1 suspect, 2 bad) and the names of the checks it failed (``_checks``, comma
separated; null when good). State carried between batches is kept per source (the stream's ``key``), so
two stations interleaved in one stream never judge each other's readings; so is the previous record that
expressions read as ``prev.<field>``, and a check's ``when`` drops its failures where the condition is false.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from twinengine.quality import checks
from twinengine.quality.spec import (
    FLAGS,
    Check,
    CompletenessCheck,
    ConsistencyCheck,
    FlatlineCheck,
    GapCheck,
    RangeCheck,
    SpikeCheck,
)

__all__ = ["CHECKS", "QUALITY", "CarriedState", "Flagged", "QualityPlan", "flag_names"]

QUALITY = "_quality"
CHECKS = "_checks"
_US = 1_000_000
_SEVERITY = {"suspect": 1, "bad": 2}
_PREVIOUS = -1  # a source's carried state: the previous record's fields that expressions read (checks are 0, 1, ...)


def flag_names(codes: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Flag codes (int8) as their names."""
    return pc.take(_flag_name_array(), codes)


@cache
def _flag_name_array() -> pa.Array:
    """Made on first use: building any Arrow array imports pandas (pyarrow looks for its types), which the
    engine's first answer does not need."""
    return pa.array([f.value for f in FLAGS], type=pa.string())


@dataclass
class CarriedState:
    """What the checks remember between batches, per source and check."""

    per_source: dict[Any, dict[int, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Flagged:
    """A batch's flags and failed checks in row order, and what they add to the stream's counters."""

    codes: pa.Array  # int8: 0 good, 1 suspect, 2 bad
    reasons: pa.Array  # string: failed checks, comma separated; null when good
    flags: tuple[int, int, int]  # records good, suspect, bad
    checks: dict[str, int]  # records that failed each check


# one check's failures: its rank (position in the declaration, then of the label among the check's), its label,
# its severity, and the failing rows
_Hit = tuple[tuple[int, int], str, int, npt.NDArray[np.intp]]


@dataclass(frozen=True)
class _Groups:
    """A batch's sources and their rows: all rows when ``rows`` is None (one source at most), else
    ``rows[bounds[g]:bounds[g + 1]]`` are source ``g``'s, in batch order (rows with a null key left out)."""

    sources: list[Any]
    rows: npt.NDArray[np.intp] | None = None
    bounds: npt.NDArray[np.intp] | None = None


class QualityPlan:
    """Built once per declaration; ``apply`` is the hot path of ingest."""

    segmented = True  # several sources' remembering checks in one pass each (False: a pass per source)

    def __init__(self, checks_: Sequence[Check], *, time_field: str, key: str | None) -> None:
        self.checks = [c for c in checks_ if not isinstance(c, CompletenessCheck)]
        self.time_field = time_field
        self.key = key
        self.signature = hashlib.sha256(repr((list(checks_), time_field, key)).encode()).hexdigest()[:16]
        self.fields = sorted({f for c in self.checks for f in c.fields})
        # fields read from the previous record of a source (``prev.<field>``), and each check's ``when``
        self._previous_fields = sorted({f for c in self.checks for e in c.expressions for f in e.previous})
        self._conditions = {i: e for i, c in enumerate(self.checks) if (e := getattr(c, "condition", None))}
        self.stateful = (any(isinstance(c, SpikeCheck | FlatlineCheck | GapCheck) for c in self.checks)
                         or bool(self._previous_fields))
        # checks without memory judge the whole batch at once; the others each source apart
        self._memoryless = [i for i, c in enumerate(self.checks) if not _remembers(c)]
        self._remembering = [i for i, c in enumerate(self.checks) if _remembers(c)]
        self._remembered_fields = sorted({f for i in self._remembering for f in self.checks[i].fields})
        self._severity = [_SEVERITY[getattr(c, "severity", "suspect")] for c in self.checks]
        self._runners = [_runner(i, c) for i, c in enumerate(self.checks)]
        self._segmented = {i: _segmented(i, self.checks[i]) for i in self._remembering}

    @property
    def history(self) -> int:
        """Records to replay from the log's tail to rebuild the carried state after a restart."""
        flat = [c.records for c in self.checks if isinstance(c, FlatlineCheck) and c.records]
        return max([2, *[n + 1 for n in flat]]) if self.stateful else 0

    def apply(self, table: pa.Table, *, arrival_us: int, state: CarriedState) -> tuple[pa.Array, pa.Array]:
        """Flags (int8) and failed checks (string) of a batch in row order; updates ``state``."""
        flagged = self.flag(table, arrival_us=arrival_us, state=state)
        return flagged.codes, flagged.reasons

    def flag(self, table: pa.Table, *, arrival_us: int, state: CarriedState) -> Flagged:
        """``apply`` with the counts of flags and failed checks, taken from the few failing rows rather than
        by reading the columns back."""
        n = table.num_rows
        hits: list[_Hit] = []
        if n and self.checks:
            times = _times(table.column(self.time_field))
            columns = {name: _floats(table.column(name)) for name in self.fields}
            groups = self._groups(table) if self._previous_fields or self._remembering else None
            if groups is not None and self._previous_fields:
                columns.update(self._previous(groups, columns, n, state))
            for i in self._memoryless:
                self._judge(i, times, columns, arrival_us, {}, None, hits)
            if groups is not None and self._remembering:
                self._remember(groups, times, columns, arrival_us, state, hits)
            if self._conditions:
                hits = self._unsuspended(hits, columns)
        return _flagged(hits, n)

    def _previous(self, groups: _Groups, columns: dict[str, checks.Floats], n: int,
                  state: CarriedState) -> dict[str, checks.Floats]:
        """The previous record's fields (``prev.<field>``) of each row: the row before it of its source, or
        the last one of its source carried from the batch before; null for a source's first record ever and
        for rows of no source. Each source carries its last record's fields to the next batch."""
        out = {f"prev.{name}": np.full(n, np.nan) for name in self._previous_fields}
        if not groups.sources:
            return out
        pers = [state.per_source.setdefault(source, {}) for source in groups.sources]
        width = len(self._previous_fields)
        carried = np.array([per.get(_PREVIOUS) or (np.nan,) * width for per in pers], dtype=np.float64)
        rows = np.arange(n) if groups.rows is None else groups.rows
        bounds = np.array([0, n]) if groups.bounds is None else groups.bounds
        filled = np.flatnonzero(bounds[1:] > bounds[:-1])
        starts, lasts = bounds[filled], bounds[filled + 1] - 1
        last = np.empty((filled.size, width))
        for j, name in enumerate(self._previous_fields):
            ordered = columns[name][rows]  # each source's rows together, in batch order
            shifted = np.empty_like(ordered)
            shifted[1:] = ordered[:-1]
            shifted[starts] = carried[filled, j]
            out[f"prev.{name}"][rows] = shifted
            last[:, j] = ordered[lasts]
        for k, s in enumerate(filled.tolist()):
            pers[s][_PREVIOUS] = tuple(last[k].tolist())
        return out

    def _unsuspended(self, hits: list[_Hit], columns: dict[str, checks.Floats]) -> list[_Hit]:
        """The failures left where each check's ``when`` is not known to be false (read at the failing rows
        only: they are few)."""
        kept: list[_Hit] = []
        for rank, label, severity, rows in hits:
            condition = self._conditions.get(rank[0])
            if condition is not None:
                at = {name: columns[name][rows] for name in condition.columns}
                rows = rows[~condition.false_where(at, rows.size)]
                if not rows.size:
                    continue
            kept.append((rank, label, severity, rows))
        return kept

    def _remember(self, groups: _Groups, times: checks.Ints, columns: dict[str, checks.Floats], arrival_us: int,
                  state: CarriedState, hits: list[_Hit]) -> None:
        """Run the remembering checks, each source against its own carried state. Several sources are
        sorted by source once, and each check judges them all in one pass over the segments (a pass per
        source where it cannot, or when ``segmented`` is off)."""
        pers = [state.per_source.setdefault(source, {}) for source in groups.sources]
        if groups.rows is None or groups.bounds is None:
            for per in pers:
                for i in self._remembering:
                    self._judge(i, times, columns, arrival_us, per, None, hits)
            return
        rows, bounds = groups.rows, groups.bounds
        sub_t, sub_c = times[rows], {k: columns[k][rows] for k in self._remembered_fields}
        for i in self._remembering:
            judged = self._segmented[i](sub_t, sub_c, bounds, arrival_us, pers) if self.segmented else None
            if judged is not None:
                for j, (label, mask) in enumerate(judged):
                    if mask.any():
                        hits.append(((i, j), label, self._severity[i], rows[np.flatnonzero(mask)]))
                continue
            for g, per in enumerate(pers):
                a, b = bounds[g], bounds[g + 1]
                self._judge(i, sub_t[a:b], {k: c[a:b] for k, c in sub_c.items()}, arrival_us, per, rows[a:b],
                            hits)

    def _judge(self, i: int, times: checks.Ints, columns: dict[str, checks.Floats], arrival_us: int,
               per: dict[int, Any], rows: npt.NDArray[np.intp] | None, hits: list[_Hit]) -> None:
        """Run check ``i`` on one source's rows (all rows when ``rows`` is None); keep where it failed as
        row numbers of the batch, as failures are few and a mask per check would cost a pass each."""
        for j, (label, mask) in enumerate(self._runners[i](times, columns, arrival_us, per)):
            if mask.any():
                failed = np.flatnonzero(mask)
                hits.append(((i, j), label, self._severity[i], failed if rows is None else rows[failed]))

    def _groups(self, table: pa.Table) -> _Groups:
        """The sources in the batch and their rows. A null key is no source of its own: with one other
        source in the batch it is judged as that one, with several it is left out (what grouping by
        dictionary codes gives)."""
        if self.key is None:
            return _Groups([None])
        column = table.column(self.key)
        if column.null_count == 0 and len(column):
            first = column[0]
            # one source: the usual case, no grouping (the last record tells most mixed batches at once)
            if column[-1] == first and pc.all(pc.equal(column, first)).as_py():
                return _Groups([first.as_py()])
        encoded = pc.dictionary_encode(column).combine_chunks()
        sources = encoded.dictionary.to_pylist()
        if len(sources) <= 1:
            return _Groups(sources)
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        if encoded.indices.null_count == 0 and len(sources) <= np.iinfo(np.uint16).max:
            # the codes as small unsigned integers, which numpy sorts stably by radix
            indices = indices.astype(np.uint8 if len(sources) <= np.iinfo(np.uint8).max else np.uint16)
        order = np.argsort(indices, kind="stable")
        bounds = np.searchsorted(indices[order], np.arange(len(sources) + 1))
        return _Groups(sources, order[: bounds[-1]], bounds)


def _spike_settings(check: SpikeCheck) -> tuple[str, str, float, float | None]:
    """Label, field, max change and its time unit (µs; None: per record) of a spike check."""
    per_us = None if check.per == "record" else check.per.total_seconds() * _US
    return check.label, check.field, check.max_change, per_us


def _flatline_settings(check: FlatlineCheck) -> tuple[str, str, int | None, float, int | None]:
    """Label, field, records, tolerance and duration (µs) of a flatline check."""
    duration = None if check.duration is None else int(check.duration.total_seconds() * _US)
    return check.label, check.field, check.records, check.tolerance, duration


def _gap_settings(check: GapCheck) -> tuple[str, int, int, int | None]:
    """Label, every, tolerance and max delay (µs) of a gap check."""
    max_delay = None if check.max_delay is None else int(check.max_delay.total_seconds() * _US)
    return (check.name or "gap", int(check.every.total_seconds() * _US), int(check.tolerance.total_seconds() * _US),
            max_delay)


# a check bound to its settings: (times, columns, arrival, carried state of its source) -> failures by label
_Runner = Callable[[checks.Ints, dict[str, checks.Floats], int, dict[int, Any]], list[tuple[str, checks.Mask]]]


def _runner(i: int, check: Check) -> _Runner:
    """Check ``i`` as a function of one source's batch, its settings converted once (not per batch)."""
    if isinstance(check, RangeCheck):
        label, name, low, high = check.label, check.field, check.min, check.max
        return lambda times, columns, arrival, per: [(label, checks.range_(columns[name], low, high))]
    if isinstance(check, SpikeCheck):
        label, name, max_change, per_us = _spike_settings(check)

        def spike(times: checks.Ints, columns: dict[str, checks.Floats], arrival: int,
                  per: dict[int, Any]) -> list[tuple[str, checks.Mask]]:
            mask, per[i] = checks.spike(columns[name], times, per.get(i) or checks.SpikeState(), max_change, per_us)
            return [(label, mask)]
        return spike
    if isinstance(check, FlatlineCheck):
        label, name, records, tolerance, duration = _flatline_settings(check)

        def flatline(times: checks.Ints, columns: dict[str, checks.Floats], arrival: int,
                     per: dict[int, Any]) -> list[tuple[str, checks.Mask]]:
            mask, per[i] = checks.flatline(columns[name], times, per.get(i) or checks.FlatState(), records=records,
                                           duration_us=duration, tolerance=tolerance)
            return [(label, mask)]
        return flatline
    if isinstance(check, GapCheck):
        label, every_us, tolerance_us, max_delay = _gap_settings(check)

        def gap(times: checks.Ints, columns: dict[str, checks.Floats], arrival: int,
                per: dict[int, Any]) -> list[tuple[str, checks.Mask]]:
            mask, per[i] = checks.gap(times, per.get(i) or checks.GapState(), every_us=every_us,
                                      tolerance_us=tolerance_us)
            out = [(label, mask)]
            if max_delay is not None:
                out.append(("late", checks.late(times, arrival, max_delay)))
            return out
        return gap
    if isinstance(check, ConsistencyCheck):
        label, comparison = check.label, check.comparison
        return lambda times, columns, arrival, per: [(label, checks.consistency(comparison, columns, times.size))]
    return lambda times, columns, arrival, per: []


# a remembering check bound to its settings over several sources sorted by source: (times, columns, bounds of
# each source's rows, arrival, carried state of each source) -> failures by label, or None where it cannot
_Segmented = Callable[[checks.Ints, dict[str, checks.Floats], npt.NDArray[np.intp], int, list[dict[int, Any]]],
                      list[tuple[str, checks.Mask]] | None]


def _segmented(i: int, check: Check) -> _Segmented:
    """Remembering check ``i`` as a function of several sources' batch at once; settings as in ``_runner``."""
    if isinstance(check, SpikeCheck):
        label, name, max_change, per_us = _spike_settings(check)

        def spike(times: checks.Ints, columns: dict[str, checks.Floats], bounds: npt.NDArray[np.intp],
                  arrival: int, pers: list[dict[int, Any]]) -> list[tuple[str, checks.Mask]]:
            mask, states = checks.spike_segments(columns[name], times, bounds,
                                                 [per.get(i) or checks.SpikeState() for per in pers], max_change,
                                                 per_us)
            _keep(i, pers, states)
            return [(label, mask)]
        return spike
    if isinstance(check, FlatlineCheck):
        label, name, records, tolerance, duration = _flatline_settings(check)

        def flatline(times: checks.Ints, columns: dict[str, checks.Floats], bounds: npt.NDArray[np.intp],
                     arrival: int, pers: list[dict[int, Any]]) -> list[tuple[str, checks.Mask]]:
            mask, states = checks.flatline_segments(columns[name], times, bounds,
                                                    [per.get(i) or checks.FlatState() for per in pers],
                                                    records=records, duration_us=duration, tolerance=tolerance)
            _keep(i, pers, states)
            return [(label, mask)]
        return flatline
    if isinstance(check, GapCheck):
        label, every_us, tolerance_us, max_delay = _gap_settings(check)

        def gap(times: checks.Ints, columns: dict[str, checks.Floats], bounds: npt.NDArray[np.intp],
                arrival: int, pers: list[dict[int, Any]]) -> list[tuple[str, checks.Mask]] | None:
            judged = checks.gap_segments(times, bounds, [per.get(i) or checks.GapState() for per in pers],
                                         every_us=every_us, tolerance_us=tolerance_us)
            if judged is None:
                return None
            _keep(i, pers, judged[1])
            out = [(label, judged[0])]
            if max_delay is not None:
                out.append(("late", checks.late(times, arrival, max_delay)))
            return out
        return gap
    raise TypeError(f"{type(check).__name__} remembers nothing")


def _keep(i: int, pers: list[dict[int, Any]], states: Sequence[Any]) -> None:
    """Each source's new state of check ``i``."""
    for per, new in zip(pers, states, strict=True):
        per[i] = new


def _remembers(check: Check) -> bool:
    return isinstance(check, SpikeCheck | FlatlineCheck | GapCheck)


def _floats(column: pa.ChunkedArray) -> checks.Floats:
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.int8())
    if not pa.types.is_float64(column.type):  # a cast to its own type is a copy, and no cheaper
        column = column.cast(pa.float64())
    return np.asarray(column.to_numpy(), dtype=np.float64)


def _times(column: pa.ChunkedArray) -> checks.Ints:
    """Event times as the integers stored (µs); a timestamp without nulls is read as is, not cast."""
    if pa.types.is_timestamp(column.type) and column.null_count == 0:
        return np.asarray(column.to_numpy()).view(np.int64)
    return np.asarray(column.cast(pa.int64()).to_numpy())


def _flagged(hits: list[_Hit], n: int) -> Flagged:
    """Codes, reasons and counts from the failures. Each failing row's failed checks are a bit set; the few
    distinct sets are named once, so no per-row Python runs, and the rest of the work is over the failing
    rows only (usually a few of the batch)."""
    codes = np.zeros(n, dtype=np.int8)
    if not hits:
        return Flagged(pa.array(codes, type=pa.int8()), pa.nulls(n, type=pa.string()), (n, 0, 0), {})
    hits.sort(key=lambda h: h[0])  # reasons in the order the checks are declared, a check's labels in its order
    labels = list(dict.fromkeys(label for _i, label, _s, _r in hits))  # a check may fail for several sources
    bit = {label: 1 << b for b, label in enumerate(labels)}
    bits = np.zeros(n, dtype=np.int64)
    for _i, label, severity, rows in sorted(hits, key=lambda h: h[2]):  # the worst severity is written last
        bits[rows] |= bit[label]
        codes[rows] = severity
    failing = np.flatnonzero(bits)
    failed = bits[failing]
    combos = np.unique(failed)
    which = np.searchsorted(combos, failed)
    names = [",".join(label for label in labels if combo & bit[label]) for combo in combos.tolist()]
    counted: dict[str, int] = {}
    for name, count in zip(names, np.bincount(which).tolist(), strict=True):
        for part in name.split(","):  # as the names are read back: split at commas
            counted[part] = counted.get(part, 0) + count
    flags = np.bincount(codes[failing], minlength=3)
    index = np.zeros(n, dtype=np.int32)  # 0: the null in front of the names, for the rows that passed
    index[failing] = which + 1
    reasons = pc.take(pa.array([None, *names], type=pa.string()), pa.array(index))
    return Flagged(pa.array(codes, type=pa.int8()), reasons, (n - failing.size, int(flags[1]), int(flags[2])),
                   counted)
