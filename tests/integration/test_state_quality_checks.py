"""Quality checks on reported state (``quality:`` under a state property): range, spike and flatline judge
each value against the property's own history, in the write's transaction; a failing value is kept and
flagged with the checks' names, one write at a time or a batch judged as one series, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers import MINIMAL_STATE, Engine, make_app
from twinengine.client import Client
from twinengine.errors import ValidationFailed
from twinengine.twins.schemas import PropertyWrite

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CHECKED = {**MINIMAL_STATE, "level": {**MINIMAL_STATE["level"], "quality": [
    {"check": "range", "min": 0, "max": 10},                       # bad
    {"check": "spike", "max_change": 0.5},                         # suspect
    {"check": "flatline", "records": 3, "name": "stuck_gauge"}]}}  # suspect, named
# a reading, and the checks it fails (in declaration order)
SERIES = [(1.0, []), (1.1, []), (5.0, ["spike:level"]), (1.2, []),  # a one-reading spike: its return is fine
          (1.2, []), (1.2, ["stuck_gauge"]), (1.2, ["stuck_gauge"]), (20.0, ["range:level", "spike:level"])]


@pytest.fixture
def uma(engine: Engine, tmp_path: Path) -> Client:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="checked-app",
                                                            manifest={"state": CHECKED}))
    client = engine.as_role("uma", "user")
    for name in ("one-by-one", "batched"):
        client.create_twin("checked-app@1.0.0", name, {"station": "S1"})
    return client


def _flags(uma: Client, twin: str) -> list[tuple[str, list[str]]]:
    items = sorted(uma.history(twin, "level").items, key=lambda v: v.revision)
    return [(v.quality.flag if v.quality else "good", (v.quality.checks or []) if v.quality else [])
            for v in items]


def _expected() -> list[tuple[str, list[str]]]:
    out = []
    for _value, failed in SERIES:
        flag = "bad" if "range:level" in failed else "suspect" if failed else "good"
        out.append((flag, failed))
    return out


def test_each_write_is_judged_against_the_values_before_it(uma: Client) -> None:
    for n, (value, _failed) in enumerate(SERIES):
        uma.write_state("one-by-one", reported={"level": PropertyWrite(value=value,
                                                                       timestamp=T0 + timedelta(minutes=n))})
    assert _flags(uma, "one-by-one") == _expected()
    head = uma.get_state("one-by-one").reported["level"]
    assert head.value == 20.0 and head.quality is not None and head.quality.flag == "bad"
    uma.write_state("one-by-one", reported={"count": 3})  # an unchecked property: nothing said
    assert uma.get_state("one-by-one").reported["count"].quality is None


def test_a_batch_is_judged_as_one_series(uma: Client) -> None:
    uma.write_state_batch([{"twin": "batched", "reported": {"level": PropertyWrite(
        value=value, timestamp=T0 + timedelta(minutes=n))}} for n, (value, _f) in enumerate(SERIES)])
    assert _flags(uma, "batched") == _expected()


def test_a_bad_check_declaration_names_its_place(engine: Engine, tmp_path: Path) -> None:
    wrong = {**MINIMAL_STATE, "level": {**MINIMAL_STATE["level"], "quality": [
        {"check": "spike", "max_change": 0.5}, {"check": "completeness", "window": "1h"}]}}
    with pytest.raises(ValidationFailed) as refused:
        engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="wrong-app",
                                                                manifest={"state": wrong}))
    assert any(p.loc.startswith("state.level.quality[1]") and "for stream records" in p.msg
               for p in refused.value.problems), refused.value.problems
    text = {**MINIMAL_STATE, "label": {**MINIMAL_STATE["label"], "quality": [{"check": "range", "max": 1}]}}
    with pytest.raises(ValidationFailed, match="number and integer properties only"):  # gap is for any
        engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="text-app", manifest={"state": text}))
