"""``twin demo`` runs the river-reach forecast workflow through the engine and reports it truthfully."""

from __future__ import annotations

from demo_fixtures import DemoRun


def test_demo_runs_the_forecast_workflow(demo_run: DemoRun) -> None:
    facts = demo_run.facts["workflow"]
    assert facts["status"] == "finished" and facts["steps"] == 48
    assert set(facts["nodes"].values()) == {"finished"}
    assert "save" in facts["rerun_cached"]
    assert facts["lake_assets"] == [f"results:{facts['run']}/result.json"]  # the forecast kept in the lake
    assert facts["peak_level_m"] > 0.2 and facts["assets"][0]["name"] == "result.json"
