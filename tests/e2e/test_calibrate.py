"""``twin calibrate`` against a live engine: river-reach's reservoir_hours and runoff_coefficient recovered from a
synthetic gauge history through the app's own model in sandboxed workers, the result proposed as a fork, accept
applying it to the twin and reject leaving the twin as it was; hostile input answered naming the field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from helpers import RIVER_REACH, LiveEngine

T0 = datetime(2026, 4, 1, tzinfo=UTC)
TRUE = {"reservoir_hours": 9.0, "runoff_coefficient": 0.6}


def _history(monkeypatch: pytest.MonkeyPatch, count: int = 160) -> list[dict[str, object]]:
    """Gauge readings every 15 minutes under two storms, the level simulated by the app's model with TRUE."""
    monkeypatch.syspath_prepend(str(RIVER_REACH))
    from river_reach.calibration import simulate

    times = [(T0 + timedelta(minutes=15 * k)).isoformat() for k in range(count)]
    rain = [4.0 * math.exp(-(((k - 30) / 8.0) ** 2)) + 2.5 * math.exp(-(((k - 100) / 12.0) ** 2))
            for k in range(count)]
    levels = simulate({"station": "RR-01", **TRUE}, {"time": times, "rain": rain})
    return [{"time": t, "station": "RR-01", "rain": round(r, 4), "level": round(h, 5)}
            for t, r, h in zip(times, rain, levels, strict=True)]


@pytest.mark.sandbox
def test_twin_calibrate_recovers_the_reach_and_a_person_decides(live: LiveEngine,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
        other = admin.create_token("oli", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=user)
    with live.client(user) as uma:
        uma.streams.append("reach", "gauges", _history(monkeypatch))

    found = live.twin_json("calibrate", "reach", "--method", "de", "--runs", "160", "--workers", "2", "--seed",
                           "1", "--wait", token=user)
    assert found["status"] == "done" and found["decision"] == "proposed" and found["percent"] == 100
    assert found["runs_done"] <= 160 and found["best_score"] > 0.99  # NSE
    best = found["best"]
    assert best["reservoir_hours"] == pytest.approx(TRUE["reservoir_hours"], rel=0.1)
    assert best["runoff_coefficient"] == pytest.approx(TRUE["runoff_coefficient"], abs=0.05)
    low, high = found["summary"]["interval"]["runoff_coefficient"]
    assert 0 <= low <= high <= 1 and found["fork"]
    with live.client(user) as uma:
        assert uma.get_twin("reach").parameters["reservoir_hours"] == 6  # unchanged until accepted
        fork = uma.get_twin(found["fork"])
        assert fork.parameters["reservoir_hours"] == pytest.approx(best["reservoir_hours"])
        runs = uma.calibration.runs(found["id"])
        assert runs.total == found["runs_done"] and set(runs.items[0].params) == set(TRUE)
        assert uma.calibration.figure(found["id"]).startswith(b"\x89PNG")
    shown = live.twin("calibrate", "show", found["id"], token=user)
    assert "posterior correlations" in shown and "reservoir_hours" in shown and "accept" in shown
    assert found["id"] in live.twin("calibrate", "list", "reach", token=user)

    # another user may neither read nor decide it; the owner accepts: the twin takes the parameters
    assert "Traceback" not in live.twin("calibrate", "accept", found["id"], token=other, expect=1)
    assert "reach: parameters set to" in live.twin("calibrate", "accept", found["id"], token=user)
    with live.client(user) as uma:
        twin = uma.get_twin("reach")
        assert twin.parameters["reservoir_hours"] == pytest.approx(best["reservoir_hours"])
        assert twin.parameters["station"] == "RR-01"
    again = live.twin("calibrate", "accept", found["id"], token=user, expect=1)
    assert "accepted" in again and "Traceback" not in again

    # a second calibration, rejected: the twin keeps what it has and the proposed fork goes
    second = live.twin_json("calibrate", "reach", "--params", "runoff_coefficient", "--bounds",
                            "runoff_coefficient=0.2:0.9", "--method", "sceua", "--runs", "60", "--wait", token=user)
    assert second["parameters"] == ["runoff_coefficient"] and second["bounds"]["runoff_coefficient"] == [0.2, 0.9]
    rejected = live.twin_json("calibrate", "reject", second["id"], token=user)
    assert rejected["decision"] == "rejected" and rejected["fork"] is None
    with live.client(user) as uma:
        assert uma.get_twin("reach").parameters == twin.parameters
        assert uma.calibration.list("reach").total == 2


def test_twin_calibrate_refuses_hostile_input_naming_the_field(live: LiveEngine) -> None:
    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
        other = admin.create_token("oli", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=user)
    cases = [
        (["--params", "area_km2"], "params[0]"),  # a parameter the app does not let calibrate
        (["--params", "nope"], "params[0]"),
        (["--bounds", "runoff_coefficient=0:2"], "bounds.runoff_coefficient.max"),  # outside the schema
        (["--bounds", "reservoir_hours=-1:5"], "bounds.reservoir_hours.min"),
        (["--bounds", "runoff_coefficient=oops"], "--bounds"),
        (["--runs", "0"], "runs"),
        (["--runs", "10000000"], "runs"),
        (["--workers", "0"], "workers"),
        (["--method", "newton"], "method"),
        (["--objective", "r2"], "objective"),
    ]
    for args, field in cases:
        said = live.twin("calibrate", "reach", *args, token=user, expect=1)
        assert field in said and "Traceback" not in said, (args, said)
    said = live.twin("calibrate", "reach", token=other, expect=1)  # another user's twin
    assert "reach" in said and "Traceback" not in said
    with live.client(user) as uma:
        assert uma.calibration.list("reach").total == 0
        with pytest.raises(Exception, match="no calibration"):
            uma.calibration.get("cal-0000")
