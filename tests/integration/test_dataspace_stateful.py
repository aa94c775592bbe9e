"""Random message sequences against each Dataspace Protocol state machine of a live engine (Hypothesis stateful
testing), in both roles: contract negotiation and transfer process, the engine as provider and as consumer.

Each sequence starts processes and sends the specification's messages in any order: valid and out of order, from
the process's participant and from another one, again after they had their effect, to unknown process ids, with
the wrong counterpart id, malformed, a termination at any point; and the engine's own steps through its API (a
steward's on a manual offer, a person's on a manual negotiation). A model of the 2025-1 state machines
(``protocol.NEGOTIATION_MOVES``, ``TRANSFER_MOVES``) says what each message must do. After every step, for every
process of the sequence, read back from the store: no answer was 5xx; the state is one the specification has
(never INITIAL once the other side acknowledged); it is the model's (so a refused message left the process as
it was, and a repeated one had no second effect); it moved only along an allowed transition; FINALIZED,
COMPLETED and TERMINATED never change; nothing is left owed to the other side. As provider of a transfer, the
data address serves only while the transfer is STARTED; as provider of a pushed transfer, a start ends
COMPLETED once the engine pushed the file to the peer's address, once, with its listed SHA-256; as consumer of a
pushed transfer, its push address takes the peer's listing and files only while STARTED, keeps exactly the
files pushed whole under their listed SHA-256, and a completion before every listed file landed changes nothing.

Sequences per state machine: ``LONG`` (60, or ``TWIN_TEST_DSP_LONG``) of up to ``STEPS`` steps in CI, on SQLite
(200 took 130-160 s for the four machines on a 2-core machine, 100 s of CPU, and 377 s in a whole CI-like run
beside the other workers; 120 for the six machines took 523 s of a CI-like run, and the whole suite then ran past
CI's time on a slower machine; CI runs 60, 368 s of a CI-like run on such a machine: too long for a local run, marked
``ci_only``, run where ``TWIN_TEST_FULL`` is set, as ``.ci/run`` does); ``SEQUENCES`` (40, or
``TWIN_TEST_DSP_SEQUENCES``) in every run, on both stores (32-38 s of CPU for the eight cases). The two took
850 s (695 s of CPU) and 132 s (125 s) while every HTTP client of a step (the tests' and the engine's courier) made
a TLS context of its own: each reads the whole CA bundle, about 20 ms of CPU, so they share the process's one.
500 of each were run with ``TWIN_TEST_DSP_LONG=500`` on a quiet machine (184-285 s a machine then, all passed).
Half the rules are the model's moves, one of them a step the model allows now (so that walks reach FINALIZED and
COMPLETED), the other half the messages that must change nothing. The sequences are derandomized (the same ones
each run, so a failure reproduces); ``TWIN_TEST_DSP_SEED`` draws others. A failure prints its sequence as a state
machine program.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, event, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from dataspace_fixtures import BACKENDS, Participant, Peer, engine_store, msg, served_engine, served_peer
from streams_fixtures import eventually
from twinengine.dataspace.models import Negotiation, TransferProcess
from twinengine.dataspace.protocol import (
    BASE_PATH,
    CALLBACK_PATH,
    NEGOTIATION_FINAL,
    NEGOTIATION_MOVES,
    TRANSFER_FINAL,
    TRANSFER_MOVES,
    NegotiationState,
    Role,
    TransferState,
)
from twinengine.transport import tls_context

pytestmark = pytest.mark.every_store  # the state machines live in the store: both stores

SEQUENCES = int(os.environ.get("TWIN_TEST_DSP_SEQUENCES", "40"))  # a local run's, per machine
LONG = int(os.environ.get("TWIN_TEST_DSP_LONG", "60"))  # CI's, per machine, on SQLite
STEPS = 12
SEED = os.environ.get("TWIN_TEST_DSP_SEED")

NEG_EDGES = {(s.value, t.value) for sources, t in NEGOTIATION_MOVES.values() for s in sources}
TRANSFER_EDGES = {(s.value, t.value) for sources, t in TRANSFER_MOVES.values() for s in sources}
NEG_STATES = {s.value for s in NegotiationState} - {"INITIAL"}
TRANSFER_STATES = {s.value for s in TransferState} - {"INITIAL"}
NEG_PATH = {"request": "request", "accept": "events", "verify": "agreement/verification", "terminate": "termination",
            "offer": "offers", "agree": "agreement", "finalize": "events"}
TRANSFER_PATH = {"start": "start", "complete": "completion", "suspend": "suspension", "terminate": "termination"}
TRANSFER_KIND = {"start": "TransferStartMessage", "complete": "TransferCompletionMessage",
                 "suspend": "TransferSuspensionMessage", "terminate": "TransferTerminationMessage"}
PICK = st.integers(min_value=0, max_value=7)
OUTCOMES: Counter[str] = Counter()  # what the messages did, over a test's sequences (printed at its end)


def outcome(text: str) -> None:
    event(text)
    OUTCOMES[text] += 1


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store, once per module: the engines below serve every case of it."""
    return str(request.param)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path, backend: str) -> Iterator[dict[str, Any]]:
    """One engine with a manual offer, the tests' participant (``peer``) and another one (``stranger``); an
    agreement with the peer in each role for the transfer machines."""
    with engine_store(backend) as url, \
            served_engine(tmp_path_factory.mktemp("stateful"), migrated_sqlite, database_url=url) as engine, \
            served_peer() as peer, served_peer() as stranger:
        engine.ok("POST", "/api/v1/lake/dids", json={"did": "reach:stateful", "type": "dataset"}, expect=201)
        engine.upload("reach:stateful/levels.csv", b"time,level\n2026-03-01T00:00:00Z,1.2\n", "reach:stateful")
        offer = engine.ok("POST", "/api/v1/dataspace/offers", expect=201, json={
            "did": "reach:stateful", "title": "Stateful dataset", "manual": True})
        world: dict[str, Any] = {"engine": engine, "peer": peer, "stranger": stranger, "offer": offer}
        world["provider_agreement"] = _provider_agreement(world)
        world["consumer_agreement"] = _consumer_agreement(world)
        yield world
        for who in (peer, stranger):
            assert not who.problems, "messages or answers off their schema:\n" + "\n".join(who.problems)


