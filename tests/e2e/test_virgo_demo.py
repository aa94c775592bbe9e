"""``twin demo --app virgo-glitch``: the chapter streams seeded seconds of ten channels into a twin as ten
streams, one second of one channel lost (its window judged without it, flagged); the veto it reports,
scored against the simulator's truth, catches the glitch windows and spares the others, the cleaned strain
loses >= 80 % of the glitch frames' excess power, and the vetoed glitches' buffer retrains the glitch-shape
model. (The demo's 120 frames hold about 17 glitches, too few to test the 90 % efficiency goal: the app's
own science test does, on 600 frames.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from twinengine.demo import runner
from twinengine.demo.context import DemoOptions

pytestmark = pytest.mark.slow


def test_the_virgo_chapter_vetoes_glitches_and_cleans_the_strain(tmp_path: Path) -> None:
    said: list[str] = []
    ctx = runner.run_demo(DemoOptions(data_dir=tmp_path / "data", app="virgo-glitch"), say=said.append)
    facts = ctx.facts["virgo"]
    assert facts["frames"] == 120 and facts["glitches"] >= 10
    assert facts["efficiency"] >= 0.8 and facts["false_rate"] <= 0.01
    assert facts["power_reduction"] >= 0.8
    assert facts["incomplete"] == [(7, "mic")]
    assert facts["state"]["windows"] == 120 and facts["state"]["incomplete_windows"] == 1
    assert 1 <= facts["state"]["spectrum_flatness"] < 1.5
    assert Path(facts["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(line.startswith("veto: ") for line in said)
    (retrained,) = facts["retrained"]  # one fill of 10 glitches
    assert retrained["status"] == "succeeded" and retrained["version"] == "1"
    assert retrained["trigger"]["kind"] == "buffer" and retrained["inputs"]["end"] - retrained["inputs"]["start"] == 10
