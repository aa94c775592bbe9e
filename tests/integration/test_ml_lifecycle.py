"""The AI lifecycle over HTTP on both store backends: train a twin's model from its stream, register it in
MLflow with its trail (read back with the official MlflowClient), pass the gate, move the aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import RIVER_REACH, Engine
from ml_fixtures import gauge_records, need_torch
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import ModelNotFound, QuotaExceeded, ValidationFailed

MODEL = "runoff_correction"


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, run_functions=False)


@pytest.fixture(autouse=True)
def _torch() -> None:
    need_torch()  # before the engine (the conftest fixture, with the settings above) starts


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    client.streams.append("reach", "gauges", gauge_records(96))
    return client


def test_train_register_gate_aliases_and_trail(engine: Engine, uma: Client, settings: Settings) -> None:
    from twinengine.auth.groups import set_memberships

    with engine.runtime.db.session() as session:  # its usage is charged to its creator's groups too
        set_memberships(session, identity="uma", groups=["hydro"], source="local")
    run = uma.ml.train("reach", MODEL, config={"epochs": 6})
    assert run.status == "queued" and run.progress == 0
    done = uma.ml.wait("reach", run.id, timeout=300)
    assert done.status == "succeeded", done.error
    assert done.progress == 100 and done.model_version == "1" and len(done.history) == 6
    assert done.inputs["kind"] == "stream" and done.inputs["end"] == 96 * 4
    assert sum(done.inputs["quality"].values()) == 96 * 4  # the flags of what it trained on (pedigree)
    report = uma.ml.quality("reach", MODEL, "1")
    assert report.inputs[0].records == done.inputs["quality"] and report.flag == report.inputs[0].flag

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

    # each run's usage: the CPU of the sandboxed worker it trained in (read from /proc), charged to its creator
    records = engine.http.get("/api/v1/usage/records", headers=engine.headers(engine.token("uma", "user")))
    training = [r for r in records.json()["items"] if r["kind"] == "training"]
    assert sorted(r["run_id"] for r in training) == sorted([run.id, second.id])
    for record in training:
        assert (record["status"], record["identity"], record["twin"], record["app"], record["site"]) == \
            ("succeeded", "uma", "reach", "river-reach@0.1.0", "local")
        assert record["groups"] == ["hydro"]
        assert record["source"] == "worker-cpu" and record["core_seconds"] == record["remote_core_seconds"]
        assert 0.5 < record["core_seconds"] <= 2 * record["wall_seconds"] + 1  # importing torch alone takes more
    others = engine.http.get("/api/v1/usage/records", headers=engine.headers(engine.token("ola", "user")))
    assert others.json()["items"] == []

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

    # a training run trains on the engine's own site: its requester's used-up quota refuses it, naming it
    engine.sdk(engine.admin_token).compute.set_quota("uma", 0.0, site="local", period="day")
    with pytest.raises(QuotaExceeded) as refused:
        uma.ml.train("reach", MODEL)
    assert refused.value.status == 429 and "compute quota of uma on site local" in refused.value.message
    assert "the training run is refused" in refused.value.message and uma.ml.runs("reach").total == 0
    with pytest.raises(ValidationFailed):  # a bad request still names its field first
        uma.ml.train("reach", MODEL, config={"epochs": 0})


def test_progress_events_and_percent(engine: Engine, uma: Client) -> None:
    run = uma.ml.wait("reach", uma.ml.train("reach", MODEL, config={"epochs": 3}).id, timeout=300)
    headers = engine.headers(engine.token("uma", "user"))
    with engine.http.stream("GET", f"/api/v1/twins/reach/training-runs/{run.id}/events", headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    assert text.count("event: metrics") == 3 and "event: end" in text and '"status": "succeeded"' in text
    assert "id: 3" in text and '"progress": 100.0' in text
    page = uma.ml.runs("reach", model=MODEL)
    assert page.total == 1 and page.items[0].progress == 100


def _wait_trail(uma: Client, kind: str, count: int = 1) -> list:
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trail = [t for t in uma.ml.trail("reach", MODEL) if t.trigger.get("kind") == kind]
        if len(trail) >= count and all(t.status in ("succeeded", "failed") for t in trail):
            return trail
        time.sleep(0.3)
    raise AssertionError(f"no {kind} run: {uma.ml.trail('reach', MODEL)}")


def test_policies_retrain_on_schedule_and_on_buffer_fills(engine: Engine, uma: Client) -> None:
    uma.ml.set_policy("reach", MODEL, every_seconds=3600)
    scheduled = _wait_trail(uma, "schedule")
    assert scheduled[0].status == "succeeded" and scheduled[0].version == "1"
    assert uma.ml.policy("reach", MODEL).last_triggered_at is not None

    uma.streams.create_buffer("reach", "retrain", "gauges", policy="external")
    uma.streams.append("reach", "gauges", gauge_records(48, start=_later()))
    fill = uma.streams.seal_buffer("reach", "retrain")
    uma.ml.set_policy("reach", MODEL, buffer="retrain")
    by_buffer = _wait_trail(uma, "buffer")
    entry = by_buffer[0]
    assert entry.trigger == {"kind": "buffer", "buffer": "retrain", "fill": fill.id}
    assert entry.inputs["start"] == fill.start_offset and entry.inputs["end"] == fill.end_offset
    assert entry.decision is not None  # gated against the schedule run's champion on the same held-out set
    assert uma.streams.buffer("reach", "retrain").fills[0].status in ("consumed", "discarded")
    with pytest.raises(ValidationFailed):
        uma.ml.set_policy("reach", MODEL, stream="nope", drift={"method": "ks"})


def test_a_used_up_quota_holds_retraining_policies_and_their_runs_are_the_owners(engine: Engine,
                                                                                  uma: Client) -> None:
    """A retraining policy's run is nobody's request: while the twin's owner's quota on the engine's site is
    used up, nothing fires (the policy says why) and nothing is used; once it allows again the schedule fires,
    and the run's usage is charged to the twin's owner, not to the engine that started it."""
    import time

    admin = engine.sdk(engine.admin_token)
    admin.compute.set_quota("uma", 0.0, site="local", period="day")
    uma.ml.set_policy("reach", MODEL, every_seconds=3600)
    deadline = time.monotonic() + 30
    while "held" not in (uma.ml.policy("reach", MODEL).last_check or {}) and time.monotonic() < deadline:
        time.sleep(0.2)
    held = (uma.ml.policy("reach", MODEL).last_check or {}).get("held")
    assert held and "compute quota of uma on site local is used up" in held and "retraining policies wait" in held
    time.sleep(1.0)
    assert uma.ml.runs("reach").total == 0 and uma.ml.policy("reach", MODEL).last_triggered_at is None
    admin.compute.remove_quota("uma", site="local")
    [scheduled] = _wait_trail(uma, "schedule")
    assert scheduled.status == "succeeded"
    assert "held" not in (uma.ml.policy("reach", MODEL).last_check or {})
    records = [r for r in engine.http.get("/api/v1/usage/records", headers=engine.headers(engine.admin_token))
               .json()["items"] if r["kind"] == "training"]
    assert records and {r["identity"] for r in records} == {"uma"}


def _later():  # after the fixture's 96 hours
    from datetime import timedelta

    from ml_fixtures import T0

    return T0 + timedelta(hours=96)


def test_train_model_and_predict_are_engine_processes(engine: Engine, uma: Client) -> None:
    graph = {"process_graph": {"train": {"process_id": "train_model", "result": True,
                                         "arguments": {"model": MODEL, "config": {"epochs": 2}}}}}
    run = uma.workflows.wait(uma.workflows.submit(graph, twin="reach").id, timeout=300)
    assert run.status.value == "finished", run.error
    assert run.value["version"] == "1" and run.value["accepted"] is True
    assert uma.ml.trail("reach", MODEL)[0].trigger == {"kind": "workflow", "run": run.id}

    records = gauge_records(4)
    graph = {"process_graph": {"p": {"process_id": "predict", "result": True,
                                     "arguments": {"model": MODEL, "data": {"records": records}}}}}
    predicted = uma.workflows.wait(uma.workflows.submit(graph, twin="reach").id, timeout=300)
    assert predicted.status.value == "finished", predicted.error
    assert len(predicted.value) == len(records) - 8


def test_a_synchronous_run_with_train_model_finishes(engine: Engine, uma: Client) -> None:
    """The request waits on the training loop, which writes its progress from its own thread (on SQLite the
    request must let it in while it waits); both the API's sync mode and openEO's /result end."""
    graph = {"process_graph": {"train": {"process_id": "train_model", "result": True,
                                         "arguments": {"model": MODEL, "config": {"epochs": 1}, "timeout": 240}}}}
    run = uma.workflows.submit(graph, twin="reach", sync=True)
    assert run.status.value == "finished", run.error
    assert run.value["version"] == "1"

    graph["process_graph"]["train"]["arguments"]["twin"] = "reach"
    answer = engine.http.post("/openeo/1.2/result", json={"process": graph},
                              headers=uma._auth)
    assert answer.status_code == 200, answer.text
    assert uma.ml.trail("reach", MODEL)[0].status == "succeeded"
    assert len(uma.ml.trail("reach", MODEL)) == 2
