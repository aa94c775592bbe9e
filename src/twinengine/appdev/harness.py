"""``twin app test``: check an app folder without a server, item by item.

The manifest is validated, the app's own tests run (pytest, in a subprocess), and then a throw-away local
engine (``LocalEngine``) publishes the app, creates a twin, appends the sample records, applies each function
on arrival to them, calls each app process that has sample arguments, runs a few assimilation cycles and a
small calibration where the manifest has those sections, trains each model briefly and runs each workflow.
Every item reports ok or failed, its seconds, and for a failure the error and the place in the app's files
(``package/module.py:12``) or the manifest field it concerns.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twinengine.appdev._items import Failed, Item, Run
from twinengine.appdev.local import LocalEngine
from twinengine.catalog.manifest import Manifest
from twinengine.catalog.validate import check_app_dir
from twinengine.errors import ValidationFailed

__all__ = ["Item", "check_app"]

TRAINING_EPOCHS = 2  # a short training run: does the task build, load its data, step and validate?


def check_app(folder: Path, *, run_tests: bool = True, train: bool = True,
              report: Callable[[Item], None] | None = None, **settings: Any) -> list[Item]:
    """Check the app in ``folder``; ``report`` is called as each item ends. Later steps are skipped once the
    manifest or publishing fails (nothing else could run)."""
    run = Run(report)
    folder = folder.resolve()
    manifest = _manifest(run, folder)
    if manifest is None:
        return run.items
    settings.setdefault("function_retries", 0)
    with LocalEngine(folder, **settings) as local:
        if run_tests:
            _pytest(run, folder, manifest, local)
        published: dict[str, Any] = {}
        with run.item("publish"):
            published["sha"], published["manifest"] = local.publish()
        if "manifest" not in published:
            return run.items
        manifest = published["manifest"]
        with run.item("twin"):
            published["twin"] = local.create_twin(manifest)
        if "twin" not in published:
            return run.items
        counts: dict[str, int] = {}
        with run.item("samples"):
            counts = local.ingest_samples(manifest)
        from twinengine.appdev._checks import run_functions, run_processes, run_training, run_workflows
        from twinengine.appdev._sections import run_assimilation, run_calibration

        run_functions(run, local, published["sha"], manifest, published["twin"], counts)
        run_processes(run, local, published["sha"], manifest)
        run_assimilation(run, local, manifest, counts)  # from the state the functions reported
        run_calibration(run, local, manifest, counts)
        no_champion = (run_training(run, local, manifest, epochs=TRAINING_EPOCHS) if train else
                       {name: "training was skipped (--no-training)" for name in manifest.models})
        run_workflows(run, local, manifest, no_champion)
    return run.items


def _manifest(run: Run, folder: Path) -> Manifest | None:
    found: dict[str, Manifest] = {}
    with run.item("manifest"):
        manifest, problems = check_app_dir(folder)
        if problems:
            raise Failed("; ".join(str(p) for p in problems),
                          ", ".join(_problem_place(p.loc, p.msg) for p in problems))
        assert manifest is not None
        found["m"] = manifest
    return found.get("m")


_LINE = re.compile(r"^line (\d+): ")


def _problem_place(loc: str, msg: str) -> str:
    """A Python file's problem as ``file.py:line``; a manifest problem as its field."""
    line = _LINE.match(msg)
    return f"{loc}:{line.group(1)}" if loc.endswith(".py") and line else (loc or "twinapp.yaml")


_PYTEST_PLACE = re.compile(r"^(\S+\.py):(\d+): ", re.MULTILINE)


def _pytest(run: Run, folder: Path, manifest: Manifest, local: LocalEngine) -> None:
    """The app's own tests, with the app's ``requires`` environment before the engine's packages on the import
    path, as the app's workers import them (an app pinning numpy 1.26 tests against 1.26, not the engine's)."""
    tests = folder / "tests"
    if not tests.is_dir():
        run.skip("tests", "no tests/ folder")
        return
    with run.item("tests"):
        paths = [str(folder)]
        if manifest.requires:
            from twinengine.workers.envs import EnvironmentFailed, Environments

            try:
                paths.append(str(Environments.from_settings(local.rt.settings).for_requires(manifest.requires)))
            except (EnvironmentFailed, ValidationFailed) as exc:
                raise Failed(f"the app's requires could not be installed for its tests: {exc}", "requires") from None
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])]))
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--tb=line", "-p", "no:cacheprovider",
                               "--rootdir", str(folder), str(tests)],
                              cwd=folder, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            output = done.stdout + done.stderr
            place = _PYTEST_PLACE.search(output)
            summary = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR", "E "))]
            last = output.strip().splitlines()[-1] if output.strip() else f"exit {done.returncode}"
            where = None
            if place:
                path = Path(place.group(1))
                where = f"{path.relative_to(folder) if path.is_absolute() and path.is_relative_to(folder) else path}:"\
                        f"{place.group(2)}"
            raise Failed("; ".join(summary[:5]) or last, where)
