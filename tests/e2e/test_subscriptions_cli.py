"""``twin subscribe`` and ``twin subscriptions list|show|test|delete`` against a live engine that sends real
e-mail to an SMTP server on loopback: tables, JSON, the secret shown once, and clean errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import MINIMAL_STATE, LiveEngine, make_app
from subscription_fixtures import Mailbox, smtp_server, webhook_receiver
from twinengine.api import create_app
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def live(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> Iterator[LiveEngine]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("live") / "data", smtp_host="127.0.0.1",
                        smtp_port=mailbox.port, smtp_security="none", subscription_webhook_hosts=["127.0.0.1"])
    runtime = Runtime.from_settings(settings)
    token = runtime.start()
    assert token is not None
    try:
        with InProcessServer(create_app(runtime=runtime)) as server:
            yield LiveEngine(url=server.url, admin_token=token, settings=settings)
    finally:
        runtime.close()


def test_subscribe_test_list_show_and_delete(live: LiveEngine, mailbox: Mailbox, tmp_path: Path) -> None:
    dev = live.twin_json("token", "create", "--name", "ada", "--role", "developer")["token"]
    user = live.twin_json("token", "create", "--name", "uma", "--role", "user")["token"]
    state = {**MINIMAL_STATE, "forecast_alert": {"type": "boolean"}}
    live.twin("app", "publish", str(make_app(tmp_path, name="alerting", manifest={"state": state})), token=dev)
    live.twin("create", "alerting@1.0.0", "--name", "reach-1", "--param", "station=RR-01", token=user)

    out = live.twin("subscribe", "reach-1", "--when", "forecast_alert changes", "--email", "uma@example.org",
                    token=user)
    assert "reach-1 'forecast_alert changes' → email uma@example.org" in out
    sub = live.twin_json("subscriptions", "list", token=user)["items"][0]["id"]
    with webhook_receiver() as receiver:
        hooked = live.twin_json("subscribe", "reach-1", "--when", "forecast_alert changes", "--webhook",
                                receiver.url, token=user)
        assert hooked["secret"].startswith("whsec_")
    table = live.twin("subscriptions", "list", token=user)
    assert "2 subscriptions" in table and sub in table and "webhook" in table

    said = live.twin("subscriptions", "test", sub, token=user)
    assert "sent after 1 tries" in said
    assert mailbox.messages[-1]["Subject"] == "[twinengine] reach-1: test message for 'forecast_alert changes'"
    shown = live.twin("subscriptions", "show", sub, token=user)
    assert "Latest deliveries" in shown and "test" in shown and "sent" in shown
    assert live.twin_json("subscriptions", "show", sub, token=user)["deliveries"][0]["tries"][0]["status"] == "ok"

    assert f"deleted {sub}" in live.twin("subscriptions", "delete", sub, token=user)
    assert live.twin_json("subscriptions", "list", token=user)["total"] == 1

    err = live.twin("subscribe", "reach-1", "--when", "flood changes", "--email", "uma@example.org", token=user,
                    expect=1)
    assert "when:" in err and "not a state property" in err and "Traceback" not in err
    err = live.twin("subscribe", "reach-1", "--when", "forecast_alert changes", "--email", "a@b.org",
                    "--webhook", "http://127.0.0.1/x", token=user, expect=1)
    assert "--email" in err
    err = live.twin("subscriptions", "show", "sub-0000", token=user, expect=1)
    assert "no subscription" in err
    assert "--when" in live.twin("subscribe", "--help")
