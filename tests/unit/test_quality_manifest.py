"""Quality declarations in ``twinapp.yaml``: what is accepted, and errors that name the field as written
(``streams.gauges.quality[1].max``), never the check kind pydantic puts in its locations."""

from __future__ import annotations

import copy
import sys
from datetime import timedelta
from typing import Any

import pytest
import yaml

from helpers import RIVER_REACH
from twinengine.catalog.validate import check_manifest_data

BASE = yaml.safe_load((RIVER_REACH / "twinapp.yaml").read_text())


def problems(checks: list[dict[str, Any]], function: dict[str, Any] | None = None) -> dict[str, str]:
    data = copy.deepcopy(BASE)
    data["streams"]["gauges"]["quality"] = checks
    data["functions"]["gauge_to_state"].update(function or {})
    _manifest, found = check_manifest_data(data)
    return {p.loc: p.msg for p in found}


def test_river_reach_declares_its_gauge_checks() -> None:
    manifest, found = check_manifest_data(copy.deepcopy(BASE))
    assert found == [] and manifest is not None
    kinds = [c.check for c in manifest.streams["gauges"].quality]
    assert {"range", "spike", "flatline", "gap", "completeness"} <= set(kinds)
    gap = next(c for c in manifest.streams["gauges"].quality if c.check == "gap")
    assert gap.every == timedelta(minutes=15)
    assert [f.value for f in manifest.functions["gauge_to_state"].quality.exclude] == ["bad"]


@pytest.mark.parametrize(("quality", "loc", "words"), [
    ([{"check": "range", "field": "level", "min": 0}, {"check": "range", "field": "level", "min": 5, "max": 1}],
     "streams.gauges.quality[1].max", "below min"),
    ([{"check": "range", "field": "level"}], "streams.gauges.quality[0]", "min, max"),
    ([{"check": "spike", "field": "level", "max_change": -1}], "streams.gauges.quality[0].max_change", "greater"),
    ([{"check": "gap", "every": "soon"}], "streams.gauges.quality[0].every", "not a duration"),
    ([{"check": "flatline", "field": "level"}], "streams.gauges.quality[0]", "records or duration"),
    ([{"check": "consistency", "expr": "rain <= = level"}], "streams.gauges.quality[0].expr", "cannot read"),
    ([{"check": "range", "field": "level", "max": 3, "colour": "red"}], "streams.gauges.quality[0].colour",
     "unknown field"),
    ([{"check": "median", "field": "level"}], "streams.gauges.quality[0]", "check"),
    ([{"check": "range", "field": "levle", "max": 3}], "streams.gauges.quality[0].field", "not a field"),
    ([{"check": "range", "field": "station", "max": 3}], "streams.gauges.quality[0].field", "judge numbers"),
    ([{"check": "consistency", "expr": "rain <= lvl"}], "streams.gauges.quality[0].expr", "not a field"),
    ([{"check": "completeness", "window": "1h"}], "streams.gauges.quality[0].every", "cadence"),
    ([{"check": "gap", "every": "15min"}, {"check": "gap", "every": "1h"}], "streams.gauges.quality",
     "one gap check"),
])
def test_bad_declarations_name_the_field(quality: list[dict[str, Any]], loc: str, words: str) -> None:
    found = problems(quality)
    assert loc in found, found
    assert words in found[loc]


def test_a_function_cannot_exclude_good_records() -> None:
    found = problems([], {"quality": {"exclude": ["good"]}})
    assert "good records cannot be excluded" in found["functions.gauge_to_state.quality.exclude"]


def test_the_simulator_injects_a_spike_a_stuck_sensor_and_a_gap() -> None:
    from datetime import UTC, datetime

    sys.path.insert(0, str(RIVER_REACH))
    import river_reach as reach

    simulator = reach.ReachSimulator("RR-01", reach.Catchment.from_parameters({}), reach.RatingCurve(18, 1.6, 0.2),
                                     start=datetime(2026, 3, 1, tzinfo=UTC))
    clean = list(simulator.readings(24))
    faulty, faults = reach.with_faults(clean)
    assert len(faulty) == len(clean) - faults.gap_for
    assert faulty[faults.spike_at].level == pytest.approx(clean[faults.spike_at].level + 3.0)
    stuck = {r.level for r in faulty[faults.stuck_at: faults.stuck_at + faults.stuck_for]}
    assert stuck == {clean[faults.stuck_at].level}
    assert faulty[faults.gap_at].time - faulty[faults.gap_at - 1].time == timedelta(minutes=15 * (faults.gap_for + 1))
    with pytest.raises(ValueError):
        reach.with_faults(clean[:20])
