"""The demo's assimilation chapter, as the shared demo run left it: one cycle per gauge reading of the live
twin, each written as a revision of its storage with the ensemble's quantiles (what the flood view draws as
the analysis's band), forecasts from the analyses scored against forecasts without assimilation, and the
plot."""

from __future__ import annotations

from pathlib import Path

from demo_fixtures import DemoRun, demo_copy
from helpers import admin_token
from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


def test_the_demo_assimilates_the_live_gauge_and_the_flood_view_has_its_analyses(demo_run: DemoRun,
                                                                                 tmp_path: Path) -> None:
    facts = demo_run.facts["assimilation"]
    twin = demo_run.facts["streams"]["twin"]
    # one per reading the gauge's quality checks did not find bad
    good = demo_run.facts["streams"]["records"] - demo_run.facts["quality"]["bad"]
    assert demo_run.facts["quality"]["bad"] >= 1 and facts["cycles"] == facts["observations"] == good
    assert facts["view"].endswith(f"/ui/twins/{twin}/views/flood")
    assert Path(facts["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    nse = facts["nse"]
    scored = [h for h, v in nse["assimilated"].items() if v is not None and nse["open-loop"][h] is not None]
    assert scored and all(nse["assimilated"][h] >= nse["open-loop"][h] for h in scored)  # from a wrong first guess
    runtime = Runtime.from_settings(Settings(data_dir=demo_copy(demo_run, tmp_path / "d")))
    try:
        with InProcessServer(create_app(runtime=runtime)) as server, \
                Client(server.url, admin_token(runtime.settings)) as admin:
            storage = admin.history(twin, "storage", limit=100_000).items
            analyses = [v for v in storage if v.uncertainty is not None and v.uncertainty.quantiles]
            assert len(analyses) == facts["cycles"]
            assert all(q["0.05"] <= v.value <= q["0.95"] for v in analyses if (q := v.uncertainty.quantiles))
    finally:
        runtime.close()
