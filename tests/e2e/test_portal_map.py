"""The map that does not mislead, in a real browser over the demo's data: it opens on a field's most
informative time with a layer drawn, on the variable's fixed legend, keeps the label and the image in step
under fast stepping, keeps twin labels apart, and reaches a place's series by keyboard; the data lake pages
and searches its identifiers."""

from __future__ import annotations

import contextlib
import json
import re
import urllib.parse
import urllib.request
from typing import Any

import numpy as np
import pytest

from browser import Site

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]

FORECAST = "rain-forecast"
DRAWN = ".map[data-field]:not([data-drawing])"


def get(site: Site, path: str, who: str = "uma", **params: Any) -> Any:
    """GET a JSON document of the API as ``who``."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    request = urllib.request.Request(f"{site.url}{path}{query}",
                                     headers={"Authorization": f"Bearer {site.tokens[who]}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def storm_hour(site: Site) -> str:
    """The forecast's hour with the most rain above the 0.1 mm/h floor over its grid, from its CoverageJSON."""
    doc = get(site, f"/edr/collections/{FORECAST}/cube", bbox="-180,-90,180,90", **{"parameter-name": "rain"})
    rain = doc["ranges"]["rain"]
    values = np.array([np.nan if v is None else v for v in rain["values"]], dtype=float).reshape(rain["shape"])
    t = rain["axisNames"].index("t")
    values = np.moveaxis(values, t, 0).reshape(rain["shape"][t], -1)
    totals = np.where(values >= 0.1, values, 0.0).sum(axis=1)
    times = doc["domain"]["axes"]["t"]["values"]
    return str(times[int(np.flatnonzero(totals == totals.max())[-1])]).replace(".000Z", "Z")


def forecast_times(site: Site) -> list[str]:
    doc = get(site, f"/edr/collections/{FORECAST}")
    return [str(t) for t in doc["extent"]["temporal"]["values"]]


def shown(page: Any) -> dict[str, Any]:
    """What the person sees of the field: the label, the image's time, how many of its cells are coloured."""
    return page.evaluate("""() => {
      const img = document.querySelector('img.field-layer');
      const canvas = document.createElement('canvas');
      canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
      const ctx = canvas.getContext('2d'); ctx.drawImage(img, 0, 0);
      const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let coloured = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) coloured += 1;
      const slider = document.querySelector('.map-tools input[type=range]');
      return { label: document.querySelector('.map-tools output').textContent, image: img.dataset.time,
               field: document.querySelector('.map').dataset.field, coloured,
               images: document.querySelectorAll('img.field-layer').length,
               slider: Number(slider.value), max: Number(slider.max) };
    }""")


def test_the_map_opens_on_the_forecasts_storm_on_rains_fixed_legend(portal: Any, site: Site) -> None:
    uma = portal("uma")
    page = uma.goto("/ui/map")
    page.wait_for_selector(DRAWN)
    expected = storm_hour(site)
    seen = shown(page)
    assert page.input_value(".map-tools select >> nth=0") == FORECAST  # a layer drawn, without asking
    assert seen["label"] == seen["image"] == expected and seen["field"] == f"{FORECAST}:rain:{expected}"
    assert seen["coloured"] > 0  # not an empty dry hour
    legend = page.locator(".map-tools .legend")
    assert (legend.get_attribute("data-lo"), legend.get_attribute("data-hi")) == ("0", "20")
    assert legend.get_attribute("data-floor") == "0.1"
    assert "20 mm h-1" in legend.inner_text() and "below 0.1 mm h-1 drawn as none" in legend.inner_text()
    uma.check("map-default")
    # the first hour of the forecast is dry: drawn as nothing on the same legend, not as a storm of noise
    first_hour = forecast_times(site)[0]
    page.fill(".map-tools input[type=range]", "0")
    page.dispatch_event(".map-tools input[type=range]", "change")
    page.wait_for_selector(f".map[data-field='{FORECAST}:rain:{first_hour}']:not([data-drawing])")
    first = shown(page)
    assert first["slider"] == 0 and first["label"] == first["image"] == first_hour != expected
    assert legend.get_attribute("data-hi") == "20"


def test_fast_stepping_drops_stale_answers_the_label_names_the_image_shown(portal: Any, site: Site) -> None:
    times = forecast_times(site)
    uma = portal("uma")
    page = uma.goto(f"/ui/map?collection={FORECAST}")
    page.wait_for_selector(DRAWN)
    start = shown(page)
    cube = re.compile(r".*/edr/collections/[^/]+/cube\?.*")
    held: list[Any] = []
    settled: list[Any] = []
    page.on("requestfinished", lambda request: settled.append(request) if cube.match(request.url) else None)
    page.on("requestfailed", lambda request: settled.append(request) if cube.match(request.url) else None)
    page.route(cube, lambda route: held.append(route))
    steps = 6
    key = "ArrowLeft" if start["slider"] >= steps else "ArrowRight"
    target = start["slider"] + (-steps if key == "ArrowLeft" else steps)
    newest = f"datetime={times[target].replace(':', '%3A')}"
    page.locator(".map-tools input[type=range]").focus()
    for _ in range(steps):  # six steps in a row, each asking for its hour while the earlier ones are pending
        page.keyboard.press(key)
    for _ in range(400):  # until the newest hour's request reached the network (the page may abort older ones)
        if any(newest in route.request.url for route in held):
            break
        page.wait_for_timeout(25)
    assert len(held) >= 2 and newest in held[-1].request.url, [r.request.url for r in held]
    page.route(cube, lambda route: route.continue_())  # what comes next goes through
    held[-1].continue_()  # the newest answer first: drawn
    page.wait_for_selector(f".map[data-field='{FORECAST}:rain:{times[target]}']:not([data-drawing])")
    for route in reversed(held[:-1]):  # then the stale ones, later: they must not replace it
        with contextlib.suppress(Exception):  # the page gave that request up (AbortController)
            route.continue_()
    for _ in range(400):
        if len(settled) >= len(held):
            break
        page.wait_for_timeout(25)
    page.wait_for_timeout(500)  # time for a stale image to be decoded and laid on the map, were it accepted
    seen = shown(page)
    assert seen["images"] == 1 and seen["slider"] == target
    assert seen["label"] == seen["image"] == times[target] and seen["field"] == f"{FORECAST}:rain:{times[target]}"


