"""A scikit-learn model goes through the same lifecycle as a PyTorch one, on real parts (store, embedded MLflow,
the function worker): trained from the twin's stream, registered with MLflow's sklearn flavour (read back with
MLflow's own client and loader), gated against its champion, served by ``predict`` and to functions on
arrival, and retrained by a policy."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import Engine, need_modules
from ml_fixtures import line_app, line_samples, trained_once, wait_scheduled_retraining
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.daemons.streams_functions import FunctionWorker

MODEL = "ridge"

TASK = '''
"""y = 3 x0 - 2 x1 (+ noise), learned by a ridge regression."""
import numpy as np
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error

from twinengine.app import TrainingConfig, TrainingTask


def table(records):
    rows = sorted(records, key=lambda r: r["time"])
    return (np.array([[r["x0"], r["x1"]] for r in rows], dtype=float).reshape(-1, 2),
            np.array([r["y"] for r in rows], dtype=float))


def datasets(data):
    x, y = table(data.records)
    cut = int(len(x) * 0.8)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def ridge():
    return TrainingTask(
        framework="sklearn",
        build_model=lambda params: Ridge(alpha=float(params.get("alpha", 1.0))),
        datasets=datasets,
        loss=lambda model, xy: float(mean_squared_error(xy[1], model.predict(xy[0]))),
        metrics={"mae": lambda model, xy: float(mean_absolute_error(xy[1], model.predict(xy[0])))},
        predict=lambda model, inputs: [round(float(v), 6) for v in model.predict(np.asarray(inputs["x"], float))],
        features=lambda data: table(data.records)[0][:, 0],
        config=TrainingConfig(params={"alpha": 0.01}),
        gate={"thresholds": {"mae": {"max": 0.5}}},
    )
'''



@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, run_functions=False)


@pytest.fixture(autouse=True)
def _sklearn() -> None:
    need_modules("ml", "sklearn", "mlflow", hint="pip install -e '.[ml]'")


def _published(engine: Engine, folder: Path) -> Client:
    engine.as_role("ada", "developer").publish_app(line_app(folder, name="sk-app", model=MODEL,
                                                            framework="sklearn", task_source=TASK))
    client = engine.as_role("uma", "user")
    client.create_twin("sk-app@0.1.0", "line", {})
    client.streams.append("line", "samples", line_samples(200))
    return client


@pytest.fixture
def uma(engine: Engine, tmp_path: Path) -> Client:
    return _published(engine, tmp_path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Iterator[tuple[Engine, Client, Any]]:
    """The app published on one engine and its model trained once, for the two tests that start from that
    champion (an engine, a publication and a training worker each: most of such a test). Neither changes what
    the other checks: the second version the first trains is rejected by the gate, and the samples the second
    appends come after the champion's."""
    need_modules("ml", "sklearn", "mlflow", hint="pip install -e '.[ml]'")
    with trained_once(tmp_path_factory.mktemp("sklearn"), migrated_sqlite, _published, MODEL) as found:
        yield found


def test_train_register_sklearn_flavour_gate_predict(trained: tuple[Engine, Client, Any], tmp_path: Path) -> None:
    engine, uma, done = trained
    settings = engine.runtime.settings
    assert done.status == "succeeded", done.error
    assert done.model_version == "1" and done.progress == 100 and len(done.history) == 1
    assert done.metrics["mae"] < 0.2 and done.inputs["end"] == 200

    from mlflow.tracking import MlflowClient

    official = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    champion = official.get_model_version_by_alias("line.ridge", "champion")
    assert str(champion.version) == "1" and champion.tags["framework"] == "sklearn"
    folder = Path(official.download_artifacts(champion.run_id, "model", str(tmp_path / "mlmodel")))
    assert {"sklearn", "python_function"} <= set(yaml.safe_load((folder / "MLmodel").read_text())["flavors"])
    import mlflow.sklearn

    loaded = mlflow.sklearn.load_model(str(folder))  # MLflow's own loader reads what the engine registered
    assert loaded.predict([[1.0, 0.0]])[0] == pytest.approx(3.0, abs=0.1)
    assert "val_loss" in official.get_run(champion.run_id).data.metrics

    # the gate re-evaluates the champion on the candidate's held-out set: a heavily regularised fit loses
    worse = uma.ml.wait("line", uma.ml.train("line", MODEL, config={"params": {"alpha": 1e5}}).id, timeout=300)
    assert worse.status == "succeeded" and worse.model_version == "2"
    versions = uma.ml.models("line")[0]
    assert versions.champion == "1"
    decision = versions.versions[1].decision
    assert decision is not None and not decision.accepted
    assert "mae" in decision.reason and "worse than the champion" in decision.reason

    answer = uma.ml.predict("line", MODEL, {"x": [[1.0, 0.0], [0.0, 1.0]]})
    assert answer["version"] == "1"
    assert answer["outputs"] == [pytest.approx(3.0, abs=0.1), pytest.approx(-2.0, abs=0.1)]


def test_functions_on_arrival_get_the_sklearn_champion(trained: tuple[Engine, Client, Any]) -> None:
    engine, uma, done = trained
    assert done.status == "succeeded", done.error
    worker = FunctionWorker(engine.runtime)
    uma.streams.append("line", "samples", line_samples(5, start=200))
    assert worker.run_once() >= 1
    worker.drain()
    scored = [e for e in uma.streams.events("line", last=10_000) if e.kind == "scored"]
    assert scored and {e.data["version"] for e in scored} == {"1"}
    assert all(math.isclose(e.data["out"], 3.0, abs_tol=0.1) for e in scored)


def test_a_policy_retrains_the_sklearn_model(engine: Engine, uma: Client) -> None:
    uma.ml.wait("line", uma.ml.train("line", MODEL).id, timeout=300)
    entry = wait_scheduled_retraining(uma, "line", MODEL)
    assert entry.status == "succeeded" and entry.version == "2"
    assert entry.inputs["end"] == 300 and entry.decision is not None
