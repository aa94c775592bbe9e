"""A Keras 3 model (PyTorch backend) goes through the same lifecycle as a PyTorch one, on real parts (store,
embedded MLflow, the function worker): trained from the twin's stream by Keras' own ``fit`` with the engine's
progress and metrics, registered with MLflow's keras flavour (read back with MLflow's client and loader), gated
against its champion, served by ``predict`` and to functions on arrival, and retrained by a policy."""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import Engine, make_app, need_modules
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.daemons.streams_functions import FunctionWorker

MODEL = "dense"
T0 = datetime(2026, 3, 1, tzinfo=UTC)

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

SCORE = '''
def score(ctx, records):
    version = getattr(ctx.model, "version", None)  # None: no champion yet
    out = ctx.model.predict({"x": [[1.0, 0.0]]})[0] if version is not None else None
    ctx.emit("scored", version=version, out=out)
'''


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, run_functions=False)


@pytest.fixture(autouse=True)
def _keras() -> None:
    need_modules("ml", "keras", "torch", "mlflow", hint="pip install -e '.[ml]'")


def samples(n: int, *, start: int = 0, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        x0, x1 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        out.append({"time": (T0 + timedelta(minutes=i)).isoformat(), "x0": x0, "x1": x1,
                    "y": 3 * x0 - 2 * x1 + rng.gauss(0, 0.05)})
    return out


def keras_app(root: Path) -> Path:
    return make_app(root, name="keras-app", version="0.1.0", manifest={
        "parameters": {"type": "object", "properties": {}},
        "streams": {"samples": {"time_field": "time", "fields": {
            "time": {"type": "timestamp"}, "x0": {"type": "float"}, "x1": {"type": "float"},
            "y": {"type": "float"}}}},
        "models": {MODEL: {"entrypoint": "keras_app.model:dense", "framework": "keras"}},
        "functions": {"score": {"entrypoint": "keras_app.functions:score", "stream": "samples", "model": MODEL}},
    }, files={"keras_app/model.py": TASK, "keras_app/functions.py": SCORE})


@pytest.fixture
def uma(engine: Engine, tmp_path: Path) -> Client:
    engine.as_role("ada", "developer").publish_app(keras_app(tmp_path))
    client = engine.as_role("uma", "user")
    client.create_twin("keras-app@0.1.0", "line", {})
    client.streams.append("line", "samples", samples(200))
    return client


def test_train_register_keras_flavour_gate_predict(engine: Engine, uma: Client, settings: Settings,
                                                   tmp_path: Path) -> None:
    done = uma.ml.wait("line", uma.ml.train("line", MODEL).id, timeout=300)
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


def test_functions_on_arrival_get_the_keras_champion(engine: Engine, uma: Client) -> None:
    done = uma.ml.wait("line", uma.ml.train("line", MODEL).id, timeout=300)
    assert done.status == "succeeded", done.error
    worker = FunctionWorker(engine.runtime)
    uma.streams.append("line", "samples", samples(5, start=200))
    assert worker.run_once() >= 1
    worker.drain()
    scored = [e for e in uma.streams.events("line", last=10_000) if e.kind == "scored"]
    assert scored and {e.data["version"] for e in scored} == {"1"}
    assert all(math.isclose(e.data["out"], 3.0, abs_tol=0.2) for e in scored)


def test_a_policy_retrains_the_keras_model(engine: Engine, uma: Client) -> None:
    uma.ml.wait("line", uma.ml.train("line", MODEL).id, timeout=300)
    uma.streams.append("line", "samples", samples(100, start=200, seed=4))
    uma.ml.set_policy("line", MODEL, every_seconds=3600)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trail = [t for t in uma.ml.trail("line", MODEL) if t.trigger.get("kind") == "schedule"]
        if trail and trail[0].status in ("succeeded", "failed"):
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"no scheduled run: {uma.ml.trail('line', MODEL)}")
    assert trail[0].status == "succeeded" and trail[0].version == "2"
    assert trail[0].inputs["end"] == 300 and trail[0].decision is not None
