"""The subscriptions page in a real browser (Debian's chromium through Playwright) against a real ``twin serve``
that sends e-mail to an SMTP server on loopback: subscribe with a form built from the twin's properties, see
the error beside the field it names, read the delivery the page lists and the e-mail that arrived, delete."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser import Portal, Site, chromium, sign_token
from helpers import MINIMAL_STATE, admin_token, free_port, make_app, serve_engine
from streams_fixtures import eventually
from subscription_fixtures import Mailbox, smtp_server
from twinengine.client import Client
from twinengine.config import Settings

pytestmark = pytest.mark.sandbox  # the served engine runs the apps' code only sandboxed

STATE = {**MINIMAL_STATE, "alert": {"type": "boolean"}, "probability": {"type": "number"},
         "alert_threshold": {"type": "number", "desired_only": True}}  # a setting: never offered, never fires


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def small_site(tmp_path: Path, mailbox: Mailbox) -> Iterator[Site]:
    chromium()
    data_dir = tmp_path / "data"
    port = free_port()
    env = {"TWIN_SMTP_HOST": "127.0.0.1", "TWIN_SMTP_PORT": str(mailbox.port), "TWIN_SMTP_SECURITY": "none",
           "TWIN_SUBSCRIPTION_POLL": "1s"}
    with serve_engine(data_dir, port, start_timeout=120, **env):
        url = f"http://127.0.0.1:{port}"
        with Client(url, admin_token(Settings(data_dir=data_dir))) as admin:
            dev = admin.create_token("ada", "developer").token
        Client(url, dev).publish_app(make_app(tmp_path, name="alerting", manifest={"state": STATE}))
        tokens = {"uma": sign_token(data_dir, "uma", "user")}
        with Client(url, tokens["uma"]) as uma:
            uma.create_twin("alerting@1.0.0", "gauge-1", {"station": "RR-01"})
            uma.report("gauge-1", alert=False)
        shots = Path(os.environ.get("TWIN_TEST_SHOTS", tmp_path / "shots"))
        shots.mkdir(parents=True, exist_ok=True)
        yield Site(url=url, data_dir=data_dir, tokens=tokens, facts={}, shots=shots)


@pytest.fixture
def tab(small_site: Site, chromium_browser: Any) -> Iterator[Portal]:
    portal = Portal(chromium_browser, small_site, "subscriptions")
    try:
        portal.sign_in(small_site.tokens["uma"])
        yield portal
    finally:
        portal.close()


def test_subscribe_see_the_delivery_and_delete_in_the_portal(tab: Portal, small_site: Site,
                                                             mailbox: Mailbox) -> None:
    page: Any = tab.goto("/ui/subscriptions?twin=gauge-1")
    assert "No subscriptions yet" in tab.text()
    tab.check("subscriptions-empty")

    offered = "els => els.map(e => e.value)"
    assert "alert_threshold" not in page.eval_on_selector_all("#sub-prop option", offered)  # desired only
    page.select_option("#sub-kind", ">")  # a threshold offers the numeric properties the twin reports only
    assert page.eval_on_selector_all("#sub-prop option", offered) == ["level", "count", "probability"]
    page.select_option("#sub-prop", "probability")
    page.select_option("#sub-channel", "webhook")
    page.fill("#sub-target", "file:///etc/passwd")
    page.click("form button[type=submit]")
    page.wait_for_selector("#sub-target-error:has-text('only http and https')")
    assert page.get_attribute("#sub-target", "aria-invalid") == "true"

    page.select_option("#sub-kind", "changes")
    page.select_option("#sub-prop", "alert")
    page.select_option("#sub-channel", "email")
    page.fill("#sub-target", "uma@example.org")
    page.click("form button[type=submit]")
    page.wait_for_selector("section[aria-label='Your subscriptions'] td:has-text('alert changes')")

    with Client(small_site.url, small_site.tokens["uma"]) as uma:
        uma.report("gauge-1", alert=True)
        eventually(lambda: len(mailbox.messages) == 1, timeout=60)
        assert mailbox.messages[0]["Subject"] == "[twinengine] gauge-1: alert changed from false to true"
        # the sender records how the delivery went after the message is out, in a commit of its own
        [sub] = uma.subscriptions.list().items
        eventually(lambda: (found := uma.subscriptions.get(sub.id).deliveries)
                   and all(d.status not in ("pending", "sending") for d in found), timeout=60)

    tab.goto("/ui/subscriptions")
    page.click("section[aria-label='Your subscriptions'] button:has-text('Deliveries')")
    page.wait_for_selector("td:has-text('alert changed from false to true')")
    assert "sent" in tab.text("section[aria-label='Your subscriptions']")
    tab.check("subscriptions-delivered")

    page.click("button[aria-label^='Delete the subscription']")
    page.click("button[aria-label^='Yes: Delete the subscription']")
    page.wait_for_selector("td:has-text('No subscriptions yet')")
