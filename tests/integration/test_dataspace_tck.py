"""The 67 mandatory tests of the Dataspace Protocol TCK (eclipse-dataspacetck/dsp-tck v1.0.1), mirrored by id.

The official TCK needs Gradle and Docker and does not run here; each case below sends the message sequence its
namesake sends and expects the state and answer it expects, against one engine served over HTTP. The test's own
participant (``Peer``: a did:web of its own, signing its messages) plays the TCK's side: the consumer for MET, CAT,
CN and TP (the engine provides), the provider for CN_C and TP_C (the engine consumes). The engine's own steps
(``P ...`` where it provides, ``C ...`` where it consumes) are a person's steps through its API on manual offers
and negotiations. Every message the engine sends the peer, and every answer it gives, is checked against its
JSON Schema (``Peer.problems``).

A sequence is written as its TCK's title is: ``C request, P offer, C accept, ...``; ``!`` marks the step the case
expects refused (400, the spec's error object) and ``= STATE`` the state both sides end in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataspace_fixtures import BACKENDS, CONTEXT, Participant, Peer, engine_store, served_engine, served_peer
from streams_fixtures import eventually
from twinengine.dataspace.protocol import BASE_PATH, CALLBACK_PATH

CASES: dict[str, str] = {
    # metadata and catalog (the engine provides)
    "MET:01-01": "metadata",
    "CAT:01-01": "catalog",
    "CAT:01-02": "dataset",
    "CAT:01-03": "dataset not found",
    # contract negotiation, the engine as provider
    "CN:01-01": "C request, P offer, C terminate = TERMINATED",
    "CN:01-02": "C request, P offer, C request, P terminate = TERMINATED",
    "CN:01-03": "C request, P offer, C accept, P agree, C verify, P finalize = FINALIZED",
    "CN:01-04": "C request, P agree, C verify, P finalize = FINALIZED",
    "CN:02-01": "C request, P terminate = TERMINATED",
    "CN:02-02": "C request, C terminate = TERMINATED",
    "CN:02-03": "C request, P agree, C terminate = TERMINATED",
    "CN:02-04": "C request, P offer, C terminate = TERMINATED",
    "CN:02-05": "C request, P offer, P terminate = TERMINATED",
    "CN:02-06": "C request, P offer, C accept, P terminate = TERMINATED",
    "CN:02-07": "C request, P agree, C verify, P terminate = TERMINATED",
    "CN:03-01": "C request, P agree, C verify, P finalize, C! terminate = FINALIZED",
    "CN:03-02": "C request, P offer, C! verify = OFFERED",
    "CN:03-03": "C request, P offer, C accept, C! verify = ACCEPTED",
    "CN:03-04": "C request, P offer, C request, C! request = REQUESTED",
    # contract negotiation, the engine as consumer
    "CN_C:01-01": "C request, P offer, C accept, P agree, C verify, P finalize = FINALIZED",
    "CN_C:01-02": "C request, P offer, C request, P terminate = TERMINATED",
    "CN_C:01-03": "C request, P offer, C terminate = TERMINATED",
    "CN_C:01-04": "C request, P agree, C verify, P finalize = FINALIZED",
    "CN_C:02-01": "C request, P terminate = TERMINATED",
    "CN_C:02-02": "C request, C terminate = TERMINATED",
    "CN_C:02-03": "C request, P agree, C terminate = TERMINATED",
    "CN_C:02-04": "C request, P offer, P terminate = TERMINATED",
    "CN_C:02-05": "C request, P offer, C accept, P terminate = TERMINATED",
    "CN_C:02-06": "C request, P agree, C verify, P terminate = TERMINATED",
    "CN_C:03-01": "C request, P! finalize = REQUESTED",
    "CN_C:03-02": "C request, P offer, P! agree = OFFERED",
    "CN_C:03-03": "C request, P offer, P! finalize = OFFERED",
    "CN_C:03-04": "C request, P offer, C accept, P! finalize = ACCEPTED",
    "CN_C:03-05": "C request, P offer, C accept, P! offer = ACCEPTED",
    "CN_C:03-06": "C request, P offer, C accept, P agree, P! finalize = AGREED",
    # transfer process, the engine as provider
    "TP:01-01": "C request, P start, P terminate = TERMINATED",
    "TP:01-02": "C request, P start, P complete = COMPLETED",
    "TP:01-03": "C request, P start, P suspend, P terminate = TERMINATED",
    "TP:01-04": "C request, P start, P suspend, P start, P complete = COMPLETED",
    "TP:01-05": "C request, P terminate = TERMINATED",
    "TP:02-01": "C request, P start, C terminate = TERMINATED",
    "TP:02-02": "C request, P start, C complete = COMPLETED",
    "TP:02-03": "C request, P start, C suspend, C terminate = TERMINATED",
    "TP:02-04": "C request, P start, C suspend, C start, C complete = COMPLETED",
    "TP:02-05": "C request, C terminate = TERMINATED",
    "TP:03-01": "C request, C! complete = REQUESTED",
    "TP:03-02": "C request, C! suspend = REQUESTED",
    "TP:03-03": "C request, P start, C suspend, C! complete = SUSPENDED",
    "TP:03-04": "C request, P start, C terminate, C! start = TERMINATED",
    "TP:03-05": "C request, P start, C terminate, C! suspend = TERMINATED",
    "TP:03-06": "C request, P start, C terminate, C! complete = TERMINATED",
    # transfer process, the engine as consumer
    "TP_C:01-01": "C request, P start, P terminate = TERMINATED",
    "TP_C:01-02": "C request, P start, P complete = COMPLETED",
    "TP_C:01-03": "C request, P start, P suspend, P terminate = TERMINATED",
    "TP_C:01-04": "C request, P start, P suspend, P start, P complete = COMPLETED",
    "TP_C:01-05": "C request, P terminate = TERMINATED",
    "TP_C:02-01": "C request, P start, C terminate = TERMINATED",
    "TP_C:02-02": "C request, P start, C complete = COMPLETED",
    "TP_C:02-03": "C request, P start, C suspend, C terminate = TERMINATED",
    "TP_C:02-04": "C request, P start, C suspend, C start, C complete = COMPLETED",
    "TP_C:02-05": "C request, C terminate = TERMINATED",
    "TP_C:03-01": "C request, P! complete = REQUESTED",
    "TP_C:03-02": "C request, P! suspend = REQUESTED",
    "TP_C:03-03": "C request, P start, P suspend, P! complete = SUSPENDED",
    "TP_C:03-04": "C request, P start, P terminate, P! start = TERMINATED",
    "TP_C:03-05": "C request, P start, P terminate, P! suspend = TERMINATED",
    "TP_C:03-06": "C request, P start, P terminate, P! complete = TERMINATED",
}

NEGOTIATION_MESSAGE = {"offer": "ContractOfferMessage", "agree": "ContractAgreementMessage",
                       "finalize": "ContractNegotiationEventMessage",
                       "terminate": "ContractNegotiationTerminationMessage",
                       "request": "ContractRequestMessage", "accept": "ContractNegotiationEventMessage",
                       "verify": "ContractAgreementVerificationMessage"}
NEGOTIATION_PATH = {"request": "request", "accept": "events", "verify": "agreement/verification",
                    "terminate": "termination", "offer": "offers", "agree": "agreement", "finalize": "events"}
TRANSFER_MESSAGE = {"start": "TransferStartMessage", "complete": "TransferCompletionMessage",
                    "suspend": "TransferSuspensionMessage", "terminate": "TransferTerminationMessage"}
TRANSFER_PATH = {"start": "start", "complete": "completion", "suspend": "suspension", "terminate": "termination"}


def msg(kind: str, **fields: Any) -> dict[str, Any]:
    return {"@context": CONTEXT, "@type": kind, **fields}


pytestmark = pytest.mark.every_store  # the state machines live in the store: both stores


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store, once per module: one engine serves every case."""
    return str(request.param)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path, backend: str) -> Iterator[dict[str, Any]]:
    """One engine with a manual offer of a small dataset, and the tests' own participant."""
    with engine_store(backend) as url, \
            served_engine(tmp_path_factory.mktemp("tck"), migrated_sqlite, database_url=url) as engine, \
            served_peer() as peer:
        engine.ok("POST", "/api/v1/lake/dids", json={"did": "reach:tck", "type": "dataset"}, expect=201)
        engine.upload("reach:tck/levels.csv", b"time,level\n2026-03-01T00:00:00Z,1.2\n", "reach:tck")
        offer = engine.ok("POST", "/api/v1/dataspace/offers", expect=201, json={
            "did": "reach:tck", "title": "TCK dataset", "manual": True})
        yield {"engine": engine, "peer": peer, "offer": offer}
        assert not peer.problems, "messages or answers off their schema:\n" + "\n".join(peer.problems)