def test_twin_labels_do_not_overlap_and_count_the_twins_they_stand_for(portal: Any, site: Site) -> None:
    twins = get(site, "/api/v1/twins", limit=500)["items"]
    located = [t for t in twins if {"longitude", "latitude"} <= set(t.get("parameters") or {})]
    uma = portal("uma")
    page = uma.goto("/ui/map")
    page.wait_for_selector(".leaflet-tooltip.twin-label")

    def labels() -> list[tuple[str, dict[str, float]]]:
        """Each label's text and box, read in one call (a locator per label was two round trips each)."""
        found = page.evaluate("""() => [...document.querySelectorAll('.leaflet-tooltip.twin-label')].map(t => {
            const r = t.getBoundingClientRect();
            return [t.innerText, {x: r.x, y: r.y, width: r.width, height: r.height}];
        })""")
        return [(str(text), box) for text, box in found]

    for zoom in (None, 4, 12):
        if zoom is not None:
            # in braces: setZoom returns the map, which Playwright would copy back whole (about 26 s each)
            page.evaluate("(z) => { document.querySelector('.map').leafletMap.setZoom(z, {animate: false}); }", zoom)
            # the labels of the last zoom fade out (Leaflet removes them 200 ms after setting their opacity to 0)
            page.wait_for_function("() => [...document.querySelectorAll('.leaflet-tooltip.twin-label')]"
                                   ".every(t => t.style.opacity !== '0')")
        found = labels()
        counts = [1 + int(m.group(1)) if (m := re.search(r" \+(\d+)$", text)) else 1 for text, _ in found]
        assert sum(counts) == len(located), (zoom, found)
        for i, (_, a) in enumerate(found):
            for _, b in found[i + 1:]:
                apart = (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                         or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])
                assert apart, (zoom, found)
    if len(located) > 1:
        assert any(" +" in text for text, _ in labels()) or len(labels()) == len(located)
    uma.check("map-labels")


def test_the_forecasts_extent_holds_its_own_gauge(site: Site) -> None:
    collections = {c["id"]: c for c in get(site, "/edr/collections")["collections"]}
    twin = get(site, f"/api/v1/twins/{site.facts['twin']['name']}")
    west, south, east, north = collections[FORECAST]["extent"]["spatial"]["bbox"][0]
    lon, lat = twin["parameters"]["longitude"], twin["parameters"]["latitude"]
    assert west <= lon <= east and south <= lat <= north


def test_a_places_series_is_reached_by_keyboard(portal: Any, site: Site) -> None:
    uma = portal("uma")
    page = uma.goto(f"/ui/map?collection={FORECAST}")
    page.wait_for_selector(DRAWN)
    page.locator(".map-tools select >> nth=0").focus()
    for _ in range(300):  # Tab from the field's controls to the first "Series here" button
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('series-here')"):
            break
    else:
        raise AssertionError("no 'Series here' button on the Tab path")
    label = page.evaluate("() => document.activeElement.getAttribute('aria-label')")
    page.keyboard.press("Enter")
    page.wait_for_selector(".plot-info:has-text('nearest cell')")
    info = uma.text(".plot-info")
    assert re.search(r"rain at [\d.]+°E [\d.]+°N \(nearest cell\): 48 values", info), info
    assert label.startswith("Series here at ")
    uma.check("map-keyboard-series")


def test_the_lake_pages_and_searches_its_identifiers(portal: Any, site: Site) -> None:
    total = get(site, "/api/v1/lake/dids", "admin", limit=1)["total"]
    levels = get(site, "/api/v1/lake/dids", "admin", q="demo-reach-levels", limit=100)
    admin = portal("admin")
    page = admin.goto("/ui/lake")
    rows = page.locator(".did-page tbody tr")
    assert page.get_attribute(".did-page", "data-total") == str(total)
    assert rows.count() == min(25, total)
    if total > 25:
        page.click("text=Next page")
        page.wait_for_selector(".did-page[data-offset='25']")
        assert rows.count() == min(25, total - 25)
        assert f"26\u2013{min(50, total)} of {total}" in admin.text("#lake-found")
    page.fill("#lake-search", "demo-reach-levels")
    page.press("#lake-search", "Enter")
    page.wait_for_selector(f".did-page[data-total='{levels['total']}'][data-offset='0']")
    shown_dids = rows.locator("td:first-child").all_inner_texts()
    assert shown_dids == [d["did"] for d in levels["items"]][:25] and shown_dids
    assert "AVAILABLE" in admin.text(".did-page")
    admin.check("lake-search")
