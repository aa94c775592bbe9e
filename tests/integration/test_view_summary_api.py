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
    assert re.fullmatch(r"Flood alert ON at reach: level 2\.72 m, 0\.92 m above the 1\.8 m threshold; 16 of 16 "
                        r"ensemble members exceed it within 48 h; last reading 1\d min ago", got["summary_text"])
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