def _quiet(engine: Participant, model: Any, row_id: int) -> Any:
    """The process once it owes the other side nothing (the courier sent and settled its message)."""
    def settled() -> Any:
        with engine.runtime.db.session(readonly=True) as session:
            row = session.get(model, row_id)
            assert row is not None
            session.expunge(row)
            return row if row.pending is None else None

    return eventually(settled, timeout=30, interval=0.005)


def _provider_agreement(world: dict[str, Any]) -> str:
    """C request, P agree, C verify, P finalize: a finalized agreement the engine provides to the peer."""
    engine, peer, offer = world["engine"], world["peer"], world["offer"]
    cpid = f"urn:uuid:{uuid.uuid4()}"
    answer = peer.send(engine, f"{BASE_PATH}/negotiations/request", msg(
        "ContractRequestMessage", consumerPid=cpid, offer={**offer["policy"], "target": offer["dataset_id"]},
        callbackAddress=peer.callback))
    assert answer.status_code == 201, answer.text
    ppid = answer.json()["providerPid"]
    row_id = _row_id(engine, Negotiation, Role.PROVIDER, cpid)
    engine.ok("POST", f"/api/v1/dataspace/negotiations/{row_id}/agree")
    _quiet(engine, Negotiation, row_id)
    verified = peer.send(engine, f"{BASE_PATH}/negotiations/{ppid}/agreement/verification",
                         msg("ContractAgreementVerificationMessage", providerPid=ppid, consumerPid=cpid))
    assert verified.status_code == 200, verified.text
    engine.ok("POST", f"/api/v1/dataspace/negotiations/{row_id}/finalize")
    row = _quiet(engine, Negotiation, row_id)
    assert row.state == "FINALIZED"
    return str(row.agreement_id)


def _consumer_agreement(world: dict[str, Any]) -> str:
    """The engine asks the peer; P agree, (C verify by itself), P finalize: an agreement the engine holds."""
    engine, peer = world["engine"], world["peer"]
    made = engine.ok("POST", "/api/v1/dataspace/negotiations", expect=201, json={
        "url": peer.url, "dataset": f"urn:uuid:{uuid.uuid4()}"})
    row = _quiet(engine, Negotiation, made["id"])
    ppid, cpid = peer.pids[row.consumer_pid], row.consumer_pid
    agreement = _peer_agreement(world, row.dataset_id)
    peer.send(engine, f"{CALLBACK_PATH}/negotiations/{cpid}/agreement", msg(
        "ContractAgreementMessage", providerPid=ppid, consumerPid=cpid, agreement=agreement))
    eventually(lambda: _quiet(engine, Negotiation, made["id"]).state == "VERIFIED")
    peer.send(engine, f"{CALLBACK_PATH}/negotiations/{cpid}/events", msg(
        "ContractNegotiationEventMessage", providerPid=ppid, consumerPid=cpid, eventType="FINALIZED"))
    assert _quiet(engine, Negotiation, made["id"]).state == "FINALIZED"
    return str(agreement["@id"])


def _peer_agreement(world: dict[str, Any], dataset: str | None, agreement_id: str | None = None) -> dict[str, Any]:
    peer: Peer = world["peer"]
    return {"@id": agreement_id or f"urn:uuid:{uuid.uuid4()}", "@type": "Agreement",
            "permission": peer.offer["permission"], "target": dataset, "timestamp": "2026-03-01T00:00:00Z",
            "assigner": peer.did, "assignee": world["engine"].did}


def _row_id(engine: Participant, model: Any, role: Role, consumer_pid: str) -> int:
    with engine.runtime.db.session(readonly=True) as session:
        found = session.scalar(select(model.id).where(model.role == role.value, model.consumer_pid == consumer_pid))
    assert found is not None
    return int(found)


@dataclass
class Process:
    """One process of a sequence: the engine's row, both ids, and the state the model expects."""

    id: int
    cpid: str
    ppid: str
    state: str
    history: list[str] = field(default_factory=list)
    agreement: str | None = None  # the agreement the peer sent (the engine consumes a negotiation)
    token: str | None = None  # the newest data address token (the engine provides a transfer)


def expected(moves: dict[tuple[str, Role], tuple[frozenset[Any], Any]], state: str, action: str,
             sender: Role) -> tuple[bool, str]:
    """(accepted, the state after) of ``action`` from ``sender`` in ``state``: a move the state allows; the
    same message once it had its effect (acknowledged, nothing changes; a request is never a repeat); else
    refused, the state as it was."""
    sources, target = moves[(action, sender)]
    if state == target.value and action != "request":
        return True, state
    if state in {s.value for s in sources}:
        return True, target.value
    return False, state


