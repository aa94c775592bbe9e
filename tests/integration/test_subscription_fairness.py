"""One subscriber's slow receivers never delay another subscriber's alert: the engine's own subscription loop
sends side by side, within a bound per subscriber and per host (``subscriptions.dispatch``).

User A holds the most subscriptions a user may (100), each to a receiver of a tarpit on loopback that takes the
connection and never answers; one state change of A's twin makes 100 messages. While A's messages wait on the
tarpit, user B's twin changes and B is told, through a receiver on one of the tarpit's own hosts. Shown by what
the store records, not by a clock: B's delivery is sent while none of A's is, and A never had more tries under
way than its bound: 4 per subscriber across ten hosts, 2 (half a host's 4) when all of A's receivers share
B's host. (bench/subscription_fairness.py measures B's latency against an idle engine.)"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from helpers import MINIMAL_STATE, Engine, make_app
from streams_fixtures import eventually
from subscription_fixtures import tarpit, webhook_receiver
from twinengine.config import Settings
from twinengine.subscriptions.models import Delivery, Subscription

STATE = {**MINIMAL_STATE, "alert": {"type": "boolean"}}
TARPITS = 100
HOSTS = [f"127.0.0.{n}" for n in range(10, 20)]  # ten loopback hosts
PER_OWNER = 4


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    """Webhooks may reach loopback (as an admin lists a private network); a try may wait on its receiver for a
    minute, longer than this test takes, so that none of A's ends while B is told."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, warm_routes=False,
                    subscription_webhook_hosts=["127.0.0.0/8"], subscription_webhook_timeout=timedelta(seconds=60),
                    subscriptions_max_per_user=TARPITS, subscription_senders=16,
                    subscription_sends_per_owner=PER_OWNER, subscription_sends_per_host=4)


def _subscribe(engine: Engine, who: str, twin: str, url: str) -> str:
    made = engine.http.post("/api/v1/subscriptions", json={"twin": twin, "when": "alert changes", "webhook": url},
                            headers=engine.headers(engine.token(who, "user")))
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _statuses(engine: Engine, owner: str) -> list[str]:
    with engine.runtime.db.session(readonly=True) as session:
        return list(session.scalars(select(Delivery.status).join(Subscription)
                                    .where(Subscription.owner == owner)))


@pytest.mark.slow
@pytest.mark.parametrize(("hosts", "tarpits", "held"), [(HOSTS, TARPITS, PER_OWNER), (HOSTS[:1], 10, 2)],
                         ids=["ten-hosts", "one-shared-host"])
def test_a_users_tarpits_never_delay_another_users_alert(engine: Engine, tmp_path: Path, hosts: list[str],
                                                         tarpits: int, held: int) -> None:
    engine.as_role("dev", "developer").publish_app(make_app(tmp_path, name="alerting", manifest={"state": STATE}))
    ana, bob = engine.as_role("ana", "user"), engine.as_role("bob", "user")
    ana.create_twin("alerting@1.0.0", "ana-reach", {"station": "RR-A"})
    bob.create_twin("alerting@1.0.0", "bob-reach", {"station": "RR-B"})
    ana.report("ana-reach", alert=False)
    bob.report("bob-reach", alert=False)
    with tarpit(hosts) as pit, webhook_receiver(hosts[0]) as receiver:  # bob's receiver shares a tarpit host
        for n in range(tarpits):
            _subscribe(engine, "ana", "ana-reach", pit.url(n))
        _subscribe(engine, "bob", "bob-reach", receiver.url)

        ana.report("ana-reach", alert=True)  # a message to each of the tarpit's receivers
        eventually(lambda: pit.accepted >= held)  # ana's tries are under way, each held by the tarpit
        bob.report("bob-reach", alert=True)
        told: Any = eventually(lambda: receiver.received)

        assert told[0].json["twin"]["name"] == "bob-reach" and told[0].json["value"] is True
        assert eventually(lambda: _statuses(engine, "bob") == ["sent"])
        anas = _statuses(engine, "ana")  # while bob was told, none of ana's was
        assert len(anas) == tarpits and "sent" not in anas
        assert anas.count("sending") == held and pit.accepted == held  # never more at once
