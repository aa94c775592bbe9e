"""``twin verify TWIN --against open-loop`` against a live engine: river-reach assimilated from a wrong first
guess, then forecasts from its analyses against the model run without assimilation, as a table, a sentence,
the filter's health, JSON for machines and a PNG; a bad comparison is a message naming the option."""

from __future__ import annotations

from pathlib import Path

from assimilation_data import T0, reach_gauges
from helpers import RIVER_REACH, LiveEngine
from twinengine.twins.schemas import PropertyWrite


def test_twin_verify_against_the_open_loop(live: LiveEngine, tmp_path: Path) -> None:
    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=user)
    with live.client(user) as uma:
        uma.write_state("reach", reported={"storage": PropertyWrite(value=10.0, timestamp=T0)})
        uma.streams.append("reach", "gauges", reach_gauges(40))
        assert len(uma.assimilation.run("reach", cycles=100).cycles) == 40
    plot = tmp_path / "skill.png"
    shown = live.twin("verify", "reach", "--against", "open-loop", "--plot", str(plot), token=user)
    assert "forecasts from the analysis against without assimilation" in shown
    assert "nse (analysis)" in shown and "nse (open loop)" in shown and "1 h" in shown and "3 h" in shown
    assert "forecasts of level from the analysis: NSE" in shown and "without assimilation:" in shown
    assert "latest analysis: 2026-03-01 10:00 UTC (cycle 40" in shown and "the filter" in shown.lower()
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = live.twin_json("verify", "reach", "--against", "open-loop", "--lead", "1h", "--no-plot", token=user)
    (ours,), (alone,) = data["assimilated"], data["open_loop"]
    assert ours["lead_seconds"] == alone["lead_seconds"] == 3600 and ours["n"] == alone["n"] > 10
    assert ours["rmse"] < alone["rmse"]  # the analyses start where the gauge says; the model alone does not
    assert data["property"] == "level" and data["filter"]["cycles"] == 40 and data["plot"] is None
    bad = live.twin("verify", "reach", "--against", "climatology", token=user, expect=2)
    assert "--against" in bad and "Traceback" not in bad
