"""The data space page in a real browser (Debian's chromium through Playwright) against two engines served over
HTTP on loopback, each with its own store and lake: a data steward (a user, not an admin) of the first sees
their offer with its terms in words and the agreement another engine made under it, reads the other engine's
catalog, negotiates for one of its offers from the page and follows the negotiation and the transfer until the
data has landed with its SHA-256 verified, revokes the agreement under their offer and sees it revoked, and finds
the landed copy on the lake page with its terms and its uses; another
user of the same engine sees none of it; errors land beside the field they name, a refusal with its reason; the
page fits a phone's screen."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from browser import Portal, Site, chromium, wider_than_the_screen
from dataspace_fixtures import Participant, served_engine, wait_state

LEVELS = b"time,level\n" + b"".join(f"2026-03-01T{h:02d}:00:00Z,{1 + h * 0.05:.2f}\n".encode() for h in range(24))
RAIN = b"time,rain\n" + b"".join(f"2026-03-01T{h:02d}:00:00Z,{h * 0.1:.1f}\n".encode() for h in range(24))
UNTIL = (datetime.now(UTC) + timedelta(days=400)).replace(hour=0, minute=0, second=0, microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _dataset(engine: Participant, token: str, did: str, files: dict[str, bytes]) -> dict[str, str]:
    """A lake dataset made and filled by the holder of ``token`` (so it is theirs to offer)."""
    engine.ok("POST", "/api/v1/lake/dids", token, json={"did": did, "type": "dataset"}, expect=201)
    for name, data in files.items():
        engine.ok("POST", "/api/v1/lake/uploads", token, params={"did": f"{did}/{name}", "endpoint": "site",
                                                                 "dataset": did}, content=data, expect=201)
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Iterator[dict[str, Any]]:
    """``home``: dora's engine (she offers a gauge history; eve is another user there); ``peer``: bob's (he
    offers catchment rain, and his engine has an agreement under dora's offer)."""
    chromium()
    with served_engine(tmp_path_factory.mktemp("home"), migrated_sqlite) as home, \
            served_engine(tmp_path_factory.mktemp("peer"), migrated_sqlite) as peer:
        dora, eve, bob = home.token("dora"), home.token("eve"), peer.token("bob")
        _dataset(home, dora, "reach:gauge-history", {"levels.csv": LEVELS})
        mine = home.ok("POST", "/api/v1/dataspace/offers", dora, expect=201, json={
            "did": "reach:gauge-history", "title": "River-reach gauge history", "terms": {
                "until": _iso(UNTIL), "count": 3, "purposes": ["flood-research"], "attribution": True}})
        # and the history of her twin's gauge stream, offered as such
        from helpers import RIVER_REACH
        from twinengine.client import Client

        with Client(home.url, home.admin) as admin, Client(home.url, dora) as her:
            admin.publish_app(RIVER_REACH)
            her.create_twin("river-reach", "dora-reach", {"station": "RR-07"})
            her.dataspace.offer_stream("dora-reach", "gauges", "Gauge RR-07 as it streams", purposes=["flood-research"])
            her.dataspace.offer_stream("dora-reach", "gauges", "Gauge RR-07 live", live=True)
            her.dataspace.offer_stream("dora-reach", "gauges", "Gauge RR-07 good readings", key="RR-07",
                                       quality=["good"])
            her.dataspace.offer_stream("dora-reach", "gauges", "Gauge RR-07 one morning", delete_after=30, window=(
                datetime(2026, 3, 1, 6, tzinfo=UTC), datetime(2026, 3, 1, 12, tzinfo=UTC)))
        sums = _dataset(peer, bob, "hydro:rain-2026", {"rain.csv": RAIN})
        theirs = peer.ok("POST", "/api/v1/dataspace/offers", bob, expect=201, json={
            "did": "hydro:rain-2026", "title": "Catchment rain 2026", "description": "Hourly rain over the catchment",
            "terms": {"purposes": ["flood-forecasting"]}})
        # bob's engine negotiates for dora's offer: an agreement she provides
        started = peer.ok("POST", "/api/v1/dataspace/negotiations", bob, expect=201, json={
            "url": home.url, "dataset": mine["dataset_id"], "purpose": "flood-research"})
        agreed = wait_state(peer, "negotiations", started["id"], "FINALIZED", bob)
        wait_state(home, "negotiations", next(n["id"] for n in home.ok("GET", "/api/v1/dataspace/negotiations", dora)
                                              if n["consumer_pid"] == agreed["consumer_pid"]), "FINALIZED", dora)
        # and for her offer she agrees to by hand, bob's request waits for her (the steward) on the page
        by_hand = home.ok("POST", "/api/v1/dataspace/offers", dora, expect=201, json={
            "did": "reach:gauge-history", "title": "Gauge history, by hand", "terms": {"count": 10},
            "manual": True})
        bargain = peer.ok("POST", "/api/v1/dataspace/negotiations", bob, expect=201, json={
            "url": home.url, "dataset": by_hand["dataset_id"]})
        shots = Path(os.environ.get("TWIN_TEST_SHOTS", tmp_path_factory.mktemp("shots")))
        shots.mkdir(parents=True, exist_ok=True)
        site = Site(url=home.url, data_dir=home.runtime.settings.data_dir, tokens={"dora": dora, "eve": eve},
                    facts={}, shots=shots)
        yield {"home": home, "peer": peer, "site": site, "mine": mine, "theirs": theirs, "sums": sums,
               "agreement": agreed["agreement_id"], "dora": dora, "eve": eve, "bob": bob, "bargain": bargain}


def _tab(chromium_browser: Any, space: dict[str, Any], who: str) -> Portal:
    tab = Portal(chromium_browser, space["site"], f"dataspace-{who}", width=1366, height=900)
    tab.sign_in(space["site"].tokens[who])
    return tab


def _row(text: str, *words: str) -> str:
    """The one line of a section's text that holds every word."""
    lines = [line for line in text.splitlines() if all(w in line for w in words)]
    assert len(lines) == 1, (words, text)
    return lines[0]


def test_a_steward_offers_negotiates_sees_the_checksum_and_revokes(chromium_browser: Any,
                                                                    space: dict[str, Any]) -> None:
    home, peer = space["home"], space["peer"]
    tab = _tab(chromium_browser, space, "dora")
    try:
        page: Any = tab.page
        page.click("nav a:has-text('Data space')")
        tab.ready()
        assert page.locator("h1").inner_text() == "Data space"
        assert home.did in tab.text("main > .page > p")

        offers = tab.text("section[aria-label='Your offers']")
        row = _row(offers, "River-reach gauge history")
        assert (f"until {UNTIL.date().isoformat()}, 3 transfers and 3 uses of the copy, purpose: flood-research, "
                "with attribution") in row
        assert "reach:gauge-history" in row and "offered" in row
        assert "leftOperand" not in offers and "lteq" not in offers  # words, never ODRL
        row = _row(offers, "Gauge RR-07 as it streams")
        assert "history of stream gauges of twin dora-reach (as it stands when each transfer starts)" in row
        row = _row(offers, "Gauge RR-07 one morning")  # a window, and a duty the consumer's engine carries out
        assert "twin dora-reach from 2026-03-01T06:00:00Z until 2026-03-01T12:00:00Z" in row
        assert "the copy deleted by 30 days after the agreement" in row, row
        row = _row(offers, "Gauge RR-07 good readings")  # one source's readings of a quality, in words
        assert "stream gauges of twin dora-reach of station RR-07 flagged good" in row, row
        row = _row(offers, "Gauge RR-07 live")
        assert "stream gauges of twin dora-reach live (pushed as it grows, until the transfer ends)" in row

        agreements = tab.text("section[aria-label='Agreements']")
        row = _row(agreements, peer.did)
        assert "River-reach gauge history" in row and "you provide" in row and "in force" in row
        assert "flood-research" in row
        tab.check("dataspace-offers")

        # the participants dora dealt with are suggested: bob's engine, which agreed under her offer
        assert page.eval_on_selector_all("#ds-peers option", "els => els.map(e => e.value)") == [peer.url]

        # an error names its field, beside it
        page.fill("#ds-url", "ftp://example.org")
        page.click("form[aria-label='Look at a catalog'] button[type=submit]")
        page.wait_for_selector("#ds-url-error:has-text('http(s) URL')")
        assert page.get_attribute("#ds-url", "aria-invalid") == "true"

        # the peer's catalog, as this engine is shown it
        page.fill("#ds-url", peer.url)
        page.click("form[aria-label='Look at a catalog'] button[type=submit]")
        offer = page.wait_for_selector("article[aria-label='Catchment rain 2026']")
        said = offer.inner_text()
        assert "Hourly rain over the catchment" in said and "Terms: purpose: flood-forecasting" in said
        assert space["theirs"]["dataset_id"] in said
        assert page.input_value("#ds-purpose-0-0") == "flood-forecasting"  # the offer's purpose, suggested
        assert f"url={peer.url}" in page.url.replace("%3A", ":").replace("%2F", "/")

        page.fill("#ds-land-0-0", "no scope here")
        page.click("article[aria-label='Catchment rain 2026'] button[type=submit]")
        page.wait_for_selector("#ds-land-0-0-error:not(:empty)")
        assert page.get_attribute("#ds-land-0-0", "aria-invalid") == "true"

        # a purpose the offer does not permit: the provider refuses, and the page says why
        page.fill("#ds-purpose-0-0", "marketing")
        page.fill("#ds-land-0-0", "remote:never")
        page.click("article[aria-label='Catchment rain 2026'] button[type=submit]")
        page.wait_for_selector("article[aria-label='Catchment rain 2026'] .ds-progress li:has-text('No agreement')",
                               timeout=120_000)
        refused = page.inner_text("article[aria-label='Catchment rain 2026'] .ds-progress")
        assert "TERMINATED" in refused and "purpose" in refused and "flood-forecasting" in refused, refused
        assert home.api("GET", "/api/v1/lake/dids/remote:never", space["dora"]).status_code == 404

        page.fill("#ds-purpose-0-0", "flood-forecasting")
        page.fill("#ds-land-0-0", "remote:catchment-rain")
        page.click("article[aria-label='Catchment rain 2026'] button[type=submit]")
        done = page.wait_for_selector(".ds-done", timeout=120_000)
        sha = space["sums"]["rain.csv"]
        assert done.inner_text() == (f"Landed as remote:catchment-rain: 1 file, {len(RAIN):,} bytes; "
                                     f"SHA-256 verified: rain.csv {sha}")
        progress = page.inner_text("article[aria-label='Catchment rain 2026'] .ds-progress")
        assert "FINALIZED" in progress and "COMPLETED" in progress
        # the tables follow: the transfer with its checksum, the agreement this person holds
        page.wait_for_selector("section[aria-label='Transfers'] td:has-text('SHA-256 verified')")
        transfers = tab.text("section[aria-label='Transfers']")
        row = _row(transfers, "you receive")
        assert "COMPLETED" in row and "rain.csv" in row and sha[:12] in row and "remote:catchment-rain" in row
        assert "pulled by the consumer" in row
        assert f"{len(RAIN):,} bytes" in row
        landed = home.api("GET", "/api/v1/lake/dids/remote:catchment-rain/rain.csv/content", space["dora"])
        assert hashlib.sha256(landed.content).hexdigest() == sha
        row = _row(tab.text("section[aria-label='Agreements']"), "you receive")
        assert peer.did in row and "flood-forecasting" in row and "in force" in row
        assert "landed as remote:catchment-rain" in row
        row = _row(tab.text("section[aria-label='Negotiations']"), "marketing")
        assert "TERMINATED" in row and "purpose" in row and "landed as" not in row
        assert "Revoke" not in row  # only the provider revokes
        tab.check("dataspace-transferred")

        # revoke the agreement under dora's offer: its state changes on the page and in the engine
        revoke = f"Revoke the agreement with {peer.did} on River-reach gauge history"
        page.click(f"button[aria-label='{revoke}']")  # asks first; "Keep it" changes nothing
        assert "stop working at once" in tab.text(f".ask-first:has(button[aria-label='Yes: {revoke}'])")
        page.click(f"button[aria-label='Keep it: {revoke}']")
        page.click(f"button[aria-label='{revoke}']")
        assert home.ok("GET", f"/api/v1/dataspace/agreements/{space['agreement']}", space["dora"])["revoked_at"] is None
        page.click(f"button[aria-label='Yes: {revoke}']")
        page.wait_for_selector(f"section[aria-label='Agreements'] td[data-agreement='{space['agreement']}']"
                               ":has-text('revoked')")
        row = _row(tab.text("section[aria-label='Agreements']"), "you provide")
        assert "revoked" in row and "by dora" in row and "in force" not in row
        held = home.ok("GET", f"/api/v1/dataspace/agreements/{space['agreement']}", space["dora"])
        assert held["revoked_by"] == "dora" and held["revoked_at"]
        assert page.locator(f"button[aria-label='Revoke the agreement with {peer.did} on River-reach gauge history']"
                            ).count() == 0
        tab.check("dataspace-revoked")

        # the landed copy on the lake page: its terms as its holder reads them, the download above its one use
        page.click("nav a:has-text('Data lake')")
        tab.ready()
        page.fill("#lake-search", "catchment-rain")
        page.press("#lake-search", "Enter")
        cell = page.wait_for_selector("tr:has-text('remote:catchment-rain/rain.csv') .copy-terms")
        said = cell.inner_text()
        assert f"copy of {peer.did}'s data, agreement " in said and "1 use here" in said and "usable" in said, said
        assert "copy's terms" in tab.text("section[aria-label='Files, datasets and their replicas'] thead")
        assert page.locator(".copy-terms").count() == 2  # the file and the dataset it landed in
        tab.check("lake-copy-terms")
    finally:
        tab.close()


def test_another_user_sees_none_of_it(chromium_browser: Any, space: dict[str, Any]) -> None:
    tab = _tab(chromium_browser, space, "eve")
    try:
        tab.goto("/ui/dataspace")
        text = tab.text()
        assert "You offer nothing yet" in tab.text("section[aria-label='Your offers']")
        assert "No agreements yet." in tab.text("section[aria-label='Agreements']")
        assert "No transfers yet." in tab.text("section[aria-label='Transfers']")
        assert "No negotiations yet." in tab.text("section[aria-label='Negotiations']")
        for theirs in ("River-reach gauge history", "reach:gauge-history", "catchment-rain", space["peer"].did,
                       space["agreement"], "Gauge RR-07", "dora-reach"):
            assert theirs not in text
        assert tab.page.locator("button:has-text('Revoke')").count() == 0
        tab.check("dataspace-another-user")
        # nor through the API the page calls
        eve = space["eve"]
        assert space["home"].api("POST", f"/api/v1/dataspace/agreements/{space['agreement']}/revoke",
                                 eve).status_code == 404
    finally:
        tab.close()


def test_the_page_fits_a_phone(chromium_browser: Any, space: dict[str, Any]) -> None:
    tab = Portal(chromium_browser, space["site"], "dataspace-phone", width=390, height=844)
    try:
        tab.sign_in(space["dora"])
        page: Any = tab.goto(f"/ui/dataspace?url={space['peer'].url}")  # the catalog opens from the address
        page.wait_for_selector("article[aria-label='Catchment rain 2026']")
        wide = wider_than_the_screen(page)
        assert wide == [], f"wider than the screen: {wide}"
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page scrolls sideways by {overflow}px"
        tab.check("dataspace-phone")
    finally:
        tab.close()


def test_a_steward_counters_a_request_and_agrees_from_the_page(chromium_browser: Any, space: dict[str, Any]) -> None:
    """Bob asked for 10 transfers under dora's offer she agrees to by hand; on the page she sees his request
    with its terms, counters with 3 until the end of 2099 (a blank counter-offer and a count of 0 are refused beside
    their field),
    and once his engine accepted, agrees and finalizes: the agreement she provides holds 3."""
    home, peer = space["home"], space["peer"]
    pid = wait_state(peer, "negotiations", space["bargain"]["id"], "REQUESTED", space["bob"])["consumer_pid"]
    ours = next(n for n in home.ok("GET", "/api/v1/dataspace/negotiations", space["dora"]) if n["consumer_pid"] == pid)
    tab = _tab(chromium_browser, space, "dora")

    def row_when(state: str) -> str:
        """The negotiation's row once it is in ``state`` (the page read again until then)."""
        for _ in range(120):
            tab.goto("/ui/dataspace")
            rows = [line for line in tab.text("section[aria-label='Negotiations']").splitlines()
                    if line.startswith(f"{ours['id']}\t") or line.startswith(f"{ours['id']} ")]
            if rows and state in rows[0]:
                return rows[0]
            tab.page.wait_for_timeout(500)
        raise AssertionError(f"negotiation {ours['id']} did not reach {state}")

    try:
        row = row_when("REQUESTED")
        assert "10 transfers and 10 uses of the copy (asked by them)" in row, row
        tab.page.click(f"button[aria-label='Counter-offer on negotiation {ours['id']}']")
        form = f"form[aria-label='Counter-offer on negotiation {ours['id']}']"
        tab.page.click(f"{form} button[type=submit]")
        tab.wait_for(f"{form} .form-errors:has-text('Give the terms')")
        tab.page.fill(f"#ds-counter-{ours['id']}-count", "0")
        tab.page.click(f"{form} button[type=submit]")
        tab.wait_for(f"#ds-counter-{ours['id']}-count-error:not(:empty)")
        assert tab.page.get_attribute(f"#ds-counter-{ours['id']}-count", "aria-invalid") == "true"
        tab.check("dataspace-counter-offer")
        tab.page.fill(f"#ds-counter-{ours['id']}-count", "3")
        tab.page.fill(f"#ds-counter-{ours['id']}-until", "2099-12-31")
        tab.page.click(f"{form} button[type=submit]")
        row = row_when("OFFERED")
        assert "3 transfers and 3 uses of the copy" in row and "(offered by you)" in row, row
        assert "2099-12-31" in row, row  # the last day, in the offer's words

        offered = wait_state(peer, "negotiations", space["bargain"]["id"], "OFFERED", space["bob"])
        assert "3" in str(offered["offer"]["permission"])  # bob's engine holds her counter-offer
        peer.ok("POST", f"/api/v1/dataspace/negotiations/{space['bargain']['id']}/accept", space["bob"])
        row_when("ACCEPTED")
        tab.page.click(f"button[aria-label='Agree on negotiation {ours['id']}']")
        row_when("VERIFIED")
        tab.page.click(f"button[aria-label='Finalize on negotiation {ours['id']}']")
        row = row_when("FINALIZED")
        assert "Terminate" not in row  # nothing left to do
        agreement = wait_state(peer, "negotiations", space["bargain"]["id"], "FINALIZED", space["bob"])["agreement_id"]
        held = _row(tab.text("section[aria-label='Agreements']"), "Gauge history, by hand")
        assert "3 transfers and 3 uses of the copy" in held and "you provide" in held and "2099-12-31" in held, held
        assert "10 transfers" not in held
        provided = home.ok("GET", f"/api/v1/dataspace/agreements/{agreement}", space["dora"])
        assert provided["offer_id"] == ours["offer_id"]
        tab.check("dataspace-countered")

        # bob asks for a transfer under it: it waits for her, and she starts it from the page
        asked = peer.ok("POST", "/api/v1/dataspace/transfers", space["bob"], expect=201, json={
            "agreement": agreement, "did": "remote:by-hand", "land_data": True})
        pid = wait_state(peer, "transfers", asked["id"], "REQUESTED", space["bob"])["consumer_pid"]
        theirs = next(t for t in home.ok("GET", "/api/v1/dataspace/transfers", space["dora"])
                      if t["consumer_pid"] == pid)
        tab.goto("/ui/dataspace")
        tab.page.click(f"button[aria-label='Start transfer {theirs['id']}']")
        landed = wait_state(peer, "transfers", asked["id"], "COMPLETED", space["bob"])
        assert [f["name"] for f in landed["files"]] == ["levels.csv"]
        tab.goto("/ui/dataspace")
        row = _row(tab.text("section[aria-label='Transfers']"), "you provide", "COMPLETED")
        assert "Start" not in row and "Terminate" not in row
    finally:
        tab.close()


def test_terminating_asks_first(chromium_browser: Any, space: dict[str, Any]) -> None:
    """Under an offer dora agrees to by hand, bob's engine asks twice: one negotiation waits for her, the other she
    agrees to, and a transfer under it waits for her to start it. Terminate on each asks first, saying what it
    means: the first click and "Keep it" change nothing (on the page or in the engine); "Yes" ends it on both
    engines. Start stays one click."""
    home, peer, dora, bob = space["home"], space["peer"], space["dora"], space["bob"]
    offer = home.ok("POST", "/api/v1/dataspace/offers", dora, expect=201, json={
        "did": "reach:gauge-history", "title": "Gauge history, to end", "terms": {"count": 5}, "manual": True})

    def request() -> tuple[int, dict[str, Any]]:
        """bob's engine asks for the offer: its negotiation's id there, and dora's side of it once it waits."""
        started = peer.ok("POST", "/api/v1/dataspace/negotiations", bob, expect=201, json={
            "url": home.url, "dataset": offer["dataset_id"]})
        pid = wait_state(peer, "negotiations", started["id"], "REQUESTED", bob)["consumer_pid"]
        return started["id"], next(n for n in home.ok("GET", "/api/v1/dataspace/negotiations", dora)
                                   if n["consumer_pid"] == pid)

    (theirs, ends), (_, kept) = request(), request()
    home.ok("POST", f"/api/v1/dataspace/negotiations/{kept['id']}/agree", dora)
    wait_state(home, "negotiations", kept["id"], "VERIFIED", dora)
    home.ok("POST", f"/api/v1/dataspace/negotiations/{kept['id']}/finalize", dora)
    agreement = wait_state(home, "negotiations", kept["id"], "FINALIZED", dora)["agreement_id"]
    asked = peer.ok("POST", "/api/v1/dataspace/transfers", bob, expect=201, json={
        "agreement": agreement, "did": "remote:never-started", "land_data": True})
    pid = wait_state(peer, "transfers", asked["id"], "REQUESTED", bob)["consumer_pid"]
    transfer = next(t for t in home.ok("GET", "/api/v1/dataspace/transfers", dora) if t["consumer_pid"] == pid)

    tab = _tab(chromium_browser, space, "dora")
    sent: list[str] = []
    tab.page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/terminate") else None)
    try:
        page: Any = tab.page
        tab.goto("/ui/dataspace")
        for kind, item, button, words in (
                ("negotiations", ends["id"], f"Terminate on negotiation {ends['id']}", "the other side is told"),
                ("transfers", transfer["id"], f"Terminate transfer {transfer['id']}", "data address stops working")):
            page.click(f"button[aria-label='{button}']")
            question = tab.text(f".ask-first:has(button[aria-label='Yes: {button}'])")
            assert "cannot be undone" in question and words in question, question
            if kind == "transfers":
                tab.check("dataspace-terminate-asks")  # the open question too: its buttons named as they read
            page.wait_for_timeout(500)  # a step sent at the first click would be under way by now
            assert sent == [] and home.ok("GET", f"/api/v1/dataspace/{kind}/{item}", dora)["state"] == "REQUESTED"
            page.click(f"button[aria-label='Keep it: {button}']")
            assert page.locator(f"button[aria-label='Yes: {button}']").count() == 0
            page.wait_for_selector(f"button[aria-label='{button}']")
            if kind == "transfers":  # its other steps act at once
                assert page.locator(f".ask-first button[aria-label='Start transfer {item}']").count() == 0
                tab.check("dataspace-terminate-kept")
            page.click(f"button[aria-label='{button}']")
            page.click(f"button[aria-label='Yes: {button}']")
            wait_state(home, kind, item, "TERMINATED", dora)
            assert len(sent) == 1, sent
            sent.clear()
        wait_state(peer, "negotiations", theirs, "TERMINATED", bob)  # the other side was told
        wait_state(peer, "transfers", asked["id"], "TERMINATED", bob)
        tab.goto("/ui/dataspace")
        for section, item in (("Negotiations", ends["id"]), ("Transfers", transfer["id"])):
            [row] = [line for line in tab.text(f"section[aria-label='{section}']").splitlines()
                     if line.split("\t", 1)[0].strip() == str(item)]
            assert "TERMINATED" in row and "Terminate" not in row, row
    finally:
        tab.close()
