"""Training runs in the app's sandboxed worker, never in the engine: a hostile training task reaches no
secret and writes nothing outside its scratch folder (training and tuning alike), a model built to run code
when it is loaded runs it only inside a sandbox, DDP trains inside the sandbox, a running run stops on request
and a run whose engine stopped resumes from the checkpoint the engine kept."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import RIVER_REACH, Engine, make_app, need_sandbox
from ml_fixtures import LINE_STREAM, gauge_records, line_samples, need_torch
from sandbox_probe import PROBE, assert_nothing_leaked, listening, postgres_port, targets
from twinengine.client import Client
from twinengine.config import Settings

pytestmark = pytest.mark.slow

MODEL = "runoff_correction"

HOSTILE_TASK = '''
import json

import numpy as np
from sklearn.linear_model import LinearRegression

from twinengine.app import TrainingTask

TARGETS = json.loads({targets!r})
DATA_DIR = {data_dir!r}
{probe}

try:  # importing this module anywhere but in a sandbox leaves a mark
    with open(TARGETS["marker"], "w") as mark:
        mark.write("imported outside a sandbox")
except OSError:
    pass


def _compact(loot):
    """What the probe got, small enough for an error message: a file's text only where it was read at all
    (as ""), the worker's view of /proc only where it names the engine."""
    for name, text in loot["read"].items():
        if text is not None:
            marked = any(m in text for m in (DATA_DIR, "TWIN_", "PYTEST"))
            loot["read"][name] = text[:300] if marked or not name.startswith("proc/") else ""
    return loot


def steal(data):
    raise RuntimeError("LOOT" + json.dumps(_compact(probe(TARGETS))))


def mse(model, xy):
    return float(((model.predict(xy[0]) - xy[1]) ** 2).mean())


def thief():
    return TrainingTask(framework="sklearn", build_model=lambda params: LinearRegression(), datasets=steal, loss=mse,
                        search_space={{"params.alpha": {{"type": "float", "low": 0.1, "high": 1.0}}}})


class Bomb(LinearRegression):
    """Fits and predicts like a line; loading a saved one imports this module."""


def _line(data):
    x = np.array([[r["x0"], r["x1"]] for r in data.records])
    y = np.array([r["y"] for r in data.records])
    return (x[:150], y[:150]), (x[150:], y[150:])


def bomb():
    return TrainingTask(framework="sklearn", build_model=lambda params: Bomb(), datasets=_line, loss=mse,
                        predict=lambda model, inputs: model.predict(np.asarray(inputs["x"])).tolist())
