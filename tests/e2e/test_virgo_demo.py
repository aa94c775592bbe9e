"""``twin demo --app virgo-glitch``: the chapter streams seeded seconds of ten channels into a twin as ten
streams, one second of one channel lost (its window judged without it, flagged); the veto it reports,
scored against the simulator's truth, catches the glitch windows and spares the others, the cleaned strain
loses >= 80 % of the glitch frames' excess power, and the vetoed glitches' buffer retrains the glitch-shape
model twice. The demo's 240 frames hold 30 glitches at its seed: the goals (>= 90 % of glitch windows, <= 1 %
of the others) are checked on them, and on 600 frames by the app's own science test."""

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
    assert facts["frames"] == 240 and facts["glitches"] >= 25
    assert facts["efficiency"] >= 0.9 and facts["false_rate"] <= 0.01
    assert facts["power_reduction"] >= 0.8
    assert facts["incomplete"] == [(7, "mic")]
    assert facts["state"]["windows"] == 240 and facts["state"]["incomplete_windows"] == 1
    assert 1 <= facts["state"]["spectrum_flatness"] < 1.5
    assert Path(facts["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(line.startswith("veto: ") for line in said)
    retrained = facts["retrained"]  # two fills of 10 glitches, each consumed and discarded
    assert sorted(r["version"] for r in retrained) == ["1", "2"]
    assert all(r["status"] == "succeeded" and r["trigger"]["kind"] == "buffer" for r in retrained)
    assert all(r["inputs"]["end"] - r["inputs"]["start"] == 10 for r in retrained)