def _steps(sequence: str) -> tuple[list[tuple[str, str, bool]], str | None]:
    body, _, final = sequence.partition("=")
    steps = []
    for part in body.split(","):
        side, action = part.split()
        steps.append((side[0], action, side.endswith("!")))
    return steps, final.strip() or None


# -- the engine provides -----------------------------------------------------------------------------------------

class ProviderNegotiation:
    def __init__(self, world: dict[str, Any]) -> None:
        self.engine: Participant = world["engine"]
        self.peer: Peer = world["peer"]
        self.offer = world["offer"]
        self.cpid, self.ppid = f"urn:uuid:{uuid.uuid4()}", ""
        self.agreement: str | None = None

    def _id(self) -> int:
        found = [n for n in self.engine.ok("GET", "/api/v1/dataspace/negotiations?role=provider")
                 if n["provider_pid"] == self.ppid]
        return int(found[0]["id"])

    def state(self) -> str:
        response = self.peer.send(self.engine, f"{BASE_PATH}/negotiations/{self.ppid}", method="GET")
        assert response.status_code == 200, response.text
        return str(response.json()["state"])

    def consumer(self, action: str, refused: bool) -> None:
        pids = {"providerPid": self.ppid, "consumerPid": self.cpid}
        offer = {**self.offer["policy"], "target": self.offer["dataset_id"]}
        if action == "request" and not self.ppid:
            response = self.peer.send(self.engine, f"{BASE_PATH}/negotiations/request", msg(
                "ContractRequestMessage", consumerPid=self.cpid, offer=offer, callbackAddress=self.peer.callback))
            assert response.status_code == 201, response.text
            self.ppid = response.json()["providerPid"]
            assert response.json()["state"] == "REQUESTED"
            return
        body = {"request": lambda: msg("ContractRequestMessage", **pids, offer=offer),
                "accept": lambda: msg("ContractNegotiationEventMessage", **pids, eventType="ACCEPTED"),
                "verify": lambda: msg("ContractAgreementVerificationMessage", **pids),
                "terminate": lambda: msg("ContractNegotiationTerminationMessage", **pids, code="tck",
                                         reason=["the TCK ends it"])}[action]()
        before = self.state()
        response = self.peer.send(self.engine, f"{BASE_PATH}/negotiations/{self.ppid}/{NEGOTIATION_PATH[action]}",
                                  body)
        if refused:
            assert response.status_code == 400, response.text
            assert response.json()["@type"] == "ContractNegotiationError"
            assert self.state() == before  # refused: the process is as it was
        else:
            assert response.status_code == 200, response.text

    def provider(self, action: str) -> None:
        seen = len(self.peer.messages(NEGOTIATION_MESSAGE[action]))
        self.engine.ok("POST", f"/api/v1/dataspace/negotiations/{self._id()}/{action}")
        found = eventually(lambda: [m for m in self.peer.messages(NEGOTIATION_MESSAGE[action])[seen:]
                                    if m.get("consumerPid") == self.cpid])
        if action == "agree":
            self.agreement = found[0]["agreement"]["@id"]
        eventually(lambda: not self.engine.ok("GET", f"/api/v1/dataspace/negotiations/{self._id()}")["pending"])


