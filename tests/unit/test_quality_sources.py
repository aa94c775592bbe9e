"""Several sources in one batch: the remembering checks judge all sources at once over segments of the
batch sorted by source, and must flag exactly as judging each source apart does (codes, failed checks,
counts, and the state carried to the next batch), whatever the interleaving, nulls, repeats, jumps, gaps,
late or out-of-order records, null keys and batch boundaries."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from twinengine.catalog.manifest import Stream
from twinengine.quality import checks
from twinengine.quality.plan import CarriedState, QualityPlan

T0 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1e6)
BEFORE_1970 = int(datetime(1950, 3, 1, tzinfo=UTC).timestamp() * 1e6)  # negative: no time - it does not wrap
MIN = 60_000_000  # µs
FIELDS = {"time": {"type": "timestamp"}, "station": {"type": "string"},
          "level": {"type": "float", "nullable": True}, "rain": {"type": "float", "nullable": True}}


def _checks(rng: np.random.Generator) -> list[dict[str, Any]]:
    """A random declaration of remembering checks (with a range check beside them)."""
    declared: list[dict[str, Any]] = [{"check": "range", "field": "level", "min": -3, "max": 8}]
    for field in ("level", "rain"):
        per = str(rng.choice(["record", "15min"]))
        declared.append({"check": "spike", "field": field, "max_change": float(rng.choice([0.5, 2.0])), "per": per,
                         "severity": str(rng.choice(["suspect", "bad"]))})
        flat: dict[str, Any] = {"check": "flatline", "field": field, "tolerance": float(rng.choice([0.0, 0.6]))}
        if rng.random() < 0.7:
            flat["records"] = int(rng.integers(2, 5))
        else:
            flat["duration"] = str(rng.choice(["30min", "1h"]))
        declared.append(flat)
    gap: dict[str, Any] = {"check": "gap", "every": "15min", "tolerance": str(rng.choice(["0s", "5min"]))}
    if rng.random() < 0.6:
        gap["max_delay"] = "2h"
    declared.append(gap)
    order = rng.permutation(len(declared))
    return [declared[i] for i in order]


def _series(rng: np.random.Generator, n: int) -> tuple[list[str | None], list[int], list[float | None]]:
    """``n`` readings of 1 to 70 stations interleaved at random: each station's readings mostly 15 minutes
    apart, some at the same time, late or after a silence; values with runs, jumps and nulls."""
    sources = int(rng.integers(1, 71))
    station = rng.integers(0, sources, n)
    clock = rng.integers(0, 4 * 15, sources) * MIN + int(rng.choice([T0, BEFORE_1970]))
    times, values = [], []
    last = np.zeros(sources)
    for s in station.tolist():
        clock[s] += int(rng.choice([15, 15, 15, 0, -20, 60, 240])) * MIN
        times.append(int(clock[s]))
        value = last[s] + float(rng.normal(0, 0.4))
        if rng.random() < 0.35:
            value = last[s]  # a repeat
        if rng.random() < 0.1:
            value += float(rng.choice([-5.0, 5.0]))  # a jump (and perhaps a return)
        value = round(value, int(rng.integers(0, 3)))
        last[s] = value
        values.append(None if rng.random() < 0.1 else value)
    keys: list[str | None] = [f"S{s}" for s in station.tolist()]
    if rng.random() < 0.3:
        for i in np.flatnonzero(rng.random(n) < 0.05).tolist():
            keys[i] = None
    return keys, times, values


def _table(keys: list[str | None], times: list[int], level: list[float | None],
           rain: list[float | None]) -> pa.Table:
    return pa.table({"time": pa.array(times, pa.timestamp("us", tz="UTC")), "station": pa.array(keys, pa.string()),
                     "level": pa.array(level, pa.float64()), "rain": pa.array(rain, pa.float64())})


def _plans(declared: list[dict[str, Any]]) -> tuple[QualityPlan, QualityPlan]:
    stream = Stream.model_validate({"key": "station", "fields": FIELDS, "quality": declared})
    segmented = QualityPlan(stream.quality, time_field="time", key="station")
    apart = QualityPlan(stream.quality, time_field="time", key="station")
    apart.segmented = False
    return segmented, apart


def _same_flags(plans: tuple[QualityPlan, QualityPlan], batches: list[pa.Table], arrival_us: int) -> None:
    """Each batch flagged alike by both plans, and the same state carried after each (repr: every value,
    NaN included, and the order sources and checks were first seen)."""
    segmented, apart = plans
    states = CarriedState(), CarriedState()
    for batch in batches:
        got = segmented.flag(batch, arrival_us=arrival_us, state=states[0])
        want = apart.flag(batch, arrival_us=arrival_us, state=states[1])
        assert got.codes.to_pylist() == want.codes.to_pylist()
        assert got.reasons.to_pylist() == want.reasons.to_pylist()
        assert (got.flags, got.checks) == (want.flags, want.checks)
        assert repr(states[0]) == repr(states[1])


@pytest.mark.parametrize("seed", range(6))
def test_sources_judged_at_once_flag_as_each_source_apart(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(25):
        n = int(rng.integers(1, 400))
        keys, times, level = _series(rng, n)
        rain = [None if v is None else round(v * 0.5 + float(rng.choice([0.0, 3.0], p=[0.9, 0.1])), 1)
                for v in level]
        table = _table(keys, times, level, rain)
        cuts = sorted({0, n, *rng.integers(0, n + 1, int(rng.integers(0, 6))).tolist()})
        batches = [table.slice(a, b - a) for a, b in itertools.pairwise(cuts)]
        _same_flags(_plans(_checks(rng)), batches, arrival_us=max(times) + int(rng.integers(0, 3 * 60)) * MIN)


def test_times_too_far_apart_to_shift_into_int64_are_judged_source_by_source() -> None:
    far = 2**62
    bounds = np.array([0, 2, 4])
    times = np.array([-far, far, -far, far], dtype=np.int64)
    assert checks.gap_segments(times, bounds, [checks.GapState()] * 2, every_us=MIN, tolerance_us=0) is None
    table = _table(["A", "A", "B", "B"], [-far, far, -far, far], [1.0] * 4, [1.0] * 4)
    _same_flags(_plans([{"check": "gap", "every": "15min"}]), [table, table], arrival_us=0)
