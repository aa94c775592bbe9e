"""Negotiations a provider starts (``dataspace.proposals``): the state machine's moves from INITIAL, the initial
offer on the consumer's side (OFFERED, for its addressee, once however often it arrives), the provider's side
once the consumer answered (or moved on), and whom a proposal is for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from helpers import copy_sqlite
from twinengine.auth.principal import Principal
from twinengine.auth.principal import Role as UserRole
from twinengine.dataspace import negotiation, proposals
from twinengine.dataspace.models import Negotiation, Offer
from twinengine.dataspace.protocol import (
    NEGOTIATION_FINAL,
    NEGOTIATION_MOVES,
    DspError,
    NegotiationState,
    Role,
    new_pid,
)
from twinengine.dataspace.spec import problems
from twinengine.store.engine import Database

N = NegotiationState
CONTEXT = ["https://w3id.org/dspace/2025/1/context.jsonld"]
US, PROVIDER = "did:web:127.0.0.1%3A9001", "did:web:127.0.0.1%3A9002"
PROVIDER_BASE = "http://127.0.0.1:9002/dsp/2025-1"

# the 2025-1 diagram (negotiation/figures/contract.negotiation.state.machine.puml), termination aside: the
# termination message "MAY be sent at any state" (contract.negotiation.protocol.md), so from every non-final one
DIAGRAM = {(N.INITIAL, N.REQUESTED, Role.CONSUMER), (N.REQUESTED, N.OFFERED, Role.PROVIDER),
           (N.REQUESTED, N.AGREED, Role.PROVIDER), (N.INITIAL, N.OFFERED, Role.PROVIDER),
           (N.OFFERED, N.REQUESTED, Role.CONSUMER), (N.OFFERED, N.ACCEPTED, Role.CONSUMER),
           (N.ACCEPTED, N.AGREED, Role.PROVIDER), (N.AGREED, N.VERIFIED, Role.CONSUMER),
           (N.VERIFIED, N.FINALIZED, Role.PROVIDER)}


def test_the_negotiation_moves_are_the_diagrams() -> None:
    edges = {(s, target, sender) for (action, sender), (sources, target) in NEGOTIATION_MOVES.items()
             if action != "terminate" for s in sources}
    assert edges == DIAGRAM
    assert NEGOTIATION_MOVES[("offer", Role.PROVIDER)] == ({N.INITIAL, N.REQUESTED}, N.OFFERED)
    assert NEGOTIATION_MOVES[("request", Role.CONSUMER)] == ({N.INITIAL, N.OFFERED}, N.REQUESTED)
    for sender in Role:
        sources, target = NEGOTIATION_MOVES[("terminate", sender)]
        assert target is N.TERMINATED and sources == set(N) - NEGOTIATION_FINAL - {N.INITIAL}


def test_whom_a_proposal_is_for() -> None:
    assert proposals.assignee_of(US, None) == US
    assert proposals.assignee_of(US, "group:forecasters") == f"{US}#group:forecasters"
    assert proposals.addressee_of(US, US) is None
    assert proposals.addressee_of(None, US) is None
    assert proposals.addressee_of(f"{US}#bo", US) == "bo"
    assert proposals.addressee_of(f"{US}#group:forecasters", US) == "group:forecasters"
    for other in ("did:web:elsewhere.example", f"{US}#", f"{US}#a b", f"{US}x#bo", 7):
        with pytest.raises(DspError) as refused:
            proposals.addressee_of(other, US)
        assert refused.value.status == 400
    bo = Principal(name="bo", role=UserRole.USER, groups=frozenset({"forecasters"}))
    ann = Principal(name="ann", role=UserRole.USER)
    admin = Principal(name="root", role=UserRole.ADMIN)
    assert proposals.addressed(bo, "bo") and proposals.addressed(bo, "group:forecasters")
    assert not proposals.addressed(ann, "bo") and not proposals.addressed(ann, "group:forecasters")
    assert not proposals.addressed(bo, None) and not proposals.addressed(ann, None)  # the admins'
    assert all(proposals.addressed(admin, a) for a in (None, "bo", "group:forecasters"))


@dataclass
class Us:
    """The connector as the functions under test see it."""

    did: str = US


@pytest.fixture
def session(migrated_sqlite: Path, tmp_path: Path) -> Iterator[Session]:
    copy_sqlite(migrated_sqlite, tmp_path / "twin.db")
    db = Database(f"sqlite:///{tmp_path / 'twin.db'}")
    try:
        with db.session() as session:
            yield session
    finally:
        db.dispose()


def initial(provider_pid: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {"@context": CONTEXT, "@type": "ContractOfferMessage", "providerPid": provider_pid or new_pid(),
            "callbackAddress": PROVIDER_BASE,
            "offer": {"@id": "urn:uuid:o1", "@type": "Offer", "target": "urn:uuid:d1", "assignee": f"{US}#bo",
                      "permission": [{"action": "use"}]}}
    body.update(fields)
    assert fields or not problems(body, "ContractOfferMessage")
    return {k: v for k, v in body.items() if v is not None}


def _count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Negotiation)) or 0)


def test_an_initial_offer_makes_one_offered_negotiation_for_its_addressee(session: Session) -> None:
    body = initial()
    status, answer = proposals.offered(session, Us(), PROVIDER, json.loads(json.dumps(body)))
    assert status == 201 and answer["state"] == "OFFERED" and answer["providerPid"] == body["providerPid"]
    assert not problems(answer, "ContractNegotiation")
    row = session.scalars(select(Negotiation)).one()
    assert (row.role, row.owner, row.addressee, row.peer, row.peer_base) == ("consumer", "", "bo", PROVIDER,
                                                                            PROVIDER_BASE)
    assert (row.offered_by, row.dataset_id, row.offer_id) == ("provider", "urn:uuid:d1", "urn:uuid:o1")
    again = proposals.offered(session, Us(), PROVIDER, body)  # the same message again: the same negotiation
    assert again == (201, answer) and _count(session) == 1
    with pytest.raises(DspError) as refused:  # another participant naming that provider process
        proposals.offered(session, Us(), "did:web:elsewhere.example", body)
    assert refused.value.status == 400 and _count(session) == 1


@pytest.mark.parametrize(("change", "why"), [
    ({"consumerPid": "urn:uuid:c", "callbackAddress": None}, "names no consumerPid"),
    ({"callbackAddress": "http://elsewhere.example/dsp"}, "callbackAddress is not on"),
    ({"offer": {"@id": "urn:uuid:o", "@type": "Offer", "target": "urn:uuid:d", "assignee": "did:web:x.example",
                "permission": [{"action": "use"}]}}, "not for this participant"),
    ({"offer": {"@id": "urn:uuid:o", "@type": "Offer", "permission": [{"action": "use"}]}}, "not a valid"),
    ({"@type": "ContractRequestMessage"}, "not a valid"),
])
def test_an_initial_offer_the_consumer_refuses_changes_nothing(session: Session, change: dict[str, Any],
                                                              why: str) -> None:
    with pytest.raises(DspError) as refused:
        proposals.offered(session, Us(), PROVIDER, initial(**change))
    assert refused.value.status == 400 and why in str(refused.value), refused.value
    error = refused.value.body()
    assert error["@type"] == "ContractNegotiationError" and not problems(error, "ContractNegotiationError")
    assert _count(session) == 0


def _offer(session: Session) -> Offer:
    offer = Offer(id="urn:uuid:o1", dataset_id="urn:uuid:d1", did="reach:x", title="x", keywords=[],
                  policy=json.dumps({"@id": "urn:uuid:o1", "@type": "Offer", "permission": [{"action": "use"}]}),
                  owner="uma")
    session.add(offer)
    return offer


def _proposed(session: Session) -> Negotiation:
    offer = _offer(session)
    owner = Principal(name="uma", role=UserRole.USER)
    return proposals.start_provider(session, principal=owner, offer=offer, participant=US,
                                    consumer_base="http://127.0.0.1:9001/dsp/2025-1", addressee="bo", purpose=None)


def test_a_proposal_is_initial_until_the_consumer_answers_then_offered(session: Session) -> None:
    row = _proposed(session)
    assert (row.state, row.pending, row.consumer_pid) == ("INITIAL", "offer", None)
    assert row.peer_base == "http://127.0.0.1:9001/dsp/2025-1/callback"
    assert json.loads(row.offer or "{}")["assignee"] == f"{US}#bo"
    negotiation.settle(row, "offer", {"@type": "ContractNegotiation", "providerPid": row.provider_pid,
                                      "consumerPid": "urn:uuid:c1", "state": "OFFERED"})
    assert (row.state, row.pending, row.consumer_pid) == ("OFFERED", None, "urn:uuid:c1")


def test_an_answer_naming_no_consumer_process_terminates_the_proposal(session: Session) -> None:
    row = _proposed(session)
    negotiation.settle(row, "offer", {"@type": "ContractNegotiation", "providerPid": "urn:uuid:other",
                                      "consumerPid": "urn:uuid:c1", "state": "OFFERED"})
    assert (row.state, row.pending) == ("TERMINATED", None) and row.error


def test_the_consumers_acceptance_counts_as_its_lost_answer(session: Session) -> None:
    row = _proposed(session)
    event = {"@context": CONTEXT, "@type": "ContractNegotiationEventMessage", "providerPid": row.provider_pid,
             "consumerPid": "urn:uuid:c1", "eventType": "ACCEPTED"}
    answer = negotiation.provider_receive(session, Us(did=PROVIDER), US, row.provider_pid or "", "events", event)
    assert answer["state"] == "ACCEPTED" and row.consumer_pid == "urn:uuid:c1"
    assert row.pending == "agree" and row.agreement_id  # the offer has no steward: the agreement goes out


def test_a_message_the_state_does_not_allow_leaves_the_proposal_as_it_was(session: Session) -> None:
    _status, answer = proposals.offered(session, Us(), PROVIDER, initial())
    row = session.scalars(select(Negotiation)).one()
    for kind, body in (("events", {"@type": "ContractNegotiationEventMessage", "eventType": "FINALIZED"}),
                       ("agreement", {"@type": "ContractAgreementMessage", "agreement": {
                           "@id": "urn:uuid:a", "@type": "Agreement", "target": "urn:uuid:d1", "assigner": PROVIDER,
                           "assignee": US, "timestamp": "2026-12-01T00:00:00Z",
                           "permission": [{"action": "use"}]}})):
        message = {"@context": CONTEXT, "providerPid": answer["providerPid"], "consumerPid": answer["consumerPid"],
                   **body}
        with pytest.raises(DspError) as refused:
            negotiation.consumer_receive(session, Us(), PROVIDER, answer["consumerPid"], kind, message)
        assert refused.value.status == 400
        assert (row.state, row.pending, row.owner) == ("OFFERED", None, "")
    with pytest.raises(DspError) as unknown:  # the provider's GET by another participant: not found
        negotiation.find(session, Role.CONSUMER, "did:web:elsewhere.example", answer["consumerPid"])
    assert unknown.value.status == 404
