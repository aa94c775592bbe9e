"""A PyTorch version's own uncertainty: a deep ensemble trained from different seeds and MC dropout give
several draws per input; served they are a mean, a spread, the members and the bounds of a scaled
split-conformal interval calibrated at registration; an ensemble survives its model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import need_modules
from twinengine.app.training import EpochReport, TrainingData, TrainingTask
from twinengine.app.training_config import TrainingConfig


@pytest.fixture(autouse=True)
def _torch() -> None:
    need_modules("ml", "torch", hint="pip install -e '.[ml]'")


def noisy_line(**changes: Any) -> TrainingTask:
    """y = 2x + noise whose size grows with |x|: draws should disagree more far from zero."""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    def data(n: int, seed: int) -> TensorDataset:
        g = torch.Generator().manual_seed(seed)
        x = 2 * torch.rand(n, 1, generator=g) - 1
        return TensorDataset(x, 2 * x + (0.05 + 0.3 * x.abs()) * torch.randn(n, 1, generator=g))

    def build(params: dict[str, Any]) -> nn.Module:
        return nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Dropout(0.2), nn.Linear(32, 1))

    def loss(model: nn.Module, batch: Any) -> torch.Tensor:
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    fields: dict[str, Any] = {
        "build_model": build, "datasets": lambda _d: (data(400, 1), data(600, 2)), "loss": loss,
        "predictions": lambda model, batch: (model(batch[0]), batch[1]),
        "predict": lambda model, inputs: model(torch.tensor(inputs, dtype=torch.float32)).squeeze(-1),
        "config": TrainingConfig.model_validate({"epochs": 15, "batch_size": 32, "device": "cpu",
                                                 "optimizer": {"lr": 0.02}})}
    return TrainingTask(**(fields | changes))


def test_a_deep_ensemble_trains_its_members_from_different_seeds_and_calibrates_its_interval(tmp_path: Path) -> None:
    from twinengine.ml.flavours import PyTorchFlavour
    from twinengine.ml.served import ServedModel
    from twinengine.ml.trainer import fit
    from twinengine.ml.uncertainty import Ensemble

    task = noisy_line(members=3)
    epochs: list[EpochReport] = []
    result = fit(task, task.config, TrainingData(), on_epoch=epochs.append, checkpoint=tmp_path / "ck" / "last")
    assert isinstance(result.model, Ensemble) and len(result.model.members) == 3
    assert [e.epoch for e in epochs] == list(range(1, 46)) and {e.epochs for e in epochs} == {45}
    first = [p.detach().clone() for p in result.model.members[0].parameters()]
    second = list(result.model.members[1].parameters())
    assert any(not a.equal(b) for a, b in zip(first, second, strict=True))  # other seeds, other networks
    final = result.final
    assert final["epoch"] == 45 and final["interval_level"] == 0.9 and final["interval_scale"] > 0
    assert 0.8 <= final["interval_coverage"] <= 1.0
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["last.member0", "last.member1", "last.member2"]

    flavour = PyTorchFlavour()
    flavour.save(result.model, tmp_path / "model")
    again = flavour.load(task, {}, tmp_path / "model")
    assert isinstance(again, Ensemble) and len(again.members) == 3
    served = ServedModel(version="1", net=again, task=task,
                         interval={k: v for k, v in final.items() if k.startswith("interval_")})
    answer = served.predict([[0.0], [0.9]])
    assert set(answer) == {"mean", "std", "members", "level", "lower", "upper"}
    assert answer["members"].shape == (3, 2) and answer["mean"][1] == pytest.approx(1.8, abs=0.3)
    assert (answer["lower"] < answer["mean"]).all() and (answer["mean"] < answer["upper"]).all()


def test_a_restarted_ensemble_resumes_in_the_member_it_was_training(tmp_path: Path) -> None:
    from twinengine.ml.trainer import fit

    task = noisy_line(members=2)
    stop_at = {"epoch": 20}  # in the second member (epochs 16-30)
    first = fit(task, task.config, TrainingData(), checkpoint=tmp_path / "last",
                on_epoch=lambda e: stop_at.__setitem__("seen", e.epoch),
                should_stop=lambda: stop_at.get("seen", 0) >= stop_at["epoch"])
    assert len(first.model.members) == 2 and first.history[-2]["epoch"] == 20
    seen: list[int] = []
    again = fit(task, task.config, TrainingData(), checkpoint=tmp_path / "last",
                on_epoch=lambda e: seen.append(e.epoch))
    assert seen == list(range(21, 31))  # the first member is done; the second resumes after epoch 5 of its 15
    assert again.final["epoch"] == 30


def test_mc_dropout_draws_disagree_and_get_a_calibrated_interval() -> None:
    from twinengine.ml.served import ServedModel
    from twinengine.ml.trainer import fit

    task = noisy_line(mc_dropout=30)
    result = fit(task, task.config, TrainingData())
    final = result.final
    assert final["interval_scale"] > 0 and 0.8 <= final["interval_coverage"] <= 1.0
    answer = ServedModel(version="1", net=result.model, task=task, interval=final).predict([[0.5]])
    assert answer["members"].shape == (30, 1) and answer["std"][0] > 0
    assert not any(m.training for m in result.model.modules())  # dropout off again after the draws


def test_a_task_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="members must be an integer from 1 to 100"):
        noisy_line(members=0)
    with pytest.raises(ValueError, match="mc_dropout must be an integer"):
        noisy_line(mc_dropout=-1)
    with pytest.raises(ValueError, match="for pytorch models, not 'sklearn'"):
        noisy_line(members=3, framework="sklearn")