class ProviderTransfer:
    def __init__(self, world: dict[str, Any]) -> None:
        self.engine: Participant = world["engine"]
        self.peer: Peer = world["peer"]
        self.agreement = world["provider_agreement"]
        self.cpid, self.ppid = f"urn:uuid:{uuid.uuid4()}", ""

    def _id(self) -> int:
        found = [t for t in self.engine.ok("GET", "/api/v1/dataspace/transfers?role=provider")
                 if t["provider_pid"] == self.ppid]
        return int(found[0]["id"])

    def state(self) -> str:
        response = self.peer.send(self.engine, f"{BASE_PATH}/transfers/{self.ppid}", method="GET")
        assert response.status_code == 200, response.text
        return str(response.json()["state"])

    def consumer(self, action: str, refused: bool) -> None:
        pids = {"providerPid": self.ppid, "consumerPid": self.cpid}
        if action == "request":
            response = self.peer.send(self.engine, f"{BASE_PATH}/transfers/request", msg(
                "TransferRequestMessage", consumerPid=self.cpid, agreementId=self.agreement, format="HttpData-PULL",
                callbackAddress=self.peer.callback))
            assert response.status_code == 201, response.text
            self.ppid = response.json()["providerPid"]
            return
        extra = {"code": "tck", "reason": ["by the TCK"]} if action in ("terminate", "suspend") else {}
        before = self.state()
        response = self.peer.send(self.engine, f"{BASE_PATH}/transfers/{self.ppid}/{TRANSFER_PATH[action]}",
                                  msg(TRANSFER_MESSAGE[action], **pids, **extra))
        if refused:
            assert response.status_code == 400, response.text
            assert response.json()["@type"] == "TransferError"
            assert self.state() == before
        else:
            assert response.status_code == 200, response.text

    def provider(self, action: str) -> None:
        seen = len(self.peer.messages(TRANSFER_MESSAGE[action]))
        self.engine.ok("POST", f"/api/v1/dataspace/transfers/{self._id()}/{action}")
        found = eventually(lambda: [m for m in self.peer.messages(TRANSFER_MESSAGE[action])[seen:]
                                    if m.get("consumerPid") == self.cpid])
        if action == "start":
            assert found[0]["dataAddress"]["endpointProperties"][0]["name"] == "authorization"
        eventually(lambda: not self.engine.ok("GET", f"/api/v1/dataspace/transfers/{self._id()}")["pending"])


