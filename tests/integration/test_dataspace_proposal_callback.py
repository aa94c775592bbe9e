"""Where a provider's proposal goes, between two engines served over real HTTP on loopback (a data dir and store
each) and a participant of the tests' own whose callbacks lie elsewhere than ``<its DSP base>/callback``: the
callback address the register records for the participant ("configured"), else the latest one the participant gave
in its own requests ("given"), else the assumption ("assumed"); the negotiation and the answer say which, and the
initial offer reaches that address and no other. Every message between the engines and every answer is checked
against its schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from dataspace_fixtures import (
    BACKENDS,
    Participant,
    msg,
    served_peer,
    two_engines,
    wait_state,
)
from streams_fixtures import eventually
from twinengine.dataspace.protocol import BASE_PATH, CALLBACK_PATH

pytestmark = pytest.mark.every_store  # the addresses are read from the store: both stores


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
    """A small dataset and an offer of it without a steward, by the provider's ``uma``."""
    provider, _consumer = engines
    uma = provider.token("uma")
    provider.ok("POST", "/api/v1/lake/dids", uma, json={"did": "reach:called", "type": "dataset"}, expect=201)
    provider.ok("POST", "/api/v1/lake/uploads", uma, params={"did": "reach:called/levels.bin", "endpoint": "site",
                                                            "dataset": "reach:called"}, content=b"x" * 1024,
                expect=201)
    offer = provider.ok("POST", "/api/v1/dataspace/offers", uma, expect=201, json={
        "did": "reach:called", "title": "Called gauge history", "terms": {"count": 5}})
    return {"offer": offer, "uma": uma}


def _propose(provider: Participant, made: dict[str, Any], expect: int = 201, **body: Any) -> dict[str, Any]:
    return dict(provider.ok("POST", f"/api/v1/dataspace/offers/{made['offer']['id']}/propose", made["uma"],
                            expect=expect, json=body))


def test_assumed_then_given_then_configured(engines: tuple[Participant, Participant], made: dict[str, Any]) -> None:
    provider, consumer = engines
    theirs = consumer.ok("GET", "/api/v1/dataspace/identity")["callback"]  # where the consumer takes callbacks
    assert theirs == consumer.url + CALLBACK_PATH

    # nothing known of the consumer: the assumption, said so
    first = _propose(provider, made, url=consumer.url, addressee="bo")
    assert (first["callback_source"], first["callback"]) == ("assumed", consumer.url + BASE_PATH + "/callback")
    assert wait_state(provider, "negotiations", first["id"], "OFFERED", made["uma"])["callback_source"] == "assumed"

    # a participant id alone, of an engine nothing is known of: that engine is read (and must be the one named)
    assert _propose(provider, made, participant=consumer.did)["callback_source"] == "assumed"
    neither = _propose(provider, made, expect=422)
    assert neither["details"][0]["loc"] == "url", neither
    nowhere = _propose(provider, made, expect=422, participant="did:web:127.0.0.1%3A9")
    assert nowhere["details"][0]["loc"] == "participant", nowhere

    # the consumer negotiates for the offer itself, giving its callback address: that one is used from now on
    bo = consumer.token("bo")
    asked = consumer.ok("POST", "/api/v1/dataspace/negotiations", bo, expect=201, json={
        "url": provider.url, "dataset": made["offer"]["dataset_id"]})
    wait_state(consumer, "negotiations", asked["id"], "FINALIZED", bo)
    given = _propose(provider, made, url=consumer.url, participant=consumer.did, addressee="bo")
    assert (given["callback_source"], given["callback"]) == ("given", theirs)
    reached = wait_state(provider, "negotiations", given["id"], "OFFERED", made["uma"])
    assert reached["consumer_pid"] and reached["callback"] == theirs
    # known, the participant id alone is enough: nothing is read from its engine first
    alone = _propose(provider, made, participant=consumer.did)
    assert alone["callback_source"] == "given"
    wait_state(provider, "negotiations", alone["id"], "OFFERED", made["uma"])

    # the register's address comes first: off the participant's origin it is refused, naming the field
    bad = provider.api("PUT", "/api/v1/dataspace/participants", json={
        "did": consumer.did, "callback": "http://elsewhere.example/api/dsp/callback"})
    assert bad.status_code == 422 and bad.json()["details"][0]["loc"] == "callback", bad.text
    recorded = provider.ok("PUT", "/api/v1/dataspace/participants", json={"did": consumer.did,
                                                                          "callback": theirs + "/"})
    assert recorded["callback"] == theirs
    assert any(p["did"] == consumer.did and p["callback"] == theirs
               for p in provider.ok("GET", "/api/v1/dataspace/participants"))
    configured = _propose(provider, made, url=consumer.url, addressee="bo")
    assert (configured["callback_source"], configured["callback"]) == ("configured", theirs)
    wait_state(provider, "negotiations", configured["id"], "OFFERED", made["uma"])
    [offered] = [n for n in consumer.ok("GET", "/api/v1/dataspace/negotiations?role=consumer", bo)
                 if n["provider_pid"] == configured["provider_pid"]]
    assert offered["state"] == "OFFERED" and offered["addressee"] == "bo"
    # the register forgets it: the given address again
    provider.ok("DELETE", f"/api/v1/dataspace/participants/{quote(consumer.did, safe='')}", expect=204)
    assert _propose(provider, made, url=consumer.url)["callback_source"] == "given"


