"""Participants the data space's shared identity provider vouches for: a real OpenID provider on loopback (panva's
oidc-provider, ``tests/oidc_fixtures.py``) gives the consumer engine its credential by the client-credentials
grant, with the organisation and entitlements its admin set for that service; the provider engine, trusting that
OpenID provider, judges its policies by them beside its register. Two engines over real HTTP on loopback, each
with a store of its own (both stores)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
import pytest

from dataspace_fixtures import BACKENDS, Participant, checked_messages, engine_store, msg, served_engine, wait_state
from helpers import stop_process
from oidc_fixtures import VO, LoopbackProvider, start_provider

pytestmark = pytest.mark.every_store

HYDRO, HYDRO_SECRET = "hydro-engine", "hydro-engine-secret-for-tests"
OTHER, OTHER_SECRET = "other-engine", "other-engine-secret-for-tests"
MEMBER = f"{VO}:role=member#aai.egi.eu"
DATASPACE = "urn:dataspace:flood"  # the credentials' own audience, apart from the engines' API (``twinengine``)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackProvider]:
    """The shared OpenID provider, with a service client per consumer engine (claims set once its URL is known)."""
    provider = start_provider(tmp_path_factory.mktemp("shared-idp"),
                              services={HYDRO: (HYDRO_SECRET, {}), OTHER: (OTHER_SECRET, {})})
    try:
        yield provider
    finally:
        stop_process(provider.process, timeout=10)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path, backend: str,
            idp: LoopbackProvider) -> Iterator[tuple[Participant, Participant]]:
    with engine_store(backend) as ours, engine_store(backend) as theirs, \
            served_engine(tmp_path_factory.mktemp("provider"), migrated_sqlite, database_url=ours,
                          oidc_providers=[idp.settings("federation", organisation_claim="organisation")],
                          dataspace_claims_provider="federation", dataspace_claims_audience=DATASPACE) as provider, \
            served_engine(tmp_path_factory.mktemp("consumer"), migrated_sqlite, database_url=theirs,
                          dataspace_credential_issuer=idp.issuer, dataspace_credential_client_id=HYDRO,
                          dataspace_credential_client_secret=HYDRO_SECRET,
                          dataspace_credential_resource=DATASPACE) as consumer, \
            checked_messages() as checked:
        idp.set_service_claims(HYDRO, {"participant_id": consumer.did, "organisation": "Hydro Institute",
                                       "eduperson_entitlement": [MEMBER]})
        yield provider, consumer
    checked.verdict()


def offer(provider: Participant, name: str, **terms: Any) -> dict[str, Any]:
    did = f"reach:{name}"
    provider.ok("POST", "/api/v1/lake/dids", json={"did": did, "type": "dataset"}, expect=201)
    provider.upload(f"{did}/levels.bin", os.urandom(4096), did)
    return provider.ok("POST", "/api/v1/dataspace/offers", expect=201,
                       json={"did": did, "title": f"Gauge history {name}", "terms": terms})


def listed(consumer: Participant, provider: Participant) -> list[str]:
    catalog = consumer.ok("POST", "/api/v1/dataspace/catalog", json={"url": provider.url})
    return [d["@id"] for d in catalog.get("dataset", [])]


def service_token(idp: LoopbackProvider, client: str, secret: str, resource: str | None = DATASPACE) -> str:
    """A service's access token at the shared provider, as its engine would get it (for the data space's
    audience; ``resource`` None: for the engines' API)."""
    answer = httpx.post(f"{idp.issuer}/token", auth=(client, secret), timeout=30,
                        data={"grant_type": "client_credentials", **({"resource": resource} if resource else {})})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def catalog_as(consumer: Participant, provider: Participant, credential: str | None) -> httpx.Response:
    """A catalog request signed by the consumer's engine, carrying ``credential``: what a modified engine could
    send."""
    token = consumer.runtime.dataspace.identity.token(provider.did, credential)
    return httpx.post(f"{provider.url}/dsp/2025-1/catalog/request", json=msg("CatalogRequestMessage"),
                      headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_an_organisation_and_a_group_the_provider_vouches_for_open_an_offer(
        engines: tuple[Participant, Participant]) -> None:
    provider, consumer = engines
    made = offer(provider, "vouched", organisations=["Hydro Institute"], groups=["example-vo"])
    # the register knows nothing of the consumer: what the shared provider says is what opens the offer
    assert made["dataset_id"] in listed(consumer, provider)
    started = consumer.ok("POST", "/api/v1/dataspace/negotiations", expect=201,
                          json={"url": provider.url, "dataset": made["dataset_id"]})
    wait_state(consumer, "negotiations", started["id"], "FINALIZED")
    known = {p["did"]: p for p in provider.ok("GET", "/api/v1/dataspace/participants")}
    said = known[consumer.did]
    assert said["registered"] is False and said["vouched"]["current"] is True
    assert said["vouched"]["organisation"] == "Hydro Institute" and said["vouched"]["groups"] == ["example-vo"]
    assert said["vouched"]["issuer"].startswith("http://127.0.0.1:")
    # an offer for another organisation stays hidden, as does one for a group the provider does not vouch for
    assert offer(provider, "others", organisations=["Other Institute"])["dataset_id"] not in listed(consumer, provider)
    assert offer(provider, "devs", groups=["hydro"])["dataset_id"] not in listed(consumer, provider)


def test_the_register_stays_the_providers_own_word(engines: tuple[Participant, Participant]) -> None:
    provider, consumer = engines
    made = offer(provider, "registered", organisations=["Hydro Institute"])
    assert made["dataset_id"] in listed(consumer, provider)
    # the register's organisation wins over the vouched one; removing it hands the word back to the provider
    provider.ok("PUT", "/api/v1/dataspace/participants", json={"did": consumer.did, "organisation": "Renamed Lab"})
    assert made["dataset_id"] not in listed(consumer, provider)
    provider.ok("DELETE", f"/api/v1/dataspace/participants/{quote(consumer.did, safe='')}", expect=204)
    assert made["dataset_id"] in listed(consumer, provider)


def test_a_credential_for_another_participant_or_forged_is_refused(engines: tuple[Participant, Participant],
                                                                   idp: LoopbackProvider) -> None:
    provider, consumer = engines
    idp.set_service_claims(OTHER, {"participant_id": "did:web:elsewhere.example", "organisation": "Hydro Institute"})
    foreign = catalog_as(consumer, provider, service_token(idp, OTHER, OTHER_SECRET))
    assert foreign.status_code == 401
    assert "speaks for did:web:elsewhere.example" in foreign.json()["reason"][0]
    ours = service_token(idp, HYDRO, HYDRO_SECRET)
    head, body, signature = ours.split(".")
    forged = catalog_as(consumer, provider, f"{head}.{body}.{signature[::-1]}")
    assert forged.status_code == 401 and "credential" in forged.json()["reason"][0]
    assert catalog_as(consumer, provider, ours).status_code == 200
    assert catalog_as(consumer, provider, None).status_code == 200  # none at all: judged by the register alone
    # a token for the engines' API is no credential here, and a credential is no bearer for the API: a provider
    # shown one cannot act at another engine as the service it names
    api_token = service_token(idp, HYDRO, HYDRO_SECRET, resource=None)
    wrong = catalog_as(consumer, provider, api_token)
    assert wrong.status_code == 401 and "audience" in wrong.json()["reason"][0].lower()
    assert provider.api("GET", "/api/v1/me", token=f"oidc/federation/{api_token}").status_code == 200
    assert provider.api("GET", "/api/v1/me", token=f"oidc/federation/{ours}").status_code == 401


def test_what_the_provider_withdraws_or_lets_expire_no_longer_counts(engines: tuple[Participant, Participant],
                                                                     idp: LoopbackProvider) -> None:
    from twinengine.dataspace.models import VouchedClaims

    provider, consumer = engines
    made = offer(provider, "withdrawn", organisations=["Hydro Institute"])
    assert made["dataset_id"] in listed(consumer, provider)
    try:
        # the provider's admin moves the service out of the organisation: its next credential says so
        idp.set_service_claims(HYDRO, {"participant_id": consumer.did, "eduperson_entitlement": [MEMBER]})
        assert catalog_as(consumer, provider, service_token(idp, HYDRO, HYDRO_SECRET)).status_code == 200
        assert made["dataset_id"] not in [d["@id"] for d in catalog_as(consumer, provider, None).json()
                                          .get("dataset", [])]
    finally:
        idp.set_service_claims(HYDRO, {"participant_id": consumer.did, "organisation": "Hydro Institute",
                                       "eduperson_entitlement": [MEMBER]})
    assert catalog_as(consumer, provider, service_token(idp, HYDRO, HYDRO_SECRET)).status_code == 200
    assert made["dataset_id"] in listed(consumer, provider)
    # claims older than dataspace_claims_max_age count no more (their end moved into the past)
    with provider.runtime.db.session() as session:
        row = session.get(VouchedClaims, consumer.did)
        assert row is not None
        row.good_until = datetime.now(UTC) - timedelta(seconds=1)
    assert made["dataset_id"] not in [d["@id"] for d in catalog_as(consumer, provider, None).json()
                                      .get("dataset", [])]
    listed_now = {p["did"]: p for p in provider.ok("GET", "/api/v1/dataspace/participants")}
    assert listed_now[consumer.did]["vouched"]["current"] is False