class Machine(RuleBasedStateMachine):
    """What the four machines share: the world, the processes of one sequence and the invariants."""

    model: Any = Negotiation
    role: Role = Role.PROVIDER
    moves: Any = NEGOTIATION_MOVES
    edges: set[tuple[str, str]] = NEG_EDGES
    states: set[str] = NEG_STATES
    final: set[str] = {s.value for s in NEGOTIATION_FINAL}
    kind = "negotiations"

    def __init__(self, world: dict[str, Any]) -> None:
        super().__init__()
        self.engine: Participant = world["engine"]
        self.peer: Peer = world["peer"]
        self.stranger: Peer = world["stranger"]
        self.world = world
        self.processes: list[Process] = []

    # -- sending -------------------------------------------------------------------------------------------------

    def send(self, who: Peer, path: str, body: dict[str, Any] | None, method: str = "POST") -> httpx.Response:
        answer = who.send(self.engine, path, body, method=method)
        assert answer.status_code < 500, f"{path}: {answer.status_code} {answer.text}"
        return answer

    def steward(self, process: Process, action: str) -> None:
        """The engine's own step through its API: allowed in the model's state, then sent by the courier."""
        ours = (action, self.role) in self.moves and \
            process.state in {s.value for s in self.moves[(action, self.role)][0]}
        answer = self.engine.api("POST", f"/api/v1/dataspace/{self.kind}/{process.id}/{action}")
        assert answer.status_code < 500, answer.text
        outcome(f"{self.role} {action} (own step): {'moved' if ours else 'refused'}")
        if not ours:
            assert answer.status_code == 400, f"{action} in {process.state}: {answer.status_code} {answer.text}"
            return
        assert answer.status_code == 200, f"{action} in {process.state}: {answer.text}"
        _quiet(self.engine, self.model, process.id)
        process.state = self.moves[(action, self.role)][1].value

    def expect(self, process: Process, answer: httpx.Response, action: str, sender: Role) -> None:
        accepted, after = expected(self.moves, process.state, action, sender)
        outcome(f"{sender} {action}: " + ("refused" if not accepted else "moved" if after != process.state else
                                        "acknowledged again"))
        if accepted:
            assert answer.status_code == 200, f"{action} in {process.state}: {answer.status_code} {answer.text}"
        else:
            assert answer.status_code == 400, f"{action} in {process.state}: {answer.status_code} {answer.text}"
            assert answer.json()["@type"] in ("ContractNegotiationError", "TransferError")
        process.state = after

    def pick(self, index: int) -> Process:
        return self.processes[index % len(self.processes)]

    def read(self) -> dict[int, Any]:
        with self.engine.runtime.db.session(readonly=True) as session:
            rows = session.scalars(select(self.model).where(self.model.id.in_([p.id for p in self.processes])))
            return {r.id: (r.state, r.pending) for r in rows}

    def new(self) -> None:
        """Start a process (the peer's initial request, or the engine's through its API)."""
        raise NotImplementedError

    @initialize()
    def first(self) -> None:
        self.new()

    @rule()
    @precondition(lambda self: len(self.processes) < 4)
    def another(self) -> None:
        self.new()

    noises: tuple[str, ...] = ()  # the rules below that the model does not move: drawn as one rule
    actions: tuple[str, ...] = ()  # the other side's messages

    @rule(index=PICK, data=st.data())
    def noise(self, index: int, data: st.DataObject) -> None:
        """Messages that must change nothing (another participant's, an unknown id, malformed, a repeat, a read);
        one rule, so that the moves of the model are half the steps of a sequence."""
        getattr(self, data.draw(st.sampled_from(self.noises)))(index, data.draw(st.sampled_from(self.actions)))

    say, step = "consumer_says", "steward_does"  # the rules of the other side's messages and of the engine's steps
    own: tuple[str, ...] = ()  # the engine's own steps

    @rule(index=PICK, data=st.data())
    def progress(self, index: int, data: st.DataObject) -> None:
        """A step the model allows now, from either side: random walks reach the end of the protocol too."""
        process = self.pick(index)
        other = Role.CONSUMER if self.role is Role.PROVIDER else Role.PROVIDER
        options = [(self.say, a) for a in self.actions if self._allows(process, a, other)] + \
            [(self.step, a) for a in self.own if self._allows(process, a, self.role)]
        if options:
            name, action = data.draw(st.sampled_from(options))
            getattr(self, name)(index, action)

    def _allows(self, process: Process, action: str, sender: Role) -> bool:
        return (action, sender) in self.moves and \
            process.state in {s.value for s in self.moves[(action, sender)][0]}

    # -- invariants ----------------------------------------------------------------------------------------------

    @invariant()
    def every_process_is_where_the_specification_allows(self) -> None:
        found = self.read()
        for process in self.processes:
            state, pending = found[process.id]
            assert state in self.states, f"process {process.id} in {state}"
            assert pending is None, f"process {process.id} still owes {pending}"
            assert state == process.state, f"process {process.id}: {state}, the model says {process.state}"
            last = process.history[-1] if process.history else state
            if last in self.final:
                assert state == last, f"process {process.id} left the final state {last} for {state}"
            assert state == last or (last, state) in self.edges, f"process {process.id}: {last} -> {state}"
            if state != last or not process.history:
                process.history.append(state)


# -- contract negotiation, the engine provides --------------------------------------------------------------------

