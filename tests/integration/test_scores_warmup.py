"""The verification scores library (and the scipy parts it imports) and the unit registry are loaded in the
background once a served engine answers, not by the first forecast-skill answer (the portal's flood view asks
for one at once: about 2.5 s of a cold load went there), and importing the API loads neither."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from twinengine.api import create_app
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_importing_the_api_loads_no_scores_library() -> None:
    code = ("import sys, twinengine.api.app, twinengine.ui.summaries, twinengine.quality.verification; "
            "print('scores' in sys.modules, 'scipy.stats' in sys.modules)")
    assert _python(code) == "False False"


def test_the_warmup_leaves_the_scores_library_and_the_unit_registry_loaded() -> None:
    code = ("import sys\nfrom twinengine.quality.warmup import ScoresWarmup\nfrom twinengine.units import _registry\n"
            "w = ScoresWarmup()\nassert w.warming and _registry.cache_info().currsize == 0\n"
            "assert w.start().wait(240)\n"
            "print('scores.continuous' in sys.modules, 'scipy.stats' in sys.modules, "
            "_registry.cache_info().currsize, w.warming, w.seconds is not None)")
    assert _python(code) == "True True 1 False True"


def test_a_served_engine_warms_it_and_health_names_it_until_done(tmp_path: Path) -> None:
    runtime = Runtime.from_settings(Settings(data_dir=tmp_path / "data"))
    assert runtime.start() is not None
    app = create_app(runtime=runtime)
    try:
        with InProcessServer(app):
            warmups = {w.name: w for w in app.state.warmups}
            assert "verification" in warmups
            assert warmups["verification"].wait(240) and "scores" in sys.modules
    finally:
        runtime.close()
