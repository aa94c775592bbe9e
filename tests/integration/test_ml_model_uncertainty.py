"""A model version's own uncertainty through the engine: an app whose task trains a deep ensemble gets a
version whose held-out interval is calibrated at registration (and held to a band by the gate), and whose
predictions come back as mean, spread, members and interval bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import Engine, make_app
from ml_fixtures import LINE_STREAM, line_samples, need_torch
from twinengine.config import Settings

pytestmark = pytest.mark.slow

ENSEMBLE_TASK = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset

from twinengine.app import TrainingConfig, TrainingTask


def _tensors(records):
    x = torch.tensor([[r["x0"], r["x1"]] for r in records], dtype=torch.float32)
    y = torch.tensor([[r["y"]] for r in records], dtype=torch.float32)
    return TensorDataset(x, y)


def line():
    def build(params):
        return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))

    def loss(model, batch):
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    return TrainingTask(
        build_model=build, datasets=lambda data: (_tensors(data.records[:200]), _tensors(data.records[200:])),
        loss=loss, members=3,
        predictions=lambda model, batch: (model(batch[0]), batch[1]),
        predict=lambda model, inputs: model(torch.tensor(inputs["x"], dtype=torch.float32)).squeeze(-1),
        gate={"compare": None, "interval": {"within": 0.15}},
        config=TrainingConfig.model_validate({"epochs": 20, "batch_size": 32, "optimizer": {"lr": 0.02}}))
'''


@pytest.fixture(autouse=True)
def _torch() -> None:
    need_torch()


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, run_functions=False)


def test_a_deep_ensemble_is_calibrated_gated_and_served_with_its_spread(engine: Engine, tmp_path: Path) -> None:
    folder = make_app(tmp_path / "apps", name="line-ensemble", version="0.1.0", manifest={
        "parameters": {"type": "object", "properties": {}}, "streams": LINE_STREAM,
        "models": {"line": {"entrypoint": "line_ensemble.model:line"}}},
        files={"line_ensemble/model.py": ENSEMBLE_TASK})
    engine.as_role("ada", "developer").publish_app(folder)
    uma = engine.as_role("uma", "user")
    uma.create_twin("line-ensemble@0.1.0", "line", {})
    uma.streams.append("line", "samples", line_samples(400))
    run = uma.ml.wait("line", uma.ml.train("line", "line").id, timeout=300)
    assert run.status == "succeeded", run.error
    assert run.epochs == 60 and len(run.history) == 3 * 20 + 1 and run.history[-1]["epoch"] == 60  # 3 members
    assert run.metrics["interval_level"] == 0.9 and run.metrics["interval_scale"] > 0
    models = uma.ml.models("line")
    decision = models[0].versions[0].decision
    assert decision is not None and decision.accepted and models[0].champion == "1"
    answer = uma.ml.predict("line", "line", {"x": [[0.5, -0.5], [0.0, 0.0]]})
    out = answer["outputs"]
    assert answer["version"] == "1" and set(out) == {"mean", "std", "members", "level", "lower", "upper"}
    assert len(out["members"]) == 3 and out["mean"][0] == pytest.approx(2.5, abs=0.4)
    assert all(lo < m < hi for lo, m, hi in zip(out["lower"], out["mean"], out["upper"], strict=True))
