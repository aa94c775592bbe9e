"""The portal never cuts a table at its card's edge, in a real browser (Debian's chromium through Playwright)
against ``twin serve`` over the demo's data: on a laptop a card's table shows every column (the live tail's
quality, a grant's Revoke button, the alert state's time), and on a phone a table wider than the screen scrolls
in its own box while its card stays put."""

from __future__ import annotations

from typing import Any

import pytest

from browser import Site

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]

# Each card's table: its right edge against its card's content box, and who scrolls sideways (its box, its card).
TABLES = """() => [...document.querySelectorAll('main .card table')].map((table) => {
  const card = table.closest('.card');
  const box = table.closest('.scroll');
  const style = getComputedStyle(card);
  const inside = card.getBoundingClientRect().right - parseFloat(style.borderRightWidth)
    - parseFloat(style.paddingRight);
  return { card: card.getAttribute('aria-label') || card.className, right: table.getBoundingClientRect().right, inside,
           cardScrolls: card.scrollWidth > card.clientWidth + 1,
           boxScrolls: box !== null && card.contains(box) && box.scrollWidth > box.clientWidth + 1 };
})"""


def pages(site: Site) -> dict[str, str]:
    """The streams page of the live stream's twin, and the twin page and app view whose cards hold tables."""
    twin = site.facts["twin"]["name"]
    return {"streams": f"/ui/twins/{site.facts['streams']['twin']}/streams", "twin": f"/ui/twins/{twin}",
            "view": f"/ui/twins/{twin}/views/flood"}


def card_tables(tab: Any, path: str) -> list[dict[str, Any]]:
    page = tab.goto(path)
    if path.endswith("/streams"):
        page.wait_for_selector("table.tail tbody tr[data-offset]")
    page.wait_for_timeout(300)  # plots and maps take their width after the page is ready
    tables: list[dict[str, Any]] = page.evaluate(TABLES)
    assert tables, f"{path}: no table in a card"
    return tables


@pytest.mark.parametrize("name", ["streams", "twin", "view"])
def test_on_a_laptop_every_card_shows_its_tables_whole(portal: Any, site: Site, name: str) -> None:
    uma = portal("uma", width=1280, height=900)
    path = pages(site)[name]
    cut = [t for t in card_tables(uma, path) if t["right"] > t["inside"] + 1 or t["boxScrolls"] or t["cardScrolls"]]
    assert cut == [], f"{path} at 1280 px: tables cut at their card's edge: {cut}"
    if name == "streams":
        assert uma.page.locator("table.tail th", has_text="quality").is_visible()
        uma.check("tables-laptop-streams")


def test_on_a_phone_a_wide_table_scrolls_in_its_box_never_its_card(portal: Any, site: Site) -> None:
    uma = portal("uma", width=390, height=844)
    path = pages(site)["streams"]
    tables = card_tables(uma, path)
    assert [t for t in tables if t["cardScrolls"]] == [], f"{path} at 390 px: a card scrolls sideways"
    loose = [t for t in tables if t["right"] > t["inside"] + 1 and not t["boxScrolls"]]
    assert loose == [], f"{path} at 390 px: tables past their card's edge without a box that scrolls: {loose}"
    assert any(t["boxScrolls"] for t in tables), "the live tail's records are wider than a phone: their box scrolls"