def test_a_participant_whose_callbacks_lie_elsewhere(engines: tuple[Participant, Participant],
                                                     made: dict[str, Any]) -> None:
    """The tests' own participant serves its DSP endpoints under /dsp but takes callbacks at /cb: once it gave
    that address in a request of its own, the proposal's initial offer goes there, not to /dsp/callback."""
    provider, _consumer = engines
    offer = made["offer"]
    with served_peer() as peer:
        assumed = _propose(provider, made, url=peer.url)
        assert (assumed["callback_source"], assumed["callback"]) == ("assumed", peer.url + "/dsp/callback")
        eventually(lambda: any(path == "callback/negotiations/offers" for path, _ in peer.received))

        cpid = f"urn:uuid:{uuid.uuid4()}"
        asked = peer.send(provider, BASE_PATH + "/negotiations/request", msg(
            "ContractRequestMessage", consumerPid=cpid, callbackAddress=peer.callback,
            offer={"@id": offer["id"], "@type": "Offer", "target": offer["dataset_id"],
                   "permission": [{"action": "use"}]}))
        assert asked.status_code == 201, asked.text
        given = _propose(provider, made, url=peer.url, participant=peer.did)
        assert (given["callback_source"], given["callback"]) == ("given", peer.callback)

        def delivered(where: str, proposal: dict[str, Any]) -> dict[str, Any] | None:
            with peer.lock:
                return next((body for path, body in peer.received if path == where
                             and body.get("providerPid") == proposal["provider_pid"]), None)

        sent = eventually(lambda: delivered("negotiations/offers", given))
        assert sent["@type"] == "ContractOfferMessage" and sent["offer"]["assignee"] == peer.did
        assert sent["callbackAddress"] == provider.url + BASE_PATH
        assert delivered("callback/negotiations/offers", given) is None  # not to the assumed address as well

        # the register's address comes before the one it gave
        elsewhere = peer.callback + "/configured"
        provider.ok("PUT", "/api/v1/dataspace/participants", json={"did": peer.did, "callback": elsewhere})
        configured = _propose(provider, made, url=peer.url)
        assert (configured["callback_source"], configured["callback"]) == ("configured", elsewhere)
        assert eventually(lambda: delivered("configured/negotiations/offers", configured))["offer"]["target"] == \
            offer["dataset_id"]
        assert not peer.problems