class ProviderNegotiations(Machine):
    """The peer consumes: it requests, counter-requests, accepts, verifies and terminates; the steward offers,
    agrees, finalizes and terminates."""

    own = ("offer", "agree", "finalize", "terminate")
    actions = ("request", "accept", "verify", "terminate")
    noises = ("request_again", "consumer_sends_the_providers_event", "stranger_says", "stranger_takes_the_consumer_pid",
              "wrong_counterpart_id", "malformed", "unknown_process", "state_read_by_the_peer")

    def _body(self, process: Process, action: str, consumer_pid: str | None = None) -> dict[str, Any]:
        offer = self.world["offer"]
        pids = {"providerPid": process.ppid, "consumerPid": consumer_pid or process.cpid}
        return {"request": lambda: msg("ContractRequestMessage", **pids,
                                       offer={**offer["policy"], "target": offer["dataset_id"]}),
                "accept": lambda: msg("ContractNegotiationEventMessage", **pids, eventType="ACCEPTED"),
                "finalize": lambda: msg("ContractNegotiationEventMessage", **pids, eventType="FINALIZED"),
                "verify": lambda: msg("ContractAgreementVerificationMessage", **pids),
                "terminate": lambda: msg("ContractNegotiationTerminationMessage", **pids, code="random",
                                         reason=["a random sequence ends it"])}[action]()

    def _initial(self, cpid: str, who: Peer | None = None) -> httpx.Response:
        offer = self.world["offer"]
        return self.send(who or self.peer, f"{BASE_PATH}/negotiations/request", msg(
            "ContractRequestMessage", consumerPid=cpid, offer={**offer["policy"], "target": offer["dataset_id"]},
            callbackAddress=(who or self.peer).callback))

    def new(self) -> None:
        cpid = f"urn:uuid:{uuid.uuid4()}"
        answer = self._initial(cpid)
        assert answer.status_code == 201, answer.text
        assert answer.json()["state"] == "REQUESTED"
        self.processes.append(Process(_row_id(self.engine, Negotiation, Role.PROVIDER, cpid), cpid,
                                      answer.json()["providerPid"], "REQUESTED"))

    def request_again(self, index: int, action: str) -> None:
        """The initial request delivered again: the same process, as it is."""
        process = self.pick(index)
        answer = self._initial(process.cpid)
        assert answer.status_code == 201 and answer.json()["providerPid"] == process.ppid, answer.text
        assert answer.json()["state"] == process.state

    @rule(index=PICK, action=st.sampled_from(["request", "accept", "verify", "terminate"]))
    def consumer_says(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.peer, f"{BASE_PATH}/negotiations/{process.ppid}/{NEG_PATH[action]}",
                           self._body(process, action))
        self.expect(process, answer, action, Role.CONSUMER)

    @rule(index=PICK, action=st.sampled_from(["offer", "agree", "finalize", "terminate"]))
    def steward_does(self, index: int, action: str) -> None:
        self.steward(self.pick(index), action)

    def consumer_sends_the_providers_event(self, index: int, action: str) -> None:
        """FINALIZED is the provider's event: refused from the consumer whatever the state."""
        process = self.pick(index)
        answer = self.send(self.peer, f"{BASE_PATH}/negotiations/{process.ppid}/events",
                           self._body(process, "finalize"))
        assert answer.status_code == 400, answer.text

    def stranger_says(self, index: int, action: str) -> None:
        """Another participant naming this process: 404, as for a process that does not exist."""
        process = self.pick(index)
        answer = self.send(self.stranger, f"{BASE_PATH}/negotiations/{process.ppid}/{NEG_PATH[action]}",
                           self._body(process, action))
        assert answer.status_code == 404, answer.text

    def stranger_takes_the_consumer_pid(self, index: int, action: str) -> None:
        answer = self._initial(self.pick(index).cpid, self.stranger)
        assert answer.status_code == 400, answer.text

    def wrong_counterpart_id(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.peer, f"{BASE_PATH}/negotiations/{process.ppid}/{NEG_PATH[action]}",
                           self._body(process, action, consumer_pid=f"urn:uuid:{uuid.uuid4()}"))
        assert answer.status_code == 400, answer.text

    def malformed(self, index: int, action: str) -> None:
        process = self.pick(index)
        body = {k: v for k, v in self._body(process, "verify").items() if k != "@type"}
        answer = self.send(self.peer, f"{BASE_PATH}/negotiations/{process.ppid}/agreement/verification", body)
        assert answer.status_code == 400, answer.text

    def unknown_process(self, index: int, action: str) -> None:
        ghost = Process(0, f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}", "")
        answer = self.send(self.peer, f"{BASE_PATH}/negotiations/{ghost.ppid}/{NEG_PATH[action]}",
                           self._body(ghost, action))
        assert answer.status_code == 404, answer.text
        assert self.send(self.peer, f"{BASE_PATH}/negotiations/{ghost.ppid}", None, "GET").status_code == 404

    def state_read_by_the_peer(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.peer, f"{BASE_PATH}/negotiations/{process.ppid}", None, "GET")
        assert answer.status_code == 200 and answer.json()["state"] == process.state, answer.text
        assert self.send(self.stranger, f"{BASE_PATH}/negotiations/{process.ppid}", None, "GET").status_code == 404


# -- contract negotiation, the engine consumes --------------------------------------------------------------------

