"""Quality checks over other fields and the previous record: the expression grammar (arithmetic, comparisons,
and/or/not, ``prev.<field>``) with errors that say where, a check's ``when`` condition, and the previous
record carried per source across batches exactly as in one batch."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import yaml

from helpers import RIVER_REACH
from twinengine.catalog.manifest import Stream
from twinengine.catalog.validate import check_manifest_data
from twinengine.quality.expr import MAX_DEPTH, MAX_EXPR_CHARS, parse_expr
from twinengine.quality.plan import CarriedState, QualityPlan

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NAN = float("nan")
FIELDS = {"time": {"type": "timestamp"}, "well": {"type": "string"}, "head": {"type": "float", "nullable": True},
          "rate": {"type": "float", "nullable": True}}
SPIKE = {"check": "spike", "field": "head", "max_change": 0.5}


def _plan(quality: list[dict[str, Any]], key: str | None = "well") -> QualityPlan:
    declared = Stream.model_validate({"key": key, "fields": FIELDS, "quality": quality})
    return QualityPlan(declared.quality, time_field="time", key=declared.key)


def _table(heads: Sequence[float | None], rates: Sequence[float | None],
           wells: Sequence[str | None] | None = None) -> pa.Table:
    n = len(heads)
    return pa.table({"time": pa.array([T0 + timedelta(minutes=15 * i) for i in range(n)], pa.timestamp("us", tz="UTC")),
                     "well": pa.array(wells or ["W1"] * n, pa.string()),
                     "head": pa.array(heads, pa.float64()), "rate": pa.array(rates, pa.float64())})


def _reasons(plan: QualityPlan, *tables: pa.Table, state: CarriedState | None = None) -> list[str | None]:
    state = CarriedState() if state is None else state
    out: list[str | None] = []
    for table in tables:
        out += plan.apply(table, arrival_us=int(T0.timestamp() * 1e6), state=state)[1].to_pylist()
    return out


# a pumping test: the rate steps from 10 to 25 at reading 3 and the head draws down 2 m; at reading 7 the head
# jumps 1.5 m with the rate unchanged (a faulty reading), and returns at reading 8
HEADS: list[float | None] = [20.0, 20.1, 20.05, 18.0, 17.9, 17.85, 17.8, 19.3, 17.8, 17.75]
RATES: list[float | None] = [10.0, 10.0, 10.0, 25.0, 25.0, 25.0, 25.0, 25.0, 25.0, 25.0]


def test_a_drawdown_after_a_rate_change_is_a_spike_without_when() -> None:
    reasons = _reasons(_plan([SPIKE]), _table(HEADS, RATES))
    assert [i for i, r in enumerate(reasons) if r] == [3, 7]


def test_a_spike_check_suspended_while_the_rate_changed_still_flags_a_spike_at_an_unchanged_rate() -> None:
    plan = _plan([{**SPIKE, "when": "rate == prev.rate"}])
    reasons = _reasons(plan, _table(HEADS, RATES))
    assert reasons == [None] * 7 + ["spike:head"] + [None] * 2
    # the drawdown is the new level: the reading after it is judged against it, not against the old head
    assert _reasons(plan, _table([20.0, 18.0, 18.1], [10.0, 25.0, 25.0])) == [None, None, None]


@pytest.mark.parametrize("cut", range(1, 10))
def test_the_previous_record_is_carried_across_batches_as_in_one_batch(cut: int) -> None:
    plan = _plan([{**SPIKE, "when": "rate == prev.rate"},
                  {"check": "consistency", "expr": "abs(head - prev.head) < 1 or rate != prev.rate",
                   "name": "jump", "severity": "suspect"}])
    table = _table(HEADS, RATES)
    whole = _reasons(plan, table)
    assert whole == [None] * 7 + ["spike:head,jump", "jump"] + [None]
    assert _reasons(plan, table.slice(0, cut), table.slice(cut)) == whole


def test_the_previous_record_is_of_the_same_source() -> None:
    plan = _plan([{"check": "consistency", "expr": "head - prev.head > -1", "name": "drop"}])
    wells = ["A", "B", "A", "B", "A", "B"]
    heads: list[float | None] = [10.0, 5.0, 9.5, 5.2, 8.0, 5.1]
    # each well's first reading has no previous one and is not judged; B is never compared with A
    assert _reasons(plan, _table(heads, [1.0] * 6, wells)) == [None, None, None, None, "drop", None]
    state = CarriedState()
    split = _reasons(plan, _table(heads[:3], [1.0] * 3, wells[:3]), _table(heads[3:], [1.0] * 3, wells[3:]),
                     state=state)
    assert split == [None, None, None, None, "drop", None]
    # a record of no source beside several has no previous record, nor does it become one
    assert _reasons(plan, _table([1.0, 7.5, 5.0], [1.0] * 3, [None, "A", "B"]), state=state) == [None] * 3
    assert _reasons(plan, _table([6.0], [1.0], ["A"]), state=state) == ["drop"]  # 7.5 before it, not 1.0


def test_where_a_field_read_is_null_the_condition_is_unknown() -> None:
    """A consistency check does not judge the row; a ``when`` does not suspend the check there."""
    heads: list[float | None] = [20.0, 18.0, 18.0, 16.0]
    rates: list[float | None] = [10.0, None, 25.0, 25.0]
    assert _reasons(_plan([{**SPIKE, "when": "rate == prev.rate"}]), _table(heads, rates)) == \
        [None, "spike:head", None, "spike:head"]
    consistency = _plan([{"check": "consistency", "expr": "head / rate > 0.8", "name": "ratio"}])
    assert _reasons(consistency, _table([10.0, 10.0, 10.0, 10.0], [10.0, None, 0.0, 20.0])) == \
        [None, None, None, "ratio"]  # a zero divisor is unknown too


def test_a_plan_reading_the_previous_record_remembers_it_after_a_restart() -> None:
    plan = _plan([{"check": "consistency", "expr": "rate == prev.rate", "name": "rate_changed"}])
    assert plan.stateful and plan.history >= 1  # the hub replays the log's tail to rebuild it


@pytest.mark.parametrize(("text", "words"), [
    ("rate == = prev.rate", "cannot read '= prev.rate' at position 9"),
    ("(head < 1 or rate > 2", "unbalanced parentheses: '(' at position 1 is never closed"),
    ("head < 1)", "unbalanced parentheses: ')' at position 9 closes no '('"),
    ("head < 1 and", "expected a field, a number or '(' at position 13"),
    ("head + (rate < 2) > 1", "expected a number, not a condition at position 8"),
    ("head < 1 or 2", "expected a condition (a comparison such as 'level < 15'), not a number at position 13"),
    ("abs(head, rate) < 1", "abs takes one number at position 1"),
    ("min(head) < 1", "min takes at least 2 numbers at position 1"),
    ("prev.(head) < 1", "expected a field after 'prev.' at position 6"),
    ("head < not", "'not' is a word of the grammar"),
    ("__import__('os')", "cannot read"),
    ("head < 1; rate", "cannot read ';"),
    ("1 < 2", "reads no field"),
    ("head rate", "expected an operator"),
    ("(" * (MAX_DEPTH + 1) + "head" + ")" * (MAX_DEPTH + 1) + " < 1", f"deeper than {MAX_DEPTH}"),
    ("head < 1 or " * 20 + "head < 1", f"at most {MAX_EXPR_CHARS} characters"),
])
def test_a_bad_expression_says_what_and_where(text: str, words: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_expr(text)
    assert words in str(refused.value)


def test_an_expression_lists_what_it_reads_with_positions() -> None:
    expression = parse_expr("abs(head - prev.head) < 0.5 or rate != prev.rate")
    assert expression.fields == ["head", "rate"] and expression.previous == ["head", "rate"]
    assert [(r.field, r.prev, r.position) for r in expression.references] == [
        ("head", False, 5), ("head", True, 12), ("rate", False, 32), ("rate", True, 40)]
    assert parse_expr("min < max(min, 2)").fields == ["min"]  # a function's name is a field's without '('


BASE = yaml.safe_load((RIVER_REACH / "twinapp.yaml").read_text())


def _problems(checks: list[dict[str, Any]], *, state: list[dict[str, Any]] | None = None) -> dict[str, str]:
    data = copy.deepcopy(BASE)
    data["streams"]["gauges"]["quality"] = checks
    if state is not None:
        data["state"]["level"]["quality"] = state
    _manifest, found = check_manifest_data(data)
    return {p.loc: p.msg for p in found}


@pytest.mark.parametrize(("check", "loc", "words"), [
    ({"check": "spike", "field": "level", "max_change": 0.5, "when": "rate == prev.rate"},
     "streams.gauges.quality[0].when", "'rate' (at position 1) is not a field of stream 'gauges'"),
    ({"check": "consistency", "expr": "abs(level - prev.lvl) < 1"},
     "streams.gauges.quality[0].expr", "'lvl' (at position 13) is not a field"),
    ({"check": "consistency", "expr": "level < 1", "when": "prev.station == 1"},
     "streams.gauges.quality[0].when", "'station' (at position 1) is a string field; quality checks judge numbers"),
    ({"check": "range", "field": "level", "max": 9, "when": "(rain < 1"},
     "streams.gauges.quality[0].when", "unbalanced parentheses"),
    ({"check": "consistency", "expr": "rain < 1 or " * 20 + "rain < 1"},
     "streams.gauges.quality[0].expr", f"at most {MAX_EXPR_CHARS} characters"),
    ({"check": "completeness", "window": "1h", "every": "15min", "when": "rain < 1"},
     "streams.gauges.quality[0].when", "unknown field"),
])
def test_a_bad_condition_is_refused_naming_its_manifest_path(check: dict[str, Any], loc: str, words: str) -> None:
    found = _problems([check])
    assert loc in found, found
    assert words in found[loc]


def test_a_state_propertys_check_takes_no_when() -> None:
    found = _problems([], state=[{"check": "range", "min": 0, "max": 10, "when": "value > 1"}])
    assert "'when' is for checks of stream records" in found["state.level.quality[0]"], found


def test_a_condition_over_declared_fields_is_accepted() -> None:
    assert _problems([{"check": "spike", "field": "level", "max_change": 0.5, "when": "rain == prev.rain"},
                      {"check": "consistency", "expr": "level - prev.level < max(rain, 1) * 2"}]) == {}


@pytest.mark.parametrize("seed", range(4))
def test_sources_interleaved_at_random_and_cut_anywhere_read_their_own_previous_record(seed: int) -> None:
    rng = np.random.default_rng(seed)
    plan = _plan([{"check": "consistency", "expr": "abs(head - prev.head) < 1 or rate != prev.rate", "name": "jump"}])
    n = 300
    wells = [f"W{k}" for k in rng.integers(0, int(rng.integers(1, 20)), n).tolist()]
    heads = [None if rng.random() < 0.1 else float(v) for v in rng.choice([1.0, 1.5, 2.2, 3.0], n)]
    rates = [None if rng.random() < 0.1 else float(v) for v in rng.choice([10.0, 25.0], n, p=[0.8, 0.2])]
    last: dict[str, tuple[float | None, float | None]] = {}
    expected: list[str | None] = []
    for well, head, rate in zip(wells, heads, rates, strict=True):  # the definition, one record at a time
        prev_head, prev_rate = last.get(well, (None, None))
        values = (head, rate, prev_head, prev_rate)
        known = all(v is not None and not math.isnan(v) for v in values)
        holds = known and (abs(head - prev_head) < 1 or rate != prev_rate)  # type: ignore[operator]
        expected.append("jump" if known and not holds else None)
        last[well] = (head, rate)
    table = _table(heads, rates, wells)
    cuts = sorted({0, n, *rng.integers(1, n, int(rng.integers(0, 6))).tolist()})
    assert _reasons(plan, *(table.slice(a, b - a) for a, b in itertools.pairwise(cuts))) == expected
