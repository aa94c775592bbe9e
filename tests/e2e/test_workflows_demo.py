"""``twin demo`` runs the river-reach forecast workflow through the engine and reports it truthfully."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twinengine.cli.main import app as cli_app


@pytest.mark.slow
def test_demo_runs_the_forecast_workflow(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["--json", "demo", "--hours", "4", "--data-dir", str(tmp_path / "d")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)["workflow"]
    assert facts["status"] == "finished" and facts["steps"] == 48
    assert set(facts["nodes"].values()) == {"finished"}
    assert "save" in facts["rerun_cached"]
    assert facts["lake_assets"] == [f"results:{facts['run']}/result.json"]  # the forecast kept in the lake
    assert facts["peak_level_m"] > 0.2 and facts["assets"][0]["name"] == "result.json"
