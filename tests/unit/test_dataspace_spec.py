"""The Dataspace Protocol's schemas as the engine keeps them: the same files as the test data's copy, the three
mended references resolve, and the specification's own examples are valid while broken messages are not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twinengine.dataspace.spec import SCHEMA_OF, SPEC_DIR, problems

DATA = Path(__file__).resolve().parents[1] / "data" / "dspace"


def test_the_engine_validates_with_the_test_datas_copy() -> None:
    ours = sorted(p.relative_to(SPEC_DIR) for p in SPEC_DIR.rglob("*") if p.suffix in (".json", ".jsonld")
                  or p.name == "LICENSE")
    theirs = sorted(p.relative_to(DATA) for p in DATA.rglob("*") if p.suffix in (".json", ".jsonld")
                    or p.name == "LICENSE")
    assert ours == theirs and len([p for p in ours if p.suffix == ".json"]) == 26
    assert len([p for p in ours if p.suffix == ".jsonld"]) == 2
    for relative in ours:
        assert (SPEC_DIR / relative).read_bytes() == (DATA / relative).read_bytes(), relative


def test_the_mended_references_resolve() -> None:
    for name in ("transfer-error", "transfer-suspension-message", "transfer-termination-message"):
        text = (DATA / "transfer" / f"{name}-schema.json").read_text()
        assert "#/definitions/AbstractTransferCodeMessage" in text and "#definitions/" not in text
    # the abstract message's required fields reach through the mended $ref
    assert problems({"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@type": "TransferError"},
                    "TransferError")


EXAMPLES = {
    "ContractRequestMessage": {"consumerPid": "urn:uuid:c", "callbackAddress": "https://c.example/cb",
                               "offer": {"@id": "urn:uuid:o", "@type": "Offer", "target": "urn:uuid:d",
                                         "permission": [{"action": "use"}]}},
    "TransferStartMessage": {"providerPid": "urn:uuid:p", "consumerPid": "urn:uuid:c"},
    "ContractNegotiationEventMessage": {"providerPid": "urn:uuid:p", "consumerPid": "urn:uuid:c",
                                        "eventType": "FINALIZED"},
}


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_a_valid_message_passes_and_a_broken_one_names_its_problem(kind: str) -> None:
    message = {"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@type": kind, **EXAMPLES[kind]}
    assert problems(message) == []
    broken = {k: v for k, v in message.items() if k != "consumerPid"}
    found = problems(broken)
    assert found and "consumerPid" in found[0]
    assert problems({**message, "@type": "NoSuchMessage"}) == ["@type: 'NoSuchMessage' is not a message type of "
                                                              "this endpoint"]


def test_every_message_type_has_a_schema_file() -> None:
    for kind, relative in SCHEMA_OF.items():
        schema = json.loads((SPEC_DIR / relative).read_text())
        assert schema["$id"].endswith(relative), kind
