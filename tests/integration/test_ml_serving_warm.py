"""``predict`` serves from a warm model, on real parts (the store, embedded MLflow, sandboxed app workers): the
serving worker builds a champion version once and reuses it across calls, a burst of function batches on the
app's other workers does not take it away, and a new champion is built fresh (the old one is never served)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import Engine, need_modules
from ml_fixtures import line_app, line_samples, ridge_task
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.ml.registry import CHAMPION, registered_name

MODEL = "ridge"
INPUTS = {"x": [[1.0, 0.0], [0.0, 1.0]]}
TASK = ridge_task()


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, run_functions=False, warm_routes=False)


@pytest.fixture
def uma(engine: Engine, tmp_path: Path) -> Client:
    need_modules("ml", "sklearn", "mlflow", hint="pip install -e '.[ml]'")
    engine.as_role("ada", "developer").publish_app(line_app(tmp_path, name="warm-app", model=MODEL,
                                                            framework="sklearn", task_source=TASK))
    client = engine.as_role("uma", "user")
    client.create_twin("warm-app@0.1.0", "line", {})
    client.streams.append("line", "samples", line_samples(200))
    return client


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # what the workers keep does not depend on the store
def test_predict_builds_each_champion_once_and_a_new_champion_fresh(engine: Engine, uma: Client) -> None:
    ml = engine.runtime.ml
    builds: list[str] = []  # each time a worker asks for a version's files: it is about to build it
    recipe = ml.model_recipe

    def counted(twin: Any, model: str, version: str) -> dict[str, Any]:
        builds.append(version)
        return recipe(twin, model, version)

    ml.model_recipe = counted  # type: ignore[method-assign]  # a spy: the real recipe still answers
    first = uma.ml.wait("line", uma.ml.train("line", MODEL).id, timeout=300)
    assert first.status == "succeeded" and first.model_version == "1", first.error
    builds.clear()  # (what training fetched is not serving's: count from here)

    answers = [uma.ml.predict("line", MODEL, INPUTS) for _ in range(3)]
    assert {a["version"] for a in answers} == {"1"} and builds == ["1"]  # built once, then warm
    assert answers[0]["outputs"] == [pytest.approx(3.0, abs=0.1), pytest.approx(-2.0, abs=0.1)]

    app = _app_workers(engine, "line")
    # more function batches at once than workers stay warm, those that took an idle worker ending first: the
    # app's warm workers then stop, and the serving worker, on a shelf of its own, is not among them
    burst = [app.lease(prefer=f"function-{number}") for number in range(engine.runtime.settings.warm_workers + 2)]
    for lease in burst:
        lease.__enter__()
    for lease in burst:
        lease.__exit__(None, None, None)
    assert uma.ml.predict("line", MODEL, INPUTS)["version"] == "1" and builds == ["1"]

    worse = uma.ml.wait("line", uma.ml.train("line", MODEL, config={"params": {"alpha": 1e5}}).id, timeout=300)
    assert worse.status == "succeeded" and worse.model_version == "2", worse.error
    ml.registry.set_alias(registered_name("line", MODEL), CHAMPION, "2")  # promoted, whatever the gate said
    builds.clear()  # (the gate judged v1 on v2's data in a training worker)
    promoted = [uma.ml.predict("line", MODEL, INPUTS) for _ in range(2)]
    assert {a["version"] for a in promoted} == {"2"} and builds == ["2"]
    assert abs(promoted[0]["outputs"][0]) < 1.0  # the heavily regularised fit, not v1's 3.0


def _app_workers(engine: Engine, twin_name: str) -> Any:
    from sqlalchemy import select

    from twinengine.twins.models import Twin

    with engine.runtime.db.session(readonly=True) as session:
        row = session.scalars(select(Twin).where(Twin.name == twin_name)).one()
        session.expunge(row)
    return engine.runtime.ml.app_of(row).workers
