"""Prediction intervals of a model version: the gate's coverage band, and the interval computed by fit."""

from __future__ import annotations

import pytest

from twinengine.ml.gate import GateSpec, evaluate


def test_gate_holds_interval_coverage_to_a_band_around_the_nominal_level() -> None:
    spec = GateSpec.model_validate({"compare": None, "interval": {"within": 0.03}})
    assert evaluate(spec, {"interval_level": 0.9, "interval_coverage": 0.91}, None).accepted
    low = evaluate(spec, {"interval_level": 0.9, "interval_coverage": 0.85}, None)
    assert not low.accepted and "interval_coverage 0.850 is not within 0.03 of the nominal 0.9" in low.reason
    assert "not measured" in evaluate(spec, {"val_loss": 1.0}, None).reason


def test_fit_gives_the_version_a_split_conformal_interval() -> None:
    torch = pytest.importorskip("torch")
    from torch import nn
    from torch.utils.data import TensorDataset

    from twinengine.app.training_config import TrainingConfig
    from twinengine.ml.trainer import TrainingData, TrainingTask, fit

    def data(n: int, seed: int) -> TensorDataset:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 1, generator=g)
        return TensorDataset(x, 2 * x + 0.5 * torch.randn(n, 1, generator=g))

    def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    task = TrainingTask(build_model=lambda _p: nn.Linear(1, 1), datasets=lambda _d: (data(512, 1), data(2000, 2)),
                        loss=loss, predictions=lambda model, batch: (model(batch[0]), batch[1]),
                        config=TrainingConfig.model_validate({"epochs": 30, "batch_size": 64, "device": "cpu",
                                                              "optimizer": {"lr": 0.05}}))
    final = fit(task, task.config, TrainingData()).final
    assert final["interval_level"] == 0.9
    # residuals ~ N(0, 0.5): the 90 % half-width is about 1.645 * 0.5
    assert final["interval_half_width"] == pytest.approx(0.82, abs=0.12)
    assert 0.86 <= final["interval_coverage"] <= 0.94
