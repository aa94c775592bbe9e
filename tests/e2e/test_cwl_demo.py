"""The demo's CWL chapter: a CWL package deployed through OGC API - Processes runs on the twin's forecast (its
STAC item staged in) and its result is found through STAC; the twin's forecast workflow exported as a package
runs under cwltool against the demo's engine, on a fork of the twin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from demo_fixtures import DemoRun
from helpers import unavailable


def _cwl(demo_run: DemoRun) -> dict[str, Any]:
    facts = demo_run.facts.get("cwl")
    if facts is None:
        unavailable("cwltool", "the demo ran without a CWL runner (TWIN_CWL_RUNNER_SITE; .ci/run makes .venv-cwl)")
    assert facts is not None
    return dict(facts)


def test_a_deployed_package_ran_on_the_twins_forecast_and_is_found_through_stac(demo_run: DemoRun) -> None:
    facts = _cwl(demo_run)["in"]
    workflow = demo_run.facts["workflow"]
    assert facts["input"].endswith(f"/stac/collections/workflow-results/items/{workflow['run']}")
    assert facts["peak"]["hours"] == workflow["steps"]
    assert abs(facts["peak"]["peak_m"] - workflow["peak_level_m"]) < 1e-9
    assert any("peak" in asset for asset in facts["stac_assets"]), facts["stac_assets"]


def test_the_exported_forecast_ran_under_cwltool_on_a_fork(demo_run: DemoRun) -> None:
    facts = _cwl(demo_run)["out"]
    assert facts["package"] == "river-reach-forecast.cwl"
    assert facts["fork"] != demo_run.facts["twin_name"] and facts["run"]
    assert Path(facts["catalog"]).name == "catalog.json" and Path(facts["catalog"]).is_file()
