"""``twin ensemble run``, ``twin scenario run`` and ``twin compare`` through the CLI against a live engine:
progress, statistics, tables, --json answers, PNG plots, and bad input as a message naming the field."""

from __future__ import annotations

from pathlib import Path

from helpers import RIVER_REACH, LiveEngine
from workflow_data import rain_cube, write_collection


def test_ensemble_scenario_and_compare_through_the_cli(live: LiveEngine, tmp_path: Path) -> None:
    with live.client() as admin:
        dev = admin.create_token("ada", "developer").token
        uma = admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    ds = rain_cube(days=2)
    ds["rain"].values[:] = 0.0
    ds["rain"].values[4:10] = 10.0
    write_collection(live.settings.data_dir / "collections", "rain-forecast", ds)
    live.twin("create", "river-reach@0.1.0", "--name", "reach-1", "--param", "station=RR-01", token=uma)

    plot = tmp_path / "ensemble.png"
    out = live.twin("ensemble", "run", "reach-1", "forecast", "--members", "6", "--seed", "5", "--param",
                    "alert_level=1.0", "--plot", str(plot), token=uma)
    assert "finished" in out and "6 members (perturb, seed 5)" in out and "P(peak > 1)" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    read = live.twin_json("ensemble", "run", "reach-1", "forecast", "--members", "4", "--seed", "5", token=uma)
    assert read["status"] == "finished" and len(read["members"]) == 4
    assert set(read["statistics"]["peak"]) >= {"mean", "spread", "quantiles", "exceedance"}
    shown = live.twin_json("ensemble", "show", read["id"], token=uma)
    assert shown["statistics"] == read["statistics"]
    bad = live.twin("ensemble", "run", "reach-1", "forecast", "--members", "0", token=uma, expect=1)
    assert "members" in bad
    undeclared = live.twin("ensemble", "run", "reach-1", "forecast", "--members", "3", "--perturb",
                           'rain_factor={"distribution": "weibull"}', token=uma, expect=1)
    assert "perturb.rain_factor" in undeclared

    scenario = RIVER_REACH / "scenarios" / "wetter-soils.yaml"
    ran = live.twin_json("scenario", "run", str(scenario), token=uma)
    assert [b["name"] for b in ran["branches"]] == ["baseline", "wetter-soils"]
    assert set(ran["statuses"].values()) == {"finished"}
    columns = {t["name"]: t for t in ran["comparison"]["twins"]}
    assert columns["reach-1-wetter-soils"]["changed"] == {"runoff_coefficient": 0.7}
    dam = live.twin("scenario", "run", str(RIVER_REACH / "scenarios" / "dam-release.yaml"), token=uma)
    assert "dam-release" in dam and "branches side by side" in dam

    compare_png = tmp_path / "compare.png"
    table = live.twin("compare", "reach-1-baseline", "reach-1-wetter-soils", "reach-1-dam-release", "--property",
                      "forecast_peak_level", "--plot", str(compare_png), token=uma)
    assert "forecast_peak_level" in table and "reach-1-dam-release" in table and "base_flow_m3s=31.5" in table
    assert compare_png.stat().st_size > 1000
    answer = live.twin_json("compare", "reach-1-baseline", "reach-1-dam-release", token=uma)
    peaks = {t["name"]: max(t["series"]["values"]) for t in answer["twins"]}
    assert peaks["reach-1-dam-release"] > peaks["reach-1-baseline"]  # a single run against an ensemble's mean
    wrong = live.twin("compare", "reach-1", "--property", "levle", token=uma, expect=1)
    assert "property" in wrong and "levle" in wrong
    broken = tmp_path / "broken.yaml"
    broken.write_text("twin: reach-1\nworkflow: forecast\nbranches:\n  - {name: ok, horizon: -3}\n")
    refused = live.twin("scenario", "run", str(broken), token=uma, expect=1)
    assert "branches[0].horizon" in refused
