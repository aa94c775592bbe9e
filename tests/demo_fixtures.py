"""``twin --json demo`` runs shared by every test that reads what the demo leaves behind.

The demo takes a minute or more; a dozen test files check its facts or serve its data to the portal's browser
tests. One run of it (24 hours of 15-minute steps, long enough for the gauges to misbehave, as the portal was
built around) serves them all, once per test run: the first test process to ask builds it under a file lock,
the others (xdist workers) wait and reuse it. (A shorter run for the facts beside it cost a whole demo more.)
Tests read it only through :func:`demo_copy`, a copy of its data dir of their own (7 MB), because opening an
engine on a data dir writes to it. The stores keep absolute paths (a lake endpoint's root, a stream segment's
file, MLflow's artifact locations): the copy's are rewritten to point into the copy, so that nothing a test
does reaches the shared run or another test's copy.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

__all__ = ["HOURS", "STEPS", "DemoRun", "demo_copy", "demo_run"]

HOURS = 24
STEPS = HOURS * 4  # the demo's default step: 15 minutes
ARGS = ["--json", "demo", "--hours", str(HOURS)]


@dataclass(frozen=True)
class DemoRun:
    """The demo's data dir (never written: copy it), the JSON summary it printed, and what it said on stderr."""

    data_dir: Path
    facts: dict[str, Any]
    seconds: float
    stderr: str


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # unset in a run without xdist
    return base.parent if worker else base  # the xdist workers' basetemps share a parent


def _build(folder: Path, args: list[str]) -> None:
    import time

    env = {k: v for k, v in os.environ.items() if k != "TWIN_MQTT_URL"}  # the gauges arrive over HTTP
    env.update(_cwl_runner())
    started = time.perf_counter()
    demo = subprocess.run([sys.executable, "-m", "twinengine.cli.main", *args, "--data-dir", str(folder / "data")],
                          capture_output=True, text=True, timeout=900,
                          env={**env, "COLUMNS": "200", "TWIN_SYNC_ISOLATION": "process"})  # as by default
    if demo.returncode != 0:
        (folder / "failed.txt").write_text(f"twin demo exited {demo.returncode}:\n{demo.stdout[-3000:]}\n"
                                           f"{demo.stderr[-3000:]}")
        return
    (folder / "stderr.txt").write_text(demo.stderr)
    (folder / "seconds.txt").write_text(f"{time.perf_counter() - started:.1f}")
    (folder / "facts.json").write_text(demo.stdout)


def _shared(tmp_path_factory: pytest.TempPathFactory, name: str, args: list[str]) -> DemoRun:
    from helpers import need_modules

    need_modules("ml", "torch", "mlflow", hint="the demo trains a model: pip install -e '.[ml]'")
    root = _shared_root(tmp_path_factory)
    folder = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (folder / "facts.json").exists() and not (folder / "failed.txt").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            _build(folder, args)
    if (folder / "failed.txt").exists():
        pytest.fail((folder / "failed.txt").read_text(), pytrace=False)
    return DemoRun(data_dir=folder / "data", facts=json.loads((folder / "facts.json").read_text()),
                   seconds=float((folder / "seconds.txt").read_text()), stderr=(folder / "stderr.txt").read_text())


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``twin --json demo --hours 24`` (96 steps of 15 minutes; the gauges misbehave on the way), run once for
    the whole test run: the tests of the demo's facts and the portal's browser tests."""
    return _shared(tmp_path_factory, "shared-demo", ARGS)


def _cwl_runner() -> dict[str, str]:
    """``TWIN_CWL_RUNNER_SITE`` for the demo's CWL chapter where the CWL runner's virtualenv is (``.ci/run``
    makes ``.venv-cwl``); without it the chapter says it skipped (``tests/e2e/test_cwl_demo.py`` tells)."""
    python = Path(os.environ.get("TWIN_CWL_PYTHON") or Path(__file__).resolve().parents[1] / ".venv-cwl" / "bin"
                  / "python")
    if "TWIN_CWL_RUNNER_SITE" in os.environ or not python.exists():
        return {}
    found = subprocess.run([str(python), "-c", "import cwltool, os; print(os.path.dirname(os.path.dirname("
                            "cwltool.__file__)))"], capture_output=True, text=True)
    return {"TWIN_CWL_RUNNER_SITE": found.stdout.strip()} if found.returncode == 0 else {}


def demo_copy(run: DemoRun, target: Path) -> Path:
    """A data dir of the test's own, as the demo left it, its stores pointing into it; returns it."""
    shutil.copytree(run.data_dir, target, symlinks=True)
    for store in ("twin.db", "mlflow.db"):
        _relocate(target / store, str(run.data_dir), str(target))
    assert not _mentions(target / "twin.db", str(run.data_dir)), "a path into the shared demo is left"
    return target


def _text_columns(db: sqlite3.Connection) -> list[tuple[str, str]]:
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return [(table, column[1]) for table in tables for column in db.execute(f'PRAGMA table_info("{table}")')
            if not column[2] or any(t in column[2].upper() for t in ("CHAR", "TEXT", "CLOB", "JSON"))]


def _relocate(path: Path, old: str, new: str) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        for table, column in _text_columns(db):
            db.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) WHERE instr("{column}", ?) > 0',
                       (old, new, old))


def _mentions(path: Path, old: str) -> bool:
    with closing(sqlite3.connect(path)) as db:
        return any(db.execute(f'SELECT 1 FROM "{t}" WHERE instr("{c}", ?) > 0 LIMIT 1', (old,)).fetchone()
                   for t, c in _text_columns(db))
