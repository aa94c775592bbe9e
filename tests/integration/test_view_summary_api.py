"""A view answered in words over HTTP: the flood summary filled from state, the latest ensemble forecast and
the verification of earlier forecasts; stale data said as such; a view that is not declared is a 404."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from helpers import RIVER_REACH, Engine
from twinengine.client import Client
from twinengine.errors import TwinEngineError, ViewNotFound
from twinengine.twins.schemas import PropertyWrite

HOURS = 48
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
START = NOW - timedelta(hours=HOURS)


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    return client


def view(client: Client, twin: str = "reach", name: str = "flood") -> dict[str, Any]:
    return dict(client._request("GET", f"/api/v1/twins/{twin}/views/{name}").json())


def truth(hours: float) -> float:
    return float(1.5 + 0.5 * np.sin(hours / 6.0))


def feed(uma: Client) -> None:
    """Forecasts with a 90 % interval every 6 h, hourly levels two minutes off the hour, then the flood now:
    a level of 2.72 m some minutes ago and a 16-member forecast whose every member crosses 1.8 m."""
    rng = np.random.default_rng(3)
    for start in range(0, HOURS - 6, 6):
        values = [truth(start + k) + 0.05 * rng.standard_normal() for k in range(1, 7)]
        uma.verification.add_forecast("reach", "level", values, issued_at=START + timedelta(hours=start), step="1h",
                                      lower=[v - 0.2 for v in values], upper=[v + 0.2 for v in values],
                                      interval_level=0.9, workflow="forecast")
    for h in range(HOURS):
        uma.write_state("reach", reported={"level": PropertyWrite(
            value=truth(h), timestamp=START + timedelta(hours=h, minutes=2))})
    uma.write_state("reach", desired={"alert_threshold": 1.8})
    recent = datetime.now(UTC) - timedelta(minutes=14, seconds=10)
    uma.write_state("reach", reported={"level": PropertyWrite(value=2.72, timestamp=recent),
                                       "alert": PropertyWrite(value=True, timestamp=recent)})
    members = [[2.0 + 0.1 * m + 0.01 * k for m in range(16)] for k in range(48)]
    uma.verification.add_forecast("reach", "level", [float(np.mean(row)) for row in members], issued_at=NOW,
                                  step="1h", members=members, workflow="forecast")


def test_the_flood_view_says_the_alert_the_forecast_and_the_skill_in_words(uma: Client) -> None:
    feed(uma)
    got = view(uma)
    assert got["title"] == "Flood watch" and got["summary"].startswith("Flood alert {state.alert?ON|OFF}")
    assert re.fullmatch(r"Flood alert ON at reach: level 2\.72 m, 0\.92 m above the 1\.8 m threshold; chance of "
                        r"exceeding it within 24 h: 100% \(16 of 16 ensemble members\), within 6 h 100%, 12 h 100%, "
                        r"48 h 100%; past 24-h forecasts: not checked yet; last reading 1\d min ago",
                        got["summary_text"])
    assert got["stale"] == [] and got["stale_text"] is None
    assert got["forecast"]["members"] == 16 and got["forecast"]["exceeding"] == 16
    skill = got["skill"]
    scores = uma.verification.scores("reach", "level", lead="PT6H", since=NOW - timedelta(days=30))
    assert skill["available"] and skill["lead_seconds"] == 6 * 3600 and skill["n"] == scores.leads[0].n > 0
    coverage = scores.leads[0].coverage
    assert coverage is not None and skill["coverage"] == pytest.approx(coverage)
    assert skill["text"].startswith(f"Over the last 30 days, 6-h forecasts of level were within their 90% band "
                                    f"{coverage:.0%} of the time (NSE ")
    assert got["model"]["text"] == "Model runoff_correction has no trained version yet."


def test_a_new_twin_says_it_has_nothing_yet(uma: Client) -> None:
    got = view(uma)
    assert got["summary_text"] == "reach has not reported the values this summary reads yet."
    assert got["skill"]["available"] is False
    assert got["skill"]["text"].startswith("No verification is available yet: no 6-h forecast of level")
    assert got["forecast"] is None


def test_stale_data_is_said_in_words(uma: Client) -> None:
    old = datetime.now(UTC) - timedelta(hours=3, minutes=5)
    uma.write_state("reach", reported={"level": PropertyWrite(value=1.2, timestamp=old),
                                       "alert": PropertyWrite(value=False, timestamp=old)},
                    desired={"alert_threshold": 1.8})
    got = view(uma)
    assert got["stale"] == ["level"]
    assert re.fullmatch(r"Stale data: level was last reported 3 h [56] min ago, while a value is expected at least "
                        r"every 20 min\.", got["stale_text"])
    assert got["summary_text"].startswith("Flood alert OFF at reach: level 1.20 m, 0.60 m below the 1.8 m threshold")


def test_an_undeclared_view_is_a_404_naming_the_declared_ones(uma: Client, engine: Engine) -> None:
    with pytest.raises(ViewNotFound, match="flood"):
        view(uma, name="drought")
    with pytest.raises(TwinEngineError) as caught:  # a twin eve may not read answers nothing about its views
        view(engine.as_role("eve", "user"))
    assert caught.value.status in (403, 404)


def test_the_outlook_answers_per_lead_time_with_the_ensembles_spread_and_past_skill(uma: Client) -> None:
    """Will the level exceed the alert level within 6, 12, 24 and 48 h, how sure is the ensemble, and how good
    were past forecasts at those leads: computed by the engine from the members, said in the summary."""
    feed(uma)
    rng = np.random.default_rng(8)
    base = np.linspace(1.0, 2.6, 48)  # the members rise through the 1.8 m threshold at different times
    members = [[float(b + 0.4 * rng.standard_normal()) for _m in range(10)] for b in base]
    uma.verification.add_forecast("reach", "level", [float(np.mean(row)) for row in members],
                                  issued_at=NOW + timedelta(hours=1), step="1h", members=members, workflow="forecast",
                                  quantiles={"0.05": [float(np.quantile(r, 0.05)) for r in members],
                                             "0.95": [float(np.quantile(r, 0.95)) for r in members]})
    got = view(uma)
    ahead = got["outlook"]
    matrix = np.asarray(members)  # (step, member); step k is valid at lead k + 1 hours
    assert ahead["threshold"] == 1.8 and ahead["members"] == 10 and ahead["band"] == "5-95 %"
    assert [r["key"] for r in ahead["leads"]] == ["6h", "12h", "24h", "48h"]
    for row, hours in zip(ahead["leads"], (6, 12, 24, 48), strict=True):
        within = (matrix[:hours] > 1.8).any(axis=0)
        assert row["reached"] and row["lead_seconds"] == hours * 3600
        assert row["probability"] == pytest.approx(within.mean()) and row["exceeding"] == int(within.sum())
        assert row["probability_at"] == pytest.approx((matrix[hours - 1] > 1.8).mean())
        assert row["spread"] == pytest.approx(matrix[hours - 1].std(ddof=1))
        assert row["low"] == pytest.approx(np.quantile(matrix[hours - 1], 0.05))
    chances = [row["probability"] for row in ahead["leads"]]
    assert chances == sorted(chances)  # within a longer lead, never less likely
    # past forecasts: the 6-hourly ones of feed() were checked up to 6 h ahead, none 12 h or more
    six = ahead["leads"][0]["skill"]
    scores = uma.verification.scores("reach", "level", lead="PT6H", since=NOW - timedelta(days=30))
    assert six is not None and six["n"] == scores.leads[0].n and six["coverage"] == pytest.approx(
        scores.leads[0].coverage)
    assert [row["skill"] for row in ahead["leads"][1:]] == [None, None, None]
    assert ahead["skill_text"].startswith("Past forecasts: 6 h ahead NSE ") and ahead["skill_text"].endswith(
        "12, 24 and 48 h ahead not checked yet.")
    assert ahead["text"].startswith(f"Chance the level exceeds 1.8 m within 6 h: {round(chances[0] * 100)} %")
    # the summary says it with the same numbers
    assert (f"chance of exceeding it within 24 h: {chances[2]:.0%} ({ahead['leads'][2]['exceeding']} of 10 ensemble "
            "members)") in got["summary_text"]
    assert got["forecast"]["issued_at"].startswith((NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H"))


def test_a_forecast_beyond_its_horizon_says_so(uma: Client) -> None:
    uma.write_state("reach", desired={"alert_threshold": 1.0})
    uma.verification.add_forecast("reach", "level", [0.5, 1.5, 0.5], issued_at=NOW, step="1h", workflow="forecast")
    ahead = view(uma)["outlook"]
    assert [row["reached"] for row in ahead["leads"]] == [False] * 4
    assert [row["probability"] for row in ahead["leads"]] == [None] * 4
    assert "reaches none of the outlook's lead times" in ahead["text"]
    assert "(the forecast ends before 6, 12, 24 and 48 h)" in ahead["text"]


def test_the_official_twin_at_a_place_is_named(uma: Client, engine: Engine) -> None:
    """Of several twins at one gauge the one tagged official says so, its forks never inherit the tag, and
    another twin at that gauge names the official one (only to those who may read it)."""
    uma.create_twin("river-reach@0.1.0", "reach-live", {"station": "RR-01"})
    assert view(uma)["official"] == {"official": False, "place": "RR-01", "twins": [], "text": None}
    uma.update_twin("reach", tags=["official", "lowland"])
    fork = uma.fork_twin("reach", "reach-wetter")
    assert "official" not in fork.tags and "lowland" in fork.tags
    mine = view(uma)["official"]
    assert mine["official"] is True and mine["text"] == "reach is the official twin at RR-01."
    other = view(uma, "reach-live")["official"]
    assert other["official"] is False and other["twins"] == ["reach"]
    assert other["text"] == "reach-live is not the official twin at RR-01: the official one is reach."
    assert view(uma, "reach-wetter")["official"]["twins"] == ["reach"]
    glances = {t.name: t.glance for t in uma.list_twins(glance=True).items}
    assert glances["reach"] is not None and glances["reach"].official
    assert glances["reach-live"] is not None and not glances["reach-live"].official
    # eve's own twin at the gauge names no official twin she may not read
    eve = engine.as_role("eve", "user")
    eve.create_twin("river-reach@0.1.0", "eves-reach", {"station": "RR-01"})
    assert eve.view("eves-reach", "flood").official is not None
    assert eve.view("eves-reach", "flood").official.twins == []
