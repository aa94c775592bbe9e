"""The trust panel of a twin that assimilates, in a real browser (Debian's chromium through Playwright) against
a real ``twin serve``: river-reach corrected from its gauge shows its latest analysis, the sentence comparing
forecasts from the analysis with those without assimilation and both lines per lead, and its innovations in
their expected band; a tank whose level drifts away from a model that keeps it still shows the warning."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from assimilation_data import T0, reach_gauges
from browser import Portal, Site, chromium, sign_token
from helpers import RIVER_REACH, admin_token, free_port, make_app, serve_engine
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.twins.schemas import PropertyWrite

pytestmark = pytest.mark.sandbox  # the served engine runs the apps' code only sandboxed


def _tank(root: Path) -> Path:
    return make_app(root, name="tank", manifest={
        "state": {"h": {"type": "number", "unit": "m", "uncertainty": ["std"]}},
        "streams": {"readings": {"fields": {"time": {"type": "timestamp"},
                                            "level": {"type": "float", "unit": "m", "nullable": True}}}},
        "assimilation": {"state": ["h"], "spread": 1.0, "step": {"entrypoint": "tank.model:step", "dt": "1h"},
                         "observations": {"level": {"observes": "h", "error": 0.3}}, "members": 20}},
        files={"tank/model.py": """
            def step(state, parameters, forcing, dt):
                return dict(state)
        """})


@pytest.fixture(scope="module")
def small_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One engine for the module: its tests only look."""
    chromium()
    tmp_path = tmp_path_factory.mktemp("assimilation-site")
    data_dir = tmp_path / "data"
    port = free_port()
    with serve_engine(data_dir, port, start_timeout=120):
        url = f"http://127.0.0.1:{port}"
        with Client(url, admin_token(Settings(data_dir=data_dir))) as admin:
            dev = admin.create_token("ada", "developer").token
        with Client(url, dev) as ada:
            ada.publish_app(RIVER_REACH)
            ada.publish_app(_tank(tmp_path))
        tokens = {"uma": sign_token(data_dir, "uma", "user")}
        with Client(url, tokens["uma"]) as uma:
            uma.create_twin("river-reach", "reach", {"station": "RR-01"})
            uma.write_state("reach", reported={"storage": PropertyWrite(value=10.0, timestamp=T0)})
            uma.streams.append("reach", "gauges", reach_gauges(40))
            uma.create_twin("tank", "drift", {"station": "T1"})
            uma.write_state("drift", reported={"h": PropertyWrite(value=10.0, timestamp=T0)})
            uma.streams.append("drift", "readings", [{"time": (T0 + timedelta(hours=k)).isoformat(),
                                                      "level": 10.0 + 3.0 * k} for k in range(1, 13)])
            for twin in ("reach", "drift"):
                uma.assimilation.run(twin, cycles=100)
        shots = Path(os.environ.get("TWIN_TEST_SHOTS", tmp_path / "shots"))
        shots.mkdir(parents=True, exist_ok=True)
        yield Site(url=url, data_dir=data_dir, tokens=tokens, facts={}, shots=shots)


@pytest.fixture
def tab(small_site: Site, chromium_browser: Any) -> Iterator[Portal]:
    portal = Portal(chromium_browser, small_site, "assimilation")
    try:
        portal.sign_in(small_site.tokens["uma"])
        yield portal
    finally:
        portal.close()


def test_the_trust_panel_shows_skill_with_and_without_assimilation(tab: Portal) -> None:
    page: Any = tab.goto("/ui/twins/reach")
    page.wait_for_selector(".assimilation .uplot", timeout=60_000)
    sentence = page.inner_text(".assimilation-skill")
    assert sentence.startswith("6-h forecasts of level from the analysis: NSE ")
    assert "; without assimilation: " in sentence
    assert page.inner_text(".assimilation-latest").startswith("Latest analysis: 2026-03-01 10:00:00Z (cycle 40")
    assert "The filter" in page.inner_text(".assimilation-health")
    assert page.locator(".assimilation [role=alert]").count() == 0
    labels = page.eval_on_selector_all(".assimilation .uplot", "els => els.map(e => e.getAttribute('aria-label'))")
    assert len(labels) == 2 and "from the analysis" in labels[0] and "without assimilation" in labels[0]
    assert "innovation (40 points)" in labels[1]
    tab.check("assimilation-skill")


def test_a_diverging_filter_is_a_warning_in_words(tab: Portal) -> None:
    page: Any = tab.goto("/ui/twins/drift")
    page.wait_for_selector(".assimilation [role=alert]", timeout=60_000)
    warning = page.inner_text(".assimilation [role=alert]")
    assert warning.startswith("Warning:") and "diverging" in warning
    tab.check("assimilation-diverging")


def test_the_flood_view_draws_the_analysis_with_its_spread(tab: Portal, small_site: Site) -> None:
    """The storage panel draws each analysis with the 5-95 % band its revision carries, and says the latest in
    words, as the API has it."""
    with Client(small_site.url, small_site.tokens["uma"]) as uma:
        analyses = [v for v in uma.history("reach", "storage", limit=100_000).items
                    if v.uncertainty is not None and v.uncertainty.quantiles]
    assert len(analyses) == 40  # one a cycle
    latest = analyses[-1]
    assert latest.uncertainty is not None and latest.uncertainty.quantiles
    low, high = latest.uncertainty.quantiles["0.05"], latest.uncertainty.quantiles["0.95"]
    page: Any = tab.goto("/ui/twins/reach/views/flood")
    page.wait_for_selector("[data-panel=storage] .plot[data-band]", timeout=60_000)
    assert page.get_attribute("[data-panel=storage] .plot", "data-band") == "analysis 5\u201395 %"
    info = tab.text("[data-panel=storage] .plot-info")
    assert (f"40 analyses of storage with their 5\u201395 %, the latest {latest.value:.4g} mm ({low:.4g} to "
            f"{high:.4g}) at 2026-03-01 10:00:00Z") in info, info
    assert low < latest.value < high
    # the level panel keeps its own: no band of the storage's there
    assert "analyses of" not in tab.text("[data-panel=level] .plot-info")
    tab.check("view-flood-analysis")
