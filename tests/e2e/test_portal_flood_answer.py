"""The council's question answered on one screen, in a real browser (Debian's chromium through Playwright)
against ``twin serve`` over the demo's data: will the river at RR-01 exceed the alert level in the next 24 h, how
sure are we, and how good have these forecasts been. A policy maker opens the official flood twin and reads the
answer per lead time on the first screen, as the API computes it; the report a council receives names the run it
plots, fits its pages with its provenance readable in print, speaks the reader's words, and its PNG and CSV
downloads stand on their own."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest

from browser import Portal, Site
from twinengine.client import Client

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]

MIN_PRINTED_PX = 7.5  # CSS pixels a provenance label keeps on paper (about 5.6 pt): read without a loupe


def view(site: Site, twin: str) -> dict[str, Any]:
    got: dict[str, Any] = Client(site.url, site.tokens["uma"])._request(
        "GET", f"/api/v1/twins/{twin}/views/flood").json()
    return got


def in_sight(page: Any, selector: str, height: int) -> bool:
    page.evaluate("() => window.scrollTo(0, 0)")
    box = page.evaluate(f"() => document.querySelector({selector!r}).getBoundingClientRect().toJSON()")
    return bool(box["top"] >= 0 and box["bottom"] <= height)


def download(tab: Portal, button: str) -> tuple[str, bytes]:
    with tab.page.expect_download() as info:
        tab.page.click(button)
    return str(info.value.suggested_filename), Path(info.value.path()).read_bytes()


def test_the_official_flood_twin_answers_the_question_on_one_screen(portal: Any, site: Site) -> None:
    name = str(site.facts["twin"]["name"])
    answered = view(site, name)
    ahead, forecast = answered["outlook"], answered["forecast"]
    uma: Portal = portal("uma", width=1366, height=900)
    page = uma.goto(f"/ui/twins/{name}/views/flood")
    page.wait_for_selector("section.outlook table")
    # whose answer: the official twin at its gauge, said before anything else
    assert answered["official"]["official"] and uma.text(".view-summary .official-text") == (
        f"official {answered['official']['text']}")
    # the answer per lead time, on the first screen, as the engine computed it
    assert in_sight(page, "section.outlook table", 900), "the chance by lead time is below the fold"
    assert uma.text(".outlook-text") == ahead["text"]
    rows = page.locator("section.outlook tbody tr").evaluate_all(
        "rs => rs.map(r => [...r.cells].map(c => c.innerText))")
    assert [r[0] for r in rows] == ["6 h", "12 h", "24 h", "48 h"]
    for row, lead in zip(rows, ahead["leads"], strict=True):
        assert row[2] == f"{round(lead['probability'] * 100)} %"  # the chance within the lead
        skill = lead["skill"]
        assert row[7] == ("not checked yet" if skill is None else f"{skill['nse']:.2f}")
        assert row[9].startswith(str(skill["n"]) if skill else "0")
    assert uma.text(".outlook-skill") == ahead["skill_text"]
    # which state of the twin the forecast started from, and that the plot draws that same forecast
    assert forecast["start"] is not None and forecast["start"]["text"] in uma.text(".outlook-start")
    assert f"started from revision {forecast['start']['revision']}" in uma.text(".outlook-start")
    info = uma.text("[data-panel=level] .plot-info")
    assert f"forecast of run {forecast['run_id']}:" in info and forecast["start"]["text"] in info
    # the what-if form leaves the storage empty: a what-if starts from the twin's state unless given another
    assert page.input_value("[data-panel=scenario] input[name=storage_mm]") == ""
    assert "Leave empty to start from the twin's storage now (its state: the newest of storage; storage from the " \
           "gauge's level)" in uma.text("[data-panel=scenario]")  # the manifest's title, not storage_from_level
    # in the reader's words: no property names, no "Champion: none"
    words = uma.text("main")
    assert "forecast_peak_level" not in words and "Champion: none" not in words
    assert "forecast peak level" in uma.text("[data-panel=alert]")
    uma.check("flood-answer")
    # the outlook's CSV keeps one value per cell
    file, data = download(uma, "section.outlook button[aria-label^='Download CSV']")
    table = list(csv.reader(io.StringIO(data.decode())))
    assert table[0][:3] == ["lead time", "valid at (UTC)", "chance within the lead (%)"]
    assert [float(r[2]) for r in table[1:]] == [pytest.approx(lead["probability"] * 100) for lead in ahead["leads"]]
    # the level plot's PNG stands on its own: the twin's name and the time zone above it, its legend beneath
    file, png = download(uma, "[data-panel=level] button[aria-label='Download PNG: Level at the outlet gauge']")
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    canvas = page.evaluate("() => document.querySelector('[data-panel=level] canvas').height")
    assert file == "Level-at-the-outlet-gauge.png" and image.height > canvas + 40
    legend = image.crop((0, image.height - 20, image.width // 2, image.height))
    assert min(legend.getdata()) < 128  # the legend's words under the plot, not a blank strip


def test_a_twin_that_is_not_official_names_the_one_that_is(portal: Any, site: Site) -> None:
    live = str(site.facts["streams"]["twin"])
    name = str(site.facts["twin"]["name"])
    answered = view(site, live)
    assert answered["official"]["twins"] == [name]
    uma: Portal = portal("uma", width=1366, height=900)
    page = uma.goto(f"/ui/twins/{live}/views/flood")
    line = uma.text(".view-summary .official-text")
    assert line.startswith(f"{live} is not the official twin at RR-01: the official one is {name}.")
    page.click(f".official-text a[href='/ui/twins/{name}/views/flood']")
    uma.ready()
    page.wait_for_selector(".official-text.official")
    assert page.url.endswith(f"/ui/twins/{name}/views/flood")


def test_the_council_report_is_consistent_and_readable_in_print(portal: Any, site: Site) -> None:
    name = str(site.facts["twin"]["name"])
    answered = view(site, name)
    run = answered["forecast"]["run_id"]
    uma: Portal = portal("uma", width=1366, height=900)
    page = uma.goto(f"/ui/twins/{name}/views/flood?print")
    page.wait_for_selector("section.provenance svg.prov")
    page.wait_for_selector("[data-panel=level] canvas")
    # the run it names is the run it plots and the one whose provenance it draws
    assert f"forecast of run {run}:" in uma.text("[data-panel=level] .plot-info")
    assert f"made by run {run}." in uma.text("section.provenance")
    pdf = page.pdf(prefer_css_page_size=True, print_background=True)
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))
    assert 1 <= pages <= 2, f"the report takes {pages} pages"
    page.emulate_media(media="print")
    try:
        # nothing cut at the page's right edge: every element inside the printed column
        width = page.evaluate("() => document.querySelector('main').getBoundingClientRect().right")
        poking = page.evaluate("""(right) => [...document.querySelectorAll('main *')].filter(el => {
            const box = el.getBoundingClientRect();
            return box.width > 0 && box.right > right + 1 && !el.closest('.no-print, .screen-only, .downloads');
          }).map(el => el.tagName + '.' + el.className).slice(0, 5)""", width)
        assert poking == [], f"cut at the page's edge: {poking}"
        # the provenance graph's words keep a readable size on paper, and the members are folded into one box
        printed = page.evaluate("""() => {
            const svg = document.querySelector('section.provenance svg.prov');
            const box = svg.getBoundingClientRect(); const view = svg.viewBox.baseVal;
            const scale = Math.min(box.width / view.width, box.height / view.height);  // as the graph is fitted
            const label = svg.querySelector('g.node text');
            return scale * parseFloat(getComputedStyle(label).fontSize);
          }""")
        assert printed >= MIN_PRINTED_PX, f"provenance labels print at {printed:.1f} px"
        activities = page.locator("section.provenance svg.prov g.node.activity").evaluate_all(
            "gs => gs.map(g => g.querySelector('text').textContent)")
        assert len(activities) == 1 and activities[0].startswith("Ensemble of 16 member runs")
        words = uma.text("main")
        assert "forecast_peak_level" not in words and "Champion: none" not in words
        assert answered["outlook"]["text"] in words and answered["summary_text"] in words
    finally:
        page.emulate_media(media="screen")
