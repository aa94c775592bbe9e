"""calo-fastsim, the detector fast-simulation reference app: ``twin app test`` passes it (its own tests: the
simulator's physics, the HDF5/ROOT round trip, the metrics' null test and a wrong generator caught, a short
training), and in an engine the surrogate trains through the training queue on the simulator's showers, its
gate judges it on held-out showers, and the validate workflow draws showers from the champion (``predict``)
and scores them against the simulator's, writing the scores to the twin's state. The issue's goals are
``bench/calo_fastsim.py``'s (more showers, more epochs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from helpers import need_modules, need_sandbox
from streams_fixtures import drop_streams, stream_engine, stream_settings  # noqa: F401
from twinengine.cli.main import app as cli_app

APP = Path(__file__).resolve().parents[2] / "examples" / "apps" / "calo-fastsim"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_twin_app_test_passes_the_app() -> None:
    need_modules("ml", "torch", "mlflow", hint="pip install -e '.[ml]'")
    need_sandbox()
    result = CliRunner().invoke(cli_app, ["--json", "app", "test", str(APP)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = {i["item"]: i for i in json.loads(result.output)["items"]}
    for item in ("manifest", "tests", "publish", "training surrogate", "workflow validate"):
        assert found[item]["ok"] and not found[item]["skipped"], found.get(item)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_surrogate_trains_through_the_engine_and_the_workflow_scores_it(
        tmp_path: Path, drop_streams: list[Any]) -> None:  # noqa: F811
    need_modules("ml", "torch", "mlflow", hint="pip install -e '.[ml]'")
    with stream_engine(stream_settings(tmp_path / "data", "local"), drop_streams) as engine:
        engine.as_role("ada", "developer").publish_app(APP)
        uma = engine.as_role("uma", "user")
        uma.create_twin("calo-fastsim@0.1.0", "calo", {"training_showers": 4000, "held_out_showers": 1000})
        run = uma.ml.wait("calo", uma.ml.train("calo", "surrogate", config={"epochs": 6}).id, timeout=800)
        assert run.status == "succeeded", run.error
        assert run.model_version == "1" and len(run.history) == 6
        assert run.history[-1]["val_loss"] < run.history[0]["val_loss"]
        assert run.metrics["etot_separation"] <= 0.1, run.metrics  # the gate's bound: it became the champion
        done = uma.workflows.run("calo", "validate", {"n": 100, "seed": 5}, sync=True)
        assert done.status == "finished", done.error
        reported = uma.get_state("calo").reported
        assert reported["showers_scored"].value == 100
        # drawn showers carry the simulator's sampling fraction (0.0255) within a few per cent
        assert abs(reported["e_ratio"].value / reported["ref_e_ratio"].value - 1) < 0.05, reported
        assert 0 <= reported["etot_separation"].value < 0.5
