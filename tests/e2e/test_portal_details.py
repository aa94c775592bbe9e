"""Details a person notices, each seen in a real browser (Debian's chromium through Playwright) against ``twin
serve`` over the demo's data: the twin list of someone with no twins, both hydrographs of a comparison over one
time axis, the past shown as the past while new revisions arrive, a run's provenance graph whole in its box,
and what-ifs kept, shown again on reload and deleted. Each is checked against what the API says."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from browser import Portal, Site, sign_token
from twinengine.client import Client

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]


def sdk(site: Site, who: str = "uma") -> Client:
    return Client(site.url, site.tokens[who])


def download(tab: Portal, button: str) -> list[list[str]]:
    with tab.page.expect_download() as info:
        tab.page.click(button)
    return list(csv.reader(io.StringIO(Path(info.value.path()).read_text())))


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_person_without_twins_is_told_how_to_get_one(browser: Any, site: Site) -> None:
    tab = Portal(browser, site, "no-twins")
    try:
        tab.sign_in(sign_token(site.data_dir, "nia", "user"))  # nobody granted nia anything
        tab.goto("/ui/")
        words = " ".join(tab.text().split())
        assert "null" not in words and "undefined" not in words  # the page wrote "nullnull" here
        assert words.startswith("Twins 0 twins you can see as nia. No twins yet")
        assert "No twins yet" in tab.text("section[aria-label='No twins yet']")
        assert tab.page.locator("section[aria-label='No twins yet'] a[href='/ui/catalog']").count() == 1
        assert tab.page.locator("table.twins").count() == 0  # no empty table of nine columns
        tab.check("home-no-twins")
    finally:
        tab.close()


def lineage(api: Client, name: str, prop: str) -> tuple[list[Any], int]:
    """The values of ``prop`` a twin knows (its origin's before it was forked, then its own), and how many of
    them are its origin's."""
    twin = api.get_twin(name)
    own = api.history(name, prop, limit=100_000).items
    if twin.origin is None:
        return own, 0
    first = own[0].timestamp if own else None
    before = [v for v in api.history(twin.origin.twin_name, prop, limit=100_000).items
              if v.revision <= twin.origin.revision and (first is None or v.timestamp < first)]
    return before + own, len(before)


def test_a_comparison_plots_both_hydrographs_over_one_time_axis(portal: Any, site: Site) -> None:
    """The wetter-soils scenario's branches: each one's level (its origin's before the fork, then its own) and its
    forecast after it, on one time axis; not one point per twin on an axis two years long."""
    api = sdk(site)
    baseline, wetter = (branch["twin"] for branch in site.facts["ensemble"]["scenario"])
    uma = portal("uma", width=1366, height=900)
    page = uma.goto(f"/ui/twins/{baseline}/compare/{wetter}")
    assert page.input_value("#cmp-prop") == "level"  # the property the twins forecast comes first
    info = uma.text("section[aria-label='History of both'] .plot-info")
    forecasts = {}
    for twin in (baseline, wetter):
        values, before = lineage(api, twin, "level")
        count = len(values)
        assert count > 1 and before > 0
        origin = api.get_twin(twin).origin
        assert f"{count} points of {twin} ({before} of them from {origin.twin_name} up to revision " \
               f"{origin.revision}, before the fork)" in info, info
        # the forecast the page drew: one the twin recorded (its triggers may record a newer one meanwhile)
        drawn = re.search(rf"{twin} \(.*?\), and its forecast of (\d+) steps \(run (\S+), issued", info)
        assert drawn, info
        recorded = api._request("GET", f"/api/v1/twins/{twin}/forecasts",
                                params={"property": "level", "values": "true", "limit": 20}).json()
        forecast = next(f for f in recorded if f["run_id"] == drawn[2])
        assert len(forecast["values"]) == int(drawn[1])
        forecasts[twin] = forecast
    rows = download(uma, "section[aria-label='History of both'] button[aria-label='Download CSV: level']")
    head, body = rows[0], rows[1:]
    assert head == ["time (UTC)", baseline, wetter, f"{baseline}: forecast", f"{wetter}: forecast"]
    for column, twin in ((1, baseline), (2, wetter)):
        times = {v.timestamp for v in lineage(api, twin, "level")[0]}  # a row per time (one value at each)
        assert sum(1 for r in body if r[column] != "") == len(times)
    for column, twin in ((3, baseline), (4, wetter)):
        assert sum(1 for r in body if r[column] != "") == len(forecasts[twin]["values"])
    first, last = instant(body[0][0]), instant(body[-1][0])
    ends = max(instant(f["values"][-1]["valid_time"]) for f in forecasts.values())
    assert last == ends and last - first < timedelta(days=7)  # the data's own span, no empty years
    uma.check("compare-hydrographs")


STATE_READ = re.compile(r"/api/v1/twins/[^/]+/state(\?|$)")  # a state read, not its event stream


def test_the_past_stays_the_past_while_new_revisions_arrive(portal: Any, site: Site) -> None:
    """A revision arrives while the person moves the time travel to the past: the read of the state now that it
    set off answers last (held back here, as a slow network would), and the page still shows the one revision it
    says it shows, under a line that says it is not live."""
    api = sdk(site)
    name = "detail-travel"
    api.create_twin("river-reach@0.1.0", name, {"station": "RR-77"})
    try:
        for level in (1.0, 1.1, 1.2, 1.3, 1.4):
            api.report(name, level=level)
        uma = portal("uma", width=1366, height=900)
        page = uma.goto(f"/ui/twins/{name}")
        page.wait_for_selector("table.state caption:has-text('State at revision 5')")
        assert uma.text(".live").startswith("live")
        held: list[Any] = []

        def hold_reads_of_now(route: Any) -> None:
            if "revision=" in route.request.url or "at=" in route.request.url:
                route.continue_()
            else:
                held.append(route)
        page.route(STATE_READ, hold_reads_of_now)
        api.report(name, level=1.5)  # revision 6: the page asks for the state now
        while not held:  # Playwright hands the page's requests to the handler while it is called
            page.wait_for_timeout(50)
        assert len(held) == 1
        page.eval_on_selector("#travel-revision", "s => { s.value = '3'; s.dispatchEvent(new Event('change')); }")
        page.wait_for_selector("table.state caption:has-text('State at revision 3')")
        reads = int(page.get_attribute("[data-reads]", "data-reads") or 0)
        held[0].continue_()  # the read of now answers after the read of the past
        page.wait_for_function("n => Number(document.querySelector('[data-reads]').dataset.reads) > n", arg=reads)
        page.unroute(STATE_READ)
        assert uma.text("table.state caption") == "State at revision 3"
        assert uma.text(".banner").startswith("Viewing the past: revision 3 of 6.")
        assert page.input_value("#travel-revision") == "3"
        assert "paused" in (page.get_attribute(".live", "class") or "")
        assert uma.text(".live") == "not live while you view the past (3 newer revisions: Back to now shows them)"
        uma.check("twin-past-not-live")
        page.click(".banner button:has-text('Back to now')")
        page.wait_for_selector("table.state caption:has-text('State at revision 6')")
        assert uma.text(".live").startswith("live: revision 6 by uma") and page.is_hidden(".banner")
    finally:
        api.delete_twin(name)


def test_a_runs_provenance_graph_fits_its_box_with_every_label_whole(portal: Any, site: Site) -> None:
    run = site.facts["ensemble"]["run"]
    prov = sdk(site).workflows.provenance(run)
    datasets = [attrs for attrs in prov["entity"].values() if "Dataset" in str(attrs.get("prov:type"))]
    assert datasets and not [key for key in prov["entity"] if "None" in key]  # a dataset without a version
    uma = portal("uma", width=1366, height=900)
    page = uma.goto(f"/ui/runs/{run}")
    page.wait_for_selector("svg.prov g.node")
    fit = page.evaluate("""() => {
        const svg = document.querySelector('svg.prov'); const scroll = svg.closest('.scroll');
        const box = scroll.getBoundingClientRect(); const at = svg.getBoundingClientRect();
        return {inside: at.left >= box.left - 0.5 && at.right <= box.right + 0.5,
                scrolls: scroll.scrollWidth > scroll.clientWidth + 1};
      }""")
    assert fit == {"inside": True, "scrolls": False}  # the whole graph in its box, nothing past its right edge
    labels = page.evaluate("""() => [...document.querySelectorAll('svg.prov g.node')].map(g => {
        const shape = g.querySelector('ellipse, rect, polygon').getBBox();
        const text = g.querySelector('text'); const words = text.getBBox();
        const parts = [...text.querySelectorAll('tspan')].map(t => t.textContent);
        return {text: parts.length ? parts.join(' | ') : text.textContent,
                inside: words.x >= shape.x && words.x + words.width <= shape.x + shape.width};
      })""")
    assert labels and all(label["inside"] for label in labels), [x for x in labels if not x["inside"]]
    texts = [label["text"] for label in labels]
    assert not [t for t in texts if "\u2026" in t or "None" in t]  # whole words, no "rain-forecast/None"
    for attrs in datasets:
        collection = str(attrs["twin:collection"])
        assert any(t == f"Dataset | {collection}" or t.startswith(f"Dataset | {collection} @ ") for t in texts), texts
    assert f"WorkflowRun | {run}" in texts
    uma.check("run-provenance-whole")
    if page.is_visible("button.prov-zoom"):  # a graph wider than its box: at its own size, in a box that scrolls
        page.click("button.prov-zoom")
        assert page.evaluate("() => document.querySelector('svg.prov').getBoundingClientRect().width") == pytest.approx(
            page.evaluate("() => document.querySelector('svg.prov').width.baseVal.value"), abs=1)


@pytest.mark.sandbox  # its app code runs in a served engine, which runs it only sandboxed
def test_a_what_if_is_kept_shown_again_on_reload_and_deleted(portal: Any, site: Site) -> None:
    name = str(site.facts["twin"]["name"])
    api = sdk(site)
    uma = portal("uma", width=1366, height=900)
    page = uma.goto(f"/ui/twins/{name}/views/flood")
    page.fill("[data-panel=scenario] input[name=alert_level]", "6")
    page.fill("[data-panel=scenario] input[name=storage_mm]", "33")
    page.click("[data-panel=scenario] button[type=submit]")
    page.wait_for_selector("[data-panel=scenario] [role=status] .badge.status-finished", timeout=120_000)
    run = api.workflows.get(re.findall(r"Run (\S+)", uma.text("[data-panel=scenario] [role=status]"))[0])
    fork = run.twin_name
    try:
        page.wait_for_selector(f"[data-panel=level] .plot-info:has-text('what-if forecast of run {run.id} on {fork}')")
        made = api.get_twin(fork)
        assert made.expires_at is not None and made.expires_at - made.created_at == pytest.approx(
            timedelta(days=7), abs=timedelta(minutes=1))  # what_if_ttl, the default
        page.reload()
        uma.ready()  # the newest what-if is drawn again, beside the official forecast, and listed under the form
        page.wait_for_selector(f"[data-panel=level] .plot-info:has-text('what-if forecast of run {run.id} on {fork}')")
        page.wait_for_selector(f"[data-panel=alert] th:has-text('what-if ({fork})')")
        item = uma.text(f"[data-panel=scenario] li[data-fork='{fork}']")
        assert item.startswith(f"{fork} shown: storage_mm 33, alert_level 6 · run {run.id}")
        assert f"deleted by the engine on {made.expires_at.strftime('%Y-%m-%d %H:%M:%S')}Z" in item
        uma.check("view-what-if-kept")
        page.click(f"[data-panel=scenario] li[data-fork='{fork}'] button[aria-label='Delete {fork}']")
        page.click(f"[data-panel=scenario] li[data-fork='{fork}'] button[aria-label='Yes: Delete {fork}']")
        # the view is drawn again without it (the newest what-if left, if any, shown instead)
        page.wait_for_selector(".page:not([aria-busy]) [data-panel=scenario] .what-ifs:has(h3)"
                               f":not(:has(li[data-fork='{fork}']))")
        assert f"run {run.id}" not in uma.text("[data-panel=level] .plot-info")
        assert fork not in {t.name for t in api.list_twins(limit=500).items}
    finally:
        if fork in {t.name for t in api.list_twins(limit=500).items}:
            api.delete_twin(fork)
