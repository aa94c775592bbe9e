"""Two engine processes sharing one store (``twin serve --processes 2`` on PostgreSQL and NATS) tell a
subscriber once per change: writes land in both processes, one process runs the subscription loop."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helpers import MINIMAL_STATE, admin_token, free_port, make_app, serve_engine
from streams_fixtures import eventually, require_nats
from subscription_fixtures import smtp_server
from twinengine.client import Client
from twinengine.config import Settings

# ci_only: two twin serve processes on PostgreSQL
# the store itself, its concurrency, or engines in several processes: both stores
pytestmark = [pytest.mark.every_store, pytest.mark.ci_only(backend="postgresql")]

CHANGES = 6


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.sandbox  # its app code runs in a served engine, which runs it only sandboxed
def test_two_processes_tell_each_change_once(settings: Settings, tmp_path: Path) -> None:
    assert settings.database_url is not None
    nats = require_nats()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with smtp_server() as mailbox:
        env = {"TWIN_DATABASE_URL": settings.database_url, "TWIN_STREAM_BACKEND": "nats", "TWIN_NATS_URL": nats,
               "TWIN_SMTP_HOST": "127.0.0.1", "TWIN_SMTP_PORT": str(mailbox.port), "TWIN_SMTP_SECURITY": "none",
               "TWIN_SUBSCRIPTION_POLL": "1s"}
        with serve_engine(settings.data_dir, port, args=["--processes", "2"], start_timeout=180, **env):
            with Client(url, admin_token(settings)) as admin:
                dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
            state = {**MINIMAL_STATE, "alert": {"type": "boolean"}}
            Client(url, dev).publish_app(make_app(tmp_path, name="alerting", manifest={"state": state}))
            with Client(url, user) as uma:
                uma.create_twin("alerting@1.0.0", "gauge-1", {"station": "RR-01"})
                uma.report("gauge-1", alert=False)
                uma.subscriptions.subscribe("gauge-1", "alert changes", email="uma@example.org")
            for i in range(1, 2 * CHANGES + 1):  # each value written twice, on new connections (both processes)
                with Client(url, user) as once:
                    once.report("gauge-1", alert=(i + 1) // 2 % 2 == 1)
            eventually(lambda: len(mailbox.messages) >= CHANGES, timeout=60)
            time.sleep(3)  # a second sender would have sent its copies by now (the loop runs every second)
            assert len(mailbox.messages) == CHANGES
            with Client(url, user) as uma:
                sub = uma.subscriptions.list().items[0]
                deliveries = uma.subscriptions.get(sub.id).deliveries
            assert [d.status for d in deliveries] == ["sent"] * CHANGES
            assert all(d.attempts == 1 for d in deliveries)
