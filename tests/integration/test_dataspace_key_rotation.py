"""Two engines rotate their signing keys in the middle of an agreement's life: agreements name participants,
never keys, so the transfers under it still complete.

Each engine rotates twice after the agreement: the key that then signs its messages was not yet in the DID
document the other side had read and cached (that held the current and next keys of the time), so each side must
read the other's document again on the unknown ``kid`` (``dataspace.identity``) to verify the next message.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dataspace_fixtures import BACKENDS, Participant, checked_messages, engine_store, served_engine, wait_state

pytestmark = pytest.mark.every_store


@pytest.fixture(params=BACKENDS)
def engines(request: pytest.FixtureRequest, tmp_path: Path,
            migrated_sqlite: Path) -> Iterator[tuple[Participant, Participant]]:
    backend = str(request.param)
    with engine_store(backend) as ours, engine_store(backend) as theirs, \
            served_engine(tmp_path / "provider", migrated_sqlite, database_url=ours) as provider, \
            served_engine(tmp_path / "consumer", migrated_sqlite, database_url=theirs) as consumer, \
            checked_messages() as checked:
        yield provider, consumer
    checked.verdict()


def _published(engine: Participant) -> set[str]:
    """The key ids the engine's DID document publishes (what a peer reads and caches)."""
    document = engine.ok("GET", "/.well-known/did.json")
    return {method["id"].rsplit("#", 1)[-1] for method in document["verificationMethod"]}


def _rotated_twice(engine: Participant) -> tuple[Participant, str]:
    """The engine after two rotations, with an admin token signed by its new current key, and that key's id."""
    for _ in range(2):
        keys = engine.ok("POST", "/api/v1/signing-keys/rotate")
        engine = replace(engine, admin=engine.token("admin-after-rotation", "admin"))  # the old one's key retired
    current = [k["kid"] for k in keys if k["state"] == "current"]
    assert len(current) == 1
    return engine, current[0]


def test_keys_rotated_on_both_sides_break_no_agreement(engines: tuple[Participant, Participant]) -> None:
    provider, consumer = engines
    provider.ok("POST", "/api/v1/lake/dids", json={"did": "reach:rotation", "type": "dataset"}, expect=201)
    data = os.urandom(64 * 1024)
    digest = provider.upload("reach:rotation/levels.bin", data, "reach:rotation")
    made = provider.ok("POST", "/api/v1/dataspace/offers", expect=201,
                       json={"did": "reach:rotation", "title": "Gauge history", "terms": {"count": 5}})
    started = consumer.ok("POST", "/api/v1/dataspace/negotiations", expect=201,
                          json={"url": provider.url, "dataset": made["dataset_id"], "land": {"did": "remote:r-1"}})
    agreement = wait_state(consumer, "negotiations", started["id"], "FINALIZED")["agreement_id"]
    first = consumer.ok("GET", f"/api/v1/dataspace/transfers?role=consumer&agreement={agreement}")
    wait_state(consumer, "transfers", first[0]["id"], "COMPLETED")
    seen = {engine.did: _published(engine) for engine in (provider, consumer)}  # what each side has cached

    provider, provider_key = _rotated_twice(provider)
    consumer, consumer_key = _rotated_twice(consumer)
    assert provider_key not in seen[provider.did] and consumer_key not in seen[consumer.did]
    assert provider_key in _published(provider) and consumer_key in _published(consumer)

    body: dict[str, Any] = {"agreement": agreement, "did": "remote:r-2", "land_data": True}
    second = consumer.ok("POST", "/api/v1/dataspace/transfers", json=body, expect=201)
    landed = wait_state(consumer, "transfers", second["id"], "COMPLETED")
    assert {f["name"]: f["sha256"] for f in landed["files"]} == {"levels.bin": digest}
    pulled = consumer.api("GET", "/api/v1/lake/dids/remote:r-2/levels.bin/content").content
    assert hashlib.sha256(pulled).hexdigest() == digest
    theirs = provider.ok("GET", f"/api/v1/dataspace/transfers?role=provider&agreement={agreement}")
    assert sorted(t["state"] for t in theirs) == ["COMPLETED", "COMPLETED"]
    # the agreement survives on both sides, unchanged: it names participants, not keys
    assert provider.ok("GET", f"/api/v1/dataspace/agreements/{agreement}")["consumer"] == consumer.did