# -- the engine consumes -----------------------------------------------------------------------------------------

class ConsumerNegotiation:
    def __init__(self, world: dict[str, Any], manual: bool = True) -> None:
        self.engine: Participant = world["engine"]
        self.peer: Peer = world["peer"]
        self.manual = manual
        self.id, self.cpid, self.ppid = 0, "", ""
        self.dataset = f"urn:uuid:{uuid.uuid4()}"

    def _read(self) -> dict[str, Any]:
        found: dict[str, Any] = self.engine.ok("GET", f"/api/v1/dataspace/negotiations/{self.id}")
        return found

    def state(self) -> str:
        response = self.peer.send(self.engine, f"{CALLBACK_PATH}/negotiations/{self.cpid}", method="GET")
        assert response.status_code == 200, response.text
        return str(response.json()["state"])

    def consumer(self, action: str, refused: bool) -> None:
        assert not refused
        if action == "request" and not self.id:
            made = self.engine.ok("POST", "/api/v1/dataspace/negotiations", expect=201, json={
                "url": self.peer.url, "dataset": self.dataset, "manual": self.manual})
            self.id, self.cpid = made["id"], made["consumer_pid"]
            eventually(lambda: self._read()["state"] == "REQUESTED")
            self.ppid = self.peer.pids[self.cpid]
            return
        seen = len(self.peer.messages(NEGOTIATION_MESSAGE[action]))
        self.engine.ok("POST", f"/api/v1/dataspace/negotiations/{self.id}/{action}")
        eventually(lambda: [m for m in self.peer.messages(NEGOTIATION_MESSAGE[action])[seen:]
                            if m.get("consumerPid") == self.cpid])
        eventually(lambda: not self._read()["pending"])

    def provider(self, action: str, refused: bool = False) -> None:
        pids = {"providerPid": self.ppid, "consumerPid": self.cpid}
        offer = {**self.peer.offer, "target": self.dataset}
        body = {"offer": lambda: msg("ContractOfferMessage", **pids, offer=offer),
                "agree": lambda: msg("ContractAgreementMessage", **pids, agreement={
                    "@id": f"urn:uuid:{uuid.uuid4()}", "@type": "Agreement",
                    "permission": self.peer.offer["permission"],
                    "target": self.dataset, "timestamp": "2026-03-01T00:00:00Z", "assigner": self.peer.did,
                    "assignee": self.engine.did}),
                "finalize": lambda: msg("ContractNegotiationEventMessage", **pids, eventType="FINALIZED"),
                "terminate": lambda: msg("ContractNegotiationTerminationMessage", **pids, code="tck",
                                         reason=["the TCK ends it"])}[action]()
        before = self.state()
        response = self.peer.send(self.engine,
                                  f"{CALLBACK_PATH}/negotiations/{self.cpid}/{NEGOTIATION_PATH[action]}", body)
        if refused:
            assert response.status_code == 400, response.text
            assert response.json()["@type"] == "ContractNegotiationError"
            assert self.state() == before
        else:
            assert response.status_code == 200, response.text
        eventually(lambda: not self._read()["pending"])


