"""The cost of one ``predict`` call (a twin's champion served from its app's sandboxed worker), side by side in
this run with the same model called in this process:

- in process: the registered version loaded here once by its flavour, and the app's ``predict`` called on it
  (the floor: what the model itself costs);
- warm: ``predict_with`` as the ``predict`` process and ``POST .../predict`` call it, the serving worker
  holding the champion built (the alias resolved, the twin's app looked up, inputs and outputs through the
  worker's pipe);
- cold model: the serving worker warm but its model dropped (another version asked for in between), so the
  call fetches the version's files (kept in the engine's memory) and builds it again;
- cold worker: the serving workers stopped first, so the call starts a sandboxed worker, imports the app and
  the framework, and builds the model.

The model: a scikit-learn ridge regression of 8 features, trained once on a throw-away local engine; each
call predicts 16 rows. Warm and in-process calls take turns in every round, so load from elsewhere on the
machine falls on both.

Usage: python bench/predict_calls.py [--calls 200] [--cold 3] [--rows 16]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from twinengine.appdev.local import LocalEngine
from twinengine.ml.serving import predict_with
from twinengine.workers.service import SERVING

FEATURES = 8
TASK = f'''
import numpy as np
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error

from twinengine.app import TrainingConfig, TrainingTask

F = {FEATURES}


def table(records):
    rows = sorted(records, key=lambda r: r["time"])
    return (np.array([[r[f"x{{i}}"] for i in range(F)] for r in rows], dtype=float).reshape(-1, F),
            np.array([r["y"] for r in rows], dtype=float))


def datasets(data):
    x, y = table(data.records)
    cut = int(len(x) * 0.8)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def ridge():
    return TrainingTask(
        framework="sklearn",
        build_model=lambda params: Ridge(alpha=float(params.get("alpha", 1.0))),
        datasets=datasets,
        loss=lambda model, xy: float(mean_squared_error(xy[1], model.predict(xy[0]))),
        predict=lambda model, inputs: model.predict(np.asarray(inputs["x"], float)).tolist(),
        config=TrainingConfig(params={{"alpha": 0.1}}),
    )
'''


def write_app(root: Path, samples: int) -> Path:
    """An app folder with one ridge model and ``samples`` records of its stream."""
    folder = root / "bench-predict"
    (folder / "bench_predict").mkdir(parents=True)
    manifest = {
        "manifest_version": 1, "name": "bench-predict", "version": "0.1.0", "title": "predict bench",
        "description": "A ridge regression served by predict.", "domain": "testing", "keywords": ["bench"],
        "authors": [{"name": "bench"}], "license": "MIT", "package": "bench_predict",
        "parameters": {"type": "object", "properties": {}},
        "streams": {"samples": {"time_field": "time", "fields": {
            "time": {"type": "timestamp"}, "y": {"type": "float"},
            **{f"x{i}": {"type": "float"} for i in range(FEATURES)}}}},
        "models": {"ridge": {"entrypoint": "bench_predict.model:ridge", "framework": "sklearn"}},
    }
    (folder / "twinapp.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (folder / "bench_predict" / "__init__.py").write_text('"""predict bench."""\n')
    (folder / "bench_predict" / "model.py").write_text(textwrap.dedent(TASK))
    rng, t0 = random.Random(1), datetime(2026, 1, 1, tzinfo=UTC)
    weights = [rng.uniform(-2, 2) for _ in range(FEATURES)]
    lines = []
    for i in range(samples):
        x = [rng.uniform(-1, 1) for _ in range(FEATURES)]
        y = sum(w * v for w, v in zip(weights, x, strict=True)) + rng.gauss(0, 0.05)
        lines.append(json.dumps({"time": (t0 + timedelta(minutes=i)).isoformat(), "y": y,
                                 **{f"x{j}": v for j, v in enumerate(x)}}))
    (folder / "data").mkdir()
    (folder / "data" / "samples.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def train(local: LocalEngine, model: str, config: dict[str, Any] | None = None) -> str:
    """Train ``model`` of the local twin and wait; its registered version."""
    from twinengine.auth.principal import SYSTEM
    from twinengine.ml import service as ml_service
    from twinengine.ml.models import TrainingRun
    from twinengine.ml.schemas import FINAL, TrainingRequest
    from twinengine.twins import service as twins

    rt = local.rt
    with rt.db.session() as session:
        twin = twins.get_twin(session, principal=SYSTEM, ref=local.twin_name)
        run_id = ml_service.enqueue(session, twin, model, body=TrainingRequest(config=config or {}),
                                    created_by=SYSTEM.name).id
    rt.ml.wake()
    while True:
        with rt.db.session(readonly=True) as session:
            found = session.get(TrainingRun, run_id)
            assert found is not None
            if found.status in FINAL:
                if found.status != "succeeded" or found.model_version is None:
                    raise RuntimeError(f"training {found.status}: {found.error}")
                return found.model_version
        time.sleep(0.2)


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def row(name: str, seconds: list[float], floor: float, warm: float) -> str:
    median = statistics.median(seconds)
    p90 = sorted(seconds)[max(0, round(0.9 * len(seconds)) - 1)]
    return (f"{name:<14} {len(seconds):>6} {median * 1e3:>11.3f} {p90 * 1e3:>11.3f} {median / floor:>12.1f} "
            f"{median / warm:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="warm and in-process calls, taking turns")
    parser.add_argument("--cold", type=int, default=3, help="calls with a cold model, and with a cold worker")
    parser.add_argument("--rows", type=int, default=16, help="rows each call predicts")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp, \
            LocalEngine(write_app(Path(tmp), 400), twin_name="bench", run_functions=False) as local:
        _sha, manifest = local.publish()
        local.create_twin(manifest)
        local.ingest_samples(manifest)
        first = train(local, "ridge")
        other = train(local, "ridge", {"params": {"alpha": 10.0}})  # a second version, to switch to
        ml = local.rt.ml
        twin = _twin(local)
        champion = ml.champion_of(twin, "ridge")
        spare = other if champion == first else first
        rng = random.Random(2)
        inputs = {"x": [[rng.uniform(-1, 1) for _ in range(FEATURES)] for _ in range(args.rows)]}

        recipe = ml.model_recipe(twin, "ridge", champion)  # the in-process floor: the same files and predict
        in_process = _load_here(local, manifest.models["ridge"].entrypoint, recipe)

        served = predict_with(ml, twin, "ridge", inputs)[1]  # the first call: serving worker started, model built
        expected = in_process.predict(inputs)
        assert all(abs(a - b) < 1e-9 for a, b in zip(served, expected, strict=True)), "served != in process"

        warm, floor = [], []
        for _ in range(args.calls):
            warm.append(timed(lambda: predict_with(ml, twin, "ridge", inputs)))
            floor.append(timed(lambda: in_process.predict(inputs)))
        cold_model = []
        for _ in range(args.cold):
            predict_with(ml, twin, "ridge", inputs, version=spare)  # the slot now holds the other version
            cold_model.append(timed(lambda: predict_with(ml, twin, "ridge", inputs)))
        app = ml.app_of(twin).workers
        cold_worker = []
        for _ in range(args.cold):
            app.workers.pool.discard((app.key, SERVING))
            cold_worker.append(timed(lambda: predict_with(ml, twin, "ridge", inputs)))

    f, w = statistics.median(floor), statistics.median(warm)
    print(f"predict of a {FEATURES}-feature ridge regression, {args.rows} rows a call")
    print(f"{'path':<14} {'calls':>6} {'median ms':>11} {'p90 ms':>11} {'/in process':>12} {'/warm':>9}")
    print(row("in process", floor, f, w))
    print(row("warm", warm, f, w))
    print(row("cold model", cold_model, f, w))
    print(row("cold worker", cold_worker, f, w))


def _twin(local: LocalEngine) -> Any:
    from sqlalchemy import select

    from twinengine.twins.models import Twin

    with local.rt.db.session(readonly=True) as session:
        found = session.scalars(select(Twin).where(Twin.name == local.twin_name)).one()
        session.expunge(found)
        return found


def _load_here(local: LocalEngine, entrypoint: str, recipe: dict[str, Any]) -> Any:
    """The version as a serving worker builds it, built in this process from the published app's files."""
    import importlib
    import sys

    from twinengine.ml.functions import served_model

    sys.path.insert(0, str(local.folder))
    module, _, attr = entrypoint.partition(":")
    task = getattr(importlib.import_module(module), attr)()
    return served_model(task, recipe["version"], recipe["params"], recipe["folder"], recipe.get("interval"))


if __name__ == "__main__":
    main()
