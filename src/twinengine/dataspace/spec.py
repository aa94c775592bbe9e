"""The Dataspace Protocol 2025-1's JSON Schemas (``spec/``, Apache-2.0): every message the engine sends or answers,
and every one it receives, is checked against the schema of its ``@type``.

The schemas refer to each other by their ``$id`` (``https://w3id.org/dspace/2025/1/...``): they are loaded into one
``referencing`` registry, so nothing is fetched.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jsonschema is imported on first use: with its format checkers it costs about 2 s of a start
    from jsonschema import Draft201909Validator
    from referencing import Registry

__all__ = ["CONTEXT", "SCHEMA_OF", "SPEC_DIR", "problems", "schema_for"]

SPEC_DIR = Path(__file__).with_name("spec")
CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"

# The schema (relative to ``spec/``) of each message and answer type, by its ``@type``.
SCHEMA_OF: dict[str, str] = {
    "CatalogRequestMessage": "catalog/catalog-request-message-schema.json",
    "DatasetRequestMessage": "catalog/dataset-request-message-schema.json",
    "Catalog": "catalog/catalog-schema.json",
    "Dataset": "catalog/dataset-schema.json",
    "CatalogError": "catalog/catalog-error-schema.json",
    "ContractRequestMessage": "negotiation/contract-request-message-schema.json",
    "ContractOfferMessage": "negotiation/contract-offer-message-schema.json",
    "ContractAgreementMessage": "negotiation/contract-agreement-message-schema.json",
    "ContractAgreementVerificationMessage": "negotiation/contract-agreement-verification-message-schema.json",
    "ContractNegotiationEventMessage": "negotiation/contract-negotiation-event-message-schema.json",
    "ContractNegotiationTerminationMessage": "negotiation/contract-negotiation-termination-message-schema.json",
    "ContractNegotiation": "negotiation/contract-negotiation-schema.json",
    "ContractNegotiationError": "negotiation/contract-negotiation-error-schema.json",
    "TransferRequestMessage": "transfer/transfer-request-message-schema.json",
    "TransferStartMessage": "transfer/transfer-start-message-schema.json",
    "TransferSuspensionMessage": "transfer/transfer-suspension-message-schema.json",
    "TransferCompletionMessage": "transfer/transfer-completion-message-schema.json",
    "TransferTerminationMessage": "transfer/transfer-termination-message-schema.json",
    "TransferProcess": "transfer/transfer-process-schema.json",
    "TransferError": "transfer/transfer-error-schema.json",
    "VersionResponse": "common/protocol-version-schema.json",
}


@functools.cache
def _registry() -> Registry:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT201909

    resources = []
    for path in sorted(SPEC_DIR.rglob("*-schema.json")):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents, default_specification=DRAFT201909)))
    return Registry().with_resources(resources)


@functools.cache
def schema_for(kind: str) -> Draft201909Validator:
    """The validator of ``kind`` (a key of ``SCHEMA_OF``); made once per process."""
    from jsonschema import Draft201909Validator

    schema = json.loads((SPEC_DIR / SCHEMA_OF[kind]).read_text())
    return Draft201909Validator(schema, registry=_registry())


def problems(message: Any, kind: str | None = None) -> list[str]:
    """What is wrong with ``message`` as a ``kind`` (default: its own ``@type``); empty when it is valid. Each
    problem names where it is (``offer.permission[0]: ...``)."""
    if not isinstance(message, dict):
        return ["the message is not a JSON object"]
    kind = kind or message.get("@type")
    if not isinstance(kind, str) or kind not in SCHEMA_OF:
        return [f"@type: {kind!r} is not a message type of this endpoint"]
    found = []
    for error in sorted(schema_for(kind).iter_errors(message), key=lambda e: list(e.absolute_path)):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        found.append(f"{where or '(message)'}: {error.message}"[:300])
    return found[:10]
