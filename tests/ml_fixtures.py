"""Helpers of the ml tests: torch or skip with the reason, gauge records of the river-reach simulator, and the
line the framework tests (scikit-learn, Keras) learn."""

from __future__ import annotations

import importlib
import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from helpers import RIVER_REACH, Engine, copy_sqlite, engine_on, make_app, need_modules

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def need_torch() -> None:
    """Torch tests skip (with this reason printed) only where the ml extra is not installed; CI installs it."""
    need_modules("ml", "torch", "mlflow", hint="pip install -e '.[ml]'")


def river_reach() -> Any:
    if str(RIVER_REACH) not in sys.path:
        sys.path.insert(0, str(RIVER_REACH))
    return importlib.import_module("river_reach")


def gauge_records(hours: float, *, runoff_coefficient: float = 0.45, seed: int = 7,
                  start: datetime = T0, storms_per_day: float = 2.0) -> list[dict[str, Any]]:
    """Readings every 15 minutes of a catchment whose true runoff coefficient may differ from the twin's."""
    rr = river_reach()
    catchment = rr.Catchment(runoff_coefficient=runoff_coefficient)
    sim = rr.ReachSimulator("RR-01", catchment, rr.RatingCurve(), start=start, seed=seed,
                            storms_per_day=storms_per_day)
    return [{"time": r.time.isoformat(), "station": r.station, "rain": r.rain, "level": r.level}
            for r in sim.readings(hours)]


TASK_SOURCE = '''
"""A tiny regression task for the trainer tests: y = 3 x0 - 2 x1 + noise, fixed data from a seed."""
import os

import torch
from torch import nn
from torch.utils.data import TensorDataset

from twinengine.app.training_config import TrainingConfig
from twinengine.ml.trainer import TrainingTask

CALLS = {"build": 0}


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = (3 * x[:, :1] - 2 * x[:, 1:]) + 0.1 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y)


def build(params):
    CALLS["build"] += 1
    if CALLS["build"] == int(os.environ.get("TWIN_TEST_CRASH_BUILD", "0")):
        raise RuntimeError("this trial crashes on purpose")
    torch.manual_seed(0)
    hidden = int(params.get("hidden", 16))
    return nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1))


def loss(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def mae(model, batch):
    x, y = batch
    return float((model(x) - y).abs().mean())


def task():
    return TrainingTask(build_model=build, datasets=lambda data: (_data(256, 1), _data(64, 2)), loss=loss,
                        metrics={"mae": mae}, config=TrainingConfig(epochs=5, batch_size=32))
'''


def task_package(root: Any) -> tuple[Any, str, str]:
    """Write the tiny task as a package under ``root``; returns (folder, package, entrypoint)."""
    folder = root / "tasks"
    (folder / "tinytask").mkdir(parents=True, exist_ok=True)
    (folder / "tinytask" / "__init__.py").write_text("")
    (folder / "tinytask" / "regression.py").write_text(TASK_SOURCE)
    return folder, "tinytask", "tinytask.regression:task"


# -- a line for the framework tests (scikit-learn, Keras): y = 3 x0 - 2 x1 + noise, one record a minute -------

LINE_T0 = datetime(2026, 3, 1, tzinfo=UTC)
LINE_STREAM = {"samples": {"time_field": "time", "fields": {
    "time": {"type": "timestamp"}, "x0": {"type": "float"}, "x1": {"type": "float"}, "y": {"type": "float"}}}}
LINE_SCORE = '''
def score(ctx, records):
    version = getattr(ctx.model, "version", None)  # None: no champion yet
    out = ctx.model.predict({"x": [[1.0, 0.0]]})[0] if version is not None else None
    ctx.emit("scored", version=version, out=out)
'''


