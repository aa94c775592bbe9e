"""``twin calibrate`` on the well field: the aquifer's transmissivity T and storativity S recovered from a
synthetic pumping test (four observation wells, hourly heads from the Theis model with known T and S and 5 mm
of noise) through the app's own model in sandboxed workers, with a small budget."""

from __future__ import annotations

import pytest

from helpers import REPO, LiveEngine

WELL_FIELD = REPO / "examples" / "apps" / "well-field"


@pytest.mark.sandbox
def test_twin_calibrate_recovers_the_aquifer_s_t_and_s(live: LiveEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(WELL_FIELD))
    from well_field.synthetic import TRUE, pumping_test

    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(WELL_FIELD), token=dev)
    live.twin("create", "well-field@0.1.0", "--name", "field", "--param", "field=WF-01", token=user)
    readings = pumping_test()
    with live.client(user) as uma:
        uma.streams.append("field", "readings", readings)
    found = live.twin_json("calibrate", "field", "--method", "de", "--runs", "200", "--workers", "2", "--seed",
                           "1", "--wait", token=user)
    assert found["status"] == "done" and found["runs_done"] <= 200 and found["parameters"] == ["T", "S"]
    best = found["best"]
    assert best["T"] == pytest.approx(TRUE["T"], rel=0.05)  # 300 m2/d, searched within 50-1000
    assert best["S"] == pytest.approx(TRUE["S"], rel=0.10)  # 2e-4, searched within 1e-5-1e-3
    assert found["best_score"] < 0.01  # RMSE in m: the 5 mm noise is the floor
    low, high = found["summary"]["interval"]["T"]
    assert low <= best["T"] <= high
