"""Units of the AI lifecycle that need no torch: training config validation, gate rules, drift tests."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from helpers import need_modules
from twinengine.app.training_config import TrainingConfig
from twinengine.ml.drift import DriftSpec, detect, psi
from twinengine.ml.gate import GateSpec, evaluate


def test_config_defaults_and_merge() -> None:
    config = TrainingConfig()
    assert config.device == "auto" and config.epochs == 10 and config.optimizer.name == "adam"
    merged = config.merged({"optimizer": {"lr": 0.1}, "epochs": 3, "early_stopping": {"metric": "mae"}})
    assert merged.optimizer.lr == 0.1 and merged.optimizer.name == "adam" and merged.epochs == 3
    assert merged.early_stopping is not None and merged.early_stopping.patience == 5


@pytest.mark.parametrize(("overrides", "field"), [
    ({"epochs": 0}, "epochs"),
    ({"batch_size": -1}, "batch_size"),
    ({"optimizer": {"lr": 0}}, "lr"),
    ({"optimizer": {"name": "lbfgs"}}, "name"),
    ({"schedule": {"name": "step", "gamma": 2}}, "gamma"),
    ({"device": "tpu"}, "device"),
    ({"early_stopping": {"mode": "up"}}, "mode"),
    ({"unknown": 1}, "unknown"),
    ({"optimizer": {"name": "adam", "momentum": 0.9}}, "momentum"),
])
def test_config_rejects_bad_values_naming_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        TrainingConfig().merged(overrides)
    assert field in str(err.value)


def test_gate_thresholds_and_no_champion() -> None:
    spec = GateSpec.model_validate({"thresholds": {"rmse": {"max": 0.5}, "r2": {"min": 0.8}}})
    assert evaluate(spec, {"rmse": 0.2, "r2": 0.9, "val_loss": 1.0}, None).accepted
    decision = evaluate(spec, {"rmse": 0.7, "r2": 0.5}, None)
    assert not decision.accepted
    assert decision.reason == "r2 0.5 < min 0.8; rmse 0.7 > max 0.5"
    assert "r2 was not measured" in evaluate(spec, {"rmse": 0.1}, None).reason


def test_gate_compares_with_the_champion_within_a_margin() -> None:
    spec = GateSpec(compare="rmse", mode="min", margin=0.05)
    assert evaluate(spec, {"rmse": 0.90}, {"rmse": 1.0}).accepted  # better
    assert evaluate(spec, {"rmse": 1.04}, {"rmse": 1.0}).accepted  # worse, but within 5 %
    worse = evaluate(spec, {"rmse": 1.10}, {"rmse": 1.0})
    assert not worse.accepted and "beyond the 5% margin" in worse.reason
    higher = GateSpec(compare="accuracy", mode="max")
    assert not evaluate(higher, {"accuracy": 0.8}, {"accuracy": 0.9}).accepted
    assert evaluate(higher, {"accuracy": 0.95}, {"accuracy": 0.9}).accepted


def test_gate_acceptance_rate_band_for_samplers() -> None:
    spec = GateSpec.model_validate({"compare": None, "acceptance_rate": {"min": 0.2, "max": 0.6}})
    assert evaluate(spec, {"acceptance_rate": 0.4}, None).accepted
    assert "acceptance_rate 0.05 < min 0.2" in evaluate(spec, {"acceptance_rate": 0.05}, None).reason
    assert "acceptance_rate 0.9 > max 0.6" in evaluate(spec, {"acceptance_rate": 0.9}, None).reason
    assert not evaluate(spec, {}, None).accepted


def test_drift_ks_and_psi_see_a_shift_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 500)
    same = rng.normal(0, 1, 500)
    shifted = rng.normal(0.8, 1, 500)
    ks = DriftSpec(method="ks", threshold=0.01)
    assert not detect(ks, reference, same).drifted
    report = detect(ks, reference, shifted)
    assert report.drifted and report.scores[0] < 1e-6
    by_psi = DriftSpec(method="psi", threshold=0.2)
    assert not detect(by_psi, reference, same).drifted
    assert detect(by_psi, reference, shifted).drifted
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-9)


def test_drift_needs_enough_samples_and_matching_features() -> None:
    spec = DriftSpec(min_samples=30)
    verdict = detect(spec, np.zeros(100), np.ones(10))
    assert not verdict.drifted and verdict.scores == []
    with pytest.raises(ValueError, match="features"):
        detect(spec, np.zeros((50, 2)), np.zeros((50, 3)))
    two = detect(spec, np.column_stack([np.arange(100.0), np.arange(100.0)]),
                 np.column_stack([np.arange(100.0), np.arange(100.0) + 500]))
    assert two.drifted and len(two.scores) == 2 and two.scores[0] > 0.5


def test_search_space_validation() -> None:
    need_modules("ml", "optuna", hint="pip install -e '.[ml]'")
    from twinengine.ml.tune import parse_space

    space = parse_space("optimizer.lr: {type: float, low: 0.001, high: 0.1, log: true}")
    assert space.root["optimizer.lr"].log
    with pytest.raises(ValidationError, match="low <= high"):
        parse_space({"params.hidden": {"type": "int", "low": 10, "high": 2}})
    with pytest.raises(ValidationError, match="choices"):
        parse_space({"optimizer.name": {"type": "categorical"}})


def test_fit_uses_the_configured_threads_and_restores_torch_default() -> None:
    need_modules("ml", "torch", hint="pip install -e '.[ml]'")
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from twinengine.ml.trainer import TrainingData, TrainingTask, fit

    seen: list[int] = []
    x = torch.randn(16, 2)

    def loss(model: nn.Module, batch: object) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        (inputs,) = batch  # type: ignore[misc]
        return model(inputs).pow(2).mean()

    task = TrainingTask(build_model=lambda _p: nn.Linear(2, 1),
                        datasets=lambda _d: (TensorDataset(x), TensorDataset(x)), loss=loss)
    before = torch.get_num_threads()
    fit(task, TrainingConfig(epochs=1, batch_size=8, threads=1), TrainingData())
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before
    with pytest.raises(ValidationError, match="threads"):
        TrainingConfig(threads=0)


def test_gate_waives_the_comparison_when_the_champions_verified_skill_is_broken() -> None:
    spec = GateSpec.model_validate({"compare": "val_loss", "thresholds": {"val_loss": {"max": 1.0}},
                                    "champion_skill": {"property": "level", "metric": "nse", "below": 0.8}})
    worse, champion = {"val_loss": 0.5}, {"val_loss": 0.3}
    kept = {"metric": "nse", "value": 0.93, "pairs": 24, "broken": False}
    broken = {"metric": "nse", "value": 0.41, "pairs": 24, "broken": True}
    assert not evaluate(spec, worse, champion, kept).accepted  # skill kept: the comparison stands
    assert not evaluate(spec, worse, champion, {**broken, "broken": None}).accepted  # too few pairs: it stands
    decision = evaluate(spec, worse, champion, broken)
    assert decision.accepted and "verified nse 0.41 over 24 forecast pairs" in decision.reason
    assert not evaluate(spec, {"val_loss": 2.0}, champion, broken).accepted  # the other rules still hold
    with pytest.raises(ValidationError, match="below"):
        GateSpec.model_validate({"champion_skill": {"property": "level", "metric": "nse"}})
