"""A stream's declared checks compiled into one pass over an Arrow batch: every record gets a flag
(``_quality``: 0 good, 1 suspect, 2 bad) and the names of the checks it failed (``_checks``, comma
separated; null when good). State carried between batches is kept per source (the stream's ``key``), so
two stations interleaved in one stream never judge each other's readings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
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

__all__ = ["CHECKS", "QUALITY", "CarriedState", "QualityPlan", "flag_names"]

QUALITY = "_quality"
CHECKS = "_checks"
_US = 1_000_000
_SEVERITY = {"suspect": 1, "bad": 2}
_NAMES = pa.array([f.value for f in FLAGS], type=pa.string())


def flag_names(codes: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Flag codes (int8) as their names."""
    return pc.take(_NAMES, codes)


@dataclass
class CarriedState:
    """What the checks remember between batches, per source and check."""

    per_source: dict[Any, dict[int, Any]] = field(default_factory=dict)


class QualityPlan:
    """Built once per declaration; ``apply`` is the hot path of ingest."""

    def __init__(self, checks_: Sequence[Check], *, time_field: str, key: str | None) -> None:
        self.checks = [c for c in checks_ if not isinstance(c, CompletenessCheck)]
        self.time_field = time_field
        self.key = key
        self.signature = hashlib.sha256(repr((list(checks_), time_field, key)).encode()).hexdigest()[:16]
        self.fields = sorted({f for c in self.checks for f in c.fields})
        self.comparisons = {i: c.comparison for i, c in enumerate(self.checks) if isinstance(c, ConsistencyCheck)}
        self.stateful = any(isinstance(c, SpikeCheck | FlatlineCheck | GapCheck) for c in self.checks)

    @property
    def history(self) -> int:
        """Records to replay from the log's tail to rebuild the carried state after a restart."""
        flat = [c.records for c in self.checks if isinstance(c, FlatlineCheck) and c.records]
        return max([2, *[n + 1 for n in flat]]) if self.stateful else 0

    def apply(self, table: pa.Table, *, arrival_us: int, state: CarriedState) -> tuple[pa.Array, pa.Array]:
        """Flags (int8) and failed checks (string) of a batch in row order; updates ``state``."""
        n = table.num_rows
        codes = np.zeros(n, dtype=np.int8)
        failed: list[tuple[int, str, npt.NDArray[np.bool_]]] = []
        if n and self.checks:
            times = table.column(self.time_field).cast(pa.int64()).to_numpy()
            columns = {name: _floats(table.column(name)) for name in self.fields}
            # checks without memory judge the whole batch at once; the others each source apart
            memoryless = [i for i, c in enumerate(self.checks) if not _remembers(c)]
            remembering = [i for i, c in enumerate(self.checks) if _remembers(c)]
            work: list[tuple[dict[int, Any], npt.NDArray[np.intp] | None, list[int]]] = [({}, None, memoryless)]
            if remembering:
                work += [(state.per_source.setdefault(source, {}), rows, remembering)
                         for source, rows in self._groups(table)]
            for per, rows, which in work:
                sub_t = times if rows is None else times[rows]
                sub_c = columns if rows is None else {k: v[rows] for k, v in columns.items()}
                for i in which:
                    check = self.checks[i]
                    for label, mask in self._run(i, check, sub_t, sub_c, arrival_us, per):
                        if not mask.any():
                            continue
                        full = mask if rows is None else _scatter(mask, rows, n)
                        failed.append((i, label, full))
                        severity = _SEVERITY[getattr(check, "severity", "suspect")]
                        codes[full] = np.maximum(codes[full], severity)
        failed.sort(key=lambda f: f[0])  # reasons in the order the checks are declared
        return pa.array(codes, type=pa.int8()), _reasons([(label, mask) for _i, label, mask in failed], n)

    def _groups(self, table: pa.Table) -> list[tuple[Any, npt.NDArray[np.intp] | None]]:
        if self.key is None:
            return [(None, None)]
        encoded = pc.dictionary_encode(table.column(self.key)).combine_chunks()
        sources = encoded.dictionary.to_pylist()
        if len(sources) == 1:  # one source in the batch: the usual case, no grouping
            return [(sources[0], None)]
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        order = np.argsort(indices, kind="stable")
        bounds = np.searchsorted(indices[order], np.arange(len(sources) + 1))
        return [(source, order[bounds[g]: bounds[g + 1]]) for g, source in enumerate(sources)]

    def _run(self, i: int, check: Check, times: checks.Ints, columns: dict[str, checks.Floats], arrival_us: int,
             per: dict[int, Any]) -> list[tuple[str, npt.NDArray[np.bool_]]]:
        if isinstance(check, RangeCheck):
            return [(check.label, checks.range_(columns[check.field], check.min, check.max))]
        if isinstance(check, SpikeCheck):
            per_us = None if check.per == "record" else check.per.total_seconds() * _US
            mask, per[i] = checks.spike(columns[check.field], times, per.get(i) or checks.SpikeState(),
                                        check.max_change, per_us)
            return [(check.label, mask)]
        if isinstance(check, FlatlineCheck):
            duration = None if check.duration is None else int(check.duration.total_seconds() * _US)
            mask, per[i] = checks.flatline(columns[check.field], times, per.get(i) or checks.FlatState(),
                                           records=check.records, duration_us=duration, tolerance=check.tolerance)
            return [(check.label, mask)]
        if isinstance(check, GapCheck):
            mask, per[i] = checks.gap(times, per.get(i) or checks.GapState(),
                                      every_us=int(check.every.total_seconds() * _US),
                                      tolerance_us=int(check.tolerance.total_seconds() * _US))
            out = [(check.name or "gap", mask)]
            if check.max_delay is not None:
                out.append(("late", checks.late(times, arrival_us, int(check.max_delay.total_seconds() * _US))))
            return out
        if isinstance(check, ConsistencyCheck):
            return [(check.label, checks.consistency(self.comparisons[i], columns, times.size))]
        return []


def _remembers(check: Check) -> bool:
    return isinstance(check, SpikeCheck | FlatlineCheck | GapCheck)


def _floats(column: pa.ChunkedArray) -> checks.Floats:
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.int8())
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _scatter(mask: npt.NDArray[np.bool_], rows: npt.NDArray[np.intp], n: int) -> npt.NDArray[np.bool_]:
    full = np.zeros(n, dtype=bool)
    full[rows] = mask
    return full


def _reasons(failed: list[tuple[str, npt.NDArray[np.bool_]]], n: int) -> pa.Array:
    """Comma-separated names of failed checks, null where none failed. Each row's failures are a bit set;
    the few distinct sets are named once and taken by index, so no per-row Python runs."""
    if not failed:
        return pa.nulls(n, type=pa.string())
    labels = list(dict.fromkeys(label for label, _ in failed))  # a check may fail for several sources
    bits = np.zeros(n, dtype=np.int64)
    for label, mask in failed:
        bits[mask] |= 1 << labels.index(label)
    failing = np.flatnonzero(bits)
    combos, inverse = np.unique(bits[failing], return_inverse=True)
    names = pa.array([",".join(lb for b, lb in enumerate(labels) if combo >> b & 1) for combo in combos.tolist()],
                     type=pa.string())
    index = np.zeros(n, dtype=np.int32)
    index[failing] = inverse
    return pc.take(names, pa.array(index, mask=bits == 0))
