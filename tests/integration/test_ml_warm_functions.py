"""Warm champions for functions on arrival, on real parts (the store, embedded MLflow, the function worker): a
function whose model the lifecycle trained gets the twin's champion, its files fetched from the registry once
per version and built in the function's worker, and a promotion takes over between batches, never inside one."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import RIVER_REACH, Engine
from ml_fixtures import T0, gauge_records, need_torch
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.daemons.streams_functions import FunctionWorker
from twinengine.ml.registry import CHAMPION, registered_name
from twinengine.ml.serving import predict_with
from twinengine.runtime import Runtime

MODEL = "runoff_correction"
INPUTS = {"records": gauge_records(4)}
WARM = '''
INPUTS = {inputs}


def warm(ctx, records):
    version = getattr(ctx.model, "version", None)  # None: the app-built task (no champion yet)
    out = ctx.model.predict(INPUTS)[0] if version is not None else None
    ctx.emit("used", version=version, out=out, time=str(records[0]["time"]))
'''


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, run_functions=False)


@pytest.fixture(autouse=True)
def _torch() -> None:
    need_torch()  # before the engine (the conftest fixture, with the settings above) starts


def warm_app(root: Path) -> Path:
    """river-reach with one more function that uses the model the lifecycle trains."""
    app = root / "river-reach"
    shutil.copytree(RIVER_REACH, app, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = yaml.safe_load((app / "twinapp.yaml").read_text())
    manifest["functions"]["warm"] = {"entrypoint": "river_reach.warm:warm", "stream": "gauges", "model": MODEL}
    (app / "twinapp.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (app / "river_reach" / "warm.py").write_text(WARM.format(inputs=json.dumps(INPUTS)))
    return app


def batch(worker: FunctionWorker, uma: Client, start: float, hours: float) -> list[Any]:
    """Append the readings of ``hours`` from ``start`` hours after the fixture's, run one batch per function,
    and return the warm function's events of that batch."""
    before = len([e for e in uma.streams.events("reach", last=10_000) if e.kind == "used"])
    records = gauge_records(hours, start=T0 + timedelta(hours=96 + start))
    uma.streams.append("reach", "gauges", records)
    assert worker.run_once() >= 1
    worker.drain()
    used = [e for e in uma.streams.events("reach", last=10_000) if e.kind == "used"][before:]
    assert len(used) == len(records)
    return used


def test_functions_get_the_champion_loaded_once_and_switch_between_batches(engine: Engine, tmp_path: Path) -> None:
    runtime = engine.runtime
    engine.as_role("ada", "developer").publish_app(warm_app(tmp_path))
    uma = engine.as_role("uma", "user")
    twin = uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    uma.streams.append("reach", "gauges", gauge_records(96))
    worker = FunctionWorker(runtime)
    try:
        worker.run_once()
        worker.drain()
        assert {e.data["version"] for e in batch(worker, uma, 0, 1)} == {None}  # no champion: the app-built task

        registry = runtime.ml.registry
        loads: list[str] = []
        download = registry.download_model

        def counted(model: str, version: str, dest: Path) -> Path:
            loads.append(version)
            return download(model, version, dest)

        registry.download_model = counted  # type: ignore[method-assign]  # a spy: the real download still runs
        for config in ({"epochs": 2}, {"epochs": 1}):  # (v2's gate judges v1 on v2's data: v1's files are fetched)
            done = uma.ml.wait("reach", uma.ml.train("reach", MODEL, config=config).id, timeout=300)
            assert done.status == "succeeded", done.error
        name = registered_name("reach", MODEL)
        registry.set_alias(name, CHAMPION, "1")  # whatever the gate said of v2, v1 is the champion now
        resolve = worker.model_versions
        promoted: list[str] = []

        def promote_once_in_flight(twin_id: str, app_sha: str, model: str) -> str:
            version = resolve(twin_id, app_sha, model)
            if model == MODEL and not promoted:  # the batch has its model version: promote v2 under it
                registry.set_alias(name, CHAMPION, "2")
                promoted.append(version)
            return version

        worker.model_versions = promote_once_in_flight
        in_flight = batch(worker, uma, 1, 80)  # 320 calls: more than one slice of the batch
        assert promoted and {e.data["version"] for e in in_flight} == {"1"}
        for start in (81, 82):
            after = batch(worker, uma, start, 1)
            assert {e.data["version"] for e in after} == {"2"}
        assert sorted(loads) == ["1", "2"]  # once per version, not per batch or call
        expected = {v: predict_with(runtime.ml, _twin(runtime, twin.id), MODEL, INPUTS, version=v)[1][0]
                    for v in ("1", "2")}  # from the warm model files, no further download
        assert {e.data["out"] for e in in_flight} == {expected["1"]}
        assert {e.data["out"] for e in after} == {expected["2"]} and len(loads) == 2
    finally:
        worker.pool.shutdown(wait=True)


def _twin(runtime: Runtime, twin_id: str) -> Any:
    from twinengine.twins.models import Twin

    with runtime.db.session(readonly=True) as session:
        row = session.get(Twin, twin_id)
        session.expunge(row)
        return row
