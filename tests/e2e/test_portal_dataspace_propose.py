"""Proposing an offer from the data space page, in a real browser (Debian's chromium through Playwright) against two
engines served over HTTP on loopback: dora, who offers a gauge history on the first, proposes it to bob on the
second from the "Propose to a participant" form; a name that is no user or group and a participant id the engine
at the URL does not have are refused beside their fields; the proposal she started is shown with the address it
went to and is listed among her negotiations with its state, OFFERED, then FINALIZED once bob accepts it on his
engine. The participant ids she dealt with are suggested, and the register is not read for her (she may not read
it). eve, who offers nothing, is shown no form, and the engine refuses her a proposal of dora's offer. An admin is
suggested the register's participants too, labelled as such, and proposes to one never dealt with."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from browser import Portal, Site, chromium
from dataspace_fixtures import served_engine, served_peer, wait_state
from streams_fixtures import eventually
from twinengine.dataspace.protocol import CALLBACK_PATH

LEVELS = b"time,level\n" + b"".join(f"2026-03-01T{h:02d}:00:00Z,{1 + h * 0.05:.2f}\n".encode() for h in range(24))


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Iterator[dict[str, Any]]:
    """``home``: dora's engine (she offers a gauge history; eve is another user there); ``peer``: bob's, which
    negotiated for her offer once (so her engine knows the callback address it gave); ada: an admin of dora's engine."""
    chromium()
    with served_engine(tmp_path_factory.mktemp("home"), migrated_sqlite) as home, \
            served_engine(tmp_path_factory.mktemp("peer"), migrated_sqlite) as peer:
        dora, eve, bob = home.token("dora"), home.token("eve"), peer.token("bob")
        home.ok("POST", "/api/v1/lake/dids", dora, json={"did": "reach:proposed", "type": "dataset"}, expect=201)
        home.ok("POST", "/api/v1/lake/uploads", dora, params={"did": "reach:proposed/levels.csv", "endpoint": "site",
                                                             "dataset": "reach:proposed"}, content=LEVELS,
                expect=201)
        offer = home.ok("POST", "/api/v1/dataspace/offers", dora, expect=201, json={
            "did": "reach:proposed", "title": "Proposed gauge history", "terms": {"count": 3}})
        asked = peer.ok("POST", "/api/v1/dataspace/negotiations", bob, expect=201, json={
            "url": home.url, "dataset": offer["dataset_id"]})
        wait_state(peer, "negotiations", asked["id"], "FINALIZED", bob)
        shots = Path(os.environ.get("TWIN_TEST_SHOTS", tmp_path_factory.mktemp("shots")))
        shots.mkdir(parents=True, exist_ok=True)
        site = Site(url=home.url, data_dir=home.runtime.settings.data_dir, shots=shots, facts={},
                    tokens={"dora": dora, "eve": eve, "ada": home.token("ada", "admin")})
        yield {"home": home, "peer": peer, "site": site, "offer": offer, "dora": dora, "eve": eve, "bob": bob}


def _tab(chromium_browser: Any, space: dict[str, Any], who: str, asked: list[str] | None = None) -> Portal:
    """``who``'s tab on the data space page; ``asked`` collects the paths of the API requests it makes."""
    tab = Portal(chromium_browser, space["site"], f"dataspace-propose-{who}", width=1366, height=900)
    if asked is not None:
        tab.page.on("request", lambda r: asked.append(urlsplit(r.url).path))
    tab.sign_in(space["site"].tokens[who])
    tab.page.click("nav a:has-text('Data space')")
    tab.ready()
    return tab


def _suggested(tab: Portal) -> list[list[str]]:
    """The participant ids the propose form suggests, each with its label."""
    return list(tab.page.eval_on_selector_all("#ds-propose-participants option",
                                              "els => els.map(e => [e.value, e.label])"))


def _negotiation_row(tab: Portal, negotiation_id: int) -> str:
    """The line of the Negotiations table for ``negotiation_id`` (its first cell)."""
    text = tab.text("section[aria-label='Negotiations']")
    lines = [line for line in text.splitlines() if line.split("\t", 1)[0].strip() == str(negotiation_id)]
    assert len(lines) == 1, (negotiation_id, text)
    return lines[0]


