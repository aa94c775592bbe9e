"""Values that carry their uncertainty (SQLite and PostgreSQL): written, then read now, as of a time and a
revision, in history, diffs, forks, revisions, Server-Sent Events, batches and fleet aggregates; bad forms
are 422 naming the field, and nothing is written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from helpers import RIVER_REACH, Engine
from twinengine.client import Client
from twinengine.errors import ValidationFailed
from twinengine.quality.uncertainty import Uncertainty
from twinengine.twins.schemas import PropertyWrite

T0 = datetime(2026, 3, 1, tzinfo=UTC)
PEAK = "forecast_peak_level"  # river-reach declares std, quantiles and members for it
QUANTILES = {"0.05": 1.7, "0.5": 2.1, "0.95": 2.6}


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    return client


def _peak(value: float, hour: int, **uncertainty: Any) -> dict[str, PropertyWrite]:
    return {PEAK: PropertyWrite(value=value, timestamp=T0 + timedelta(hours=hour),
                                uncertainty=Uncertainty(**uncertainty) if uncertainty else None)}


def test_uncertainty_travels_through_reads_history_diff_and_forks(uma: Client) -> None:
    first = uma.write_state("reach", reported=_peak(2.1, 0, std=0.3))
    assert first.changes[0].uncertainty == Uncertainty(std=0.3)
    uma.write_state("reach", reported=_peak(2.2, 1, quantiles=QUANTILES, members=[1.9, 2.2, 2.5]))
    uma.write_state("reach", reported=_peak(2.4, 2))  # a plain value again
    now = uma.get_state("reach").reported[PEAK]
    assert now.value == 2.4 and now.uncertainty is None
    at = uma.get_state("reach", at=T0 + timedelta(minutes=30)).reported[PEAK]
    assert at.value == 2.1 and at.uncertainty is not None and at.uncertainty.std == pytest.approx(0.3)
    second = uma.get_state("reach", revision=2).reported[PEAK]
    assert second.uncertainty is not None and second.uncertainty.quantiles == QUANTILES
    assert list(second.uncertainty.quantiles) == ["0.05", "0.5", "0.95"]  # by level, also from jsonb
    assert second.uncertainty.members == [1.9, 2.2, 2.5] and second.uncertainty.std is None
    history = uma.history("reach", PEAK).items
    assert [(v.value, v.uncertainty.plain() if v.uncertainty else None) for v in history] == [
        (2.1, {"std": 0.3}), (2.2, {"quantiles": QUANTILES, "members": [1.9, 2.2, 2.5]}), (2.4, None)]
    change = uma.diff("reach", 1, 2).changes[0]
    assert change.change == "changed" and change.before is not None and change.after is not None
    assert change.before.uncertainty == Uncertainty(std=0.3) and change.after.uncertainty is not None
    assert uma.revisions("reach").items[1].changes[0].uncertainty is not None
    uma.fork_twin("reach", "reach-what-if", at_revision=2)
    forked = uma.get_state("reach-what-if").reported[PEAK]
    assert forked.value == 2.2 and forked.uncertainty == second.uncertainty


def test_only_the_uncertainty_changing_is_a_change(uma: Client) -> None:
    uma.write_state("reach", reported=_peak(2.1, 0, std=0.3))
    uma.write_state("reach", reported=_peak(2.1, 0, std=0.5))
    changes = uma.diff("reach", 1, 2).changes
    assert [c.change for c in changes] == ["changed"]


def test_a_value_in_another_unit_brings_its_uncertainty_along(uma: Client) -> None:
    uma.write_state("reach", reported={PEAK: PropertyWrite(value=210, unit="cm", uncertainty=Uncertainty(
        std=30, quantiles={"0.1": 170, "0.9": 250}))})
    value = uma.get_state("reach").reported[PEAK]
    assert value.value == pytest.approx(2.1) and value.unit == "m" and value.uncertainty is not None
    assert value.uncertainty.std == pytest.approx(0.3)
    assert value.uncertainty.quantiles == pytest.approx({"0.1": 1.7, "0.9": 2.5})


def test_responses_without_uncertainty_look_as_before(engine: Engine, uma: Client) -> None:
    uma.report("reach", discharge=1.0)  # a property without checks (level has a gap check: it says `stale`)
    r = engine.http.get("/api/v1/twins/reach/state", headers=engine.headers(engine.token("uma", "user")))
    assert set(r.json()["reported"]["discharge"]) == {"value", "unit", "timestamp", "revision"}


@pytest.mark.parametrize(("uncertainty", "loc"), [
    ({"std": -0.1}, "reported.forecast_peak_level.uncertainty.std"),
    ({"quantiles": {"0.5": 2.1, "0.05": 1.7}}, "reported.forecast_peak_level.uncertainty.quantiles"),
    ({"quantiles": {"1.5": 2.1}}, "reported.forecast_peak_level.uncertainty.quantiles.1.5.[key]"),
    ({"quantiles": {"0": 2.1}}, "reported.forecast_peak_level.uncertainty.quantiles.0.[key]"),
    ({"members": [1.0, "two"]}, "reported.forecast_peak_level.uncertainty.members[1]"),
    ({"variance": 0.1}, "reported.forecast_peak_level.uncertainty.variance"),
])
def test_malformed_uncertainty_is_422_naming_the_field(engine: Engine, uma: Client, uncertainty: dict[str, Any],
                                                        loc: str) -> None:
    headers = engine.headers(engine.token("uma", "user"))
    body = {"reported": {PEAK: {"value": 2.0, "uncertainty": uncertainty}, "level": {"value": 1.0}}}
    r = engine.http.patch("/api/v1/twins/reach/state", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert [d["loc"] for d in r.json()["details"]] == [loc]
    assert uma.get_twin("reach").head_revision == 0


def test_an_undeclared_form_is_422_naming_it_and_nothing_is_written(engine: Engine, uma: Client) -> None:
    headers = engine.headers(engine.token("uma", "user"))
    body = {"reported": {"level": {"value": 1.0, "uncertainty": {"std": 0.1}},
                         PEAK: {"value": 2.0, "uncertainty": {"std": 0.2}}}}
    r = engine.http.patch("/api/v1/twins/reach/state", json=body, headers=headers)
    assert r.status_code == 422
    assert [(d["loc"], "declares no uncertainty" in d["msg"]) for d in r.json()["details"]] == [
        ("reported.level.uncertainty.std", True)]
    assert uma.get_twin("reach").head_revision == 0


def test_state_events_carry_the_uncertainty(engine: Engine, uma: Client) -> None:
    with engine.http.stream("GET", "/api/v1/twins/reach/state/events", params={"after": 0, "count": 2},
                            headers=engine.headers(engine.token("uma", "user"))) as response:
        uma.write_state("reach", reported=_peak(2.1, 0, std=0.3))
        uma.report("reach", level=1.5)
        text = "".join(response.iter_text())
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert events[0]["changes"][0]["uncertainty"] == {"std": 0.3}
    assert "uncertainty" not in events[1]["changes"][0]


def test_batches_carry_the_uncertainty_and_refuse_bad_forms_whole(engine: Engine, uma: Client) -> None:
    members = PropertyWrite(value=2.1, uncertainty=Uncertainty(members=[1.8, 2.4]))
    result = uma.write_state_batch([{"twin": "reach", "reported": {PEAK: members}}])
    assert result.values == 1
    assert uma.get_state("reach").reported[PEAK].uncertainty == Uncertainty(members=[1.8, 2.4])
    headers = engine.headers(engine.token("uma", "user"))
    good = {"twin": "reach", "reported": {PEAK: {"value": 2.1, "uncertainty": {"members": [1.8, 2.4]}}}}
    bad = {"twin": "reach", "reported": {PEAK: {"value": 2.1, "uncertainty": {"std": -1}}}}
    r = engine.http.post("/api/v1/state/batch", json={"items": [good, bad]}, headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "items[1].reported.forecast_peak_level" \
                                                                    ".uncertainty.std"
    with pytest.raises(ValidationFailed) as caught:
        uma.write_state_batch([{"twin": "reach", "reported": {PEAK: members}}, {"twin": "reach", "reported": {
            "level": PropertyWrite(value=1.0, uncertainty=Uncertainty(std=0.1))}}])
    assert [p.loc for p in caught.value.problems] == ["items[1].reported.level.uncertainty.std"]
    assert uma.get_twin("reach").head_revision == 1


def test_fleet_aggregates_and_filters_read_the_value_through_its_uncertainty(uma: Client) -> None:
    uma.create_twin("river-reach@0.1.0", "reach-b", {"station": "RR-02"})
    uma.write_state("reach", reported=_peak(2.0, 0, std=0.3))
    uma.write_state("reach-b", reported=_peak(3.0, 0))
    group = uma.fleet_aggregate(PEAK).groups[0]
    assert (group.count, group.mean) == (2, pytest.approx(2.5))
    at = uma.fleet_aggregate(PEAK, at=T0 + timedelta(minutes=1)).groups[0]
    assert (at.count, at.min) == (2, pytest.approx(2.0))
    assert [t.name for t in uma.list_fleet(state=[f"{PEAK}<2.5"]).items] == ["reach"]
