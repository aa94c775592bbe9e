"""Batched state writes over HTTP (SQLite and PostgreSQL): many revisions of many twins in one transaction,
all or nothing, errors naming the item, access checked per twin, gap-free under concurrent batches."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from helpers import RIVER_REACH, Engine
from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.errors import PayloadTooLarge, PermissionDenied, TwinNotFound, ValidationFailed
from twinengine.runtime import Runtime
from twinengine.twins.schemas import PropertyWrite

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    for name in ("reach-a", "reach-b"):
        client.create_twin("river-reach@0.1.0", name, {"station": "RR-01"})
    return client


def _snapshot(client: Client, twin: str) -> tuple[int, dict[str, Any]]:
    state = client.get_state(twin)
    return client.get_twin(twin).head_revision, {p: v.value for p, v in state.reported.items()}


def test_a_batch_writes_one_revision_per_item_in_order(uma: Client) -> None:
    uma.report("reach-a", level=0.5)
    twin_b = uma.get_twin("reach-b").id
    result = uma.write_state_batch([
        {"twin": "reach-a", "reported": {"level": 1.0, "rain": 0.2}, "message": "first"},
        {"twin": twin_b, "reported": {"level": PropertyWrite(value=150, unit="cm", timestamp=T0)}},
        {"twin": "reach-a", "reported": {"level": 1.5}, "desired": {"alert_threshold": 2.0}},
        {"twin": "reach-b", "reported": {"level": 2.5}},
    ])
    assert [(r.twin_id == twin_b, r.revision) for r in result.revisions] == [(False, 2), (True, 1), (False, 3),
                                                                            (True, 2)]
    assert result.values == 6
    a = uma.get_state("reach-a")
    assert a.revision == 3 and a.reported["level"].value == 1.5 and a.reported["rain"].revision == 2
    assert a.desired["alert_threshold"].value == 2.0
    assert uma.get_revision("reach-a", 2).message == "first" and uma.get_revision("reach-a", 2).author == "uma"
    b_first = uma.get_revision("reach-b", 1).changes[0]
    assert b_first.value == pytest.approx(1.5) and b_first.unit == "m" and b_first.timestamp == T0
    assert uma.get_state("reach-b").reported["level"].value == 2.5
    assert [r.revision for r in uma.revisions("reach-a", order="asc").items] == [1, 2, 3]


def test_one_bad_item_refuses_the_whole_batch_and_names_it(uma: Client) -> None:
    uma.report("reach-a", level=1.0)
    before = _snapshot(uma, "reach-a"), _snapshot(uma, "reach-b")
    items: list[dict[str, Any]] = [{"twin": "reach-b", "reported": {"level": 1.0 + i}} for i in range(5)]
    items[3] = {"twin": "reach-a", "reported": {"level": "high"}}
    items.append({"twin": "reach-b", "reported": {"colour": "blue"}})
    with pytest.raises(ValidationFailed) as caught:
        uma.write_state_batch(items)
    assert {p.loc for p in caught.value.problems} == {"items[3].reported.level.value", "items[5].reported.colour"}
    assert (_snapshot(uma, "reach-a"), _snapshot(uma, "reach-b")) == before  # nothing written, heads unchanged
    good = uma.write_state_batch([{"twin": "reach-a", "reported": {"level": 3.0}}])
    assert good.revisions[0].revision == 2  # the refused batch took no number
    assert [r.revision for r in uma.revisions("reach-a", order="asc").items] == [1, 2]
    assert uma.get_twin("reach-b").head_revision == 0


def test_malformed_items_are_422_naming_the_item(engine: Engine, uma: Client) -> None:
    headers = engine.headers(engine.token("uma", "user"))
    body = {"items": [{"twin": "reach-a", "reported": {"level": {"value": 1}}},
                      {"twin": "reach-a", "reported": {"level": {"value": 1, "when": "now"}}}]}
    r = engine.http.post("/api/v1/state/batch", json=body, headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "items[1].reported.level.when"
    r = engine.http.post("/api/v1/state/batch", json={"items": []}, headers=headers)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == "items"
    with pytest.raises(ValidationFailed, match=r"items\[0\].reported: nothing to write"):
        uma.write_state_batch([{"twin": "reach-a"}])
    assert uma.get_twin("reach-a").head_revision == 0


def test_access_is_checked_per_twin_and_a_refusal_names_the_item(engine: Engine, uma: Client) -> None:
    vic = engine.as_role("vic", "user")
    vic.create_twin("river-reach@0.1.0", "vics-reach", {"station": "RR-02"})
    uma.grant("reach-b", "vic", "read")
    items = [{"twin": "vics-reach", "reported": {"level": 1.0}}, {"twin": "reach-b", "reported": {"level": 2.0}}]
    with pytest.raises(PermissionDenied) as caught:
        vic.write_state_batch(items)
    assert caught.value.details[0]["loc"] == "items[1].twin" and "twin.operate" in caught.value.message
    assert vic.get_twin("vics-reach").head_revision == 0 and uma.get_twin("reach-b").head_revision == 0
    with pytest.raises(TwinNotFound) as missing:
        vic.write_state_batch([items[0], {"twin": "no-such-reach", "reported": {"level": 1.0}}])
    assert missing.value.details[0]["loc"] == "items[1].twin"
    uma.grant("reach-b", "vic", "operate")
    assert [r.revision for r in vic.write_state_batch(items).revisions] == [1, 1]


def test_more_items_than_the_setting_allows_is_413(engine: Engine, uma: Client) -> None:
    engine.runtime.settings.state_batch_max_items = 3
    with pytest.raises(PayloadTooLarge) as caught:
        uma.write_state_batch([{"twin": "reach-a", "reported": {"level": float(i)}} for i in range(4)])
    assert caught.value.details[0]["loc"] == "items"
    assert uma.get_twin("reach-a").head_revision == 0
    assert len(uma.write_state_batch([{"twin": "reach-a", "reported": {"level": 1.0}}] * 3).revisions) == 3


CLIENTS = 6
BATCHES_EACH = 8
ITEMS_EACH = 5


@pytest.mark.slow
def test_concurrent_batches_into_one_twin_stay_gap_free_and_keep_every_value(settings: Settings) -> None:
    """Several clients batch into the same twin (and each into one of its own) over real HTTP: the twin's
    revisions run 1..N without gaps, and each acknowledged revision holds exactly the value sent in it."""
    runtime = Runtime.from_settings(settings)
    admin_token = runtime.start()
    assert admin_token is not None
    try:
        with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, admin_token) as admin:
            Client(server.url, admin.create_token("ada", "developer").token).publish_app(RIVER_REACH)
            token = admin.create_token("uma", "user").token
            with Client(server.url, token) as owner:
                for name in ["shared", *(f"own-{n}" for n in range(CLIENTS))]:
                    owner.create_twin("river-reach@0.1.0", name, {"station": "RR-01"})
            barrier = threading.Barrier(CLIENTS)
            acknowledged: list[tuple[int, float]] = []
            failures: list[BaseException] = []

            def writer(n: int) -> None:
                try:
                    with Client(server.url, token, timeout=120) as client:
                        barrier.wait()
                        for b in range(BATCHES_EACH):
                            levels = [n * 1000 + b * 10 + i + 0.5 for i in range(ITEMS_EACH)]
                            items = [item for level in levels for item in (
                                {"twin": "shared", "reported": {"level": level}},
                                {"twin": f"own-{n}", "reported": {"level": level}})]
                            result = client.write_state_batch(items)
                            shared = [r.revision for r in result.revisions[::2]]
                            assert shared == list(range(shared[0], shared[0] + ITEMS_EACH))  # consecutive
                            acknowledged.extend(zip(shared, levels, strict=True))
                except BaseException as exc:  # collected and re-raised in the main thread
                    failures.append(exc)

            threads = [threading.Thread(target=writer, args=(n,)) for n in range(CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert failures == []
            total = CLIENTS * BATCHES_EACH * ITEMS_EACH
            with Client(server.url, token) as owner:
                page = owner.revisions("shared", limit=1000, order="asc")
                assert [r.revision for r in page.items] == list(range(1, total + 1))
                stored = {r.revision: r.changes[0].value for r in page.items}
                assert sorted(acknowledged) == sorted(stored.items())
                assert owner.get_state("shared").reported["level"].value == stored[total]
                for n in range(CLIENTS):
                    assert owner.get_twin(f"own-{n}").head_revision == BATCHES_EACH * ITEMS_EACH
    finally:
        runtime.close()


def test_late_values_in_a_batch_land_at_their_own_time(uma: Client) -> None:
    result = uma.write_state_batch([
        {"twin": "reach-a", "reported": {"level": PropertyWrite(value=2.0, timestamp=T0 + timedelta(hours=2))}},
        {"twin": "reach-a", "reported": {"level": PropertyWrite(value=1.0, timestamp=T0 + timedelta(hours=1))}},
    ])
    assert [r.revision for r in result.revisions] == [1, 2]
    assert uma.get_state("reach-a").reported["level"].value == 1.0  # the later revision is the head
    assert uma.get_state("reach-a", at=T0 + timedelta(hours=3)).reported["level"].value == 2.0
