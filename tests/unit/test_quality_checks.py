"""Input quality checks as pure functions: each check's edge cases, state carried across batches (a series
split anywhere is flagged exactly as in one batch), sources of one stream kept apart, the comparison
grammar, and the indicators' counts."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from twinengine.catalog.manifest import FunctionTrigger, Stream
from twinengine.quality import checks
from twinengine.quality.expr import parse_expr
from twinengine.quality.indicators import summarise
from twinengine.quality.plan import CarriedState, QualityPlan
from twinengine.streams.functions import select_kept_calls

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MIN = 60_000_000  # µs
NAN = float("nan")


def minutes(*values: float) -> checks.Ints:
    return (np.asarray(values, dtype=np.float64) * MIN).astype(np.int64) + int(T0.timestamp() * 1e6)


def floats(*values: float) -> checks.Floats:
    return np.asarray(values, dtype=np.float64)


def test_range_flags_values_outside_and_never_nulls() -> None:
    values = floats(-0.1, 0.0, 5.0, 15.0, 15.01, NAN)
    assert checks.range_(values, 0.0, 15.0).tolist() == [True, False, False, False, True, False]
    assert checks.range_(values, None, 5.0).tolist() == [False, False, False, True, True, False]


def test_a_one_record_spike_flags_the_jump_not_the_return() -> None:
    values = floats(1.0, 1.1, 4.0, 1.2, 1.3)
    mask, _ = checks.spike(values, minutes(0, 15, 30, 45, 60), checks.SpikeState(), 0.5, None)
    assert mask.tolist() == [False, False, True, False, False]


def test_a_step_change_flags_only_its_first_record() -> None:
    mask, _ = checks.spike(floats(1.0, 1.0, 3.0, 3.1, 3.0), minutes(0, 1, 2, 3, 4), checks.SpikeState(), 0.5, None)
    assert mask.tolist() == [False, False, True, False, False]


def test_a_spike_per_time_scales_with_elapsed_time_and_skips_late_records() -> None:
    per = 15 * MIN  # 0.5 per 15 minutes
    mask, _ = checks.spike(floats(1.0, 1.9, 2.1, 5.0), minutes(0, 30, 45, 40), checks.SpikeState(), 0.5, per)
    # +0.9 in 30 min is allowed (1.0), +0.2 in 15 min too; the last one is older than its predecessor
    assert mask.tolist() == [False, False, False, False]
    mask, _ = checks.spike(floats(1.0, 1.6), minutes(0, 15), checks.SpikeState(), 0.5, per)
    assert mask.tolist() == [False, True]


def test_spike_skips_nulls_and_compares_with_the_last_valid_value() -> None:
    mask, state = checks.spike(floats(1.0, NAN, 1.2, NAN), minutes(0, 1, 2, 3), checks.SpikeState(), 0.5, None)
    assert mask.tolist() == [False, False, False, False] and state.v1 == 1.2
    mask, _ = checks.spike(floats(NAN, 2.0), minutes(4, 5), state, 0.5, None)
    assert mask.tolist() == [False, True]


def test_flatline_flags_from_the_nth_identical_reading() -> None:
    values = floats(1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0)
    mask, state = checks.flatline(values, minutes(*range(8)), checks.FlatState(), records=4, duration_us=None)
    assert mask.tolist() == [False, False, False, False, True, True, False, False]
    assert (state.value, state.run) == (3.0, 2)


def test_flatline_by_duration_and_tolerance() -> None:
    values = floats(5.0, 5.001, 4.999, 5.0, 6.0)
    mask, _ = checks.flatline(values, minutes(0, 30, 60, 90, 120), checks.FlatState(), records=None,
                              duration_us=60 * MIN, tolerance=0.01)
    assert mask.tolist() == [False, False, True, True, False]
    mask, _ = checks.flatline(values, minutes(0, 30, 60, 90, 120), checks.FlatState(), records=None,
                              duration_us=60 * MIN, tolerance=0.0)
    assert not mask.any()


def test_gap_flags_the_record_after_a_silence_but_not_late_out_of_order_ones() -> None:
    times = minutes(0, 15, 30, 90, 60, 105)  # 30 → 90 is a gap; 60 arrives late
    mask, state = checks.gap(times, checks.GapState(), every_us=15 * MIN, tolerance_us=5 * MIN)
    assert mask.tolist() == [False, False, False, True, False, False]
    mask, _ = checks.gap(minutes(140), state, every_us=15 * MIN, tolerance_us=5 * MIN)
    assert mask.tolist() == [True]  # the gap is seen across batches


def test_late_is_arrival_minus_event_time() -> None:
    times = minutes(0, 50, 58)
    assert checks.late(times, int(minutes(60)[0]), 5 * MIN).tolist() == [True, True, False]


def test_the_comparison_grammar_holds_chains_and_refuses_code() -> None:
    comparison = parse_expr("0 <= low <= high")
    assert comparison.fields == ["low", "high"]
    columns = {"low": floats(1, 3, -1, NAN), "high": floats(2, 2, 0, 1)}
    assert checks.consistency(comparison, columns, 4).tolist() == [False, True, True, False]
    for text in ("__import__('os')", "low <=", "low high", "1 < 2", "low = high", "low <= high; x"):
        with pytest.raises(ValueError):
            parse_expr(text)


def _stream(quality: list[dict[str, Any]], key: str | None = "station") -> Stream:
    return Stream.model_validate({"key": key, "fields": {"time": {"type": "timestamp"}, "station": {"type": "string"},
                                                         "level": {"type": "float", "nullable": True},
                                                         "low": {"type": "float", "nullable": True}},
                                  "quality": quality})


CHECKS = [{"check": "range", "field": "level", "min": 0, "max": 15},
          {"check": "spike", "field": "level", "max_change": 0.5, "per": "15min", "severity": "bad"},
          {"check": "flatline", "field": "level", "records": 4},
          {"check": "gap", "every": "15min", "tolerance": "5min", "max_delay": "1d"},
          {"check": "consistency", "expr": "low <= level", "name": "low_below"},
          {"check": "completeness", "window": "1h"}]


def _table(levels: list[float | None], *, stations: list[str] | None = None, skip: set[int] = frozenset()) -> pa.Table:
    rows = [i for i in range(len(levels)) if i not in skip]
    return pa.table({"time": pa.array([T0 + timedelta(minutes=15 * i) for i in rows], pa.timestamp("us", tz="UTC")),
                     "station": [(stations or ["A"] * len(levels))[i] for i in rows],
                     "level": pa.array([levels[i] for i in rows], pa.float64()),
                     "low": pa.array([0.5] * len(rows), pa.float64())})


def _flags(plan: QualityPlan, table: pa.Table, state: CarriedState) -> list[tuple[int, str | None]]:
    codes, reasons = plan.apply(table, arrival_us=int(T0.timestamp() * 1e6) + 86400 * 10**6, state=state)
    return list(zip(codes.to_pylist(), reasons.to_pylist(), strict=True))


LEVELS: list[float | None] = [1.0, 1.1, 4.0, 1.2, 1.3, 1.3, 1.3, 1.3, 1.3, None, 20.0, 1.4, 0.2, 1.5, 1.6]


def test_a_batch_is_flagged_with_the_worst_severity_and_every_failed_check() -> None:
    declared = _stream(CHECKS)
    plan = QualityPlan(declared.quality, time_field="time", key="station")
    flags = _flags(plan, _table(LEVELS, skip={13}), CarriedState())
    assert flags[2] == (2, "spike:level")  # 1.1 → 4.0 in 15 min; the return to 1.2 is not flagged
    assert flags[3] == (0, None)
    assert flags[7] == (1, "flatline:level") and flags[8] == (1, "flatline:level")  # the 4th and 5th 1.3
    assert flags[10] == (2, "range:level,spike:level")
    assert flags[12] == (2, "spike:level,low_below")  # low 0.5 > level 0.2, after a drop of 1.2
    assert flags[13] == (1, "gap")  # reading 13 never came
    assert [c for c, _ in flags].count(0) == 8


@pytest.mark.parametrize("cut", range(1, 14))
def test_state_carried_across_batches_flags_a_split_series_as_one(cut: int) -> None:
    declared = _stream(CHECKS)
    plan = QualityPlan(declared.quality, time_field="time", key="station")
    whole = _flags(plan, _table(LEVELS, skip={13}), CarriedState())
    table, state = _table(LEVELS, skip={13}), CarriedState()
    split = _flags(plan, table.slice(0, cut), state) + _flags(plan, table.slice(cut), state)
    assert split == whole


def test_sources_of_one_stream_are_judged_apart() -> None:
    declared = _stream([{"check": "spike", "field": "level", "max_change": 0.5},
                        {"check": "flatline", "field": "level", "records": 3}])
    plan = QualityPlan(declared.quality, time_field="time", key="station")
    levels: list[float | None] = [1.0, 9.0, 1.1, 9.1, 1.2, 9.2, 1.2, 9.2, 1.2, 9.2]
    stations = ["A", "B"] * 5  # interleaved: A changes little, B too; together they would jump every record
    flags = _flags(plan, _table(levels, stations=stations), CarriedState())
    assert [c for c, _ in flags] == [0] * 8 + [1, 1]  # only each station's third identical reading


def test_function_exclusion_keeps_offsets_of_the_whole_batch() -> None:
    records = [{"_offset": i, "_quality": q} for i, q in enumerate(["good", "bad", "good", "bad", "good", "good"])]
    calls, used = select_kept_calls(FunctionTrigger(kind="record"), records, {"bad"})
    assert [([r["_offset"] for r in rs], through) for rs, through in calls] == [([0], 1), ([2], 3), ([4], 5),
                                                                                ([5], 6)]
    assert used == 6
    calls, used = select_kept_calls(FunctionTrigger(kind="count", count=3), records, {"bad"})
    assert [([r["_offset"] for r in rs], through) for rs, through in calls] == [([0, 2, 4], 5)]
    assert used == 5  # the window of [5] waits; the skipped records before it are consumed
    calls, used = select_kept_calls(FunctionTrigger(kind="count", count=3), records[:4], {"bad"})
    assert calls == [] and used == 0


def test_indicators_count_flags_lateness_and_completeness_per_window() -> None:
    times = minutes(0, 15, 30, 45, 60, 75, 150)  # window 2 (120-180 min) misses 3 of 4 readings
    arrival = times + 30_000_000  # 30 s late each
    report = summarise(twin_id="tw-1", stream="gauges", times_us=times, arrival_us=arrival,
                       flags=np.asarray([0, 0, 1, 2, 0, 0, 1], dtype=np.int8),
                       reasons=[None, None, "flatline:level", "range:level,spike:level", None, None, "gap"],
                       sources=1, start=None, end=None, window=timedelta(hours=1), cadence=timedelta(minutes=15),
                       completeness_min=0.9, checks=["range:level"])
    assert [w.records for w in report.windows] == [4, 2, 1]
    first, second, third = report.windows
    assert (first.good, first.suspect, first.bad) == (2, 1, 1) and first.shares["bad"] == 0.25
    assert first.checks == {"flatline:level": 1, "range:level": 1, "spike:level": 1}
    assert first.completeness == 1.0 and first.complete is True
    # the last window is expected to hold readings up to one step after the last one (150 min): 3, not 4
    assert second.completeness == 0.5 and second.complete is False and third.completeness == pytest.approx(1 / 3)
    assert third.lateness_median_s == pytest.approx(30.0) and third.checks == {"gap": 1}
    assert report.total.records == 7 and report.total.expected == 11 and report.total.completeness == 7 / 11
    fixed = summarise(twin_id="tw-1", stream="gauges", times_us=times, arrival_us=arrival,
                      flags=np.zeros(7, dtype=np.int8), reasons=[None] * 7, sources=2, start=T0,
                      end=T0 + timedelta(hours=4), window=timedelta(hours=1), cadence=timedelta(minutes=15),
                      completeness_min=None, checks=[])
    assert [w.expected for w in fixed.windows] == [8, 8, 8, 8]  # from/to given: whole windows, per source
    assert fixed.windows[3].records == 0 and fixed.windows[3].completeness == 0.0


def test_a_streams_gap_check_with_a_negative_tolerance_is_refused_naming_it() -> None:
    from pydantic import ValidationError

    from twinengine.catalog.manifest import Stream

    fields = {"time": {"type": "timestamp"}, "level": {"type": "float"}}
    with pytest.raises(ValidationError) as refused:
        Stream.model_validate({"fields": fields, "quality": [{"check": "gap", "every": "15min", "tolerance": -300}]})
    (error,) = refused.value.errors()
    assert error["loc"][-1] == "tolerance" and "cannot be negative" in error["msg"]
    kept = Stream.model_validate({"fields": fields, "quality": [{"check": "gap", "every": "15min", "tolerance": 0}]})
    assert kept.quality[0].tolerance.total_seconds() == 0


def _spike_by_record(values: list[float], times: list[int], max_change: float,
                     per_us: float | None) -> list[bool]:
    """The spike rule read one record at a time, as the docstring states it."""
    def allowed(now: int, then: int) -> float:
        if per_us is None:
            return max_change
        return (now - then) * (max_change / per_us) if now > then else float("inf")

    out, seen, jumped = [], [], False
    for v, t in zip(values, times, strict=True):
        if np.isnan(v):
            out.append(False)
            continue
        jump = bool(seen) and abs(v - seen[-1][0]) > allowed(t, seen[-1][1])
        back = jumped and len(seen) >= 2 and abs(v - seen[-2][0]) <= allowed(t, seen[-2][1])
        out.append(jump and not back)
        jumped = jump
        seen.append((v, t))
    return out


def _flatline_by_record(values: list[float], times: list[int], records: int | None, duration_us: int | None,
                        tolerance: float) -> list[bool]:
    out: list[bool] = []
    last, run, since = NAN, 0, 0
    for v, t in zip(values, times, strict=True):
        if np.isnan(v):
            out.append(False)
            continue
        run, since = (run + 1, since) if abs(v - last) <= tolerance else (1, t)
        last = v
        out.append((records is not None and run >= records)
                   or (duration_us is not None and run > 1 and t - since >= duration_us))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_spike_and_flatline_flag_as_a_record_by_record_reading_of_a_series_split_anywhere(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(250):
        n = int(rng.integers(1, 40))
        values = np.round(np.cumsum(rng.normal(0, 1, n)), int(rng.integers(0, 2)))
        values[rng.random(n) < 0.4] = 2.0  # runs of one value
        values[rng.random(n) < 0.15] += rng.normal(0, 5)  # jumps, and returns from them
        values[rng.random(n) < 0.1] = NAN
        # mostly 15 minutes apart; some readings late, at the same time, or after a silence
        times = minutes(*np.cumsum(rng.choice([15, 15, 15, 0, -20, 60], n)))
        cuts = sorted({0, n, *rng.integers(0, n + 1, int(rng.integers(0, 4))).tolist()})
        max_change, per_us = float(rng.choice([0.5, 2.0])), [None, 15.0 * MIN][int(rng.integers(2))]
        records = [None, int(rng.integers(2, 5))][int(rng.integers(2))]
        duration_us = 30 * MIN if records is None else None
        tolerance = float(rng.choice([0.0, 0.6]))
        spiked, flat = [], []
        spike_state, flat_state = checks.SpikeState(), checks.FlatState()
        for a, b in itertools.pairwise(cuts):
            mask, spike_state = checks.spike(values[a:b], times[a:b], spike_state, max_change, per_us)
            spiked += mask.tolist()
            mask, flat_state = checks.flatline(values[a:b], times[a:b], flat_state, records=records,
                                               duration_us=duration_us, tolerance=tolerance)
            flat += mask.tolist()
        assert spiked == _spike_by_record(values.tolist(), times.tolist(), max_change, per_us)
        assert flat == _flatline_by_record(values.tolist(), times.tolist(), records, duration_us, tolerance)


@pytest.mark.parametrize("text", [
    "low <= level", "low == level", "low != level", "0 <= low < level", "low == level == 2",
    "abs(level - prev.level) < 0.5 or low != prev.low",
    "not (low < level and level < 3) or -low * 2 >= max(level, prev.level, 1) / 2",
    "min(low, level) + 1.5 > prev.low - prev.level / 0.5",
    "level / low < 2 and not low == prev.low",
    "low == true or level != false", "2 > low", "level / low != 2", "-prev.level >= abs(low) * 2",
])
def test_a_consistency_check_fails_where_the_condition_is_known_and_does_not_hold(text: str) -> None:
    rng = np.random.default_rng(7)
    expression = parse_expr(text)
    columns = {name: rng.choice([NAN, -1.0, 0.5, 2.0, 3.0], 200) for name in ("low", "level", "prev.low",
                                                                              "prev.level")}

    def fails(row: int) -> bool:
        """The definition, one row at a time: the condition as Python reads this test's own text (no divisor
        here is ever zero), judged only when no field it reads is null."""
        values = {name.replace(".", "_"): float(columns[name][row]) for name in expression.columns}
        if any(math.isnan(v) for v in values.values()):
            return False
        names = {"abs": abs, "min": min, "max": max, "true": 1.0, "false": 0.0}
        return not eval(text.replace("prev.", "prev_"), {"__builtins__": {}, **names}, values)

    assert checks.consistency(expression, columns, 200).tolist() == [fails(row) for row in range(200)]


def test_a_null_key_is_judged_as_the_only_source_in_its_batch_and_left_out_beside_several() -> None:
    declared = _stream([{"check": "flatline", "field": "level", "records": 3}])
    plan = QualityPlan(declared.quality, time_field="time", key="station")

    def flags(stations: list[str | None]) -> list[int]:
        table = _table([1.0] * len(stations)).set_column(1, "station", pa.array(stations, pa.string()))
        return [code for code, _ in _flags(plan, table, CarriedState())]

    assert flags(["A", None, "A", "A"]) == [0, 0, 1, 1]  # one source: the null is one of its readings
    assert flags([None, None, None, None]) == [0, 0, 0, 0]  # no source: nothing remembered, nothing judged
    assert flags(["A", None, "B", "A", "A", "B"]) == [0, 0, 0, 0, 1, 0]  # several: the null is left out


def test_a_row_that_failed_gap_and_late_names_them_in_that_order_whichever_source_failed_first() -> None:
    declared = _stream([{"check": "gap", "every": "15min", "max_delay": "1h"}])
    plan = QualityPlan(declared.quality, time_field="time", key="station")
    table = _table([1.0] * 13, stations=["A", "B"] + ["X"] * 10 + ["B"], skip=set(range(2, 12)))
    # A is only late; B's second reading comes after a silence, and late too
    _codes, reasons = plan.apply(table, arrival_us=int(minutes(12 * 15 + 61)[0]), state=CarriedState())
    assert reasons.to_pylist() == ["late", "late", "gap,late"]


@pytest.mark.parametrize("seed", range(3))
def test_flags_reasons_and_counts_are_those_of_a_row_by_row_reading(seed: int) -> None:
    from collections import Counter

    from twinengine.quality.plan import _flagged

    rng = np.random.default_rng(seed)
    for _ in range(100):
        n = int(rng.integers(1, 300))
        hits = [(int(rng.integers(0, 5)), str(rng.choice(["range:level", "gap", "late", "x,y", "spike:level"])),
                 int(rng.integers(1, 3)), np.flatnonzero(rng.random(n) < rng.choice([0.01, 0.3, 1.0])))
                for _ in range(int(rng.integers(0, 6)))]
        flagged = _flagged(list(hits), n)
        ordered = sorted(hits, key=lambda h: h[0])
        labels = list(dict.fromkeys(label for _i, label, _s, _r in ordered))
        codes = [max([s for _i, _l, s, rows in hits if row in rows], default=0) for row in range(n)]
        reasons = [",".join(lb for lb in labels if any(lb == label and row in rows for _i, label, _s, rows in hits))
                   or None for row in range(n)]
        assert flagged.codes.type == pa.int8() and flagged.codes.to_pylist() == codes
        assert flagged.reasons.type == pa.string() and flagged.reasons.to_pylist() == reasons
        flagged.reasons.validate(full=True)
        assert flagged.flags == tuple(codes.count(k) for k in range(3))
        assert flagged.checks == Counter(name for text in reasons if text for name in text.split(","))
