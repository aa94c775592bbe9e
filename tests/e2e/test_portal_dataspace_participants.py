"""The participant register on the data space page, in a real browser (Debian's chromium through Playwright)
against one engine served over HTTP on loopback: an admin sees the empty register say what an entry is for,
records a participant whose callback is no http(s) URL and is told so beside the callback field, records it
with groups and a callback on its host and sees it listed, then forgets it after confirming; the register
behind the API changes with each step. A plain user is shown no register, and their page asks nothing of it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser import Portal, Site, chromium
from dataspace_fixtures import served_engine

PARTICIPANTS = "/api/v1/dataspace/participants"
SECTION = "section[aria-label='Participants this engine knows']"
FORM = "form[aria-label='Record a participant']"
HYDRO = "did:web:twins.hydro.example"


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Iterator[dict[str, Any]]:
    """One engine: ada is an admin there, eve a user."""
    chromium()
    with served_engine(tmp_path_factory.mktemp("home"), migrated_sqlite) as home:
        ada, eve = home.token("ada", role="admin"), home.token("eve")
        shots = Path(os.environ.get("TWIN_TEST_SHOTS", tmp_path_factory.mktemp("shots")))
        shots.mkdir(parents=True, exist_ok=True)
        site = Site(url=home.url, data_dir=home.runtime.settings.data_dir, tokens={"ada": ada, "eve": eve},
                    facts={}, shots=shots)
        yield {"home": home, "site": site, "ada": ada, "eve": eve}


def _tab(chromium_browser: Any, space: dict[str, Any], who: str) -> Portal:
    tab = Portal(chromium_browser, space["site"], f"dataspace-participants-{who}", width=1366, height=900)
    tab.sign_in(space["site"].tokens[who])
    return tab


def _open(tab: Portal) -> Any:
    tab.page.click("nav a:has-text('Data space')")
    return tab.ready()


def test_an_admin_records_a_participant_and_forgets_it(chromium_browser: Any, space: dict[str, Any]) -> None:
    home, ada = space["home"], space["ada"]
    tab = _tab(chromium_browser, space, "ada")
    try:
        page = _open(tab)
        said = tab.wait_for(SECTION).inner_text()
        assert "No participants yet" in said and "policies are matched against" in said and "proposals" in said

        # a callback that is no http(s) URL: the engine's 422, beside the callback field; nothing recorded
        page.fill("#ds-participant-did", HYDRO)
        page.fill("#ds-participant-groups", "flood-partners, modellers")
        page.fill("#ds-participant-callback", "ftp://x")
        page.click(f"{FORM} button[type=submit]")
        assert "http(s) URL" in tab.wait_for("#ds-participant-callback-error:not(:empty)").inner_text()
        assert page.get_attribute("#ds-participant-callback", "aria-invalid") == "true"
        assert page.inner_text("#ds-participant-did-error") == ""
        assert home.ok("GET", PARTICIPANTS, ada) == []

        # on its host: recorded, and listed with its groups and its callback
        page.fill("#ds-participant-title", "Hydro Institute twins")
        page.fill("#ds-participant-organisation", "Hydro Institute")
        page.fill("#ds-participant-callback", "https://twins.hydro.example/dsp/callback")
        page.click(f"{FORM} button[type=submit]")
        row = tab.wait_for(f"{SECTION} tr:has(td[data-did='{HYDRO}'])").inner_text()
        for words in ("Hydro Institute twins", HYDRO, "Hydro Institute", "flood-partners, modellers",
                      "https://twins.hydro.example/dsp/callback", "by ada"):
            assert words in row, (words, row)
        assert page.get_attribute("#ds-participant-callback", "aria-invalid") is None
        assert page.input_value("#ds-participant-did") == ""  # the form is empty again
        [recorded] = home.ok("GET", PARTICIPANTS, ada)
        assert recorded["did"] == HYDRO and recorded["organisation"] == "Hydro Institute"
        assert recorded["groups"] == ["flood-partners", "modellers"]
        assert recorded["callback"] == "https://twins.hydro.example/dsp/callback"
        tab.check("participants-recorded")

        # Change puts what was recorded back in the form
        page.click(f"button[aria-label='Change {HYDRO}']")
        assert page.input_value("#ds-participant-did") == HYDRO
        assert page.input_value("#ds-participant-groups") == "flood-partners, modellers"

        # forgetting asks first; keeping it changes nothing, confirming forgets it
        page.click(f"button[aria-label='Forget {HYDRO}']")
        page.click(f"button[aria-label='Keep it: Forget {HYDRO}']")
        tab.wait_for(f"button[aria-label='Forget {HYDRO}']")
        assert len(home.ok("GET", PARTICIPANTS, ada)) == 1
        page.click(f"button[aria-label='Forget {HYDRO}']")
        assert "Forget it?" in tab.text(f"{SECTION} td:has(button[aria-label='Yes: Forget {HYDRO}'])")
        page.click(f"button[aria-label='Yes: Forget {HYDRO}']")
        tab.wait_for(f"{SECTION} td.muted:has-text('No participants yet')")
        assert page.locator(f"{SECTION} td[data-did='{HYDRO}']").count() == 0
        assert home.ok("GET", PARTICIPANTS, ada) == []
        tab.check("participants-forgotten")
    finally:
        tab.close()


def test_a_user_sees_no_register(chromium_browser: Any, space: dict[str, Any]) -> None:
    tab = _tab(chromium_browser, space, "eve")
    asked: list[str] = []
    failed: list[str] = []
    tab.page.on("request", lambda r: asked.append(r.url) if PARTICIPANTS in r.url else None)
    tab.page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    try:
        page = _open(tab)
        tab.wait_for("section[aria-label='Another participant\\'s catalog']")
        assert page.locator(SECTION).count() == 0
        assert page.locator("#ds-participant-did").count() == 0
        assert asked == [] and failed == []
        tab.check("participants-none")
    finally:
        tab.close()
    assert space["home"].api("GET", PARTICIPANTS, space["eve"]).status_code == 403
