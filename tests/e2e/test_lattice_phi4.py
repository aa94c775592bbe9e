"""lattice-phi4, the flow-sampling reference app: ``twin demo --app lattice-phi4`` publishes it, searches the
flow's size with Optuna, trains the flow through the engine's training path, has the gate reject an
untrained version by its acceptance band, samples with the champion and runs the local Metropolis reference
as workflows; the flow-based <phi^2> and chi_2 agree with the reference within 3 combined standard errors at
L = 4. The flow trains with DDP on two processes (gloo) through the engine's training path. ``twin app test``
passes the app."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import need_modules, need_sandbox
from streams_fixtures import drop_streams, stream_engine, stream_settings  # noqa: F401
from twinengine.cli.main import app as cli_app

APP = Path(__file__).resolve().parents[2] / "examples" / "apps" / "lattice-phi4"


@pytest.mark.slow
def test_flow_mcmc_agrees_with_the_reference_and_the_gate_rejects_an_untrained_flow(tmp_path: Path) -> None:
    need_modules("ml", "torch", "mlflow", hint="pip install -e '.[ml]'")
    need_sandbox()
    data_dir = tmp_path / "demo"
    result = CliRunner().invoke(cli_app, ["--json", "demo", "--app", "lattice-phi4", "--lattice-size", "4",
                                          "--epochs", "6", "--tune-trials", "0", "--data-dir", str(data_dir)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout[result.stdout.index("{"):])["lattice"]
    state = facts["state"]
    for name in ("phi2", "chi2"):
        combined = math.hypot(state[f"{name}_err"], state[f"ref_{name}_err"])
        assert 0 < combined < 0.1 * abs(state[f"ref_{name}"])  # errors that mean something
        assert abs(state[name] - state[f"ref_{name}"]) < 3 * combined, (name, state)
    assert facts["champion"]["accepted"] and facts["champion"]["metrics"]["acceptance_rate"] >= 0.2
    assert state["acceptance_rate"] >= 0.2 and 0 < state["ess_per_sample"] <= 1
    untrained = facts["untrained"]
    assert not untrained["accepted"] and "acceptance_rate" in untrained["reason"]
    assert untrained["metrics"]["acceptance_rate"] < 0.2
    # the chain's configurations came back as .npy bytes, kept in the lake
    assert facts["configurations_shape"] == [4096, 4, 4]
    assert facts["assets"]["sample"]["did"] and facts["assets"]["sample"]["format"] == "NPY"
    saved = np.load(data_dir / f"{facts['twin']}-sample.npy", allow_pickle=False)
    assert np.isclose((saved ** 2).mean(), state["phi2"])
    assert Path(facts["plot"]).stat().st_size > 10_000


@pytest.mark.slow
def test_twin_app_test_passes_the_app() -> None:
    need_modules("ml", "torch", "mlflow", hint="pip install -e '.[ml]'")
    need_sandbox()
    result = CliRunner().invoke(cli_app, ["--json", "app", "test", str(APP)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = {i["item"]: i for i in json.loads(result.output)["items"]}
    for item in ("manifest", "tests", "publish", "training flow", "workflow sample", "workflow reference"):
        assert found[item]["ok"] and not found[item]["skipped"], found.get(item)


@pytest.mark.slow
def test_an_optuna_search_sizes_the_flow_then_ddp_trains_it(tmp_path: Path, drop_streams: list[Any]) -> None:  # noqa: F811
    need_modules("ml", "torch", "mlflow", hint="pip install -e '.[ml]'")
    with stream_engine(stream_settings(tmp_path / "data", "local"), drop_streams) as engine:
        engine.as_role("ada", "developer").publish_app(APP)
        uma = engine.as_role("uma", "user")
        uma.create_twin("lattice-phi4@0.1.0", "ddp", {"L": 4})
        search = uma.ml.wait("ddp", uma.ml.tune("ddp", "flow", {"trials": 2}, config={"epochs": 1}).id, timeout=600)
        assert search.status == "succeeded", search.error
        size = search.trigger["best"]["params"]  # the app's search space: the flow's layers and channels
        assert 4 <= size["layers"] <= 12 and 4 <= size["hidden"] <= 16
        started = uma.ml.train("ddp", "flow", config={"epochs": 2, "device": "cpu", "params": size}, nproc=2)
        run = uma.ml.wait("ddp", started.id, timeout=600)
        assert run.status == "succeeded", run.error
        assert run.nproc == 2 and run.epoch == 2 and run.model_version == "2"
        assert run.config["params"] == size
        assert len(run.history) == 2 and run.history[-1]["val_loss"] < run.history[0]["val_loss"]
        # trained: independence Metropolis accepts far more than with the untrained flow (~0.03)
        assert run.metrics["acceptance_rate"] > 0.1, run.metrics
