"""Negotiations a provider starts, between two engines served over real HTTP on loopback (a data dir and store
each): the offer's owner proposes it to a user of the other engine, who finds it among their negotiations and
accepts it; the agreement is finalized on both sides and a transfer under it lands the data as under any
agreement. Nobody else on the consumer's engine sees or takes it up; a counter-offer and a refusal end it; an
initial offer off its schema is refused with the specification's error object, and one delivered twice makes one
negotiation. Every message between the engines and every answer is checked against its schema."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dataspace_fixtures import (
    BACKENDS,
    CONTEXT,
    Participant,
    msg,
    served_peer,
    two_engines,
    wait_state,
)
from twinengine.dataspace.models import Negotiation
from twinengine.dataspace.protocol import CALLBACK_PATH, new_pid
from twinengine.dataspace.spec import problems

pytestmark = pytest.mark.every_store  # the state machines live in the store: both stores
OFFERS = CALLBACK_PATH + "/negotiations/offers"


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path,
            backend: str) -> Iterator[tuple[Participant, Participant]]:
    with two_engines(tmp_path_factory, migrated_sqlite, backend) as engines:
        yield engines


@pytest.fixture(scope="module")
def made(engines: tuple[Participant, Participant]) -> dict[str, Any]:
    """A gauge history and an offer of it without a steward, by the provider's ``uma``."""
    provider, _consumer = engines
    uma = provider.token("uma")
    provider.ok("POST", "/api/v1/lake/dids", uma, json={"did": "reach:proposed", "type": "dataset"}, expect=201)
    data = os.urandom(64 * 1024)
    provider.ok("POST", "/api/v1/lake/uploads", uma, params={"did": "reach:proposed/levels.bin", "endpoint": "site",
                                                            "dataset": "reach:proposed"}, content=data, expect=201)
    offer = provider.ok("POST", "/api/v1/dataspace/offers", uma, expect=201, json={
        "did": "reach:proposed", "title": "Proposed gauge history", "terms": {"count": 2}})
    return {"offer": offer, "uma": uma, "sha256": hashlib.sha256(data).hexdigest()}


def _propose(provider: Participant, consumer: Participant, made: dict[str, Any], to: str | None) -> dict[str, Any]:
    proposed = provider.ok("POST", f"/api/v1/dataspace/offers/{made['offer']['id']}/propose", made["uma"],
                           expect=201, json={"url": consumer.url, "participant": consumer.did, "addressee": to})
    assert proposed["role"] == "provider" and proposed["state"] == "INITIAL" and proposed["owner"] == "uma"
    return wait_state(provider, "negotiations", proposed["id"], "OFFERED", made["uma"])


def _incoming(consumer: Participant, token: str | None, provider_pid: str) -> list[dict[str, Any]]:
    return [n for n in consumer.ok("GET", "/api/v1/dataspace/negotiations?role=consumer", token)
            if n["provider_pid"] == provider_pid]


def test_a_provider_proposes_and_the_addressee_accepts_and_pulls(engines: tuple[Participant, Participant],
                                                                 made: dict[str, Any]) -> None:
    provider, consumer = engines
    bo, ann = consumer.token("bo"), consumer.token("ann")
    other = provider.token("olaf")  # not the offer's owner: no proposal of it
    refused = provider.api("POST", f"/api/v1/dataspace/offers/{made['offer']['id']}/propose", other,
                           json={"url": consumer.url})
    assert refused.status_code == 404, refused.text
    wrong = provider.api("POST", f"/api/v1/dataspace/offers/{made['offer']['id']}/propose", made["uma"],
                         json={"url": consumer.url, "participant": "did:web:elsewhere.example"})
    assert wrong.status_code == 422 and "participant" in wrong.text

    ours = _propose(provider, consumer, made, "bo")
    assert ours["consumer_pid"] and ours["addressee"] == "bo"
    assert ours["offer"]["assignee"] == f"{consumer.did}#bo"

    # on the consumer's engine: bo's to take up, nobody else's
    assert _incoming(consumer, ann, ours["provider_pid"]) == []
    [theirs] = _incoming(consumer, bo, ours["provider_pid"])
    assert (theirs["state"], theirs["owner"], theirs["addressee"]) == ("OFFERED", "", "bo")
    assert theirs["consumer_pid"] == ours["consumer_pid"] and theirs["offered_by"] == "provider"
    path = f"/api/v1/dataspace/negotiations/{theirs['id']}"
    assert consumer.api("GET", path, ann).status_code == 404
    for step in ("accept", "terminate"):
        assert consumer.api("POST", f"{path}/{step}", ann).status_code == 404
    assert consumer.api("POST", f"{path}/verify", bo).status_code == 400  # not in OFFERED: nothing changes
    assert consumer.ok("GET", path, bo)["owner"] == ""

    accepted = consumer.ok("POST", f"{path}/accept", bo)
    assert accepted["owner"] == "bo"
    done = wait_state(consumer, "negotiations", theirs["id"], "FINALIZED", bo)
    agreement = done["agreement_id"]
    assert agreement and wait_state(provider, "negotiations", ours["id"], "FINALIZED",
                                    made["uma"])["agreement_id"] == agreement
    assert consumer.api("GET", path, ann).status_code == 404
    assert consumer.api("POST", f"{path}/terminate", bo).status_code == 400  # FINALIZED stays so
    policy = provider.ok("GET", f"/api/v1/dataspace/agreements/{agreement}", made["uma"])["policy"]
    assert policy["permission"] == made["offer"]["policy"]["permission"] and policy["assignee"] == consumer.did

    # the transfer, as under any agreement
    assert consumer.api("POST", "/api/v1/dataspace/transfers", ann, json={
        "agreement": agreement, "did": "remote:stolen", "land_data": True}).status_code == 404
    started = consumer.ok("POST", "/api/v1/dataspace/transfers", bo, expect=201, json={
        "agreement": agreement, "did": "remote:proposed", "land_data": True})
    landed = wait_state(consumer, "transfers", started["id"], "COMPLETED", bo)
    assert landed["landed"] == "remote:proposed"
    assert {f["name"]: f["sha256"] for f in landed["files"]} == {"levels.bin": made["sha256"]}
    data = consumer.api("GET", "/api/v1/lake/dids/remote:proposed/levels.bin/content", bo).content
    assert hashlib.sha256(data).hexdigest() == made["sha256"]
    assert provider.ok("GET", f"/api/v1/dataspace/agreements/{agreement}", made["uma"])["transfers"] == 1


