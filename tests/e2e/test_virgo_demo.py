"""``twin demo --app virgo-glitch``: the chapter streams seeded frames into a twin, and the veto it reports
meets the issue's science goals against the simulator's truth (>= 90 % of glitch windows, <= 1 % of the
others, >= 80 % of the glitch frames' excess power gone from the cleaned strain)."""

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
    assert facts["efficiency"] >= 0.9 and facts["false_rate"] <= 0.01
    assert facts["power_reduction"] >= 0.8
    assert facts["state"]["windows"] == 120 and 1 <= facts["state"]["spectrum_flatness"] < 1.5
    assert Path(facts["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(line.startswith("veto: ") for line in said)
