"""The settings of the data space's shared identity provider, and how the CLI tells what it vouched for."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from twinengine.cli.offers import _vouched_words
from twinengine.config import Settings
from twinengine.dataspace.schemas import ParticipantRead, VouchedRead

PROVIDER = {"id": "federation", "issuer": "https://aai.example.org", "audience": "twinengine"}


def test_the_claims_provider_names_an_oidc_provider(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="dataspace_claims_provider 'elsewhere' names no entry"):
        Settings(data_dir=tmp_path, oidc_providers=[PROVIDER], dataspace_claims_provider="elsewhere",
                 dataspace_claims_audience="urn:dataspace")
    assert Settings(data_dir=tmp_path, oidc_providers=[PROVIDER], dataspace_claims_provider="federation",
                    dataspace_claims_audience="urn:dataspace").dataspace_claims_provider == "federation"


def test_a_credential_cannot_be_a_bearer_for_the_api(tmp_path: Path) -> None:
    """The credentials' audience is required and differs from the API's, which must be set: else a credential
    shown to one provider would be a bearer for the API of every engine trusting that identity provider."""
    for audience, entry in ((None, PROVIDER), ("twinengine", PROVIDER),
                            ("urn:dataspace", {**PROVIDER, "audience": None})):
        with pytest.raises(ValidationError, match="an audience of the data space's own"):
            Settings(data_dir=tmp_path, oidc_providers=[entry], dataspace_claims_provider="federation",
                     dataspace_claims_audience=audience)


def test_the_credential_settings_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="go together"):
        Settings(data_dir=tmp_path, dataspace_credential_issuer="https://aai.example.org",
                 dataspace_credential_client_id="hydro")
    with pytest.raises(ValidationError, match="http or https URL"):
        Settings(data_dir=tmp_path, dataspace_credential_issuer="file:///etc/passwd",
                 dataspace_credential_client_id="hydro", dataspace_credential_client_secret="s")


def test_the_cli_says_what_was_vouched_and_until_when() -> None:
    until = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    said = VouchedRead(issuer="https://aai.example.org", organisation="Hydro Institute", groups=["example-vo"],
                       vouched_at=until, good_until=until, current=True)
    row = ParticipantRead(did="did:web:hydro.example", registered=False, vouched=said)
    assert _vouched_words(row) == "Hydro Institute; example-vo (until 2026-12-02 01:00 UTC)"
    gone = said.model_copy(update={"current": False, "organisation": None, "groups": []})
    assert _vouched_words(row.model_copy(update={"vouched": gone})) == "nothing (expired 2026-12-02 01:00 UTC)"
    assert _vouched_words(ParticipantRead(did="did:web:x.example")) == ""