def test_a_provider_proposes_from_the_page_and_follows_it(chromium_browser: Any, space: dict[str, Any]) -> None:
    home, peer = space["home"], space["peer"]
    asked: list[str] = []
    tab = _tab(chromium_browser, space, "dora", asked)
    try:
        page: Any = tab.page
        form = "form[aria-label='Propose an offer']"
        tab.wait_for("section[aria-label='Propose to a participant']:not([hidden])")
        options = page.eval_on_selector_all("#ds-propose-offer option", "els => els.map(e => [e.value, e.text])")
        assert options == [[space["offer"]["id"], "Proposed gauge history"]]
        # the participant she dealt with is suggested; the register, which she may not read, is never asked for
        assert _suggested(tab) == [[peer.did, "dealt with"]]
        assert page.get_attribute("#ds-propose-participant", "list") == "ds-propose-participants"
        assert "/api/v1/dataspace/offers" in asked  # the listener saw the page's requests
        assert not [a for a in asked if "/dataspace/participants" in a], asked

        # nobody named: the field says so, before anything is sent
        page.click(f"{form} button[type=submit]")
        tab.wait_for("#ds-propose-url-error:has-text('participant id')")

        # a name that is no user or group:NAME: the engine's 422, beside the field it names
        page.fill("#ds-propose-url", peer.url)
        page.fill("#ds-propose-addressee", "bob smith!")
        page.click(f"{form} button[type=submit]")
        tab.wait_for("#ds-propose-addressee-error:not(:empty)")
        assert page.get_attribute("#ds-propose-addressee", "aria-invalid") == "true"
        assert page.inner_text("#ds-propose-url-error") == ""

        # a participant id the engine at that URL does not have
        page.fill("#ds-propose-addressee", "bob")
        page.fill("#ds-propose-participant", "did:web:elsewhere.example")
        page.click(f"{form} button[type=submit]")
        said = tab.wait_for("#ds-propose-participant-error:has-text('not did:web:elsewhere.example')").inner_text()
        assert peer.did in said
        assert page.get_attribute("#ds-propose-participant", "aria-invalid") == "true"
        assert page.get_attribute("#ds-propose-addressee", "aria-invalid") is None
        assert not [n for n in home.ok("GET", "/api/v1/dataspace/negotiations", space["dora"])
                    if n["addressee"] is not None]  # nothing was proposed

        # the right one: the negotiation it started, where it went, and its state as bob's engine answers
        page.fill("#ds-propose-participant", peer.did)
        page.click(f"{form} button[type=submit]")
        tab.wait_for(f"{form} .ds-progress li[data-step=Negotiation]:has-text('OFFERED')")
        [ours] = [n for n in home.ok("GET", "/api/v1/dataspace/negotiations", space["dora"])
                  if n["addressee"] == "bob"]
        progress = tab.text(f"{form} .ds-progress")
        assert f"Negotiation {ours['id']} with {peer.did}: OFFERED" in progress, progress
        assert f"Sent to {peer.url}{CALLBACK_PATH}: the callback address it gave in its own requests" in progress
        assert "For bob on their engine." in progress
        assert page.get_attribute("#ds-propose-participant", "aria-invalid") is None
        page.wait_for_function(
            """(id) => [...document.querySelectorAll("section[aria-label='Negotiations'] tr")]
                 .some(tr => tr.cells[0] && tr.cells[0].innerText.trim() === String(id)
                       && tr.innerText.includes('OFFERED'))""", arg=ours["id"], timeout=30_000)
        row = _negotiation_row(tab, ours["id"])
        assert peer.did in row and "you provide" in row and "Proposed gauge history" in row and "OFFERED" in row
        assert "offered by you" in row
        tab.check("dataspace-proposed")

        # bob takes it up on his engine: the page follows it to its agreement
        bob = space["bob"]
        [theirs] = [n for n in peer.ok("GET", "/api/v1/dataspace/negotiations?role=consumer", bob)
                    if n["provider_pid"] == ours["provider_pid"]]
        peer.ok("POST", f"/api/v1/dataspace/negotiations/{theirs['id']}/accept", bob)
        tab.wait_for(f"{form} .ds-progress li.ds-done:has-text('is final')", timeout=60_000)
        final = wait_state(home, "negotiations", ours["id"], "FINALIZED", space["dora"])
        assert final["agreement_id"] in tab.text(f"{form} .ds-progress")
        page.wait_for_function(
            """(id) => [...document.querySelectorAll("section[aria-label='Negotiations'] tr")]
                 .some(tr => tr.cells[0] && tr.cells[0].innerText.trim() === String(id)
                       && tr.innerText.includes('FINALIZED'))""", arg=ours["id"], timeout=30_000)
        assert "FINALIZED" in _negotiation_row(tab, ours["id"])
        tab.check("dataspace-proposal-final")
    finally:
        tab.close()


