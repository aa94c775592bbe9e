"""A small PyTorch model that corrects the rainfall-runoff simulation (a hybrid model).

The linear reservoir with the twin's parameters simulates the level from the rain gauge; a small network
learns the residual (observed - simulated level) from the recent rain and the simulated level. When the
catchment changes (e.g. more runoff after land-use change), the residuals drift and the model is retrained.
torch is imported inside the functions, so publishing the app does not need it.
"""

from __future__ import annotations

import math
from typing import Any

from river_reach.catchment import Catchment, RatingCurve

WINDOW = 8  # rain steps the network sees (2 h at 15 min)


def simulate(parameters: dict[str, Any], records: list[dict[str, Any]]) -> list[float]:
    """Simulated level for each gauge record, from its rain, with the twin's (possibly outdated) parameters."""
    catchment = Catchment.from_parameters(parameters)
    rating = RatingCurve(parameters.get("rating_a", 18.0), parameters.get("rating_b", 1.6),
                         parameters.get("datum_m", 0.2))
    levels, previous = [], None
    for record in records:
        t = record["time"]
        hours = 0.25 if previous is None else max((t - previous).total_seconds() / 3600.0, 1e-6)
        previous = t
        levels.append(rating.level(catchment.step(float(record["rain"]), hours)))
    return levels


def _table(parameters: dict[str, Any], records: list[dict[str, Any]]) -> tuple[list[list[float]], list[float],
                                                                                 list[float]]:
    """(features, target residual, simulated level) for records with a full rain window."""
    rows = sorted((r for r in records if r.get("rain") is not None and r.get("level") is not None),
                  key=lambda r: r["time"])
    sim = simulate(parameters, rows)
    rain = [float(r["rain"]) for r in rows]
    features, target, simulated = [], [], []
    for i in range(WINDOW, len(rows)):
        features.append([x / 10.0 for x in rain[i - WINDOW + 1:i + 1]] + [sim[i]])
        target.append(float(rows[i]["level"]) - sim[i])
        simulated.append(sim[i])
    return features, target, simulated


def residuals(parameters: dict[str, Any], records: list[dict[str, Any]]) -> list[float]:
    """Observed - simulated level: what the drift detector watches."""
    return _table(parameters, records)[1]


def runoff_correction() -> Any:
    """The model entrypoint declared in the manifest: the engine's TrainingTask for this model."""
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from twinengine.app import EarlyStopping, OptimizerConfig, TrainingConfig, TrainingData, TrainingTask

    def build(params: dict[str, Any]) -> nn.Module:
        hidden = int(params.get("hidden", 32))
        return nn.Sequential(nn.Linear(WINDOW + 1, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def datasets(data: TrainingData) -> tuple[TensorDataset, TensorDataset]:
        features, target, _sim = _table(data.parameters, data.records)
        if len(features) < 20:
            raise ValueError(f"only {len(features)} usable gauge records; need at least 20 to train")
        x = torch.tensor(features, dtype=torch.float32)
        y = torch.tensor(target, dtype=torch.float32).unsqueeze(1)
        cut = int(len(x) * 0.8)  # the last 20 % in time is the held-out set
        return TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])

    def loss(model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(model(x), y)

    def rmse_level(model: nn.Module, batch: Any) -> float:
        x, y = batch
        return math.sqrt(float(nn.functional.mse_loss(model(x), y)))

    def rmse_simulation(_model: nn.Module, batch: Any) -> float:
        _x, y = batch
        return math.sqrt(float((y ** 2).mean()))

    def predict(model: nn.Module, inputs: Any) -> Any:
        """inputs: {parameters?, records: [{time, rain, level?}]} → corrected levels for the records with a window."""
        from datetime import datetime

        records = [dict(r, time=datetime.fromisoformat(str(r["time"]).replace("Z", "+00:00")))
                   if isinstance(r.get("time"), str) else dict(r) for r in inputs["records"]]
        for r in records:
            r.setdefault("level", 0.0)
        features, _target, sim = _table(inputs.get("parameters", {}), records)
        if not features:
            return []
        correction = model(torch.tensor(features, dtype=torch.float32)).squeeze(1).tolist()
        return [round(s + c, 4) for s, c in zip(sim, correction, strict=True)]

    def predictions(model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted, observed) level residuals: the simulation cancels, so the interval is the level's."""
        x, y = batch
        return model(x), y

    def features(data: TrainingData) -> Any:
        return np.asarray(residuals(data.parameters, data.records), dtype=float).reshape(-1, 1)

    return TrainingTask(
        build_model=build, datasets=datasets, loss=loss,
        metrics={"rmse_level": rmse_level, "rmse_simulation": rmse_simulation}, predict=predict,
        predictions=predictions, interval_level=0.9,
        config=TrainingConfig(epochs=30, batch_size=64, seed=7, optimizer=OptimizerConfig(name="adam", lr=0.01),
                              early_stopping=EarlyStopping(metric="val_loss", patience=8), params={"hidden": 32}),
        gate={"thresholds": {"rmse_level": {"max": 0.5}}, "compare": "rmse_level", "mode": "min", "margin": 0.05},
        features=features,
        search_space={"optimizer.lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
                      "params.hidden": {"type": "int", "low": 8, "high": 48}})