class ConsumerNegotiations(Machine):
    """The engine asks the peer (a manual negotiation: it verifies only by a person's step); the peer offers,
    agrees, finalizes and terminates at random; the person requests, accepts, verifies and terminates."""

    say, step, own = "provider_says", "person_does", ("request", "accept", "verify", "terminate")
    actions = ("offer", "agree", "finalize", "terminate")
    noises = ("provider_sends_the_consumers_event", "stranger_says", "wrong_counterpart_id", "malformed",
              "unknown_process", "state_read_by_the_peer")

    role = Role.CONSUMER

    def _body(self, process: Process, action: str, provider_pid: str | None = None,
              agreement: str | None = None) -> dict[str, Any]:
        pids = {"providerPid": provider_pid or process.ppid, "consumerPid": process.cpid}
        dataset = self.world.setdefault("datasets", {}).get(process.cpid) or "urn:uuid:no-such-dataset"
        return {"offer": lambda: msg("ContractOfferMessage", **pids, offer={**self.peer.offer, "target": dataset}),
                "agree": lambda: msg("ContractAgreementMessage", **pids, agreement=_peer_agreement(
                    self.world, dataset, agreement)),
                "finalize": lambda: msg("ContractNegotiationEventMessage", **pids, eventType="FINALIZED"),
                "accept": lambda: msg("ContractNegotiationEventMessage", **pids, eventType="ACCEPTED"),
                "terminate": lambda: msg("ContractNegotiationTerminationMessage", **pids, code="random",
                                         reason=["a random sequence ends it"])}[action]()

    def new(self) -> None:
        dataset = f"urn:uuid:{uuid.uuid4()}"
        made = self.engine.ok("POST", "/api/v1/dataspace/negotiations", expect=201, json={
            "url": self.peer.url, "dataset": dataset, "manual": True})
        row = _quiet(self.engine, Negotiation, made["id"])
        assert row.state == "REQUESTED", row.error
        self.world.setdefault("datasets", {})[row.consumer_pid] = dataset
        self.processes.append(Process(row.id, row.consumer_pid, self.peer.pids[row.consumer_pid], "REQUESTED"))

    @rule(index=PICK, action=st.sampled_from(["offer", "agree", "finalize", "terminate"]), again=st.booleans())
    def provider_says(self, index: int, action: str, again: bool = True) -> None:
        """``again``: an agreement names the one sent before (a repeat), else a new one (refused once AGREED)."""
        process = self.pick(index)
        agreement = (process.agreement if again else None) or f"urn:uuid:{uuid.uuid4()}"
        answer = self.send(self.peer, f"{CALLBACK_PATH}/negotiations/{process.cpid}/{NEG_PATH[action]}",
                           self._body(process, action, agreement=agreement))
        before = process.state
        if action == "agree" and before == "AGREED" and agreement != process.agreement:
            assert answer.status_code == 400, answer.text  # another agreement for an agreed negotiation
            return
        self.expect(process, answer, action, Role.PROVIDER)
        if action == "agree" and before != process.state:
            process.agreement = agreement

    @rule(index=PICK, action=st.sampled_from(["request", "accept", "verify", "terminate"]))
    def person_does(self, index: int, action: str) -> None:
        self.steward(self.pick(index), action)

    def provider_sends_the_consumers_event(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.peer, f"{CALLBACK_PATH}/negotiations/{process.cpid}/events",
                           self._body(process, "accept"))
        assert answer.status_code == 400, answer.text

    def stranger_says(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.stranger, f"{CALLBACK_PATH}/negotiations/{process.cpid}/{NEG_PATH[action]}",
                           self._body(process, action))
        assert answer.status_code == 404, answer.text

    def wrong_counterpart_id(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.peer, f"{CALLBACK_PATH}/negotiations/{process.cpid}/{NEG_PATH[action]}",
                           self._body(process, action, provider_pid=f"urn:uuid:{uuid.uuid4()}"))
        assert answer.status_code == 400, answer.text

    def malformed(self, index: int, action: str) -> None:
        process = self.pick(index)
        body = {**self._body(process, "offer"), "offer": "not an offer"}
        answer = self.send(self.peer, f"{CALLBACK_PATH}/negotiations/{process.cpid}/offers", body)
        assert answer.status_code == 400, answer.text

    def unknown_process(self, index: int, action: str) -> None:
        ghost = Process(0, f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}", "")
        answer = self.send(self.peer, f"{CALLBACK_PATH}/negotiations/{ghost.cpid}/{NEG_PATH[action]}",
                           self._body(ghost, action))
        assert answer.status_code == 404, answer.text

    def state_read_by_the_peer(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.peer, f"{CALLBACK_PATH}/negotiations/{process.cpid}", None, "GET")
        assert answer.status_code == 200 and answer.json()["state"] == process.state, answer.text


# -- transfer process, the engine provides ------------------------------------------------------------------------

