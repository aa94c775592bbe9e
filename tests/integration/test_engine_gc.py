"""Only ``twin serve`` moves what its start built out of the garbage collector's way (``gc.freeze``, once its
engine answers): an engine built in a process that lives on (the tests, the demo, a notebook) freezes
nothing, or each one would keep whatever garbage was alive when it started, for the life of the process."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import gc, sys, tempfile
from pathlib import Path
from fastapi.testclient import TestClient
from twinengine.api import create_app
from twinengine.config import Settings
from twinengine.runtime import Runtime
for i in range(2):
    runtime = Runtime.from_settings(Settings(data_dir=Path(tempfile.mkdtemp()) / "data", warm_routes=False))
    runtime.start()
    with TestClient(create_app(runtime=runtime)) as http:
        assert http.get("/health").status_code == 200
    runtime.close()
print(gc.get_freeze_count())
"""


def test_an_engine_in_a_process_that_lives_on_freezes_no_garbage() -> None:
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "0"
