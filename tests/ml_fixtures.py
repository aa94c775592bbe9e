"""Helpers of the ml tests: torch or skip with the reason, and gauge records of the river-reach simulator."""

from __future__ import annotations

import importlib
import sys
from datetime import UTC, datetime
from typing import Any

from helpers import RIVER_REACH, need_modules

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

from twinengine.ml.config import TrainingConfig
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