def line_samples(n: int, *, start: int = 0, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        x0, x1 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        out.append({"time": (LINE_T0 + timedelta(minutes=i)).isoformat(), "x0": x0, "x1": x1,
                    "y": 3 * x0 - 2 * x1 + rng.gauss(0, 0.05)})
    return out


def line_app(root: Path, *, name: str, model: str, framework: str, task_source: str) -> Path:
    """An app with the line's stream, a model of ``framework`` (``<package>.model:<model>``) and a function
    that scores each batch with the champion."""
    package = name.replace("-", "_")
    return make_app(root, name=name, version="0.1.0", manifest={
        "parameters": {"type": "object", "properties": {}}, "streams": LINE_STREAM,
        "models": {model: {"entrypoint": f"{package}.model:{model}", "framework": framework}},
        "functions": {"score": {"entrypoint": f"{package}.functions:score", "stream": "samples", "model": model}},
    }, files={f"{package}/model.py": task_source, f"{package}/functions.py": LINE_SCORE})


def assert_no_write_held_across_io() -> None:
    """What ``no_write_held_across_io`` checks after a test, for what a module-scoped fixture did (that fixture
    runs inside each test, not around a module's fixtures)."""
    from twinengine.store import guard as store_guard

    found = store_guard.violations(clear=True)
    assert not found, f"{len(found)} call(s) waited on the world with a write transaction open; the first:\n{found[0]}"


@contextmanager
def shared_engine(root: Path, template: Path, **settings: Any) -> Iterator[Engine]:
    """An engine on a copy of the migrated SQLite store ``template`` for a module-scoped fixture: several tests
    start from what it trained once (a training worker imports its framework, seconds of CPU per run). The store
    guard's violations are checked as the fixture ends (the fixture checks what it did before yielding)."""
    from twinengine.config import Settings

    chosen = Settings(data_dir=root / "data", **settings)
    copy_sqlite(template, chosen.data_dir / "twin.db")
    with engine_on(chosen) as engine:
        yield engine
    assert_no_write_held_across_io()


@contextmanager
def trained_once(root: Path, template: Path, publish: Callable[[Engine, Path], Any],
                 model: str) -> Iterator[tuple[Engine, Any, Any]]:
    """The app published on one engine (``publish``) and ``model`` trained once, for the tests of a framework
    that start from that champion. The framework is what they are about, not the store: they run on SQLite; the
    lifecycle on PostgreSQL is tested with the reference PyTorch model (test_ml_lifecycle.py) and, for each
    framework, by its retraining policy."""
    with shared_engine(root, template, run_functions=False) as engine:
        client = publish(engine, root)
        done = client.ml.wait("line", client.ml.train("line", model).id, timeout=300)
        assert done.status == "succeeded", done.error
        assert_no_write_held_across_io()
        yield engine, client, done


def wait_scheduled_retraining(client: Any, twin: str, model: str) -> Any:
    """Append newer samples, set a schedule, and wait for the policy's run to end; its trail entry."""
    client.streams.append(twin, "samples", line_samples(100, start=200, seed=4))
    client.ml.set_policy(twin, model, every_seconds=3600)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trail = [t for t in client.ml.trail(twin, model) if t.trigger.get("kind") == "schedule"]
        if trail and trail[0].status in ("succeeded", "failed"):
            return trail[0]
        time.sleep(0.3)
    raise AssertionError(f"no scheduled run: {client.ml.trail(twin, model)}")


RIDGE_TASK = """
import numpy as np
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error

from twinengine.app import TrainingConfig, TrainingTask


def datasets(data):
    rows = sorted(data.records, key=lambda r: r["time"])
    x = np.array([[r["x0"], r["x1"]] for r in rows], dtype=float).reshape(-1, 2)
    y = np.array([r["y"] for r in rows], dtype=float)
    cut = int(len(x) * 0.8)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def ridge():
    return TrainingTask(
        framework="sklearn",
        build_model=lambda params: Ridge(alpha=float(params.get("alpha", 1.0))),
        datasets=datasets,
        loss=lambda model, xy: float(mean_squared_error(xy[1], model.predict(xy[0]))),
        metrics={"mae": lambda model, xy: float(mean_absolute_error(xy[1], model.predict(xy[0])))},
        predict=lambda model, inputs: [float(v) for v in model.predict(np.asarray(inputs["x"], float))],
        config=TrainingConfig(params={"alpha": 0.01}),
        gate=GATE,
    )
"""


def ridge_task(max_mae: float | None = None) -> str:
    """A scikit-learn ridge regression of the line samples as an app's training task (``ridge``), with a gate on
    its held-out MAE when ``max_mae`` is given."""
    gate = {"thresholds": {"mae": {"max": max_mae}}} if max_mae is not None else {}
    return RIDGE_TASK.replace("GATE", json.dumps(gate))
