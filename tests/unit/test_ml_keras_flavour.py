"""The Keras 3 flavour on its own (PyTorch backend): Keras' fit with the engine's per-epoch metrics and
progress, early stopping, a checkpoint a restarted run resumes from, and bytes for a worker that load in
Keras' safe mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import need_modules
from twinengine.app.training import TrainingData, TrainingTask
from twinengine.app.training_config import EarlyStopping, TrainingConfig
from twinengine.ml.flavours import KerasFlavour, flavour_named


@pytest.fixture(autouse=True)
def _keras() -> None:
    need_modules("ml", "keras", "torch", hint="pip install -e '.[ml]'")


def line_task(*, compiled: bool = True) -> TrainingTask:
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (200, 1)).astype("float32")
    y = (2 * x[:, 0] + 1).astype("float32")

    def build(params: dict[str, Any]) -> Any:
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        if compiled:
            model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mean_squared_error")
        return model

    def mse(model: Any, xy: Any) -> float:
        return float(((model.predict(xy[0], verbose=0)[:, 0] - xy[1]) ** 2).mean())

    return TrainingTask(framework="keras", build_model=build, datasets=lambda data: ((x[:160], y[:160]),
                                                                                     (x[160:], y[160:])),
                        loss=mse, metrics={"mse": mse})


def test_keras_is_the_torch_backend_and_has_its_flavour() -> None:
    import keras

    assert keras.backend.backend() == "torch"
    assert isinstance(flavour_named("keras"), KerasFlavour) and flavour_named("keras3") is flavour_named("keras")


def test_keras_fits_with_the_engines_metrics_per_epoch() -> None:
    reports: list[Any] = []
    result = KerasFlavour().fit(line_task(), TrainingConfig(epochs=30, batch_size=16), TrainingData(),
                                on_epoch=reports.append)
    assert result.epochs_run == 30 and [r.epoch for r in reports] == list(range(1, 31))
    assert set(result.final) == {"epoch", "train_loss", "val_loss", "mse"}
    assert result.final["val_loss"] < 0.01 < result.history[0]["val_loss"]
    weights = result.model.layers[0].get_weights()
    assert float(weights[0][0, 0]) == pytest.approx(2.0, abs=0.1) and float(weights[1][0]) == pytest.approx(1.0,
                                                                                                          abs=0.1)


def test_an_uncompiled_model_gets_the_configs_optimizer() -> None:
    result = KerasFlavour().fit(line_task(compiled=False),
                                TrainingConfig(epochs=20, batch_size=16, optimizer={"name": "sgd", "lr": 0.1}),
                                TrainingData())
    assert result.model.optimizer.__class__.__name__ == "SGD" and result.final["val_loss"] < 0.05


def test_early_stopping_and_the_stop_request_end_keras_fit() -> None:
    rule = EarlyStopping(metric="val_loss", patience=2, min_delta=10.0)  # nothing improves by 10: stop at 3
    stopped = KerasFlavour().fit(line_task(), TrainingConfig(epochs=30, early_stopping=rule), TrainingData())
    assert stopped.stopped_early and stopped.epochs_run == 3
    asked = KerasFlavour().fit(line_task(), TrainingConfig(epochs=30), TrainingData(), should_stop=lambda: True)
    assert asked.epochs_run == 1 and not asked.stopped_early


def test_a_restarted_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    flavour, config = KerasFlavour(), TrainingConfig(epochs=6, batch_size=16)
    first = flavour.fit(line_task(), config.model_copy(update={"epochs": 4}), TrainingData(), checkpoint=tmp_path)
    assert first.epochs_run == 4 and (tmp_path / "epoch.txt").read_text() == "4"
    resumed = flavour.fit(line_task(), config, TrainingData(), checkpoint=tmp_path)
    assert resumed.resumed_from == 4 and [h["epoch"] for h in resumed.history] == [5.0, 6.0]


def test_a_saved_version_loads_in_safe_mode(tmp_path: Path) -> None:
    import numpy as np

    flavour, task = KerasFlavour(), line_task()
    model = flavour.fit(task, TrainingConfig(epochs=20, batch_size=16), TrainingData()).model
    flavour.save(model, tmp_path / "model")
    again = flavour.load(task, {}, tmp_path / "model")
    x = np.array([[0.5]], dtype="float32")
    assert np.allclose(flavour.predict(task, again, x), model.predict(x, verbose=0))
