"""Quality checks that read other fields and the previous record, through a real engine on both stores: a
well's drawdown after a pump-rate change is no spike when the spike check is suspended while the rate
changed (across batches), a jump at an unchanged rate still is; a bad condition is refused at publish,
naming its place in twinapp.yaml and in the expression."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import RIVER_REACH, Engine
from streams_fixtures import T0, drop_streams, stream_engine, stream_settings  # noqa: F401
from twinengine.config import Settings
from twinengine.errors import ValidationFailed

WELLS = {"time_field": "time", "key": "well",
         "fields": {"time": {"type": "timestamp"}, "well": {"type": "string"}, "head": {"type": "float"},
                    "rate": {"type": "float"}},
         "quality": [{"check": "spike", "field": "head", "max_change": 0.5, "name": "spike_any_rate"},
                     {"check": "spike", "field": "head", "max_change": 0.5, "when": "rate == prev.rate"},
                     {"check": "consistency", "expr": "abs(head - prev.head) < 1 or rate != prev.rate",
                      "name": "jump", "severity": "suspect"}]}


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return stream_settings(tmp_path / "data", "local", database_url)


@pytest.fixture
def engine(settings: Settings, drop_streams: list[Any]) -> Iterator[Engine]:  # noqa: F811
    with stream_engine(settings, drop_streams) as started:
        yield started


def _app(tmp_path: Path, wells: dict[str, Any]) -> Path:
    """river-reach with a stream of well readings (head and pump rate) beside its gauges."""
    folder = tmp_path / "river-reach"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(RIVER_REACH, folder, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = yaml.safe_load((folder / "twinapp.yaml").read_text())
    manifest["streams"]["wells"] = wells
    for section in ("assimilation", "calibration"):  # they name no stream while the app has one: not tested here
        manifest.pop(section, None)
    (folder / "twinapp.yaml").write_text(json.dumps(manifest))
    return folder


def _reading(i: int, head: float, rate: float, well: str = "W1") -> dict[str, Any]:
    time = (T0 + timedelta(minutes=15 * i)).isoformat().replace("+00:00", "Z")
    return {"time": time, "well": well, "head": head, "rate": rate}


def test_a_drawdown_after_a_rate_change_is_not_a_spike_but_a_jump_at_the_same_rate_is(engine: Engine,
                                                                                      tmp_path: Path) -> None:
    engine.as_role("ada", "developer").publish_app(_app(tmp_path, WELLS))
    uma = engine.as_role("uma", "user")
    uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    heads = [20.0, 20.1, 20.05, 18.0, 17.9, 17.85, 17.8, 19.3, 17.8, 17.75]
    rates = [10.0, 10.0, 10.0, 25.0, 25.0, 25.0, 25.0, 25.0, 25.0, 25.0]
    readings = [_reading(i, h, r) for i, (h, r) in enumerate(zip(heads, rates, strict=True))]
    uma.streams.append("reach", "wells", readings[:3])  # the rate changes on the first record of a batch
    uma.streams.append("reach", "wells", [*readings[3:], _reading(0, 5.0, 25.0, well="W2")])
    flagged = {(r["well"], r["_offset"]): (r["_quality"], r["_checks"])
               for r in uma.streams.read("reach", "wells").items if r["_checks"]}
    assert flagged == {
        ("W1", 3): ("suspect", "spike_any_rate"),  # the drawdown: only the check that ignores the rate flags it
        ("W1", 7): ("suspect", "spike_any_rate,spike:head,jump"),  # a jump at an unchanged rate
        ("W1", 8): ("suspect", "jump"),  # its return is no spike, but a jump of 1.5 m all the same
    }  # W2's first reading has no previous one of its own: it is not compared with W1's


@pytest.mark.parametrize(("check", "loc", "words"), [
    ({"check": "spike", "field": "head", "max_change": 0.5, "when": "rate == prev.pump"},
     "streams.wells.quality[0].when", "'pump' (at position 9) is not a field of stream 'wells'"),
    ({"check": "consistency", "expr": "abs(head - prev.head < 1 or rate != prev.rate"},
     "streams.wells.quality[0].expr", "unbalanced parentheses: '(' at position 4 is never closed"),
    ({"check": "consistency", "expr": " or ".join(["head < 30"] * 20)},
     "streams.wells.quality[0].expr", "at most 200 characters"),
])
def test_a_bad_condition_is_refused_at_publish_naming_its_place(engine: Engine, tmp_path: Path,
                                                                 check: dict[str, Any], loc: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        engine.as_role("ada", "developer").publish_app(_app(tmp_path, {**WELLS, "quality": [check]}))
    assert refused.value.status == 422
    problems = {p.loc: p.msg for p in refused.value.problems}
    assert words in problems.get(loc, ""), problems
    assert engine.as_role("ada", "developer").list_apps().total == 0  # nothing half-published