class ProviderTransfers(Machine):
    """The peer requests transfers under its finalized agreement, resumes, completes, suspends, terminates and
    pulls; the steward starts, suspends, completes and terminates."""

    own = ("start", "complete", "suspend", "terminate")
    actions = ("start", "complete", "suspend", "terminate")
    noises = ("request_again", "stranger_says", "stranger_requests", "wrong_counterpart_id", "malformed",
              "unknown_process", "state_read_by_the_peer")

    model = TransferProcess
    moves = TRANSFER_MOVES
    edges = TRANSFER_EDGES
    states = TRANSFER_STATES
    final = {s.value for s in TRANSFER_FINAL}
    kind = "transfers"

    def _body(self, process: Process, action: str, consumer_pid: str | None = None) -> dict[str, Any]:
        extra = {"code": "random", "reason": ["a random sequence"]} if action in ("terminate", "suspend") else {}
        return msg(TRANSFER_KIND[action], providerPid=process.ppid, consumerPid=consumer_pid or process.cpid,
                   **extra)

    def _initial(self, cpid: str, who: Peer | None = None) -> httpx.Response:
        return self.send(who or self.peer, f"{BASE_PATH}/transfers/request", msg(
            "TransferRequestMessage", consumerPid=cpid, agreementId=self.world["provider_agreement"],
            format="HttpData-PULL", callbackAddress=(who or self.peer).callback))

    def new(self) -> None:
        cpid = f"urn:uuid:{uuid.uuid4()}"
        answer = self._initial(cpid)
        assert answer.status_code == 201 and answer.json()["state"] == "REQUESTED", answer.text
        self.processes.append(Process(_row_id(self.engine, TransferProcess, Role.PROVIDER, cpid), cpid,
                                      answer.json()["providerPid"], "REQUESTED"))

    def request_again(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self._initial(process.cpid)
        assert answer.status_code == 201 and answer.json()["providerPid"] == process.ppid, answer.text

    @rule(index=PICK, action=st.sampled_from(["start", "complete", "suspend", "terminate"]))
    def consumer_says(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.peer, f"{BASE_PATH}/transfers/{process.ppid}/{TRANSFER_PATH[action]}",
                           self._body(process, action))
        self.expect(process, answer, action, Role.CONSUMER)

    @rule(index=PICK, action=st.sampled_from(["start", "complete", "suspend", "terminate"]))
    def steward_does(self, index: int, action: str) -> None:
        process = self.pick(index)
        seen = len(self.peer.messages("TransferStartMessage"))
        self.steward(process, action)
        if action == "start" and process.state == "STARTED":
            sent = [m for m in self.peer.messages("TransferStartMessage")[seen:] if m["consumerPid"] == process.cpid]
            if sent:  # a start of the steward's reached the peer: its token is the newest
                props = {p["name"]: p["value"] for p in sent[-1]["dataAddress"]["endpointProperties"]}
                process.token = props["authorization"]

    @rule(index=PICK)
    def pull(self, index: int) -> None:
        """The data address lists the files only while the transfer is STARTED."""
        process = self.pick(index)
        if process.token is None:
            return
        answer = httpx.get(f"{self.engine.url}/dsp/data/{process.ppid}", verify=tls_context(),
                           headers={"Authorization": f"Bearer {process.token}"}, timeout=30)
        assert answer.status_code == (200 if process.state == "STARTED" else 403), \
            f"{process.state}: {answer.status_code} {answer.text}"

    def stranger_says(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.stranger, f"{BASE_PATH}/transfers/{process.ppid}/{TRANSFER_PATH[action]}",
                           self._body(process, action))
        assert answer.status_code == 404, answer.text

    def stranger_requests(self, index: int, action: str) -> None:
        """Under the peer's agreement, or with the peer's consumerPid: refused."""
        assert self._initial(f"urn:uuid:{uuid.uuid4()}", self.stranger).status_code == 400
        assert self._initial(self.pick(index).cpid, self.stranger).status_code == 400

    def wrong_counterpart_id(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.peer, f"{BASE_PATH}/transfers/{process.ppid}/{TRANSFER_PATH[action]}",
                           self._body(process, action, consumer_pid=f"urn:uuid:{uuid.uuid4()}"))
        assert answer.status_code == 400, answer.text

    def malformed(self, index: int, action: str) -> None:
        process = self.pick(index)
        body = {k: v for k, v in self._body(process, "suspend").items() if k != "consumerPid"}
        answer = self.send(self.peer, f"{BASE_PATH}/transfers/{process.ppid}/suspension", body)
        assert answer.status_code == 400, answer.text

    def unknown_process(self, index: int, action: str) -> None:
        ghost = Process(0, f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}", "")
        answer = self.send(self.peer, f"{BASE_PATH}/transfers/{ghost.ppid}/{TRANSFER_PATH[action]}",
                           self._body(ghost, action))
        assert answer.status_code == 404, answer.text

    def state_read_by_the_peer(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.peer, f"{BASE_PATH}/transfers/{process.ppid}", None, "GET")
        assert answer.status_code == 200 and answer.json()["state"] == process.state, answer.text


class ProviderPushTransfers(ProviderTransfers):
    """The same with HttpData-PUSH: the peer's request names a push address on its own origin; once a transfer
    starts, the engine pushes the offer's file there (the listing, then the file) and completes it by itself, so
    that, read once the engine owes nothing, a start the model allows ends COMPLETED (through STARTED); the peer
    then holds the file once, with the listed SHA-256. A request to push elsewhere is refused."""

    def _initial(self, cpid: str, who: Peer | None = None) -> httpx.Response:
        sender = who or self.peer
        return self.send(sender, f"{BASE_PATH}/transfers/request", msg(
            "TransferRequestMessage", consumerPid=cpid, agreementId=self.world["provider_agreement"],
            format="HttpData-PUSH", callbackAddress=sender.callback, dataAddress=self._address(sender.url, cpid)))

    @staticmethod
    def _address(origin: str, cpid: str) -> dict[str, Any]:
        return {"@type": "DataAddress", "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
                "endpoint": f"{origin}/push/{cpid}", "endpointProperties": [
                    {"@type": "EndpointProperty", "name": "authorization", "value": "peer-bearer"}]}

    def new(self) -> None:
        super().new()
        elsewhere = self.send(self.peer, f"{BASE_PATH}/transfers/request", msg(
            "TransferRequestMessage", consumerPid=f"urn:uuid:{uuid.uuid4()}",
            agreementId=self.world["provider_agreement"], format="HttpData-PUSH", callbackAddress=self.peer.callback,
            dataAddress=self._address(self.stranger.url, "x")))
        assert elsewhere.status_code == 400, elsewhere.text  # not on the peer's origin: refused, nothing made

    def _pushed(self, process: Process) -> None:
        if process.state != "STARTED":
            return
        row = _quiet(self.engine, TransferProcess, process.id)
        assert row.state == "COMPLETED", f"a started push ended {row.state}: {row.error}"
        process.history.append("STARTED")  # passed through while the engine pushed
        process.state = "COMPLETED"
        with self.peer.lock:
            listed = list(self.peer.listed.get(process.cpid, []))
            files = list(self.peer.pushed.get(process.cpid, []))
        assert [f["name"] for f in listed] == ["levels.csv"], listed
        assert [(name, hashlib.sha256(data).hexdigest()) for name, data in files] == \
            [(f["name"], f["sha256"]) for f in listed]  # the file once, its bytes the listed ones
        outcome("push: completed")

    def expect(self, process: Process, answer: httpx.Response, action: str, sender: Role) -> None:
        super().expect(process, answer, action, sender)
        self._pushed(process)

    def steward(self, process: Process, action: str) -> None:
        super().steward(process, action)
        self._pushed(process)


# -- transfer process, the engine consumes ------------------------------------------------------------------------

class ConsumerTransfers(Machine):
    """The engine requests transfers under its agreement with the peer (its data address kept, not pulled); the
    peer starts, completes, suspends and terminates at random; the person resumes, completes, suspends and
    terminates."""

    say, step, own = "provider_says", "person_does", ("start", "complete", "suspend", "terminate")
    actions = ("start", "complete", "suspend", "terminate")
    noises = ("stranger_says", "wrong_counterpart_id", "malformed", "unknown_process")

    model = TransferProcess
    role = Role.CONSUMER
    moves = TRANSFER_MOVES
    edges = TRANSFER_EDGES
    states = TRANSFER_STATES
    final = {s.value for s in TRANSFER_FINAL}
    kind = "transfers"

    def _body(self, process: Process, action: str, provider_pid: str | None = None) -> dict[str, Any]:
        extra: dict[str, Any] = {"code": "random", "reason": ["a random sequence"]} \
            if action in ("terminate", "suspend") else {}
        if action == "start":
            extra["dataAddress"] = {"@type": "DataAddress", "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
                                    "endpoint": self.peer.url + "/data", "endpointProperties": [
                                        {"@type": "EndpointProperty", "name": "authorization",
                                         "value": uuid.uuid4().hex}]}
        return msg(TRANSFER_KIND[action], providerPid=provider_pid or process.ppid, consumerPid=process.cpid,
                   **extra)

    def new(self) -> None:
        made = self.engine.ok("POST", "/api/v1/dataspace/transfers", expect=201, json={
            "agreement": self.world["consumer_agreement"], "did": "random:unused", "land_data": False})
        row = _quiet(self.engine, TransferProcess, made["id"])
        assert row.state == "REQUESTED", row.error
        self.processes.append(Process(row.id, row.consumer_pid, self.peer.pids[row.consumer_pid], "REQUESTED"))

    @rule(index=PICK, action=st.sampled_from(["start", "complete", "suspend", "terminate"]))
    def provider_says(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.peer, f"{CALLBACK_PATH}/transfers/{process.cpid}/{TRANSFER_PATH[action]}",
                           self._body(process, action))
        self.expect(process, answer, action, Role.PROVIDER)

    @rule(index=PICK, action=st.sampled_from(["start", "complete", "suspend", "terminate"]))
    def person_does(self, index: int, action: str) -> None:
        self.steward(self.pick(index), action)

    def stranger_says(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.stranger, f"{CALLBACK_PATH}/transfers/{process.cpid}/{TRANSFER_PATH[action]}",
                           self._body(process, action))
        assert answer.status_code == 404, answer.text

    def wrong_counterpart_id(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self.send(self.peer, f"{CALLBACK_PATH}/transfers/{process.cpid}/{TRANSFER_PATH[action]}",
                           self._body(process, action, provider_pid=f"urn:uuid:{uuid.uuid4()}"))
        assert answer.status_code == 400, answer.text

    def malformed(self, index: int, action: str) -> None:
        process = self.pick(index)
        body = {**self._body(process, "start"), "dataAddress": "nowhere"}
        answer = self.send(self.peer, f"{CALLBACK_PATH}/transfers/{process.cpid}/start", body)
        assert answer.status_code == 400, answer.text

    def unknown_process(self, index: int, action: str) -> None:
        ghost = Process(0, f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}", "")
        answer = self.send(self.peer, f"{CALLBACK_PATH}/transfers/{ghost.cpid}/{TRANSFER_PATH[action]}",
                           self._body(ghost, action))
        assert answer.status_code == 404, answer.text


PUSHED = {name: f"time,level\n2026-03-01T0{i}:00:00Z,{i}.5\n".encode() for i, name in enumerate(("a.csv", "b.csv"))}


class ConsumerPushTransfers(ConsumerTransfers):
    """The engine requests pushed transfers (HttpData-PUSH) and the peer, as their provider, starts, suspends,
    completes and terminates them at random, and lists and pushes files to the push address the request gave, in
    any order: the address takes a listing and listed files only while the transfer is STARTED, a file whose
    bytes are not the listed SHA-256 is refused and nothing of it kept, a completion is refused (and changes
    nothing) until every listed file has landed whole, and a wrong bearer opens nothing."""

    noises = (*ConsumerTransfers.noises, "wrong_push_token")

    def __init__(self, world: dict[str, Any]) -> None:
        super().__init__(world)
        self.address: dict[str, tuple[str, str]] = {}  # consumerPid -> (push address, its bearer)
        self.listed: dict[str, set[str]] = {}
        self.landed: dict[str, set[str]] = {}

    def new(self) -> None:
        made = self.engine.ok("POST", "/api/v1/dataspace/transfers", expect=201, json={
            "agreement": self.world["consumer_agreement"], "did": f"random:push-{uuid.uuid4().hex[:12]}",
            "format": "HttpData-PUSH"})
        row = _quiet(self.engine, TransferProcess, made["id"])
        assert row.state == "REQUESTED", row.error
        request = next(m for m in self.peer.messages("TransferRequestMessage") if m["consumerPid"] == row.consumer_pid)
        address = request["dataAddress"]
        token = next(p["value"] for p in address["endpointProperties"] if p["name"] == "authorization")
        self.address[row.consumer_pid] = (address["endpoint"], token)
        self.listed[row.consumer_pid], self.landed[row.consumer_pid] = set(), set()
        self.processes.append(Process(row.id, row.consumer_pid, self.peer.pids[row.consumer_pid], "REQUESTED"))

    def expect(self, process: Process, answer: httpx.Response, action: str, sender: Role) -> None:
        missing = not self.listed[process.cpid] or self.listed[process.cpid] - self.landed[process.cpid]
        if action == "complete" and sender is Role.PROVIDER and process.state == "STARTED" and missing:
            outcome("provider complete before every listed file landed: refused")
            assert answer.status_code == 400 and "not complete" in answer.text, answer.text
            return
        super().expect(process, answer, action, sender)

    def _push(self, process: Process, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        endpoint, bearer = self.address[process.cpid]
        answer = httpx.request(method, endpoint + path, timeout=30, verify=tls_context(),
                               headers={"Authorization": f"Bearer {token or bearer}"}, **kwargs)
        assert answer.status_code < 500, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer

    @rule(index=PICK, names=st.sets(st.sampled_from(sorted(PUSHED)), min_size=1))
    def peer_lists(self, index: int, names: set[str]) -> None:
        process = self.pick(index)
        files = [{"name": n, "bytes": len(PUSHED[n]), "sha256": hashlib.sha256(PUSHED[n]).hexdigest(),
                  "mediaType": "text/csv"} for n in sorted(names)]
        answer = self._push(process, "POST", "", json={"files": files})
        if process.state == "STARTED":
            assert answer.status_code == 200, answer.text
            self.listed[process.cpid] |= names
        else:
            assert answer.status_code == 403 and "closed" in answer.text, answer.text
        outcome(f"listing in {process.state}: {answer.status_code}")

    @rule(index=PICK, name=st.sampled_from(sorted(PUSHED)), whole=st.booleans())
    def peer_pushes(self, index: int, name: str, whole: bool) -> None:
        process = self.pick(index)
        answer = self._push(process, "PUT", f"/{name}", content=PUSHED[name] if whole else PUSHED[name][:-3] + b"9\n")
        if process.state != "STARTED":
            assert answer.status_code == 403, answer.text
        elif name not in self.listed[process.cpid]:
            assert answer.status_code == 404, answer.text
        elif not whole:
            assert 400 <= answer.status_code < 500, answer.text  # not the listed SHA-256: nothing kept
        else:
            assert answer.status_code in (200, 201), answer.text  # 200: it had landed already, nothing new kept
            self.landed[process.cpid].add(name)
        outcome(f"file {'whole' if whole else 'altered'} in {process.state}: {answer.status_code}")

    @rule(index=PICK, then_complete=st.booleans(), spoiled=st.booleans())
    @precondition(lambda self: any(p.state == "STARTED" for p in self.processes))
    def peer_delivers(self, index: int, then_complete: bool, spoiled: bool) -> None:
        """What a provider does once started: list every file, push each whole (perhaps after an altered copy of
        the first), and (perhaps) complete; so that walks reach a completed push as often as the other rules
        leave one half done."""
        started = [i for i, p in enumerate(self.processes) if p.state == "STARTED"]
        if not started:
            return
        index = started[index % len(started)]
        self.peer_lists(index, set(PUSHED))
        if spoiled:
            self.peer_pushes(index, min(PUSHED), False)
        for name in sorted(PUSHED):
            self.peer_pushes(index, name, True)
        if then_complete:
            self.provider_says(index, "complete")

    def wrong_push_token(self, index: int, action: str) -> None:
        process = self.pick(index)
        answer = self._push(process, "PUT", "/a.csv", token="not-the-token", content=PUSHED["a.csv"])
        assert answer.status_code == 403, answer.text

    @invariant()
    def what_landed_is_what_was_listed_and_pushed_whole(self) -> None:
        with self.engine.runtime.db.session(readonly=True) as session:
            rows = {r.consumer_pid: r for r in session.scalars(select(TransferProcess).where(
                TransferProcess.id.in_([p.id for p in self.processes])))}
            for process in self.processes:
                row = rows[process.cpid]
                files = {f["name"]: f for f in row.files or []}
                assert set(files) == self.listed[process.cpid], (process.cpid, files)
                assert {n for n, f in files.items() if f["landed"]} == self.landed[process.cpid]
                assert row.bytes == sum(len(PUSHED[n]) for n in self.landed[process.cpid])
                for name in self.landed[process.cpid]:
                    kept = self.engine.ok("GET", f"/api/v1/lake/dids/{row.landed}/{name}")
                    assert kept["sha256"] == hashlib.sha256(PUSHED[name]).hexdigest()


def _run(machine: type[Machine], world: dict[str, Any], sequences: int) -> None:
    """``sequences`` sequences of up to ``STEPS`` steps: the same ones each run (derandomized), or those of the
    seed ``TWIN_TEST_DSP_SEED`` names."""
    def run() -> Machine:
        return machine(world)

    chosen = settings(max_examples=sequences, stateful_step_count=STEPS, deadline=None, derandomize=SEED is None,
                      database=None, print_blob=True, report_multiple_bugs=False,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    if SEED is not None:
        print(f"TWIN_TEST_DSP_SEED={SEED}")
        run = seed(int(SEED))(run)
    OUTCOMES.clear()
    run_state_machine_as_test(run, settings=chosen)
    print(f"{machine.__name__}, {sequences} sequences:", dict(sorted(OUTCOMES.items())))


MACHINES = [ProviderNegotiations, ConsumerNegotiations, ProviderTransfers, ProviderPushTransfers, ConsumerTransfers,
            ConsumerPushTransfers]
# LONG sequences per machine take longer than a local run should (see the module's docstring): CI runs them on
# SQLite, each with a time limit of its own (generous: a loaded machine takes several times an idle one's); both
# stores run SEQUENCES in every run
SIZES = [pytest.param(LONG, marks=[pytest.mark.ci_only, pytest.mark.timeout(1500)], id="long"),
         pytest.param(SEQUENCES, id=str(SEQUENCES))]


@pytest.mark.parametrize("sequences", SIZES)
@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.__name__)
def test_random_message_sequences_keep_each_process_where_the_specification_allows(
        world: dict[str, Any], backend: str, machine: type[Machine], sequences: int) -> None:
    if sequences > SEQUENCES and backend != "sqlite":
        pytest.skip(f"the {LONG} sequences run on SQLite; PostgreSQL runs {SEQUENCES} of each machine")
    _run(machine, world, sequences)