def test_a_counter_offer_or_a_refusal_ends_a_proposal(engines: tuple[Participant, Participant],
                                                      made: dict[str, Any]) -> None:
    """A proposal for nobody in particular is the admins'; an admin's counter-offer to an offer without a steward
    ends it (the provider does not bargain by itself), and so does an admin's refusal."""
    provider, consumer = engines
    ann = consumer.token("ann")
    for step, body, why in (("request", {"terms": {"count": 5}}, "counter-offer"),
                            ("terminate", None, "terminated by the steward")):
        ours = _propose(provider, consumer, made, None)
        assert ours["offer"]["assignee"] == consumer.did
        assert _incoming(consumer, ann, ours["provider_pid"]) == []
        [theirs] = _incoming(consumer, None, ours["provider_pid"])
        assert theirs["addressee"] is None and theirs["owner"] == ""
        taken = consumer.ok("POST", f"/api/v1/dataspace/negotiations/{theirs['id']}/{step}", json=body)
        assert taken["owner"] != ""
        mine = wait_state(consumer, "negotiations", theirs["id"], "TERMINATED")
        after = wait_state(provider, "negotiations", ours["id"], "TERMINATED", made["uma"])
        assert why in (mine["error"] or "") + (after["error"] or ""), (mine, after)
        assert mine["agreement_id"] is None and after["agreement_id"] is None


def test_an_initial_offer_is_checked_and_taken_once(engines: tuple[Participant, Participant]) -> None:
    """From a participant of the tests' own: unauthenticated, off its schema, for someone else, or naming a
    consumer process, an initial offer is refused with the specification's error object and nothing is made; the
    same initial offer twice makes one negotiation."""
    _provider, consumer = engines
    with served_peer() as peer:
        pid = new_pid()
        offer = {"@id": "urn:uuid:peer-offer", "@type": "Offer", "target": "urn:uuid:peer-dataset",
                 "assignee": consumer.did, "permission": [{"action": "use"}]}
        good = msg("ContractOfferMessage", providerPid=pid, offer=offer, callbackAddress=peer.callback)
        assert not problems(good)

        def count() -> int:
            with consumer.runtime.db.session(readonly=True) as session:
                return int(session.scalar(select(func.count()).select_from(Negotiation).where(
                    Negotiation.role == "consumer", Negotiation.provider_pid == pid)) or 0)

        import httpx2 as httpx

        from twinengine.transport import tls_context

        anonymous = httpx.post(consumer.url + OFFERS, json=good, timeout=30, verify=tls_context())
        assert anonymous.status_code == 401 and anonymous.json()["@type"] == "ContractNegotiationError"
        for bad in ({k: v for k, v in good.items() if k != "offer"},
                    {**good, "offer": {k: v for k, v in offer.items() if k != "target"}},
                    {**good, "@context": CONTEXT, "@type": "ContractRequestMessage"},
                    {**good, "offer": {**offer, "assignee": "did:web:elsewhere.example"}},
                    {**good, "callbackAddress": "http://elsewhere.example/dsp"},
                    {k: v for k, v in good.items() if k != "callbackAddress"} | {"consumerPid": "urn:uuid:c"}):
            answer = peer.send(consumer, OFFERS, bad)
            assert answer.status_code == 400, answer.text
            error = answer.json()
            assert error["@type"] == "ContractNegotiationError" and error["reason"] and not problems(error)
        assert count() == 0

        first = peer.send(consumer, OFFERS, good)
        assert first.status_code == 201, first.text
        assert first.json()["state"] == "OFFERED" and first.json()["providerPid"] == pid
        again = peer.send(consumer, OFFERS, good)
        assert again.status_code == 201 and again.json() == first.json()
        assert count() == 1
        # its process answers its own participant only; the provider's termination ends it
        cpid = first.json()["consumerPid"]
        assert peer.send(consumer, f"{CALLBACK_PATH}/negotiations/{cpid}", None, "GET").json()["state"] == "OFFERED"
        ended = peer.send(consumer, f"{CALLBACK_PATH}/negotiations/{cpid}/termination", msg(
            "ContractNegotiationTerminationMessage", providerPid=pid, consumerPid=cpid, code="withdrawn",
            reason=["no longer offered"]))
        assert ended.status_code == 200 and ended.json()["state"] == "TERMINATED"
        assert not peer.problems
