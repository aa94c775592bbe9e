"""A Keras 3 model (PyTorch backend) goes through the same lifecycle as a PyTorch one, on real parts (store,
embedded MLflow, the function worker): trained from the twin's stream by Keras' own ``fit`` with the engine's
progress and metrics, registered with MLflow's keras flavour (read back with MLflow's client and loader), gated
against its champion, served by ``predict`` and to functions on arrival, and retrained by a policy."""

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

MODEL = "dense"

TASK = '''
"""y = 3 x0 - 2 x1 (+ noise), learned by a one-layer Keras network."""
import numpy as np
import keras

from twinengine.app import TrainingConfig, TrainingTask


def table(records):
    rows = sorted(records, key=lambda r: r["time"])
    return (np.array([[r["x0"], r["x1"]] for r in rows], dtype="float32").reshape(-1, 2),
            np.array([r["y"] for r in rows], dtype="float32"))


def datasets(data):
    x, y = table(data.records)
    cut = int(len(x) * 0.8)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def build(params):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(float(params.get("lr", 0.05))), loss="mean_squared_error")
    return model


def out(model, x):
    return model.predict(np.asarray(x, dtype="float32"), verbose=0)[:, 0]


def dense():
    return TrainingTask(
        framework="keras",
        build_model=build,
        datasets=datasets,
        loss=lambda model, xy: float(np.mean((out(model, xy[0]) - xy[1]) ** 2)),
        metrics={"mae": lambda model, xy: float(np.mean(np.abs(out(model, xy[0]) - xy[1])))},
        predict=lambda model, inputs: [round(float(v), 6) for v in out(model, inputs["x"])],
        config=TrainingConfig(epochs=40, batch_size=16, params={"lr": 0.05}),
        gate={"thresholds": {"mae": {"max": 0.5}}},
    )
'''



@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, run_functions=False)


@pytest.fixture(autouse=True)
def _keras() -> None:
    need_modules("ml", "keras", "torch", "mlflow", hint="pip install -e '.[ml]'")


def _published(engine: Engine, folder: Path) -> Client:
    engine.as_role("ada", "developer").publish_app(line_app(folder, name="keras-app", model=MODEL,
                                                            framework="keras", task_source=TASK))
    client = engine.as_role("uma", "user")
    client.create_twin("keras-app@0.1.0", "line", {})
    client.streams.append("line", "samples", line_samples(200))
    return client


@pytest.fixture
def uma(engine: Engine, tmp_path: Path) -> Client:
    return _published(engine, tmp_path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Iterator[tuple[Engine, Client, Any]]:
    """The app published on one engine and its model trained once, for the two tests that start from that
    champion: each Keras run's worker imports Keras and PyTorch (about 7.5 s of CPU), a third of such a test.
    Neither changes what the other checks: the second version the first trains is rejected by the gate, and the
    samples the second appends come after the champion's."""
    need_modules("ml", "keras", "torch", "mlflow", hint="pip install -e '.[ml]'")
    with trained_once(tmp_path_factory.mktemp("keras"), migrated_sqlite, _published, MODEL) as found:
        yield found


def test_train_register_keras_flavour_gate_predict(trained: tuple[Engine, Client, Any], tmp_path: Path) -> None:
    engine, uma, done = trained
    settings = engine.runtime.settings
    assert done.status == "succeeded", done.error
    assert done.model_version == "1" and done.progress == 100
    assert len(done.history) == 40 and done.history[-1]["val_loss"] < done.history[0]["val_loss"]
    assert done.metrics["mae"] < 0.2 and done.inputs["end"] == 200

    from mlflow.tracking import MlflowClient

    official = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    champion = official.get_model_version_by_alias("line.dense", "champion")
    assert str(champion.version) == "1" and champion.tags["framework"] == "keras"
    folder = Path(official.download_artifacts(champion.run_id, "model", str(tmp_path / "mlmodel")))
    assert {"keras", "python_function"} <= set(yaml.safe_load((folder / "MLmodel").read_text())["flavors"])
    import mlflow.keras

    loaded = mlflow.keras.load_model(str(folder))  # MLflow's own loader reads what the engine registered
    import numpy as np

    assert float(loaded.predict(np.array([[1.0, 0.0]]), verbose=0)[0, 0]) == pytest.approx(3.0, abs=0.2)
    assert "val_loss" in official.get_run(champion.run_id).data.metrics

    # the gate re-evaluates the champion on the candidate's held-out set: one epoch at a tiny rate loses
    worse = uma.ml.wait("line", uma.ml.train("line", MODEL, config={"epochs": 1, "params": {"lr": 1e-5}}).id,
                        timeout=300)
    assert worse.status == "succeeded" and worse.model_version == "2"
    versions = uma.ml.models("line")[0]
    assert versions.champion == "1"
    decision = versions.versions[1].decision
    assert decision is not None and not decision.accepted
    assert "mae" in decision.reason

    answer = uma.ml.predict("line", MODEL, {"x": [[1.0, 0.0], [0.0, 1.0]]})
    assert answer["version"] == "1"
    assert answer["outputs"] == [pytest.approx(3.0, abs=0.2), pytest.approx(-2.0, abs=0.2)]


def test_functions_on_arrival_get_the_keras_champion(trained: tuple[Engine, Client, Any]) -> None:
    engine, uma, done = trained
    assert done.status == "succeeded", done.error
    worker = FunctionWorker(engine.runtime)
    uma.streams.append("line", "samples", line_samples(5, start=200))
    assert worker.run_once() >= 1
    worker.drain()
    scored = [e for e in uma.streams.events("line", last=10_000) if e.kind == "scored"]
    assert scored and {e.data["version"] for e in scored} == {"1"}
    assert all(math.isclose(e.data["out"], 3.0, abs_tol=0.2) for e in scored)


def test_a_policy_retrains_the_keras_model(engine: Engine, uma: Client) -> None:
    uma.ml.wait("line", uma.ml.train("line", MODEL).id, timeout=300)
    entry = wait_scheduled_retraining(uma, "line", MODEL)
    assert entry.status == "succeeded" and entry.version == "2"
    assert entry.inputs["end"] == 300 and entry.decision is not None
