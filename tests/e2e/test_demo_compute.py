"""``twin demo``'s compute chapter, run after the chapters it needs: a second site (a Dask cluster started
in-process), the ensemble placed and then pinned there, the site and reasons printed; a third site, another
engine that runs a graph sent there whole; and the usage of the demo's runs by site as a table."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinengine.demo import runner
from twinengine.demo.chapters import compute, lake, twins, workflows
from twinengine.demo.context import DemoOptions


def test_the_compute_chapter_says_which_site_ran_what_and_why(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    story = [twins.publish_app, twins.create_twin, twins.gauges_report, twins.time_travel, twins.what_if,
             lake.lake_store, workflows.forecast, compute.compute_sites]
    monkeypatch.setitem(runner.APP_CHAPTERS, runner.APP_FOLDER_NAME, story)
    said: list[str] = []
    ctx = runner.run_demo(DemoOptions(data_dir=tmp_path / "demo", hours=12, step_minutes=30), say=said.append)
    placements = ctx.facts["compute"]["placements"]
    chosen, pinned = placements["placed by the engine"], placements["pinned"]
    assert chosen["site"] == "local" and any(r.startswith("chose local") for r in chosen["reasons"])
    assert pinned["site"] == "cluster" and pinned["members_on"] == ["cluster"]
    assert "pinned to cluster" in pinned["reasons"]
    text = "\n".join(said)
    assert f"ensemble {pinned['run']} (pinned): site cluster; members ran on cluster" in text
    assert "  why: pinned to cluster" in text and "usage of the demo's runs by site:" in text
    usage = ctx.facts["compute"]["usage_by_site"]
    executions = compute.MEMBERS + 1  # the pinned ensemble's members and its shared part, each on cluster
    assert usage["cluster"]["runs"] == executions and usage["local"]["runs"] >= executions
    assert any(line.lstrip().startswith("cluster ") and f" {executions} " in line for line in said)
    kinds = ctx.facts["compute"]["usage_by_kind"]
    assert kinds["member"] == 2 * compute.MEMBERS and kinds["ensemble"] == 2  # both ensembles, by kind
    assert "by kind (functions on arrival: a record per minute they ran):" in text
    assert ctx.facts["compute"]["twin"] == ctx.facts["what_if"]["fork"]  # the twin's own story is untouched
    partner = ctx.facts["compute"]["partner"]
    levels = partner["levels"]  # the twin's last reported levels
    assert len(levels) == 24 and ctx.facts["peak_level"] >= max(levels)
    assert partner["value"] == pytest.approx([max(levels), sum(levels) / len(levels)])  # computed there, right
    assert partner["site"] == compute.PARTNER and f"engine:{compute.PARTNER}" in partner["source"].split("+")
    assert partner["there"].startswith("run run-") and f"went there whole, as {partner['there']}" in text
    assert usage[compute.PARTNER]["runs"] == 1
