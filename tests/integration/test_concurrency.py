"""Twenty clients write properties of one twin at once over real HTTP: no revision is lost, none is doubled,
and the sequence has no gaps (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from helpers import RIVER_REACH
from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores

CLIENTS = 20
WRITES_EACH = 10


@pytest.mark.slow
def test_concurrent_writers_get_a_gap_free_revision_sequence(settings: Settings) -> None:
    runtime = Runtime.from_settings(settings)
    admin_token = runtime.start()
    assert admin_token is not None
    try:
        with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, admin_token) as admin:
            Client(server.url, admin.create_token("ada", "developer").token).publish_app(RIVER_REACH)
            owner_token = admin.create_token("uma", "user").token
            with Client(server.url, owner_token) as owner:
                owner.create_twin("river-reach@0.1.0", "busy-reach", {"station": "RR-01"})
            barrier = threading.Barrier(CLIENTS)
            failures: list[BaseException] = []

            def writer(n: int) -> None:
                try:
                    with Client(server.url, owner_token, timeout=120) as client:
                        barrier.wait()
                        for i in range(WRITES_EACH):
                            client.report("busy-reach", level=float(n), storage=float(i), message=f"w{n}-{i}")
                except BaseException as exc:  # collected and re-raised in the main thread
                    failures.append(exc)

            threads = [threading.Thread(target=writer, args=(n,)) for n in range(CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert failures == []
            with Client(server.url, owner_token) as owner:
                page = owner.revisions("busy-reach", limit=1000, order="asc")
                assert [r.revision for r in page.items] == list(range(1, CLIENTS * WRITES_EACH + 1))
                messages = Counter(r.message for r in page.items)
                assert len(messages) == CLIENTS * WRITES_EACH and set(messages.values()) == {1}
                assert owner.get_twin("busy-reach").head_revision == CLIENTS * WRITES_EACH
    finally:
        runtime.close()
