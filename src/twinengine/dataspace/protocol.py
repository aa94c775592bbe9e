"""The protocol's vocabulary: states, the transitions each state machine allows, message builders and the error
the HTTPS binding answers with.

Transitions follow the 2025-1 state machines (``negotiation/figures``, ``transfer/figures``): a message moves a
process only from the states the diagram allows for it; anything else is refused with 400 and leaves the process
as it was. The same message delivered again once it had its effect is acknowledged without a second effect.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from twinengine.dataspace.spec import CONTEXT, problems

__all__ = ["BASE_PATH", "CALLBACK_PATH", "DATA_PATH", "EDR_CONFORMANCE", "EDR_PATH", "FORMATS", "PULL", "PUSH",
           "PUSH_PATH", "S3_ENDPOINT_TYPE", "S3_PUSH", "DspError", "NegotiationState", "Role", "TransferState",
           "acknowledged", "address_property", "message", "new_pid", "queried", "valid"]

BASE_PATH = "/dsp/2025-1"  # <base> of the HTTPS binding on this engine
CALLBACK_PATH = BASE_PATH + "/callback"  # the consumer's callback address
DATA_PATH = "/dsp/data"  # the provider's data plane (HttpData-PULL)
PUSH_PATH = "/dsp/push"  # the consumer's data plane (HttpData-PUSH): where a provider pushes
EDR_PATH = "/dsp/edr"  # the provider's data plane of an EDR collection offer: an OGC API - EDR root per transfer
EDR_CONFORMANCE = "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/core"  # a data address that answers EDR
PULL = "HttpData-PULL"
PUSH = "HttpData-PUSH"
S3_PUSH = "AmazonS3-PUSH"  # the provider writes the files into the consumer's S3 bucket
FORMATS = (PULL, PUSH, S3_PUSH)
S3_ENDPOINT_TYPE = "AmazonS3"
ENDPOINT_TYPE = "https://w3id.org/idsa/v4.1/HTTP"


class Role(StrEnum):
    PROVIDER = "provider"
    CONSUMER = "consumer"


class NegotiationState(StrEnum):
    INITIAL = "INITIAL"  # the side that starts, until the other acknowledged its first message (never on the wire)
    REQUESTED = "REQUESTED"
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    AGREED = "AGREED"
    VERIFIED = "VERIFIED"
    FINALIZED = "FINALIZED"
    TERMINATED = "TERMINATED"


class TransferState(StrEnum):
    INITIAL = "INITIAL"
    REQUESTED = "REQUESTED"
    STARTED = "STARTED"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    TERMINATED = "TERMINATED"


N = NegotiationState
T = TransferState
NEGOTIATION_FINAL = frozenset({N.FINALIZED, N.TERMINATED})
TRANSFER_FINAL = frozenset({T.COMPLETED, T.TERMINATED})

# (message, sent by) -> (states it moves from, the state it leads to); INITIAL is the diagram's start: a consumer's
# request or a provider's offer begins a negotiation
NEGOTIATION_MOVES: dict[tuple[str, Role], tuple[frozenset[N], N]] = {
    ("request", Role.CONSUMER): (frozenset({N.INITIAL, N.OFFERED}), N.REQUESTED),
    ("offer", Role.PROVIDER): (frozenset({N.INITIAL, N.REQUESTED}), N.OFFERED),
    ("accept", Role.CONSUMER): (frozenset({N.OFFERED}), N.ACCEPTED),
    ("agree", Role.PROVIDER): (frozenset({N.REQUESTED, N.ACCEPTED}), N.AGREED),
    ("verify", Role.CONSUMER): (frozenset({N.AGREED}), N.VERIFIED),
    ("finalize", Role.PROVIDER): (frozenset({N.VERIFIED}), N.FINALIZED),
    ("terminate", Role.CONSUMER): (frozenset(set(N) - NEGOTIATION_FINAL - {N.INITIAL}), N.TERMINATED),
    ("terminate", Role.PROVIDER): (frozenset(set(N) - NEGOTIATION_FINAL - {N.INITIAL}), N.TERMINATED),
}
TRANSFER_MOVES: dict[tuple[str, Role], tuple[frozenset[T], T]] = {
    ("start", Role.PROVIDER): (frozenset({T.REQUESTED, T.SUSPENDED}), T.STARTED),
    ("start", Role.CONSUMER): (frozenset({T.SUSPENDED}), T.STARTED),
    **{("suspend", r): (frozenset({T.STARTED}), T.SUSPENDED) for r in Role},
    **{("complete", r): (frozenset({T.STARTED}), T.COMPLETED) for r in Role},
    **{("terminate", r): (frozenset({T.REQUESTED, T.STARTED, T.SUSPENDED}), T.TERMINATED) for r in Role},
}


def new_pid() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


@dataclass
class DspError(Exception):
    """A request the protocol refuses: its HTTP status, and the spec's error object of its kind (``negotiation``,
    ``transfer`` or ``catalog``) naming both process ids where they are known."""

    status: int
    reason: str
    kind: str = "negotiation"
    code: str = "400"
    provider_pid: str | None = None
    consumer_pid: str | None = None
    extra: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.reason

    def body(self) -> dict[str, Any]:
        kind = {"negotiation": "ContractNegotiationError", "transfer": "TransferError",
                "catalog": "CatalogError"}[self.kind]
        body: dict[str, Any] = {"@context": [CONTEXT], "@type": kind}
        if self.kind != "catalog":
            body["providerPid"] = self.provider_pid or "urn:uuid:00000000-0000-0000-0000-000000000000"
            body["consumerPid"] = self.consumer_pid or "urn:uuid:00000000-0000-0000-0000-000000000000"
        body["code"] = self.code
        body["reason"] = [self.reason[:1000], *self.extra]
        return body


def message(kind: str, **fields: Any) -> dict[str, Any]:
    """A message or answer of ``kind`` with the 2025-1 context; None fields are left out."""
    return {"@context": [CONTEXT], "@type": kind, **{k: v for k, v in fields.items() if v is not None}}


def valid(body: Any, kind: str, *, error_kind: str, provider_pid: str | None = None,
          consumer_pid: str | None = None) -> dict[str, Any]:
    """``body`` when it is a valid ``kind`` (its schema); otherwise 400 with the spec's error object, naming the
    problems."""
    found = problems(body, kind)
    if isinstance(body, dict) and body.get("@type") != kind:
        found = [f"@type: expected {kind!r}", *found]
    if found:
        if isinstance(body, dict):
            provider_pid = provider_pid or (body.get("providerPid") if isinstance(body.get("providerPid"), str)
                                            else None)
            consumer_pid = consumer_pid or (body.get("consumerPid") if isinstance(body.get("consumerPid"), str)
                                            else None)
        raise DspError(400, f"not a valid {kind}", kind=error_kind, provider_pid=provider_pid,
                       consumer_pid=consumer_pid, extra=found[:5])
    assert isinstance(body, dict)
    return body


def acknowledged(row: Any, provider_pid: Any) -> None:
    """A consumer's request reached the provider, but its answer was never applied here (the engine stopped in
    between): a message of the provider naming its process proves the request arrived, as the answer would have.
    Refusing it (404) would make the provider terminate a process this side then resumes alone."""
    if row.pending == "request" and isinstance(provider_pid, str) and provider_pid:
        row.provider_pid, row.state = provider_pid, "REQUESTED"
        row.pending, row.pending_detail, row.attempts, row.due_at, row.claimed_until = None, None, 0, None, None


def address_property(address: dict[str, Any] | None, name: str) -> str | None:
    """The value of a data address's endpoint property ``name`` (None when absent or not a string)."""
    for prop in (address or {}).get("endpointProperties", []) or []:
        if isinstance(prop, dict) and prop.get("name") == name:
            value = prop.get("value")
            return value if isinstance(value, str) else None
    return None


def queried(address: dict[str, Any] | None) -> bool:
    """Whether a data address answers EDR queries (an EDR collection offer) rather than listing files."""
    return address_property(address, "conformsTo") == EDR_CONFORMANCE
