"""MLflow is loaded when a model needs it or, on a served engine, in the background after start: importing the
engine's AI lifecycle imports no MLflow (about 3 s that the first listing of a twin's models paid), and the
warm-up leaves MLflow imported and the registry's store open for the engine's own client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import need_modules
from twinengine.ml.warmup import RegistryWarmup


@pytest.fixture(autouse=True)
def _mlflow() -> None:
    need_modules("ml", "mlflow", hint="pip install -e '.[ml]'")


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_ai_lifecycle_imports_no_mlflow_until_it_is_used() -> None:
    code = ("import sys, twinengine.ml.engine, twinengine.ml.registry, twinengine.api.app; "
            "print('mlflow' in sys.modules)")
    assert _python(code) == "False"


def test_a_warmup_is_wanted_only_where_a_registry_exists(tmp_path: Path) -> None:
    assert RegistryWarmup.wanted(tmp_path, None) is None  # no model was ever registered here
    assert RegistryWarmup.wanted(tmp_path, "http://mlflow.example:5000") is not None  # a tracking server
    (tmp_path / "mlflow.db").touch()
    wanted = RegistryWarmup.wanted(tmp_path, None)
    assert wanted is not None and wanted.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_the_warmup_leaves_mlflow_loaded_and_the_store_open(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = (f"import sys\nfrom twinengine.ml.warmup import RegistryWarmup\n"
            f"w = RegistryWarmup({uri!r})\nassert w.warming\nw.start()\nassert w.wait(240)\n"
            f"from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore\n"
            f"print('mlflow' in sys.modules, {uri!r} in SqlAlchemyStore._engine_map, w.warming)")
    assert _python(code) == "True True False"
