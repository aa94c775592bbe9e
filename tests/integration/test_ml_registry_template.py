"""A new embedded model registry is a copy of an empty one MLflow made once per MLflow version: it must open
in MLflow's own client as a registry it made itself would, point its Default experiment into this engine's
artifact folder, never replace a registry that exists, and never use a template another user could write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="the model registry needs the ml extra (MLflow)")

from mlflow.tracking import MlflowClient

from twinengine.ml.registry import ModelRegistry, empty_registry


def _default_location(database: Path) -> str:
    with sqlite3.connect(database) as db:
        return str(db.execute("SELECT artifact_location FROM experiments WHERE experiment_id = 0").fetchone()[0])


def test_a_new_registry_is_the_template_and_works_in_mlflows_own_client(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first, second = tmp_path / "one", tmp_path / "two"
    registry = ModelRegistry.embedded(first)
    experiment = registry.experiment("twin-a")
    run_id = registry.start_run("twin-a", name="fit", params={"lr": 0.1}, tags={})
    registry.end_run(run_id, ok=True)

    templates = list((tmp_path / "cache" / "twinengine").glob("mlflow-*-empty.db"))
    assert len(templates) == 1  # made once, by MLflow
    assert _default_location(first / "mlflow.db") == str(first.resolve() / "mlartifacts" / "0")

    empty_registry(second / "mlflow.db", second / "mlartifacts")
    assert _default_location(second / "mlflow.db") == str(second.resolve() / "mlartifacts" / "0")
    client = MlflowClient(tracking_uri=f"sqlite:///{second / 'mlflow.db'}")
    assert [e.name for e in client.search_experiments()] == ["Default"]  # a copy of nothing of the first's
    made = client.create_experiment("twin-b")
    client.create_registered_model("twin-b.flow")
    assert client.get_experiment(made).name == "twin-b"
    assert MlflowClient(tracking_uri=f"sqlite:///{first / 'mlflow.db'}").get_experiment(experiment).name == "twin-a"


def test_a_registry_that_exists_is_left_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"somebody's registry")
    empty_registry(database, tmp_path / "mlartifacts")
    assert database.read_bytes() == b"somebody's registry"
    assert not list(tmp_path.glob(".mlflow.db.*"))  # nothing staged is left behind


def test_a_cache_others_can_write_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    (cache / "twinengine").mkdir(parents=True)
    (cache / "twinengine").chmod(0o777)
    planted = cache / "twinengine" / "mlflow-planted-empty.db"
    planted.write_bytes(b"planted")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    database = tmp_path / "engine" / "mlflow.db"
    empty_registry(database, tmp_path / "engine" / "mlartifacts")
    assert not database.exists()  # MLflow makes it itself when the client opens
    assert sorted(p.name for p in (cache / "twinengine").iterdir()) == ["mlflow-planted-empty.db"]
