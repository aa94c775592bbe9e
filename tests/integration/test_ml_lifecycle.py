"""The AI lifecycle over HTTP on both store backends: train a twin's model from its stream, register it in
MLflow with its trail (read back with the official MlflowClient), pass the gate, move the aliases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from helpers import RIVER_REACH, Engine
from ml_fixtures import gauge_records, need_torch
from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import ModelNotFound, ValidationFailed
from twinengine.runtime import Runtime

MODEL = "runoff_correction"


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, run_functions=False)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    need_torch()
    runtime = Runtime.from_settings(settings)
    app = create_app(runtime=runtime)
    try:
        with TestClient(app) as http:
            yield Engine(runtime=runtime, app=app, http=http,
                         admin_token=(settings.data_dir / "admin.token").read_text().strip())
    finally:
        runtime.close()


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    client.streams.append("reach", "gauges", gauge_records(96))
    return client


def test_train_register_gate_aliases_and_trail(engine: Engine, uma: Client, settings: Settings) -> None:
    run = uma.ml.train("reach", MODEL, config={"epochs": 6})
    assert run.status == "queued" and run.progress == 0
    done = uma.ml.wait("reach", run.id, timeout=300)
    assert done.status == "succeeded", done.error
    assert done.progress == 100 and done.model_version == "1" and len(done.history) == 6
    assert done.inputs["kind"] == "stream" and done.inputs["end"] == 96 * 4

    models = uma.ml.models("reach")
    assert [m.name for m in models] == [MODEL]
    assert models[0].champion == "1" and models[0].versions[0].decision is not None
    assert models[0].versions[0].decision.accepted

    # a second run that must beat the champion: an impossible threshold rejects it, with the reason kept
    second = uma.ml.wait("reach", uma.ml.train("reach", MODEL, config={"epochs": 1, "optimizer": {"lr": 1e-6}},
                                               trigger={"kind": "external", "by": "test"}).id, timeout=300)
    assert second.status == "succeeded"
    models = uma.ml.models("reach")
    assert models[0].champion == "1"
    rejected = models[0].versions[1]
    assert rejected.decision is not None and not rejected.decision.accepted
    assert "worse than the champion" in rejected.decision.reason
    assert rejected.tags["gate.decision"] == "rejected"

    trail = uma.ml.trail("reach", MODEL)
    assert [t.run for t in trail] == [second.id, run.id]
    assert trail[0].trigger == {"kind": "external", "by": "test"} and trail[0].version == "2"
    assert trail[1].inputs["stream"] == "gauges" and trail[1].decision is not None

    # the official client reads what the engine wrote
    from mlflow.tracking import MlflowClient

    official = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    champion = official.get_model_version_by_alias("reach.runoff_correction", "champion")
    assert str(champion.version) == "1"
    assert champion.tags["twin.name"] == "reach" and champion.tags["app"] == "river-reach@0.1.0"
    assert len(champion.tags["code.sha256"]) == 64 and champion.tags["training_run"] == run.id
    assert '"stream": "gauges"' in champion.tags["inputs"]
    mlrun = official.get_run(champion.run_id)
    assert mlrun.data.params["epochs"] == "6" and mlrun.data.params["optimizer.name"] == "adam"
    assert "val_loss" in mlrun.data.metrics and "rmse_level" in mlrun.data.metrics
    assert len(official.get_metric_history(champion.run_id, "val_loss")) == 6

    # serving: the champion predicts corrected levels
    records = gauge_records(6)
    answer = uma.ml.predict("reach", MODEL, {"parameters": {}, "records": records})
    assert answer["version"] == "1" and len(answer["outputs"]) == len(records) - 8


def test_bad_requests_name_the_field(engine: Engine, uma: Client) -> None:
    with pytest.raises(ModelNotFound):
        uma.ml.train("reach", "nope")
    with pytest.raises(ValidationFailed) as err:
        uma.ml.train("reach", MODEL, config={"epochs": 0})
    assert "config.epochs" in str(err.value.details)
    with pytest.raises(ValidationFailed):
        uma.ml.train("reach", MODEL, config={"optimizer": {"name": "adam", "momentum": 0.9}})
    r = engine.http.post("/api/v1/twins/reach/models/runoff_correction/train", json={"nproc": 0},
                         headers=engine.headers(engine.token("uma", "user")))
    assert r.status_code == 422 and "nproc" in r.text
    assert uma.ml.runs("reach").total == 0