class ConsumerTransfer:
    def __init__(self, world: dict[str, Any]) -> None:
        self.engine: Participant = world["engine"]
        self.peer: Peer = world["peer"]
        self.agreement = world["consumer_agreement"]
        self.id, self.cpid, self.ppid = 0, "", ""

    def _read(self) -> dict[str, Any]:
        found: dict[str, Any] = self.engine.ok("GET", f"/api/v1/dataspace/transfers/{self.id}")
        return found

    def state(self) -> str:
        return str(self._read()["state"])

    def consumer(self, action: str, refused: bool) -> None:
        assert not refused
        if action == "request":
            made = self.engine.ok("POST", "/api/v1/dataspace/transfers", expect=201, json={
                "agreement": self.agreement, "did": "tck:unused", "land_data": False})
            self.id, self.cpid = made["id"], made["consumer_pid"]
            eventually(lambda: self._read()["state"] == "REQUESTED")
            self.ppid = self.peer.pids[self.cpid]
            return
        seen = len(self.peer.messages(TRANSFER_MESSAGE[action]))
        self.engine.ok("POST", f"/api/v1/dataspace/transfers/{self.id}/{action}")
        eventually(lambda: [m for m in self.peer.messages(TRANSFER_MESSAGE[action])[seen:]
                            if m.get("consumerPid") == self.cpid])
        eventually(lambda: not self._read()["pending"])

    def provider(self, action: str, refused: bool = False) -> None:
        pids = {"providerPid": self.ppid, "consumerPid": self.cpid}
        extra: dict[str, Any] = {"code": "tck", "reason": ["by the TCK"]} if action in ("terminate", "suspend") \
            else {}
        if action == "start":
            extra["dataAddress"] = {"@type": "DataAddress", "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
                                    "endpoint": self.peer.url + "/data", "endpointProperties": [
                                        {"@type": "EndpointProperty", "name": "authorization", "value": "t"}]}
        before = self.state()
        response = self.peer.send(self.engine, f"{CALLBACK_PATH}/transfers/{self.cpid}/{TRANSFER_PATH[action]}",
                                  msg(TRANSFER_MESSAGE[action], **pids, **extra))
        if refused:
            assert response.status_code == 400, response.text
            assert response.json()["@type"] == "TransferError"
            assert self.state() == before
        else:
            assert response.status_code == 200, response.text


def _play(run: Any, sequence: str) -> None:
    steps, final = _steps(sequence)
    for side, action, refused in steps:
        if side == "C":
            run.consumer(action, refused)
        elif refused:
            run.provider(action, refused=True)
        else:
            run.provider(action)
    if final:
        eventually(lambda: run.state() == final)


