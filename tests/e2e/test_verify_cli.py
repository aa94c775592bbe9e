"""``twin verify`` against a live engine: the table of scores per lead, the JSON for machines, the PNG; a bad
lead is a message naming the option, never a traceback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from helpers import RIVER_REACH, LiveEngine
from twinengine.twins.schemas import PropertyWrite

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_twin_verify_shows_a_table_json_and_a_plot(live: LiveEngine, tmp_path: Path) -> None:
    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=user)
    assert "no forecast of level has been matched" in live.twin("verify", "reach", "--no-plot", token=user)
    rng = np.random.default_rng(5)
    with live.client(user) as uma:
        for start in range(0, 24, 3):
            values = [1 + 0.3 * np.sin((start + k) / 5) + 0.02 * k * rng.standard_normal() for k in (1, 2, 3)]
            members = [[v + 0.05 * rng.standard_normal() for _ in range(6)] for v in values]
            uma.verification.add_forecast("reach", "level", values, issued_at=T0 + timedelta(hours=start),
                                          step="1h", members=members, workflow="forecast", model_version="3")
        for h in range(28):
            uma.write_state("reach", reported={"level": PropertyWrite(value=1 + 0.3 * np.sin(h / 5),
                                                                      timestamp=T0 + timedelta(hours=h))})
    plot = tmp_path / "verify.png"
    shown = live.twin("verify", "reach", "--plot", str(plot), token=user)
    assert "verification of reach/level" in shown and "1 h" in shown and "3 h" in shown and "crps" in shown
    assert "6 members" in shown  # the system: an ensemble of 6
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000

    data = live.twin_json("verify", "reach", "--lead", "2h", "--no-plot", token=user)
    (group,) = data["leads"]
    assert group["lead_seconds"] == 7200 and group["n"] == 8 and group["model_version"] == "3"
    assert group["nse"] is not None and group["crps"] is not None and "pairs" not in group
    assert group["members"] == 6 and len(group["rank_histogram"]) == 7

    with_threshold = tmp_path / "reliability.png"
    data = live.twin_json("verify", "reach", "--threshold", "1.1", "--plot", str(with_threshold), token=user)
    assert all(g["reliability"] for g in data["leads"]) and data["plot"] == str(with_threshold)
    assert with_threshold.stat().st_size > plot.stat().st_size  # one more panel: the reliability diagram

    kept = tmp_path / "history.png"
    shown = live.twin("verify", "reach", "--history", "--period", "6h", "--plot", str(kept), token=user)
    assert "score history of reach/level per 6 h" in shown and "2026-03-01 06:00" in shown
    assert kept.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = live.twin_json("verify", "reach", "--history", "--lead", "1h", "--no-plot", token=user)
    (day,) = history["items"]  # every forecast of lead 1 h is valid on the first day
    assert history["period_seconds"] == 86400 and day["lead_seconds"] == 3600 and day["n"] == 8
    assert day["period_start"].startswith("2026-03-01T00:00") and day["crps"] is not None

    refused = live.twin("verify", "reach", "--lead", "soon", "--no-plot", token=user, expect=1)
    assert "lead" in refused and "Traceback" not in refused