def test_someone_without_the_offer_gets_no_form_and_is_refused(chromium_browser: Any,
                                                               space: dict[str, Any]) -> None:
    home, peer = space["home"], space["peer"]
    tab = _tab(chromium_browser, space, "eve")
    try:
        page: Any = tab.page
        assert "You offer nothing yet" in tab.text("section[aria-label='Your offers']")
        assert page.locator("section[aria-label='Propose to a participant']").is_hidden()
        assert page.locator("#ds-propose-url").is_hidden()
        tab.check("dataspace-propose-none")
    finally:
        tab.close()
    refused = home.api("POST", f"/api/v1/dataspace/offers/{space['offer']['id']}/propose", space["eve"],
                       json={"url": peer.url, "addressee": "bob"})
    assert refused.status_code == 404, refused.text


def test_an_admin_is_suggested_the_register_and_proposes_to_it(chromium_browser: Any,
                                                               space: dict[str, Any]) -> None:
    """ada (an admin) offers a gauge history of hers; the register records bob's engine (dealt with) and a
    participant of the tests' own nobody here dealt with, with its callback address: the form suggests both, each
    labelled as what it is, and choosing the one never dealt with proposes to it, at the address recorded."""
    home, peer = space["home"], space["peer"]
    ada = space["site"].tokens["ada"]
    home.ok("POST", "/api/v1/lake/dids", ada, json={"did": "reach:ada", "type": "dataset"}, expect=201)
    home.ok("POST", "/api/v1/lake/uploads", ada, params={"did": "reach:ada/levels.csv", "endpoint": "site",
                                                         "dataset": "reach:ada"}, content=LEVELS, expect=201)
    offer = home.ok("POST", "/api/v1/dataspace/offers", ada, expect=201, json={
        "did": "reach:ada", "title": "Ada's gauge history", "terms": {"count": 3}})
    with served_peer() as stranger:
        home.ok("PUT", "/api/v1/dataspace/participants", ada, json={
            "did": stranger.did, "title": "Upstream water board", "callback": stranger.callback})
        home.ok("PUT", "/api/v1/dataspace/participants", ada, json={"did": peer.did, "title": "Bob's engine"})
        seen = home.ok("GET", "/api/v1/dataspace/negotiations", ada)
        assert stranger.did not in {n["peer"] for n in seen} and peer.did in {n["peer"] for n in seen}
        tab = _tab(chromium_browser, space, "ada")
        try:
            page: Any = tab.page
            tab.wait_for("section[aria-label='Propose to a participant']:not([hidden])")
            offered = _suggested(tab)
            assert [peer.did, "dealt with; in the register: Bob's engine"] in offered, offered
            assert [stranger.did, "in the register: Upstream water board"] in offered, offered
            assert "and the register's" in tab.text("#ds-propose-participant-hint")
            tab.check("dataspace-propose-register")

            # one recorded further down the page is suggested at once, and one forgotten no longer is
            page.fill("#ds-participant-did", "did:web:dam.operator.example")
            page.fill("#ds-participant-title", "Dam operator")
            page.click("form[aria-label='Record a participant'] button[type=submit]")
            eventually(lambda: ["did:web:dam.operator.example", "in the register: Dam operator"] in _suggested(tab))
            page.click("button[aria-label='Forget did:web:dam.operator.example']")
            page.click("button[aria-label='Yes: Forget did:web:dam.operator.example']")
            eventually(lambda: "did:web:dam.operator.example" not in {did for did, _ in _suggested(tab)})

            # choosing the one nobody here dealt with: the proposal goes to the callback address recorded
            page.select_option("#ds-propose-offer", offer["id"])
            page.fill("#ds-propose-participant", stranger.did)
            page.click("form[aria-label='Propose an offer'] button[type=submit]")
            tab.wait_for(f"form[aria-label='Propose an offer'] .ds-progress li[data-step=Negotiation]"
                         f":has-text('{stranger.did}')")
            [ours] = [n for n in home.ok("GET", "/api/v1/dataspace/negotiations", ada)
                      if n["peer"] == stranger.did]
            assert ours["offer_id"] == offer["id"] and ours["callback_source"] == "configured"
            assert ours["callback"] == stranger.callback
            sent = eventually(lambda: stranger.messages("ContractOfferMessage"))
            assert [m["offer"]["assignee"] for m in sent] == [stranger.did]
            assert "the callback address this engine's participant register records for it" in \
                tab.text("form[aria-label='Propose an offer'] .ds-progress")
        finally:
            tab.close()