@pytest.fixture(scope="module")
def agreements(world: dict[str, Any]) -> dict[str, Any]:
    """An agreement with the peer in each role, for the transfer cases (CN:01-04 and CN_C:01-04 once more)."""
    provider = ProviderNegotiation(world)
    _play(provider, CASES["CN:01-04"])
    consumer = ConsumerNegotiation(world, manual=False)
    consumer.consumer("request", False)
    consumer.provider("agree")
    eventually(lambda: consumer._read()["state"] == "VERIFIED")
    consumer.provider("finalize")
    world["provider_agreement"] = provider.agreement
    world["consumer_agreement"] = consumer._read()["agreement_id"]
    return world


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith(("MET", "CAT"))])
def test_metadata_and_catalog(world: dict[str, Any], case: str) -> None:
    engine, peer, offer = world["engine"], world["peer"], world["offer"]
    if case == "MET:01-01":
        response = peer.send(engine, "/.well-known/dspace-version", method="GET")
        assert response.status_code == 200
        versions = response.json()["protocolVersions"]
        assert any(v["version"] == "2025-1" and v["path"] and v["binding"] for v in versions)
        bare = __import__("httpx2").get(engine.url + "/.well-known/dspace-version")  # unauthenticated
        assert bare.status_code == 200
    elif case == "CAT:01-01":
        response = peer.send(engine, f"{BASE_PATH}/catalog/request", msg("CatalogRequestMessage"))
        assert response.status_code == 200
        assert offer["dataset_id"] in [d["@id"] for d in response.json()["dataset"]]
    elif case == "CAT:01-02":
        response = peer.send(engine, f"{BASE_PATH}/catalog/datasets/{offer['dataset_id']}", method="GET")
        assert response.status_code == 200 and response.json()["@id"] == offer["dataset_id"]
    else:
        response = peer.send(engine, f"{BASE_PATH}/catalog/datasets/urn:uuid:{uuid.uuid4()}", method="GET")
        assert response.status_code == 404 and response.json()["@type"] == "CatalogError"


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith(("CN:", "CN_C:"))])
def test_contract_negotiation(world: dict[str, Any], case: str) -> None:
    run = ProviderNegotiation(world) if case.startswith("CN:") else ConsumerNegotiation(world)
    _play(run, CASES[case])


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith(("TP:", "TP_C:"))])
def test_transfer_process(agreements: dict[str, Any], case: str) -> None:
    run = ProviderTransfer(agreements) if case.startswith("TP:") else ConsumerTransfer(agreements)
    _play(run, CASES[case])


def test_sixty_seven_mandatory_cases_are_mirrored() -> None:
    kinds = [c.split(":")[0] for c in CASES]
    assert {k: kinds.count(k) for k in set(kinds)} == {"MET": 1, "CAT": 3, "CN": 15, "CN_C": 16, "TP": 16,
                                                       "TP_C": 16}


# -- beyond the TCK: a consumer that stopped between sending its request and applying the answer -----------------

@pytest.mark.parametrize("kind", ["negotiations", "transfers"])
def test_a_providers_message_acknowledges_a_request_whose_answer_was_never_applied(agreements: dict[str, Any],
                                                                                   kind: str) -> None:
    """The engine was killed after the provider received its request and before it applied the answer: the row is
    as it was before (INITIAL, the request owed, claimed by the dead process). The provider's next message names
    its process and counts as that answer; refused with 404, it made the provider terminate a process that this
    side then resumed alone."""
    from datetime import timedelta

    from twinengine.dataspace.models import Negotiation, TransferProcess
    from twinengine.store.base import utcnow

    engine, peer = agreements["engine"], agreements["peer"]
    run: ConsumerNegotiation | ConsumerTransfer = ConsumerNegotiation(agreements) if kind == "negotiations" \
        else ConsumerTransfer(agreements)
    run.consumer("request", False)
    model: Any = Negotiation if kind == "negotiations" else TransferProcess
    with engine.runtime.db.session() as session:
        row = session.get(model, run.id)
        row.state, row.provider_pid, row.pending, row.due_at = "INITIAL", None, "request", utcnow()
        row.claimed_until = utcnow() + timedelta(hours=1)
    pids = {"providerPid": run.ppid, "consumerPid": run.cpid}
    if kind == "negotiations":
        path = f"{CALLBACK_PATH}/negotiations/{run.cpid}/offers"
        body = msg("ContractOfferMessage", **pids, offer={**peer.offer, "target": run.dataset})
    else:
        path = f"{CALLBACK_PATH}/transfers/{run.cpid}/start"
        body = msg("TransferStartMessage", **pids, dataAddress={
            "@type": "DataAddress", "endpointType": "https://w3id.org/idsa/v4.1/HTTP", "endpoint": peer.url + "/data",
            "endpointProperties": [{"@type": "EndpointProperty", "name": "authorization", "value": "t"}]})
    answer = peer.send(engine, path, body)
    assert answer.status_code == 200, answer.text
    read = run._read()
    assert read["state"] == ("OFFERED" if kind == "negotiations" else "STARTED"), read
    assert read["provider_pid"] == run.ppid and read["pending"] is None


