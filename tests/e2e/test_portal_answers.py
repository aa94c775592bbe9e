"""The portal answers its reader, in a real browser (Debian's chromium through Playwright) against ``twin serve``
over the demo's data: the twin list's status words and filters, the forecast skill and models on the page, quality
flags on plots and in the stream tail, provenance as a graph, downloads (CSV and PNG), the print-ready report,
keyed state as a table and a map, a walk at phone width, and walks by a user and a developer in which no page
asks for what its reader may not see. Each check compares what the person sees with what the API says."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from browser import Portal, Site, wider_than_the_screen
from helpers import REPO
from twinengine.client import Client
from twinengine.twins.schemas import PropertyWrite

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]

WELL_FIELD = REPO / "examples" / "apps" / "well-field"


def sdk(site: Site, who: str) -> Client:
    return Client(site.url, site.tokens[who])


def twin_name(site: Site) -> str:
    return str(site.facts["twin"]["name"])


def glances(site: Site, who: str = "uma") -> dict[str, dict[str, Any]]:
    page = sdk(site, who)._request("GET", "/api/v1/twins", params={"limit": 500, "glance": "true"}).json()
    return {t["name"]: t for t in page["items"]}


def download(tab: Portal, button: str) -> tuple[str, bytes]:
    with tab.page.expect_download() as info:
        tab.page.click(button)
    got = info.value
    return str(got.suggested_filename), Path(got.path()).read_bytes()


NONE = "\u2013"  # the en dash the portal shows for a missing value


def shown_twins(page: Any) -> set[str]:
    rows = page.locator("table.twins tbody tr[data-twin]")
    return {str(name) for name in rows.evaluate_all("rs => rs.map(r => r.dataset.twin)")}


def rows_of(text: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.decode())))


def test_the_twin_list_says_each_twins_status_and_filters_by_it(portal: Any, site: Site) -> None:
    seen = glances(site)
    uma = portal("uma")
    page = uma.goto("/ui/")
    shown = {tr.get_attribute("data-twin"): tr for tr in page.locator("table.twins tbody tr").element_handles()}
    assert set(shown) == set(seen)
    words = {"alert": "Alert", "stale": "Stale", "ok": "OK"}
    for name, twin in seen.items():
        cell = shown[name].query_selector(".twin-status")
        assert cell is not None and cell.get_attribute("data-status") == twin["glance"]["status"]
        assert cell.inner_text().startswith(words[twin["glance"]["status"]])
        for reason in twin["glance"]["reasons"]:
            assert reason in cell.inner_text()
        text = shown[name].inner_text()
        assert twin["glance"]["title"] in text and (twin["glance"]["place"] or NONE) in text
        assert ("ago" in text or "just now" in text) if twin["glance"]["last_reading"] else "nothing reported" in text
    uma.check("twins-at-a-glance")
    # the status filter leaves the twins with that status, and the address keeps it
    alerting = {n for n, t in seen.items() if t["glance"]["status"] == "alert"}
    page.select_option("#twin-status", "alert")
    assert shown_twins(page) == alerting
    assert "status=alert" in page.url
    # the search reads names, titles and places; a word no twin has leaves none
    page.select_option("#twin-status", "")
    page.fill("#twin-q", "wetter")
    expected = {n for n in seen if "wetter" in n}
    assert expected and shown_twins(page) == expected
    assert f"{len(expected)} of {len(seen)} twins match" in uma.text(".filter-count")
    page.fill("#twin-q", "no-such-twin-anywhere")
    assert "No twin matches these filters." in uma.text("table.twins")
    # a shared address opens the list filtered
    page = uma.goto("/ui/?q=demo-reach-live")  # and the twins named after it (its rerun's, its calibrated one)
    assert shown_twins(page) == {n for n in seen if "demo-reach-live" in n} and "demo-reach-live" in seen


def test_the_list_downloads_as_csv_with_what_it_shows(portal: Any, site: Site) -> None:
    seen = glances(site)
    uma = portal("uma")
    uma.goto("/ui/")
    name, body = download(uma, "button[aria-label^='Download CSV: Your twins']")
    rows = rows_of(body)
    assert name == "Your-twins.csv" and rows[0][:4] == ["twin", "place", "status", "last reading"]
    assert sorted(r[0] for r in rows[1:]) == sorted(seen)
    for row in rows[1:]:
        glance = seen[row[0]]["glance"]
        assert row[1] == (glance["place"] or NONE) and row[2].lower().startswith(glance["status"])


def test_the_flood_view_shows_its_skill_per_lead_and_its_model(portal: Any, site: Site) -> None:
    """A twin with a day of levels and two recorded forecasts of them (one missing its band at 6 h): the page
    says per lead how often the forecasts fell within their band, as ``/verification`` scores them."""
    api = sdk(site, "uma")
    api.create_twin("river-reach@0.1.0", "skill-reach", {"station": "RR-90"})
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=24)
    truth = [1.0 + 0.1 * h for h in range(24)]
    for hour, level in enumerate(truth):
        at = t0 + timedelta(hours=hour)
        api.write_state("skill-reach", reported={"level": PropertyWrite(value=level, timestamp=at)})
    for issued, miss in ((2, False), (8, True)):
        values = [truth[issued + k] + 0.05 for k in range(1, 7)]
        lower = [v - 0.5 for v in values]
        upper = [v + 0.5 for v in values]
        if miss:  # at 6 h the band lies above what happened
            lower[5], upper[5] = values[5] + 0.2, values[5] + 0.6
        api._request("POST", "/api/v1/twins/skill-reach/forecasts", json={
            "property": "level", "issued_at": (t0 + timedelta(hours=issued)).isoformat(), "values": values,
            "step": "PT1H", "lower": lower, "upper": upper, "interval_level": 0.9, "workflow": "forecast"})
    found = api._request("GET", "/api/v1/twins/skill-reach/verification", params={"property": "level"}).json()
    six = next(g for g in found["leads"] if g["lead_seconds"] == 6 * 3600)
    assert (six["n"], six["coverage"]) == (2, 0.5)
    answered = api._request("GET", "/api/v1/twins/skill-reach/views/flood").json()
    uma = portal("uma")
    page = uma.goto("/ui/twins/skill-reach/views/flood")
    page.wait_for_selector("section.skill .plot canvas")
    assert uma.text(".skill-intro").startswith("Over the last 30 days, forecasts of level")
    line = uma.text("section.skill li[data-lead='21600']")
    assert line.startswith("6-h forecasts were within the 90 % band 50 % of the time") and "2 checked" in line
    one = uma.text("section.skill li[data-lead='3600']")
    assert one.startswith("1-h forecasts were within the 90 % band 100 % of the time") and "2 checked" in one
    assert answered["skill"]["text"] in uma.text(".view-summary .trust-text")  # the engine's sentence, at the top
    assert int(page.get_attribute("section.skill .plot", "data-points")) == 6  # coverage at each of the six leads
    page.click("section.skill details summary")
    assert page.locator("section.skill details tbody tr").count() == 6
    uma.check("view-skill")
    # the model behind the forecasts and the gate's decision, on the view of the twin that trained one
    ml = site.facts["ml"]["twin"]
    model = api.ml.models(ml)[0]
    uma.goto(f"/ui/twins/{ml}/views/flood")
    assert f"Model {model.name} version {model.champion} (champion): accepted by the gate" in uma.text(".model-words")
    # when the skill cannot be read (the engine answers 503 while its store restarts), the card says so
    page.route("**/verification?*", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"code": "StoreUnavailable", "message": "the store cannot be reached; try again shortly"}'))
    uma.goto("/ui/twins/skill-reach/views/flood")
    said = uma.text("section.skill [role=alert]")
    assert said.startswith("The forecasts' skill could not be read: the store cannot be reached") and "Reload" in said
    page.unroute("**/verification?*")
    uma.problems = [p for p in uma.problems if "status of 503" not in p]  # the console's line for the answer made here


def test_a_plot_downloads_as_csv_and_png(portal: Any, site: Site) -> None:
    name = twin_name(site)
    api = sdk(site, "uma")
    uma = portal("uma")
    page = uma.goto(f"/ui/twins/{name}/views/flood")
    points = int(page.get_attribute("[data-panel=level] .plot", "data-points"))
    file, body = download(uma, "[data-panel=level] button[aria-label='Download CSV: Level at the outlet gauge']")
    rows = rows_of(body)
    assert file == "Level-at-the-outlet-gauge.csv"
    assert rows[0][0] == "time (UTC)" and rows[0][1] == "level (m)" and "alert threshold = 1.8" in rows[0]
    levels = [r for r in rows[1:] if r[1] != ""]
    history = api.history(name, "level", limit=100_000).items
    newest = history[-1]
    assert abs(datetime.fromisoformat(levels[-1][0].replace("Z", "+00:00")) - newest.timestamp) < timedelta(
        milliseconds=1) and levels[-1][1] == f"{newest.value}"
    assert len(levels) <= points and len(rows) - 1 >= len(levels)
    file, png = download(uma, "[data-panel=level] button[aria-label='Download PNG: Level at the outlet gauge']")
    assert file == "Level-at-the-outlet-gauge.png" and png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def test_the_print_report_is_dated_citable_and_says_the_summary(portal: Any, site: Site) -> None:
    name = twin_name(site)
    api = sdk(site, "uma")
    answered = api._request("GET", f"/api/v1/twins/{name}/views/flood").json()
    head = api.get_twin(name).head_revision
    uma = portal("uma")
    page = uma.goto(f"/ui/twins/{name}/views/flood")
    page.click("text=Print-ready report")
    uma.ready()
    page.wait_for_selector("section.report-head")
    assert page.url.endswith("/views/flood?print")
    meta = uma.text(".report-meta")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert f"Report of {name}" in meta and f"at revision {head}" in meta and f"made {today}" in meta
    cite = uma.text(".report-cite")
    assert cite.startswith(f"Cite as: uma. {name}: Flood watch")
    assert f"/ui/twins/{name}/views/flood?revision={head}" in cite
    assert answered["summary_text"] in uma.text(".view-summary .summary-text")
    assert page.locator("[data-panel=scenario], [data-panel=rain]").count() == 0  # forms and maps stay off paper
    assert page.locator("section.provenance svg.prov g.node").count() > 0 if answered["forecast"] else True
    page.emulate_media(media="print")
    assert not page.is_visible("header.top") and not page.is_visible(".report-head button")
    assert page.is_visible(".view-summary") and page.is_visible("[data-panel=level] canvas")
    page.emulate_media(media="screen")
    uma.check("view-print")


@pytest.mark.sandbox  # its app code runs in a served engine, which runs it only sandboxed
def test_keyed_state_shows_a_table_of_keys_and_a_map_of_them(portal: Any, site: Site) -> None:
    sdk(site, "ada").publish_app(WELL_FIELD)
    api = sdk(site, "uma")
    api.create_twin("well-field@0.1.0", "portal-field", {"field": "WF-07"})
    heads = {"ow1": 12.5, "ow2": 11.25, "ow3": 13.0, "ow10": 9.75}
    api.report("portal-field", **{f"head[{k}]": v for k, v in heads.items()},
               **{f"location[{k}]": {"lon": 8.2 + i * 0.01, "lat": 46.1} for i, k in enumerate(heads)})
    api.report("portal-field", **{"head[ow3]": 750.0})  # beyond the range check: kept, flagged bad
    read = api.get_property("portal-field", "head")
    assert read.keys is not None
    uma = portal("uma")
    page = uma.goto("/ui/twins/portal-field")
    page.wait_for_selector("table.keyed[data-property=head] tbody tr[data-key]")
    rows = page.locator("table.keyed[data-property=head] tbody tr[data-key]")
    natural = sorted(read.keys, key=lambda k: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", k)])
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.key)") == natural == ["ow1", "ow2", "ow3", "ow10"]
    for key, value in read.keys.items():
        row = uma.text(f"table.keyed[data-property=head] tr[data-key='{key}']")
        assert f"{value.value:g} m" in row and ("ago" in row or "just now" in row)
    assert "flagged bad" in uma.text("table.keyed tr[data-key=ow3]")
    assert page.get_attribute("table.keyed tr[data-key=ow3]", "class") == "flag-bad"
    assert "4 wells" in uma.text("tr[data-property=head]")
    page.wait_for_selector("path.key-marker")
    assert page.locator("path.key-marker").count() == len(heads)
    assert "ow10: 9.75 m (just now)" in page.locator(".leaflet-tooltip.key-label").all_inner_texts()
    uma.check("keyed-state")
    _, body = download(uma, "button[aria-label^='Download CSV: head per well']")
    table = rows_of(body)
    assert table[0] == ["well", "head", "time (UTC)", "age", "revision"]
    assert [r[0] for r in table[1:]] == natural and table[1][1] == "12.5 m"


def test_quality_flags_show_in_the_stream_tail_and_on_plots(portal: Any, site: Site) -> None:
    live = site.facts["streams"]["twin"]
    api = sdk(site, "uma")
    records = api._request("GET", f"/api/v1/twins/{live}/streams/gauges/records", params={"last": 50}).json()
    flagged = {str(r["_offset"]): r["_quality"] for r in records["items"] if r["_quality"] != "good"}
    assert flagged, "the demo plants faults in the gauges' stream"
    uma = portal("uma")
    page = uma.goto(f"/ui/twins/{live}/streams")
    page.wait_for_selector("table.tail tbody tr[data-offset]")
    shown = page.locator("table.tail tr[data-offset]").evaluate_all(
        "rs => Object.fromEntries(rs.filter(r => r.dataset.quality !== 'good')"
        ".map(r => [r.dataset.offset, r.dataset.quality]))")
    assert {k: v for k, v in shown.items() if k in flagged} == flagged
    bad = next(k for k, v in flagged.items() if v in ("bad", "suspect"))
    assert uma.text(f"table.tail tr[data-offset='{bad}'] td.quality").startswith(flagged[bad])
    assert "Flagged in the records shown" in uma.text(".tail-flags")
    uma.check("stream-flags")
    page = uma.goto(f"/ui/twins/{live}")
    page.wait_for_selector("section[aria-label=History] .plot canvas")
    plotted = page.input_value("#hist-prop")
    history = api.history(live, plotted, limit=100_000).items
    ringed = sum(1 for v in history if v.quality is not None and isinstance(v.value, float))
    assert int(page.get_attribute("section[aria-label=History] .plot", "data-flags")) == ringed
    if ringed:
        assert "ringed (quality flags)" in uma.text("section[aria-label=History] .plot-info")


def test_a_runs_provenance_is_a_graph(portal: Any, site: Site) -> None:
    name = twin_name(site)
    api = sdk(site, "uma")
    run = next(r for r in api.workflows.runs(twin=name, status="finished", limit=50).items if r.workflow == "forecast")
    prov = api._request("GET", f"/api/v1/runs/{run.id}/provenance").json()
    uma = portal("uma")
    page = uma.goto(f"/ui/runs/{run.id}")
    page.wait_for_selector("svg.prov")
    kinds = page.locator("svg.prov g.node").evaluate_all("gs => gs.map(g => g.classList[1])")
    assert kinds.count("entity") == len(prov["entity"]) and kinds.count("activity") == len(prov["activity"])
    assert kinds.count("agent") == len(prov["agent"])
    assert page.locator("svg.prov path.edge[data-relation='generated']").count() == len(prov["wasGeneratedBy"])
    assert page.locator("svg.prov path.edge[data-relation='used by']").count() == len(prov["used"])
    assert not page.is_visible("details pre")  # the PROV-JSON document is there, folded
    uma.check("run-provenance")


def test_a_walk_at_phone_width_never_scrolls_sideways(portal: Any, site: Site) -> None:
    name = twin_name(site)
    run = next(r for r in sdk(site, "uma").workflows.runs(twin=name, status="finished", limit=50).items
               if r.workflow == "forecast")
    uma = portal("uma", width=390, height=844)
    paths = ["/ui/", "/ui/?status=alert", f"/ui/twins/{name}", f"/ui/twins/{name}/views/flood",
             f"/ui/twins/{name}/views/flood?print", f"/ui/twins/{site.facts['streams']['twin']}/streams",
             f"/ui/runs/{run.id}", f"/ui/twins/{site.facts['ml']['twin']}/models"]
    for path in paths:
        page = uma.goto(path)
        page.wait_for_timeout(300)  # plots and maps take their width after the page is ready
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways by {overflow}px"
        wide = wider_than_the_screen(page)
        assert wide == [], f"{path}: wider than the screen: {wide}"
        if path.startswith("/ui/?") or path == "/ui/":  # each twin's status in sight, not behind a sideways scroll
            right = page.evaluate("() => Math.max(...[...document.querySelectorAll('table.twins .twin-status .badge')]"
                                  ".map(b => b.getBoundingClientRect().right))")
            assert right <= 390, f"{path}: a status badge ends at {right}px"
        uma.check("phone-walk-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-"))


@pytest.mark.parametrize("who", ["uma", "ada", "eve"])
def test_no_page_asks_for_what_its_reader_may_not_see(portal: Any, site: Site, who: str) -> None:
    """A user's and a developer's walk through every page of their navigation, a twin's pages and a run's: the
    pages ask the engine only for what that person may read. A request refused (401/403) would be a section
    built for someone else, hidden after the fact, and a denial in the engine's audit log at every visit."""
    mine = sorted(glances(site, who))  # the twins this person may read, each with its pages
    runs = sdk(site, who).workflows.runs(limit=5).items
    tab = portal(who)
    refused: list[str] = []
    tab.page.on("response", lambda r: refused.append(f"{r.status} {r.request.method} {r.url}")
                if r.status in (401, 403) else None)
    links = tab.page.eval_on_selector_all("nav a[href^='/ui/']", "links => links.map(a => a.getAttribute('href'))")
    paths = list(dict.fromkeys([*links, *(f"/ui/twins/{twin}{tail}" for twin in mine[:3]
                                          for tail in ("", "/streams", "/models")),
                                *(f"/ui/runs/{r.id}" for r in runs[:2]),
                                *([f"/ui/twins/{twin_name(site)}/views/flood"] if twin_name(site) in mine else [])]))
    assert len(links) >= 4 and (who != "uma" or twin_name(site) in mine), (links, mine)
    for path in paths:
        tab.goto(path)
        tab.page.wait_for_timeout(300)  # the requests a page makes after it said it is ready (plots, maps)
    assert refused == [], f"{who}: {refused}"
