"""The demo's verification chapter: hindcasts of the official twin's forecast workflow, each from the twin's state
at its issue time (and each also as an ensemble), are matched with its gauge's levels, and the numbers it prints
are the ones the API serves; they write no state. The live stream's quality facts are checked here too (the
chapters share one short demo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinengine.demo import runner
from twinengine.demo.chapters import streams, twins, verification
from twinengine.demo.context import DemoContext, DemoOptions


@pytest.mark.slow
def look(ctx: DemoContext) -> None:
    """While the demo's engine is up: the starts of the official twin's forecast runs, and its head revision."""
    uma, twin = ctx.client("uma"), ctx.facts["twin_name"]
    runs = [r for r in uma.workflows.runs(twin=twin, limit=200).items
            if r.workflow == "forecast" and r.kind in ("run", "ensemble")]
    ctx.facts["looked"] = {"starts": [uma.workflows.get(r.id).start for r in runs],
                           "head": uma.get_twin(twin).head_revision}


def test_the_chapter_scores_hindcasts_of_the_official_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner.APP_CHAPTERS, "river-reach", [
        twins.publish_app, twins.create_twin, twins.gauges_report, streams.live_gauges,
        verification.verify_forecasts, look])
    said: list[str] = []
    ctx = runner.run_demo(DemoOptions(hours=36, data_dir=tmp_path / "d"), say=said.append)
    facts = ctx.facts["verification"]
    assert facts["twin"] == ctx.facts["twin_name"]  # the twin people are sent to carries its own skill
    # issued every 3 h from 3 to 24 h, 12 h ahead (a record of 36 h), each from the state the twin had then
    assert (facts["hindcasts"], facts["horizon_hours"]) == (8, 12) and facts["pairs"] >= 80
    assert all(v is not None and v > 0.8 for v in facts["nse"].values())
    starts = ctx.facts["looked"]["starts"]
    assert len(starts) == 16 and all(s is not None and s.asked == "at" for s in starts)
    # hindcasts write no state: the twin's head is its gauges' reports and its threshold
    assert ctx.facts["looked"]["head"] == ctx.facts["steps"] + 1
    # each hindcast again as an ensemble, each recorded as one forecast with every member
    assert facts["ensembles"] == 8 and facts["crps"] is not None and set(facts["crps"]) == set(range(1, 13))
    assert all(0 < v < 1 for v in facts["crps"].values()) and facts["spread_skill"] > 0
    ranks = facts["rank_histogram"]
    assert len(ranks) == facts["members"] + 1 and sum(ranks) == pytest.approx(1.0)
    assert any("ensembles: CRPS" in line and "rank histogram" in line for line in said)
    assert facts["history"] and any("score history kept per 12h" in line for line in said)
    assert facts["coverage"] is not None and 0 <= facts["coverage"] <= 1 and facts["interval_half_width_m"] > 0
    assert Path(facts["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(f"NSE {facts['nse'][1]:.3f}" in line for line in said)
    # pedigree: every suspect reading gauge_to_state took (it leaves only bad ones out) gave a level saying so
    quality = ctx.facts["quality"]
    # and the state's own gap check on level flagged the level after the left-out bad reading (a good reading:
    # one more doubtful level) and the one after the logger's gap (a suspect reading already)
    assert quality["suspect"] == 4 and quality["bad"] == 1
    assert quality["state_gaps"] == 2 and quality["doubtful_levels"] == quality["suspect"] + 1
    assert any("came from suspect readings and say so" in line for line in said)
    assert any("failed the state's own gap check" in line for line in said)
    # read now, long after the simulated gauges' last reading, level is stale
    assert quality["level_stale_since"] is not None and any("level is stale" in line for line in said)