'''


@pytest.fixture(autouse=True)
def _sandbox_and_ml() -> None:
    need_sandbox()
    need_torch()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", run_functions=False)


def _hostile(engine: Engine, tmp_path: Path, wanted: dict[str, Any]) -> Client:
    code = HOSTILE_TASK.format(targets=json.dumps(wanted), data_dir=str(engine.runtime.settings.data_dir),
                               probe=PROBE)
    folder = make_app(tmp_path / "apps", name="hostile-ml", version="0.1.0", manifest={
        "parameters": {"type": "object", "properties": {}}, "streams": LINE_STREAM,
        "models": {name: {"entrypoint": f"hostile_ml.model:{name}", "framework": "sklearn"}
                   for name in ("thief", "bomb")}}, files={"hostile_ml/model.py": code})
    engine.as_role("eve", "developer").publish_app(folder)
    uma = engine.as_role("uma", "user")
    uma.create_twin("hostile-ml@0.1.0", "victim", {})
    uma.streams.append("victim", "samples", line_samples(200))
    return uma


def test_a_training_task_reaches_no_secret(engine: Engine, tmp_path: Path) -> None:
    settings = engine.runtime.settings
    outside = tmp_path / "outside"
    outside.mkdir()
    with listening() as port:
        wanted = targets(settings, outside, [port, postgres_port()]) | {"marker": str(tmp_path / "unused")}
        uma = _hostile(engine, tmp_path, wanted)
        run = uma.ml.wait("victim", uma.ml.train("victim", "thief").id, timeout=300)
        tuned = uma.ml.wait("victim", uma.ml.tune("victim", "thief", {"trials": 2}).id, timeout=300)
    assert run.status == "failed" and run.error is not None and "LOOT" in run.error, run.error
    assert "hostile_ml/model.py:" in run.error  # where in the app's code it was raised
    loot = json.loads(run.error.split("LOOT", 1)[1].rsplit(" (at ", 1)[0])
    assert_nothing_leaked(loot, settings, outside)
    assert tuned.status == "failed" and "every one of the 2 trials failed" in (tuned.error or ""), tuned.error
    assert not (outside / "written.txt").exists()  # the trials tried to write there too


def test_the_engine_never_imports_app_code_to_train_judge_or_serve(engine: Engine, tmp_path: Path) -> None:
    marker = tmp_path / "imported-outside-a-sandbox"
    wanted = targets(engine.runtime.settings, tmp_path, []) | {"marker": str(marker)}
    uma = _hostile(engine, tmp_path, wanted)
    first = uma.ml.wait("victim", uma.ml.train("victim", "bomb").id, timeout=300)
    second = uma.ml.wait("victim", uma.ml.train("victim", "bomb").id, timeout=300)  # its gate loads the first
    assert first.status == second.status == "succeeded", (first.error, second.error)
    answer = uma.ml.predict("victim", "bomb", {"x": [[1.0, 0.0]]})  # an app class, loaded in its worker
    champion = next(m.champion for m in uma.ml.models("victim") if m.name == "bomb")
    assert answer["version"] == champion and answer["outputs"][0] == pytest.approx(3.0, abs=0.1)
    assert not marker.exists()  # imported many times, never outside a sandbox


@pytest.fixture
def reach(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    client.streams.append("reach", "gauges", gauge_records(96))
    return client


def test_ddp_trains_inside_the_sandbox(reach: Client) -> None:
    run = reach.ml.wait("reach", reach.ml.train("reach", MODEL, config={"epochs": 3}, nproc=2).id, timeout=600)
    assert run.status == "succeeded", run.error
    assert run.nproc == 2 and [h["epoch"] for h in run.history] == [1.0, 2.0, 3.0]
    assert reach.ml.predict("reach", MODEL, {"parameters": {}, "records": gauge_records(6)})["version"] == "1"


def _wait_for(what: Any, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


# river-reach stops early once its held-out loss rests for 8 epochs: a test that stops a run itself must not
# race that (a resumed run may rest at once and end as succeeded before its stop arrives)
NEVER_EARLY = {"early_stopping": {"patience": 10_000}}


def test_a_running_training_stops_on_request_and_registers_nothing(engine: Engine, reach: Client) -> None:
    started = reach.ml.train("reach", MODEL, config={"epochs": 5000, **NEVER_EARLY})
    _wait_for(lambda: reach.ml.run("reach", started.id).epoch >= 1)
    asked = reach.ml.stop("reach", started.id)
    assert asked.status == "stopping"
    done = reach.ml.wait("reach", started.id, timeout=120)
    assert done.status == "canceled" and done.model_version is None and 1 <= done.epoch < 5000
    assert reach.ml.stop("reach", started.id).status == "canceled"  # asking again is harmless
    assert reach.ml.models("reach")[0].versions == []
    from mlflow.tracking import MlflowClient

    assert done.mlflow_run_id is not None
    official = MlflowClient(tracking_uri=engine.runtime.settings.mlflow_tracking_uri)
    # the engine ends the MLflow run after the commit that says canceled: wait for it to end, whichever way
    ended = _wait_for(lambda: (status := official.get_run(done.mlflow_run_id).info.status) != "RUNNING" and status,
                      timeout=60)
    assert ended == "KILLED"

    engine.runtime.ml.stop()  # nothing claims the next run while we stop it
    queued = reach.ml.train("reach", MODEL, config={"epochs": 1})
    assert reach.ml.stop("reach", queued.id).status == "canceled"
    finished = engine.http.post(f"/api/v1/twins/reach/training-runs/{queued.id}/stop", headers=reach._auth)
    assert finished.status_code == 202
    other = engine.as_role("mallory", "user")
    refused = engine.http.post(f"/api/v1/twins/reach/training-runs/{queued.id}/stop", headers=other._auth)
    assert refused.status_code in (403, 404)


@pytest.fixture
def epochs_seen(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every epoch the engine hears of from a training worker, in order."""
    from twinengine.ml import engine as ml_engine

    seen: list[int] = []
    record = ml_engine._RunProgress.epoch

    def spy(self: Any, epoch: int, epochs: int, metrics: dict[str, float]) -> bool:
        seen.append(epoch)
        return record(self, epoch, epochs, metrics)

    monkeypatch.setattr(ml_engine._RunProgress, "epoch", spy)
    return seen


def test_a_run_interrupted_by_the_engine_stopping_resumes_from_its_checkpoint(
        engine: Engine, reach: Client, epochs_seen: list[int]) -> None:
    seen = epochs_seen
    run = reach.ml.train("reach", MODEL, config={"epochs": 400, "checkpoint_every": 1, **NEVER_EARLY})
    _wait_for(lambda: len(seen) >= 3)
    engine.runtime.ml.stop()  # as on SIGTERM: the worker is killed, the run stays running
    assert reach.ml.run("reach", run.id).status == "running"
    checkpoint = engine.runtime.settings.data_dir / "ml" / "checkpoints" / run.id / "checkpoint.tar"
    assert checkpoint.is_file()  # kept by the engine, as the worker sent it
    reached = len(seen)
    seen.clear()
    engine.runtime._ml = None
    _ = engine.runtime.ml  # a new lifecycle, as on the next start: it queues the run again
    _wait_for(lambda: seen)
    reach.ml.stop("reach", run.id)
    done = reach.ml.wait("reach", run.id, timeout=120)
    assert done.status == "canceled"
    assert seen[0] > 1 and seen[0] >= reached, (seen[:3], reached)  # resumed, did not start over


def test_a_worker_that_starts_while_the_engine_stops_trains_nothing(
        engine: Engine, reach: Client, monkeypatch: pytest.MonkeyPatch, epochs_seen: list[int]) -> None:
    """``stop`` kills the training workers it finds; a run whose worker was still starting used to miss that,
    train all its epochs, and keep ``stop`` (and so the engine's shutdown) waiting for it."""
    import threading

    from twinengine.ml import engine as ml_engine

    reading, go_on = threading.Event(), threading.Event()
    read = ml_engine.MLEngine.read_records

    def slow_start(self: Any, *args: Any) -> Any:  # the run is claimed; its worker has not started yet
        reading.set()
        go_on.wait(60)
        return read(self, *args)

    seen = epochs_seen
    monkeypatch.setattr(ml_engine.MLEngine, "read_records", slow_start)
    run = reach.ml.train("reach", MODEL, config={"epochs": 5000, **NEVER_EARLY})
    assert reading.wait(120)
    stopper = threading.Thread(target=engine.runtime.ml.stop)
    stopper.start()
    _wait_for(lambda: engine.runtime.ml._stop.is_set())
    go_on.set()  # the worker starts now, after stop looked for workers to kill
    stopper.join(timeout=600)
    assert not stopper.is_alive()
    assert seen == []  # not one epoch trained after the engine was asked to stop
    assert reach.ml.run("reach", run.id).status == "running"  # queued again on the next start
