"""A twin's models cost compute like any run: a run's ``predict`` is charged what its serving worker spent, and
with its owner's quota used up a prediction (``POST .../predict``) and a training run a process graph asks for
(``train_model``) are refused, as a training run asked for through the API is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import Engine, need_modules
from ml_fixtures import line_app, line_samples, ridge_task
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import QuotaExceeded


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, run_functions=False)


@pytest.fixture
def uma(engine: Engine, tmp_path: Path) -> Client:
    need_modules("ml", "sklearn", "mlflow", hint="pip install -e '.[ml]'")
    engine.as_role("ada", "developer").publish_app(line_app(tmp_path, name="cost-app", model="ridge",
                                                            framework="sklearn", task_source=ridge_task()))
    client = engine.as_role("uma", "user")
    client.create_twin("cost-app@0.1.0", "line", {})
    client.streams.append("line", "samples", line_samples(200))
    return client


def _graph(process: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"process_graph": {"p": {"process_id": process, "arguments": arguments, "result": True}}}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # accounting does not depend on the store
def test_predictions_and_graph_training_are_charged_and_bounded(engine: Engine, uma: Client) -> None:
    first = uma.ml.wait("line", uma.ml.train("line", "ridge").id, timeout=300)
    assert first.status == "succeeded", first.error
    run = uma.workflows.submit(_graph("predict", {"model": "ridge", "data": {"x": [[1.0, 0.0]] * 64}}),
                               twin="line", sync=True)
    assert run.status == "finished", run.error
    [record] = [r for r in uma.compute.usage_records().items if r.run_id == run.id]
    assert "worker-cpu" in record.source and record.remote_core_seconds > 0, record  # the serving worker's CPU

    admin = engine.sdk(engine.admin_token)
    admin.compute.set_quota("uma", 0, site="local", period="day")  # where predictions and training run
    with pytest.raises(QuotaExceeded) as refused:
        uma.ml.predict("line", "ridge", {"x": [[1.0, 0.0]]})
    assert "the prediction is refused" in str(refused.value)
    # a graph on another site (where uma's quota allows it) asks for a training run, which trains on local
    engine.as_role("pat", "provider").compute.add_site("edge", "local", cores=1, memory_bytes=2**31)
    trained = uma.workflows.submit(_graph("train_model", {"model": "ridge"}), twin="line", sync=True,
                                   options={"site": "edge"})
    assert trained.status == "error" and "the training run is refused" in str(trained.error), trained.error
    assert uma.ml.runs("line").total == 1  # no second training run