def test_a_transfer_request_before_finalized_was_acknowledged_finalizes_and_is_not_refused(
        agreements: dict[str, Any]) -> None:
    """The consumer asks for a transfer while the provider's FINALIZED event still awaits its acknowledgement: the
    request proves the event arrived, so the agreement is in force (``finalized_by_use``) and the transfer goes on.
    Reading the agreement again under its lock once discarded that unflushed change, and the transfer was
    terminated as "not finalized" (seen on a loaded machine, where the window is wide)."""
    from sqlalchemy import select

    from twinengine.dataspace.models import Agreement, Negotiation, TransferProcess

    engine, peer = agreements["engine"], agreements["peer"]
    agreement_id = agreements["provider_agreement"]
    with engine.runtime.db.session() as session:
        agreement = session.scalar(select(Agreement).where(Agreement.id == agreement_id, Agreement.role == "provider"))
        assert agreement is not None
        negotiation = session.get(Negotiation, agreement.negotiation_id)
        assert negotiation is not None
        agreement.finalized = False
        negotiation.state, negotiation.pending, negotiation.attempts = "VERIFIED", "finalize", 1
    cpid = f"urn:uuid:{uuid.uuid4()}"
    answer = peer.send(engine, f"{BASE_PATH}/transfers/request", msg(
        "TransferRequestMessage", consumerPid=cpid, agreementId=agreement_id, format="HttpData-PULL",
        callbackAddress=peer.callback))
    assert answer.status_code == 201, answer.text
    with engine.runtime.db.session(readonly=True) as session:
        agreement = session.scalar(select(Agreement).where(Agreement.id == agreement_id, Agreement.role == "provider"))
        row = session.scalar(select(TransferProcess).where(TransferProcess.consumer_pid == cpid))
        assert agreement is not None and agreement.finalized
        assert session.get(Negotiation, agreement.negotiation_id).state == "FINALIZED"  # type: ignore[union-attr]
        assert row is not None and row.error is None and row.pending != "terminate", (row.state, row.error)


def test_a_message_whose_unit_of_work_the_store_ended_is_repeated_then_refused_in_the_specs_words(
        agreements: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL ended a transfer request's transaction in a deadlock with the courier finalizing the same
    negotiation (seen in a loaded run): the peer got the engine's own 409 body, off the spec's schema, and its
    transfer never started. The unit of work wrote nothing, so it is repeated; one the store keeps ending is
    refused with the spec's TransferError."""
    from psycopg.errors import DeadlockDetected
    from sqlalchemy.exc import OperationalError

    from twinengine.dataspace import transfer

    engine, peer = agreements["engine"], agreements["peer"]
    real, calls = transfer.provider_request, []

    def ended(times: int) -> Any:
        def request(*args: Any) -> Any:
            calls.append(1)
            if len(calls) <= times:
                raise OperationalError("UPDATE ds_agreements ...", {}, DeadlockDetected("deadlock detected"))
            return real(*args)
        return request

    def send() -> Any:
        return peer.send(engine, f"{BASE_PATH}/transfers/request", msg(
            "TransferRequestMessage", consumerPid=f"urn:uuid:{uuid.uuid4()}", agreementId=agreements[
                "provider_agreement"], format="HttpData-PULL", callbackAddress=peer.callback))

    monkeypatch.setattr(transfer, "provider_request", ended(1))
    answer = send()
    assert answer.status_code == 201 and answer.json()["@type"] == "TransferProcess", answer.text
    assert len(calls) == 2
    calls.clear()
    monkeypatch.setattr(transfer, "provider_request", ended(99))
    refused = send()
    assert refused.status_code == 409, refused.text
    assert refused.json()["@type"] == "TransferError" and refused.json()["code"] == "409"
    assert "repeat it" in refused.json()["reason"][0]
    assert len(calls) == 3
    assert not peer.problems, peer.problems


def test_a_request_answered_as_terminated_ends_terminated() -> None:
    """The request delivered again after the provider had ended the process: its answer says TERMINATED."""
    from twinengine.dataspace import negotiation, transfer
    from twinengine.dataspace.models import Negotiation, TransferProcess

    for machine, row in ((negotiation, Negotiation(role="consumer", state="INITIAL", pending="request")),
                         (transfer, TransferProcess(role="consumer", state="INITIAL", pending="request"))):
        machine.settle(row, "request", {"providerPid": "urn:uuid:p", "state": "TERMINATED"})
        assert (row.state, row.provider_pid, row.pending) == ("TERMINATED", "urn:uuid:p", None)
