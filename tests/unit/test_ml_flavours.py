"""Flavours on their own: the framework named by a task picks one; scikit-learn fits, measures, saves an MLflow
sklearn model and loads it back from that folder; PyTorch's folder holds weights only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import need_modules
from twinengine.app.training import EpochReport, TrainingData, TrainingTask
from twinengine.app.training_config import TrainingConfig
from twinengine.ml.flavours import PyTorchFlavour, SklearnFlavour, UnknownFramework, flavour_named, flavour_of


@pytest.fixture(autouse=True)
def _sklearn() -> None:
    need_modules("ml", "sklearn", "mlflow", hint="pip install -e '.[ml]'")


def line_task(**changes: Any) -> TrainingTask:
    import numpy as np
    from sklearn.linear_model import LinearRegression

    x = np.linspace(-1, 1, 40).reshape(-1, 1)
    y = 2 * x[:, 0] + 1

    def mse(model: Any, xy: Any) -> float:
        return float(((model.predict(xy[0]) - xy[1]) ** 2).mean())

    fields: dict[str, Any] = {
        "framework": "sklearn", "build_model": lambda params: LinearRegression(),
        "datasets": lambda data: ((x[:30], y[:30]), (x[30:], y[30:])), "loss": mse,
        "metrics": {"max_error": lambda model, xy: float(abs(model.predict(xy[0]) - xy[1]).max())}}
    return TrainingTask(**(fields | changes))


class Sink:
    def __init__(self) -> None:
        self.points: list[tuple[dict[str, float], int]] = []

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.points.append((metrics, step))


def test_the_framework_picks_the_flavour() -> None:
    assert isinstance(flavour_named("pytorch"), PyTorchFlavour) and flavour_named("torch") is flavour_named("pytorch")
    assert isinstance(flavour_named("scikit-learn"), SklearnFlavour)
    assert flavour_of(line_task()).name == "sklearn"
    with pytest.raises(UnknownFramework, match=r"'jax'.*\['keras', 'pytorch', 'sklearn'\]"):
        flavour_named("jax")


def test_sklearn_fits_once_and_measures_the_held_out_set() -> None:
    sink, epochs = Sink(), []
    result = SklearnFlavour().fit(line_task(), TrainingConfig(), TrainingData(), sink=sink, on_epoch=epochs.append)
    assert result.epochs_run == 1 and len(result.history) == 1 and result.device == "cpu"
    assert set(result.final) == {"epoch", "train_loss", "val_loss", "max_error"}
    assert result.final["val_loss"] == pytest.approx(0.0, abs=1e-12)
    assert [m for m, _step in sink.points] == [{k: v for k, v in result.final.items() if k != "epoch"}]
    assert epochs == [EpochReport(1, 1, sink.points[0][0])]


def test_sklearn_refuses_what_it_cannot_train() -> None:
    with pytest.raises(ValueError, match=r"\(\(X, y\), \(X, y\)\).*train part is a list"):
        SklearnFlavour().fit(line_task(datasets=lambda data: ([1, 2, 3], [4])), TrainingConfig(), TrainingData())
    with pytest.raises(ValueError, match="not defined by the model"):
        SklearnFlavour().fit(line_task(), TrainingConfig(metrics=["r2"]), TrainingData())


def test_sklearn_saves_an_mlflow_sklearn_model_and_round_trips_to_a_worker(tmp_path: Path) -> None:
    import mlflow.sklearn
    import yaml

    flavour, task = SklearnFlavour(), line_task()
    model = flavour.fit(task, TrainingConfig(), TrainingData()).model
    flavour.save(model, tmp_path / "model")
    assert "sklearn" in yaml.safe_load((tmp_path / "model" / "MLmodel").read_text())["flavors"]
    assert mlflow.sklearn.load_model(str(tmp_path / "model")).predict([[2.0]])[0] == pytest.approx(5.0)
    again = flavour.load(task, {}, tmp_path / "model")
    assert flavour.predict(task, again, [[0.5]])[0] == pytest.approx(2.0)  # no predict: the estimator's own
    shifted = line_task(predict=lambda m, inputs: [float(v) + 10 for v in m.predict(inputs)])
    assert flavour.predict(shifted, again, [[0.5]]) == [pytest.approx(12.0)]


def test_pytorch_keeps_weights_only(tmp_path: Path) -> None:
    need_modules("ml", "torch", hint="pip install -e '.[ml]'")
    import torch
    from torch import nn

    task = TrainingTask(build_model=lambda params: nn.Linear(2, 1), datasets=lambda data: ([], []),
                        loss=lambda model, batch: torch.zeros(()), predict=lambda model, x: model(x))
    flavour = flavour_of(task)
    net = task.build_model({})
    flavour.save(net, tmp_path / "model")
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["model.pt"]
    assert set(torch.load(tmp_path / "model" / "model.pt", weights_only=True)) == {"weight", "bias"}
    again = flavour.load(task, {}, tmp_path / "model")
    inputs = torch.ones(1, 2)
    assert torch.equal(flavour.predict(task, again, inputs), net(inputs).detach())
    assert not flavour.predict(task, again, inputs).requires_grad  # served without gradients


def test_a_search_tunes_a_sklearn_model() -> None:
    """Each Optuna trial is one fit of the flavour: a ridge whose alpha is searched prefers the small ones."""
    from sklearn.linear_model import Ridge

    from twinengine.ml.tune import parse_space, run_study

    task = line_task(build_model=lambda params: Ridge(alpha=float(params["alpha"])))
    space = parse_space({"params.alpha": {"type": "float", "low": 1e-4, "high": 100.0, "log": True}})
    result = run_study(task, TrainingConfig(params={"alpha": 1.0}), TrainingData(), space=space, trials=8,
                       storage=None, study_name="ridge")
    assert result.complete + result.pruned == 8 and result.failed == 0
    assert result.best_overrides["params"]["alpha"] < 1.0
