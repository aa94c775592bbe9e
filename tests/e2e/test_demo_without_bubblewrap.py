"""``make demo`` on a machine without bubblewrap, as on many laptops and containers: the embedded demo runs app
code unsandboxed, says so once at start-up naming ``TWIN_SANDBOX``, and every chapter still runs, the model's
first training on a compute site (a Dask cluster) included. bubblewrap is hidden here by a PATH that holds
everything the test's PATH holds but ``bwrap`` (the engine finds it with ``shutil.which``); CI also runs the
whole demo so (``.ci/run``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import need_modules

# The demo's model chapter alone (with the chapters it builds on), as ``twin demo`` runs chapters.
STORY = """
import json, sys
from pathlib import Path
from twinengine.demo import runner
from twinengine.demo.chapters import ml, twins
from twinengine.demo.context import DemoOptions

runner.APP_CHAPTERS[runner.APP_FOLDER_NAME] = [twins.publish_app, twins.create_twin, ml.retrain_on_drift]
said = []
ctx = runner.run_demo(DemoOptions(data_dir=Path(sys.argv[1]), hours=3), say=said.append)
print(json.dumps({"ml": ctx.facts["ml"], "said": said}, default=str))
"""


def path_without(folder: Path, *hidden: str) -> str:
    """A PATH of one folder linking to every program of this process's PATH (the first of each name), but
    ``hidden``: what a machine without those programs finds."""
    folder.mkdir(parents=True, exist_ok=True)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = folder / entry.name
            if entry.name not in hidden and not target.exists() and not target.is_symlink():
                target.symlink_to(entry.path)
    return str(folder)


def test_the_model_chapter_trains_on_its_site_without_bubblewrap(tmp_path: Path) -> None:
    need_modules("ml", "torch", "mlflow", "distributed", hint="the chapter trains a model: pip install -e '.[ml]'")
    path = path_without(tmp_path / "bin", "bwrap")
    assert shutil.which("bwrap", path=path) is None
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")} | {"PATH": path}
    done = subprocess.run([sys.executable, "-c", STORY, str(tmp_path / "demo")], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    ml = facts["ml"]
    assert ml["first"]["site"] == "trainer" and ml["first"]["status"] == "succeeded"  # on the Dask site
    assert ml["accepted"] and ml["champion"] == "2"  # retrained on drift, promoted by the gate
    said = "\n".join(facts["said"])
    assert "in a worker process (no sandbox here)" in said
    warnings = [line for line in done.stderr.splitlines() if "WITHOUT a sandbox" in line]
    assert len(warnings) == 1, done.stderr[-4000:]  # said once, at start-up, for the engine and its sites
    assert "bwrap is not installed" in warnings[0] and "TWIN_SANDBOX" in warnings[0]
