"""A rolling upgrade of two engines on one PostgreSQL store keeps answering: while a client (standing in for the
load balancer: it sends each request to the next engine whose readiness probe answers, and to the other one if
the first is gone) keeps writing, each engine in turn is stopped and started again, migrating the store as it
starts (under the migration lock, beside the engine still serving). No request goes unanswered by both, and every
acknowledged write is read back from each engine.

The two engines run this release; an earlier release serving beside a newer one is what the migrations' rule
keeps possible (tests/integration/test_store_upgrades.py: migrations only expand what a running release reads).
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from helpers import admin_token, free_port, make_app, serve_engine
from streams_fixtures import eventually, require_nats
from twinengine.client import Client
from twinengine.config import Settings

# ci_only: two twin serve engines on PostgreSQL and NATS, each restarted in turn
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.ci_only, pytest.mark.timeout(600)]


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_engines_restarted_in_turn_keep_answering(own_database: str, tmp_path: Path) -> None:
    database = own_database.replace("postgresql://", "postgresql+psycopg://", 1)
    env = {"TWIN_DATABASE_URL": database, "TWIN_STREAM_BACKEND": "nats", "TWIN_NATS_URL": require_nats(),
           "TWIN_ENGINES_SHARE_STORE": "true"}
    hosts, ports = [tmp_path / "host-a", tmp_path / "host-b"], [free_port(), free_port()]
    stop, acked, unanswered, refused = threading.Event(), [], [], []
    served = {port: 0 for port in ports}  # writes each engine acknowledged

    def start(i: int) -> Any:
        return serve_engine(hosts[i], ports[i], start_timeout=240, **env)

    with ExitStack() as engines:
        processes = [engines.enter_context(start(0))]
        shutil.copytree(hosts[0] / "keys", hosts[1] / "keys")  # the issuer's key, as on every host
        processes.append(engines.enter_context(start(1)))
        token = admin_token(Settings(data_dir=hosts[0], database_url=database))
        with Client(f"http://127.0.0.1:{ports[0]}", token) as admin:
            admin.publish_app(make_app(tmp_path / "apps", name="gauge"))
            admin.create_twin("gauge@1.0.0", "station", {"station": "ST-1"})
        eventually(lambda: ready(ports[0]) and ready(ports[1]), timeout=120)

        def write() -> None:
            level = 0
            while not stop.is_set():
                level += 1
                for attempt in range(2):  # the balancer's retry: the other engine
                    port = ports[(level + attempt) % 2]
                    if not ready(port):
                        continue
                    try:
                        with Client(f"http://127.0.0.1:{port}", token) as client:
                            acked.append(client.report("station", level=level % 90).revision)
                        served[port] += 1
                        break
                    except Exception as error:  # whatever it is, the balancer tries the other engine
                        refused.append(f"{port}: {type(error).__name__}: {error}"[:300])
                        continue
                else:
                    unanswered.append(level)
                time.sleep(0.02)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            for i in (0, 1):
                before = len(acked)
                eventually(lambda b=before: len(acked) > b + 5, timeout=60)
                processes[i].send_signal(signal.SIGTERM)  # drained: requests in flight get their grace
                processes[i].wait(timeout=60)
                # started again on the same store: it takes the migration lock, migrates, then serves
                processes[i] = engines.enter_context(start(i))
                eventually(lambda p=ports[i]: ready(p), timeout=120)
                # the writes go on, and the restarted engine takes its share (a request the stopping engine
                # dropped went to the other one, as a balancer does: counted as refused, not as lost)
                after, own = len(acked), served[ports[i]]
                try:
                    eventually(lambda a=after, o=own, p=ports[i]: len(acked) > a + 5 and served[p] > o + 2,
                               timeout=60)
                except AssertionError:
                    raise AssertionError(f"writes stopped after engine {i} restarted: {refused[-5:]}, "
                                         f"writer alive: {writer.is_alive()}") from None
        finally:
            stop.set()
            writer.join(timeout=60)
        assert not unanswered, f"{len(unanswered)} writes found no engine answering: {refused[-5:]}"
        for port in ports:
            revisions: set[int] = set()
            with Client(f"http://127.0.0.1:{port}", token) as reader:
                while page := reader.revisions("station", limit=1000, offset=len(revisions)).items:
                    revisions |= {r.revision for r in page}
            assert set(acked) <= revisions and len(acked) > 20
