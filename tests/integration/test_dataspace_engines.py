"""Two engines in the data space, provider and consumer, each served over real HTTP on loopback with a data dir
and store of its own: the consumer finds a gauge history in the provider's catalog, negotiates to FINALIZED on
both sides, pulls it (checksums equal) into its lake; and the refusals of the policy, each ending TERMINATED on
both sides with the reason and no data byte served."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dataspace_fixtures import BACKENDS, Participant, two_engines, wait_state
from streams_fixtures import eventually

pytestmark = pytest.mark.every_store  # the state machines live in the store: both stores
LIVE = timedelta(milliseconds=300)  # a live stream's pushes, this often


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store, once per module: the two engines serve every case (each with a database of its own)."""
    return str(request.param)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path,
            backend: str) -> Iterator[tuple[Participant, Participant]]:
    with two_engines(tmp_path_factory, migrated_sqlite, backend, dataspace_live_interval=LIVE) as engines:
        yield engines


@pytest.fixture(scope="module")
def gauges(engines: tuple[Participant, Participant]) -> dict[str, Any]:
    provider, _consumer = engines
    provider.ok("POST", "/api/v1/lake/dids", json={"did": "reach:gauge-history", "type": "dataset"}, expect=201)
    levels = os.urandom(256 * 1024)
    rain = b"time,rain\n" + b"".join(f"2026-03-01T{h:02d}:00:00Z,{h * 0.1:.1f}\n".encode() for h in range(24))
    sums = {"levels.bin": provider.upload("reach:gauge-history/levels.bin", levels, "reach:gauge-history"),
            "rain.csv": provider.upload("reach:gauge-history/rain.csv", rain, "reach:gauge-history")}
    return {"did": "reach:gauge-history", "sums": sums}


def offer(provider: Participant, gauges: dict[str, Any], **terms: Any) -> dict[str, Any]:
    return provider.ok("POST", "/api/v1/dataspace/offers", expect=201, json={
        "did": gauges["did"], "title": "River-reach gauge history", "terms": terms or None})


def negotiate(consumer: Participant, provider: Participant, made: dict[str, Any], *, purpose: str | None = None,
              land: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": provider.url, "dataset": made["dataset_id"], "purpose": purpose}
    if land:
        body["land"] = {"did": land}
    return consumer.ok("POST", "/api/v1/dataspace/negotiations", json=body, expect=201)


def test_a_consumer_finds_negotiates_and_pulls_a_gauge_history(engines: tuple[Participant, Participant],
                                                               gauges: dict[str, Any]) -> None:
    provider, consumer = engines
    made = offer(provider, gauges, purposes=["flood-forecasting"])
    catalog = consumer.ok("POST", "/api/v1/dataspace/catalog", json={"url": provider.url})
    assert made["dataset_id"] in [d["@id"] for d in catalog["dataset"]]
    started = negotiate(consumer, provider, made, purpose="flood-forecasting", land="remote:gauges-1")
    done = wait_state(consumer, "negotiations", started["id"], "FINALIZED")
    agreement = done["agreement_id"]
    ours = [n for n in provider.ok("GET", "/api/v1/dataspace/negotiations?role=provider")
            if n["consumer_pid"] == done["consumer_pid"]]
    assert ours and ours[0]["agreement_id"] == agreement
    # the provider records FINALIZED once the consumer's acknowledgement of the event is back: a moment after the
    # consumer's own record (a loaded machine read it VERIFIED in between)
    wait_state(provider, "negotiations", ours[0]["id"], "FINALIZED")
    mine = consumer.ok("GET", "/api/v1/dataspace/transfers?role=consumer&agreement=" + agreement)
    assert len(mine) == 1
    landed = wait_state(consumer, "transfers", mine[0]["id"], "COMPLETED")
    assert landed["landed"] == "remote:gauges-1"
    assert {f["name"]: f["sha256"] for f in landed["files"]} == gauges["sums"]
    theirs = provider.ok("GET", "/api/v1/dataspace/transfers?role=provider&agreement=" + agreement)
    assert [t["state"] for t in theirs] == ["COMPLETED"]
    for name, digest in gauges["sums"].items():
        data = consumer.api("GET", f"/api/v1/lake/dids/remote:gauges-1/{name}/content").content
        assert hashlib.sha256(data).hexdigest() == digest
    dataset = consumer.ok("GET", "/api/v1/lake/dids/remote:gauges-1")
    assert dataset["meta"]["dataspace"]["agreement"] == agreement
    assert dataset["meta"]["dataspace"]["provider"] == provider.did
    # the policy in the agreement is the offer's, byte for byte
    theirs_agreement = provider.ok("GET", f"/api/v1/dataspace/agreements/{agreement}")
    for key in ("permission",):
        assert theirs_agreement["policy"][key] == made["policy"][key]


def _terminated_both(provider: Participant, consumer: Participant, started: dict[str, Any]) -> tuple[dict[str, Any],
                                                                                                   dict[str, Any]]:
    mine = wait_state(consumer, "negotiations", started["id"], "TERMINATED")
    theirs = [n for n in provider.ok("GET", "/api/v1/dataspace/negotiations?role=provider")
              if n["consumer_pid"] == mine["consumer_pid"]]
    assert theirs
    # the provider records its termination once the consumer has answered it: the consumer may be first
    return mine, wait_state(provider, "negotiations", theirs[0]["id"], "TERMINATED")


def _no_data_served(provider: Participant) -> None:
    from sqlalchemy import func, select

    from twinengine.dataspace.models import Access

    with provider.runtime.db.session(readonly=True) as session:
        assert not session.scalar(select(func.count()).select_from(Access).where(Access.outcome == "served",
                                                                                 Access.agreement_id.is_(None)))


@pytest.mark.parametrize(("terms", "purpose", "why"), [
    ({"until": "2020-01-01T00:00:00Z"}, None, "dateTime lteq"),
    ({"purposes": ["flood-forecasting"]}, "marketing", "purpose eq"),
], ids=["expired-dateTime", "wrong-purpose"])
def test_a_policy_refuses_the_negotiation_and_both_sides_end_terminated(
        engines: tuple[Participant, Participant], gauges: dict[str, Any], terms: dict[str, Any],
        purpose: str | None, why: str) -> None:
    provider, consumer = engines
    made = offer(provider, gauges, **terms)
    started = negotiate(consumer, provider, made, purpose=purpose, land="remote:never")
    mine, theirs = _terminated_both(provider, consumer, started)
    assert why in (mine["error"] or "") and why in (theirs["error"] or "")
    assert mine["agreement_id"] is None
    assert consumer.api("GET", "/api/v1/lake/dids/remote:never").status_code == 404


def _agreed(provider: Participant, consumer: Participant, gauges: dict[str, Any], **terms: Any) -> str:
    made = offer(provider, gauges, **terms)
    started = negotiate(consumer, provider, made)
    return str(wait_state(consumer, "negotiations", started["id"], "FINALIZED")["agreement_id"])


def _transfer(consumer: Participant, agreement: str, land: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"agreement": agreement, "did": land or "remote:unused", "land_data": land is not None}
    return consumer.ok("POST", "/api/v1/dataspace/transfers", json=body, expect=201)


def _counts(policy: dict[str, Any] | None) -> list[str]:
    return [c["rightOperand"] for rule in (policy or {}).get("permission", []) for c in rule.get("constraint", [])
            if c["leftOperand"] == "count"]


def test_counter_offers_go_back_and_forth_until_one_is_agreed(engines: tuple[Participant, Participant],
                                                              gauges: dict[str, Any]) -> None:
    """A manual offer of 10 transfers: the provider's steward counters with 3, the consumer counters with 5, the
    steward agrees to 5: both agreements hold 5 and the provider enforces it. A second time the consumer accepts
    the steward's counter of 2. A counter the engine cannot enforce, one that would not permit this consumer,
    terms beside a policy, or a policy with a step that takes none are refused, changing nothing."""
    provider, consumer = engines
    made = provider.ok("POST", "/api/v1/dataspace/offers", expect=201, json={
        "did": gauges["did"], "title": "Gauges, ask the steward", "terms": {"count": 10}, "manual": True})

    def theirs(started: dict[str, Any], state: str) -> dict[str, Any]:
        pid = wait_state(consumer, "negotiations", started["id"], state)["consumer_pid"]
        row = next(n for n in provider.ok("GET", "/api/v1/dataspace/negotiations?role=provider")
                   if n["consumer_pid"] == pid)
        return wait_state(provider, "negotiations", row["id"], state)

    started = negotiate(consumer, provider, made)
    steward = theirs(started, "REQUESTED")
    assert _counts(steward["offer"]) == ["10"] and steward["offered_by"] == "consumer"
    step = f"/api/v1/dataspace/negotiations/{steward['id']}"
    for body, where in (({"policy": {"permission": [{"action": "use", "constraint": [
            {"leftOperand": "moonPhase", "operator": "eq", "rightOperand": "full"}]}]}}, "policy"),
            ({"terms": {"count": 3}, "policy": {"permission": [{"action": "use"}]}}, "policy"),
            ({"terms": {"participants": ["did:web:somebody-else.example"]}}, "policy")):
        refused = provider.api("POST", f"{step}/offer", json=body)
        assert refused.status_code == 422 and refused.json()["details"][0]["loc"].startswith(where), refused.text
    wrong = provider.api("POST", f"{step}/agree", json={"terms": {"count": 3}})
    assert wrong.status_code == 400 and "counter-offer" in wrong.text, wrong.text
    assert provider.ok("GET", step)["state"] == "REQUESTED" and provider.ok("GET", step)["pending"] is None

    countered = provider.ok("POST", f"{step}/offer", json={"terms": {"count": 3}})
    assert _counts(countered["offer"]) == ["3"] and countered["offered_by"] == "provider"
    mine = wait_state(consumer, "negotiations", started["id"], "OFFERED")
    assert _counts(mine["offer"]) == ["3"] and mine["offered_by"] == "provider"
    consumer.ok("POST", f"/api/v1/dataspace/negotiations/{started['id']}/request", json={"terms": {"count": 5}})
    steward = theirs(started, "REQUESTED")
    assert _counts(steward["offer"]) == ["5"] and steward["offered_by"] == "consumer"  # the steward sees it
    provider.ok("POST", f"{step}/agree")
    wait_state(provider, "negotiations", steward["id"], "VERIFIED")
    provider.ok("POST", f"{step}/finalize")
    agreement = wait_state(consumer, "negotiations", started["id"], "FINALIZED")["agreement_id"]
    for side in (provider, consumer):
        assert _counts(side.ok("GET", f"/api/v1/dataspace/agreements/{agreement}")["policy"]) == ["5"]

    again = negotiate(consumer, provider, made)
    steward = theirs(again, "REQUESTED")
    provider.ok("POST", f"/api/v1/dataspace/negotiations/{steward['id']}/offer", json={"terms": {"count": 2}})
    wait_state(consumer, "negotiations", again["id"], "OFFERED")
    consumer.ok("POST", f"/api/v1/dataspace/negotiations/{again['id']}/accept")
    wait_state(provider, "negotiations", steward["id"], "ACCEPTED")
    provider.ok("POST", f"/api/v1/dataspace/negotiations/{steward['id']}/agree")
    wait_state(provider, "negotiations", steward["id"], "VERIFIED")
    provider.ok("POST", f"/api/v1/dataspace/negotiations/{steward['id']}/finalize")
    second = wait_state(consumer, "negotiations", again["id"], "FINALIZED")["agreement_id"]
    assert _counts(consumer.ok("GET", f"/api/v1/dataspace/agreements/{second}")["policy"]) == ["2"]

    def started_by_the_steward(land: str) -> dict[str, Any]:  # a manual offer's transfers too
        asked = wait_state(consumer, "transfers", _transfer(consumer, second, land)["id"], "REQUESTED")
        row = next(t for t in provider.ok("GET", f"/api/v1/dataspace/transfers?role=provider&agreement={second}")
                   if t["consumer_pid"] == asked["consumer_pid"])
        provider.ok("POST", f"/api/v1/dataspace/transfers/{row['id']}/start")
        return asked

    for i in (1, 2):
        wait_state(consumer, "transfers", started_by_the_steward(f"remote:countered-{i}")["id"], "COMPLETED")
    third = _transfer(consumer, second, "remote:countered-3")  # refused when asked, before any steward
    ended = wait_state(consumer, "transfers", third["id"], "TERMINATED")
    assert 'count lteq "2"' in (ended["error"] or "")  # the counter-offer's 2, not the catalog's 10

    late = theirs(negotiate(consumer, provider, made), "REQUESTED")  # and then the offer is withdrawn
    provider.ok("DELETE", f"/api/v1/dataspace/offers/{made['id']}")
    for action, body in (("agree", None), ("offer", {"terms": {"count": 1}})):
        refused = provider.api("POST", f"/api/v1/dataspace/negotiations/{late['id']}/{action}", json=body)
        assert refused.status_code == 400 and "withdrawn" in refused.text, refused.text


def test_count_two_then_a_third_transfer_is_terminated(engines: tuple[Participant, Participant],
                                                       gauges: dict[str, Any]) -> None:
    provider, consumer = engines
    agreement = _agreed(provider, consumer, gauges, count=2)
    for i in (1, 2):
        wait_state(consumer, "transfers", _transfer(consumer, agreement, f"remote:count-{i}")["id"], "COMPLETED")
    third = _transfer(consumer, agreement, "remote:count-3")
    ended = wait_state(consumer, "transfers", third["id"], "TERMINATED")
    assert "count lteq" in (ended["error"] or "")
    refused = [t for t in provider.ok("GET", f"/api/v1/dataspace/transfers?role=provider&agreement={agreement}")
               if t["consumer_pid"] == ended["consumer_pid"]]
    # the provider records TERMINATED once the consumer acknowledged it, a moment after the consumer's own record
    assert wait_state(provider, "transfers", refused[0]["id"], "TERMINATED")["bytes"] == 0
    assert consumer.api("GET", "/api/v1/lake/dids/remote:count-3").status_code == 404
    usage = provider.ok("GET", f"/api/v1/dataspace/agreements/{agreement}/accesses")
    assert {a["transfer_id"] for a in usage if a["outcome"] == "served"} == \
        {t["id"] for t in provider.ok("GET", f"/api/v1/dataspace/transfers?role=provider&agreement={agreement}")
         if t["state"] == "COMPLETED"}


def test_elapsed_time_refuses_a_transfer_once_seven_days_passed(engines: tuple[Participant, Participant],
                                                                gauges: dict[str, Any]) -> None:
    """The provider's clock moved on: the agreement was signed eight days before now (P7D)."""
    from datetime import timedelta

    from sqlalchemy import update

    from twinengine.dataspace.models import Agreement
    from twinengine.store.base import utcnow

    provider, consumer = engines
    agreement = _agreed(provider, consumer, gauges, days=7)
    with provider.runtime.db.session() as session:
        session.execute(update(Agreement).where(Agreement.id == agreement, Agreement.role == "provider")
                        .values(signed_at=utcnow() - timedelta(days=8)))
    ended = wait_state(consumer, "transfers", _transfer(consumer, agreement, "remote:late")["id"], "TERMINATED")
    assert "elapsedTime lteq" in (ended["error"] or "")


def test_the_consumers_copy_is_held_under_the_agreements_terms(engines: tuple[Participant, Participant],
                                                               gauges: dict[str, Any]) -> None:
    """The landed dataset and each of its files carry the agreement's policy; once the consumer's clock is past
    its P7D (the signing moved eight days back in the copy's metadata, as the provider's test moves its
    agreement), a download is refused (403, naming the agreement and the term) while the metadata still
    reads and the copy can be deleted."""
    from datetime import timedelta

    from sqlalchemy import select

    from twinengine.lake.models import Did
    from twinengine.store.base import utcnow

    provider, consumer = engines
    agreement = _agreed(provider, consumer, gauges, days=7)
    wait_state(consumer, "transfers", _transfer(consumer, agreement, "remote:held")["id"], "COMPLETED")
    content = "/api/v1/lake/dids/remote:held/levels.bin/content"
    assert hashlib.sha256(consumer.api("GET", content).content).hexdigest() == gauges["sums"]["levels.bin"]
    with consumer.runtime.db.session() as session:
        held = list(session.scalars(select(Did).where(Did.scope == "remote", Did.name.like("held%"))))
        assert len(held) == 3 and all(d.meta["dataspace"]["agreement"] == agreement for d in held)
        for did in held:
            terms = dict(did.meta["dataspace"], signed_at=(utcnow() - timedelta(days=8)).isoformat())
            did.meta = {**did.meta, "dataspace": terms}
    refused = consumer.api("GET", content)
    assert refused.status_code == 403, refused.text
    assert agreement in refused.text and "elapsedTime lteq" in refused.text
    assert consumer.ok("GET", "/api/v1/lake/dids/remote:held/levels.bin")["meta"]["dataspace"]["agreement"] == agreement
    consumer.ok("DELETE", "/api/v1/lake/dids/remote:held", expect=204)


def test_an_identity_not_in_the_policy_sees_no_offer(engines: tuple[Participant, Participant],
                                                     gauges: dict[str, Any]) -> None:
    provider, consumer = engines
    made = offer(provider, gauges, participants=["did:web:elsewhere.example"])
    catalog = consumer.ok("POST", "/api/v1/dataspace/catalog", json={"url": provider.url})
    assert made["dataset_id"] not in [d["@id"] for d in catalog.get("dataset", [])]
    refused = consumer.api("POST", "/api/v1/dataspace/negotiations",
                           json={"url": provider.url, "dataset": made["dataset_id"]})
    assert refused.status_code == 404
    # an organisation: the provider records the consumer's, and the offer for it becomes visible
    org = offer(provider, gauges, organisations=["Hydro Institute"])
    assert org["dataset_id"] not in [d["@id"] for d in consumer.ok(
        "POST", "/api/v1/dataspace/catalog", json={"url": provider.url}).get("dataset", [])]
    provider.ok("PUT", "/api/v1/dataspace/participants", json={"did": consumer.did, "organisation": "Hydro Institute"})
    assert org["dataset_id"] in [d["@id"] for d in consumer.ok(
        "POST", "/api/v1/dataspace/catalog", json={"url": provider.url})["dataset"]]


def test_an_unknown_left_operand_is_refused_at_offer_time(engines: tuple[Participant, Participant],
                                                          gauges: dict[str, Any]) -> None:
    provider, _consumer = engines
    refused = provider.api("POST", "/api/v1/dataspace/offers", json={
        "did": gauges["did"], "title": "t", "policy": {"permission": [{"action": "use", "constraint": [
            {"leftOperand": "moonPhase", "operator": "eq", "rightOperand": "full"}]}]}})
    assert refused.status_code == 422
    assert refused.json()["details"][0]["loc"] == "policy.permission[0].constraint[0].leftOperand"


def test_the_data_address_refuses(engines: tuple[Participant, Participant], gauges: dict[str, Any]) -> None:
    """No token, another agreement's token, a suspended, revoked, completed transfer, an expired token."""
    import httpx2 as httpx
    from sqlalchemy import select, update

    from twinengine.dataspace.models import TransferProcess
    from twinengine.store.base import utcnow

    provider, consumer = engines

    def address(transfer_id: int) -> tuple[str, str]:
        with consumer.runtime.db.session(readonly=True) as session:
            row = session.get(TransferProcess, transfer_id)
            assert row is not None and row.data_address
            props = {p["name"]: p["value"] for p in row.data_address["endpointProperties"]}
            return row.data_address["endpoint"], props["authorization"]

    def get(url: str, token: str | None) -> int:
        return httpx.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}).status_code

    first, second = _agreed(provider, consumer, gauges), _agreed(provider, consumer, gauges)
    one = wait_state(consumer, "transfers", _transfer(consumer, first, None)["id"], "STARTED")
    two = wait_state(consumer, "transfers", _transfer(consumer, second, None)["id"], "STARTED")
    url_one, token_one = address(one["id"])
    url_two, token_two = address(two["id"])
    assert get(url_one, token_one) == 200
    assert get(url_one, None) == 401
    assert get(url_one, token_two) == 403  # another agreement's token
    consumer.ok("POST", f"/api/v1/dataspace/transfers/{one['id']}/suspend")
    wait_state(consumer, "transfers", one["id"], "SUSPENDED")
    assert get(url_one, token_one) == 403
    consumer.ok("POST", f"/api/v1/dataspace/transfers/{one['id']}/start")
    wait_state(consumer, "transfers", one["id"], "STARTED")
    assert get(url_one, token_one) == 200
    with provider.runtime.db.session() as session:  # the token's ten minutes have passed
        pid = session.scalar(select(TransferProcess.provider_pid).where(TransferProcess.consumer_pid ==
                                                                        one["consumer_pid"]))
        session.execute(update(TransferProcess).where(TransferProcess.provider_pid == pid)
                        .values(token_expires_at=utcnow()))
    assert get(url_one, token_one) == 403
    provider.ok("POST", f"/api/v1/dataspace/agreements/{second}/revoke")
    assert get(url_two, token_two) == 403  # at once
    wait_state(consumer, "transfers", two["id"], "TERMINATED")
    refused = provider.ok("GET", f"/api/v1/dataspace/agreements/{second}/accesses")
    assert [a["outcome"] for a in refused][-1] == "refused"
    third = _agreed(provider, consumer, gauges)
    done = wait_state(consumer, "transfers", _transfer(consumer, third, "remote:then-closed")["id"], "COMPLETED")
    url_three, token_three = address(done["id"])
    assert get(url_three, token_three) == 403  # after COMPLETED


def _rain_collection(provider: Participant, tmp_path: Path, did: str) -> None:
    """The tests' rain field as the provider's lake dataset ``did``, once EDR lists it as a collection."""
    from lake_fixtures import rain_field

    provider.ok("POST", "/api/v1/lake/dids", json={"did": did, "type": "dataset"}, expect=201)
    rain_field().to_netcdf(tmp_path / "rain.nc", engine="h5netcdf")
    provider.upload(f"{did}/rain.nc", (tmp_path / "rain.nc").read_bytes(), did)
    collection = did.replace(":", ".")
    eventually(lambda: collection in [c["id"] for c in provider.ok("GET", "/edr/collections")["collections"]],
               timeout=60)


def test_an_edr_offer_permits_queries_within_its_area_only(engines: tuple[Participant, Participant],
                                                           tmp_path: Path) -> None:
    """spatialCoordinates: a rain field offered for queries within a catchment's polygon only. The collection's
    description is read; a point, a radius and an area inside are answered; a radius or an area reaching past
    the polygon is refused (403 naming spatialCoordinates), recorded, nothing served. The constraint on a file
    offer (a file has no area), in a prohibition, or with a polygon that is none, is refused at offer time."""

    provider, consumer = engines
    _rain_collection(provider, tmp_path, "grid:rain-region")
    within = {"leftOperand": "spatialCoordinates", "operator": "isPartOf",
              "rightOperand": "POLYGON((7 46, 8 46, 8 47, 7 47, 7 46))"}
    permission = {"action": "use", "constraint": [within]}
    for body, why in (({"did": "grid:rain-region", "policy": {"permission": [permission]}}, "a file has none"),
                      ({"collection": "grid.rain-region", "policy": {"permission": [{"action": "use"}],
                                                                    "prohibition": [permission]}}, "a permission"),
                      ({"collection": "grid.rain-region", "policy": {"permission": [{"action": "use", "constraint": [
                          {**within, "rightOperand": "POLYGON((7 46, 8 47))"}]}]}}, "POLYGON")):
        refused = provider.api("POST", "/api/v1/dataspace/offers", json={**body, "title": "x"})
        assert refused.status_code == 422 and why in refused.text, refused.text
        assert refused.json()["details"][0]["loc"].startswith("policy"), refused.text
    made = provider.ok("POST", "/api/v1/dataspace/offers", expect=201, json={
        "collection": "grid.rain-region", "title": "Rain over the catchment", "policy": {"permission": [permission]}})
    agreement = wait_state(consumer, "negotiations", negotiate(consumer, provider, made)["id"],
                           "FINALIZED")["agreement_id"]
    started = wait_state(consumer, "transfers", _transfer(consumer, agreement, None)["id"], "STARTED")
    root = f"/api/v1/dataspace/transfers/{started['id']}/edr/collections"
    assert [c["id"] for c in consumer.ok("GET", root)["collections"]] == ["grid.rain-region"]  # its description
    asked = "parameter-name=rain&datetime=2026-03-01T03:00:00Z"
    for query in ("position?coords=POINT(7.5 46.5)", "radius?coords=POINT(7.5 46.5)&within=20&within-units=km",
                  "area?coords=POLYGON((7.2 46.2, 7.8 46.2, 7.8 46.8, 7.2 46.8, 7.2 46.2))"):
        assert consumer.api("GET", f"{root}/grid.rain-region/{query}&{asked}").status_code == 200, query
    for query in ("radius?coords=POINT(7.9 46.5)&within=20&within-units=km",  # 0.26 degrees east: past 8
                  "area?coords=POLYGON((7.5 46.5, 8.5 46.5, 8.5 46.8, 7.5 46.8, 7.5 46.5))",
                  "position?coords=POINT(8.25 46.5)"):
        refused = consumer.api("GET", f"{root}/grid.rain-region/{query}&{asked}")
        assert refused.status_code == 403 and "spatialCoordinates" in refused.text, (query, refused.text)
    accesses = provider.ok("GET", f"/api/v1/dataspace/agreements/{agreement}/accesses")
    assert sum(a["outcome"] == "served" and a["file"].split("?")[0] in ("edr position", "edr radius", "edr area")
               for a in accesses) == 3
    assert sum("spatialCoordinates" in (a["reason"] or "") for a in accesses) == 3


def test_the_cells_that_answer_are_judged_not_only_the_point_asked(engines: tuple[Participant, Participant],
                                                                  tmp_path: Path) -> None:
    """A polygon whose east edge (7.9) lies between two columns of cell centres (7.75 and 8.0): a point inside
    it nearest to the outer column, and an interpolation that reads that column, are refused; a point nearest
    to the inner column is answered with it."""
    provider, consumer = engines
    _rain_collection(provider, tmp_path, "grid:rain-edge")
    within = {"leftOperand": "spatialCoordinates", "operator": "isPartOf",
              "rightOperand": "POLYGON((7 46, 7.9 46, 7.9 47, 7 47, 7 46))"}
    made = provider.ok("POST", "/api/v1/dataspace/offers", expect=201, json={
        "collection": "grid.rain-edge", "title": "Rain west of 7.9", "policy": {"permission": [
            {"action": "use", "constraint": [within]}]}})
    agreement = wait_state(consumer, "negotiations", negotiate(consumer, provider, made)["id"],
                           "FINALIZED")["agreement_id"]
    started = wait_state(consumer, "transfers", _transfer(consumer, agreement, None)["id"], "STARTED")
    root = f"/api/v1/dataspace/transfers/{started['id']}/edr/collections/grid.rain-edge"
    asked = "parameter-name=rain&datetime=2026-03-01T03:00:00Z"
    answered = consumer.ok("GET", f"{root}/position?coords=POINT(7.8 46.5)&{asked}")
    assert answered["domain"]["axes"]["x"]["values"] == [7.75]  # the inner column's cell
    for query in ("position?coords=POINT(7.89 46.5)",  # inside the polygon; its nearest cell is at 8.0
                  "position?coords=POINT(7.8 46.5)&method=linear"):  # interpolated from 7.75 and 8.0
        refused = consumer.api("GET", f"{root}/{query}&{asked}")
        assert refused.status_code == 403, (query, refused.text)
        assert "lie outside the area permitted" in refused.text and "spatialCoordinates" in refused.text
    accesses = provider.ok("GET", f"/api/v1/dataspace/agreements/{agreement}/accesses")
    assert [a["outcome"] for a in accesses if (a["file"] or "").startswith("edr position")] == ["served"]
    assert sum("spatialCoordinates" in (a["reason"] or "") for a in accesses) == 2


def _gauge_readings(start: int, count: int) -> list[dict[str, Any]]:
    return [{"time": f"2026-03-0{1 + (start + i) // 96}T{(start + i) % 96 // 4:02d}:{(start + i) % 4 * 15:02d}:00Z",
             "station": "RR-01", "rain": round(0.1 * ((start + i) % 7), 1), "level": round(1.0 + 0.01 * (start + i), 2)}
            for i in range(count)]


def test_a_stream_history_is_offered_pulled_and_replayed_into_the_consumers_twin(
        engines: tuple[Participant, Participant]) -> None:
    """A twin's stream offered as such: each transfer serves the history as it stood when the provider accepted
    it (readings sent later are not in it; the next transfer has them), as an Arrow IPC file of the stream's
    fields whose SHA-256 the provider keeps; the consumer lands it, reads it under the agreement's terms and
    sends it into the stream of a twin of its own, whose state then follows the provider's gauge."""
    import io

    import pyarrow as pa

    from helpers import RIVER_REACH
    from twinengine.client import Client

    provider, consumer = engines
    with Client(provider.url, provider.admin) as ours, Client(consumer.url, consumer.admin) as theirs:
        for side in (ours, theirs):
            if not [a for a in side.list_apps().items if a.name == "river-reach"]:
                side.publish_app(RIVER_REACH)
        ours.create_twin("river-reach", "offered-reach", {"station": "RR-01"})
        ours.streams.append("offered-reach", "gauges", _gauge_readings(0, 48))
        # what cannot be offered is refused naming the field, and another person's twin is not theirs to offer
        nobody = provider.token("nobody")
        missing = provider.api("POST", "/api/v1/dataspace/offers", json={
            "stream": {"twin": "offered-reach", "stream": "levels"}, "title": "t"})
        assert missing.status_code == 422 and missing.json()["details"][0]["loc"] == "stream.stream", missing.text
        both = provider.api("POST", "/api/v1/dataspace/offers", json={
            "did": "reach:gauge-history", "stream": {"twin": "offered-reach", "stream": "gauges"}, "title": "t"})
        assert both.status_code == 422, both.text
        foreign = provider.api("POST", "/api/v1/dataspace/offers", nobody, json={
            "stream": {"twin": "offered-reach", "stream": "gauges"}, "title": "t"})
        assert foreign.status_code in (403, 422) and "offered-reach" in foreign.text, foreign.text
        made = ours.dataspace.offer_stream("offered-reach", "gauges", "Gauge history RR-01",
                                           purposes=["flood-forecasting"], count=2)
        assert made.did == "stream:offered-reach/gauges" and made.stream == "gauges"
        catalog = consumer.ok("POST", "/api/v1/dataspace/catalog", json={"url": provider.url})
        listed = {d["@id"]: d for d in catalog["dataset"]}
        assert "stream gauges" in listed[made.dataset_id]["dct:description"]

        started = negotiate(consumer, provider, made.model_dump(mode="json"), purpose="flood-forecasting",
                            land="remote:offered-gauges")
        agreement = wait_state(consumer, "negotiations", started["id"], "FINALIZED")["agreement_id"]
        pulled = consumer.ok("GET", "/api/v1/dataspace/transfers?role=consumer&agreement=" + agreement)
        landed = wait_state(consumer, "transfers", pulled[0]["id"], "COMPLETED")
        served = provider.ok("GET", "/api/v1/dataspace/transfers?role=provider&agreement=" + agreement)
        assert [f["name"] for f in landed["files"]] == ["gauges.arrow"]
        assert landed["files"][0]["sha256"] == served[0]["files"][0]["sha256"]
        data = consumer.api("GET", "/api/v1/lake/dids/remote:offered-gauges/gauges.arrow/content").content
        assert hashlib.sha256(data).hexdigest() == landed["files"][0]["sha256"]
        table = pa.ipc.open_file(io.BytesIO(data)).read_all()
        sent = _gauge_readings(0, 48)
        # the stream's fields (in the order the store gives the manifest back: PostgreSQL's JSONB sorts keys)
        assert sorted(table.column_names) == ["level", "rain", "station", "time"]
        assert table.column("level").to_pylist() == [r["level"] for r in sent]

        # readings sent after the first transfer are in the next one, and the first's snapshot is unchanged
        ours.streams.append("offered-reach", "gauges", _gauge_readings(48, 12))
        again = wait_state(consumer, "transfers", _transfer(consumer, agreement, "remote:offered-gauges-2")["id"],
                           "COMPLETED")
        more = consumer.api("GET", "/api/v1/lake/dids/remote:offered-gauges-2/gauges.arrow/content").content
        assert pa.ipc.open_file(io.BytesIO(more)).read_all().num_rows == 60
        assert again["files"][0]["sha256"] != landed["files"][0]["sha256"]
        kept = provider.ok("GET", "/api/v1/lake/dids/" + served[0]["snapshot"])
        assert kept["sha256"] == landed["files"][0]["sha256"] and kept["meta"]["served"]["offsets"] == [0, 48]

        # the consumer's own twin takes the history into its stream; its state follows the provider's gauge
        theirs.create_twin("river-reach", "partner-reach", {"station": "RR-01"})
        ack = theirs.streams.append("partner-reach", "gauges", table)
        assert ack.next_offset == 48
        back = theirs.streams.read_arrow("partner-reach", "gauges")
        assert back.column("level").to_pylist() == table.column("level").to_pylist()
        deadline = time.monotonic() + 120
        while (level := _reported(theirs, "partner-reach", "level")) != sent[-1]["level"]:
            assert time.monotonic() < deadline, f"the partner's twin reports level {level}, not {sent[-1]['level']}"
            time.sleep(0.5)


def _reported(client: Any, twin: str, name: str) -> Any:
    found = client.get_state(twin).reported.get(name)
    return None if found is None else found.value


def test_a_runs_results_are_offered_as_such(engines: tuple[Participant, Participant]) -> None:
    """A finished run's results offered by its id (its lake dataset ``results:<run id>``): who may, what is
    refused naming ``run``, and the result's bytes arriving with the provider's SHA-256."""
    provider, consumer = engines
    graph = {"process_graph": {"sum": {"process_id": "add", "arguments": {"x": 40, "y": 2}, "result": True}}}
    run = provider.ok("POST", "/api/v1/runs", json={"process": graph, "mode": "sync"}, expect=202)
    assert run["status"] == "finished", run
    results = provider.ok("GET", f"/api/v1/lake/dids/results:{run['id']}")
    kept = {c.rsplit("/", 1)[-1] for c in results["children"]}
    assert kept, results
    for body, loc in (({"run": "no-such-run"}, "run"), ({"run": run["id"], "did": "reach:gauge-history"}, "did")):
        refused = provider.api("POST", "/api/v1/dataspace/offers", json={**body, "title": "t"})
        assert refused.status_code == 422 and refused.json()["details"][0]["loc"] == loc, refused.text
    # a run of another person is not theirs to offer (nor even seen)
    stranger = provider.api("POST", "/api/v1/dataspace/offers", provider.token("stranger"),
                            json={"run": run["id"], "title": "t"})
    assert stranger.status_code == 422 and "no run" in stranger.text, stranger.text
    made = provider.ok("POST", "/api/v1/dataspace/offers", expect=201, json={
        "run": run["id"], "title": "A sum", "terms": {"purposes": ["flood-forecasting"]}})
    assert made["did"] == f"results:{run['id']}" and made["run"] == run["id"]
    catalog = consumer.ok("POST", "/api/v1/dataspace/catalog", json={"url": provider.url})
    assert f"results of workflow run {run['id']}" in {d["@id"]: d for d in catalog["dataset"]}[
        made["dataset_id"]]["dct:description"]
    started = negotiate(consumer, provider, made, purpose="flood-forecasting", land="remote:a-sum")
    agreement = wait_state(consumer, "negotiations", started["id"], "FINALIZED")["agreement_id"]
    pulled = consumer.ok("GET", "/api/v1/dataspace/transfers?role=consumer&agreement=" + agreement)
    landed = wait_state(consumer, "transfers", pulled[0]["id"], "COMPLETED")
    assert {f["name"] for f in landed["files"]} == kept
    for f in landed["files"]:
        theirs = provider.ok("GET", f"/api/v1/lake/dids/results:{run['id']}/{f['name']}")
        assert f["sha256"] == theirs["sha256"]


def test_a_push_lands_the_files_and_its_address_refuses_others(engines: tuple[Participant, Participant],
                                                               gauges: dict[str, Any]) -> None:
    """HttpData-PUSH: the consumer's request gives its push address and bearer; the provider sends the listing
    and each file there, then its completion; both end COMPLETED with the provider's SHA-256s in the consumer's
    lake. The push address refuses a caller without the bearer, with another transfer's, a file not listed, and
    bytes that are not the listed ones; the usage record names each file pushed."""
    import httpx2 as httpx

    provider, consumer = engines
    agreement = _agreed(provider, consumer, gauges)
    asked = consumer.ok("POST", "/api/v1/dataspace/transfers", expect=201, json={
        "agreement": agreement, "did": "remote:pushed", "format": "HttpData-PUSH"})
    assert asked["format"] == "HttpData-PUSH"
    landed = wait_state(consumer, "transfers", asked["id"], "COMPLETED")
    assert {f["name"]: f["sha256"] for f in landed["files"]} == gauges["sums"]
    served = next(t for t in provider.ok("GET", f"/api/v1/dataspace/transfers?role=provider&agreement={agreement}")
                  if t["consumer_pid"] == landed["consumer_pid"])
    assert wait_state(provider, "transfers", served["id"], "COMPLETED")["format"] == "HttpData-PUSH"
    for name, digest in gauges["sums"].items():
        data = consumer.api("GET", f"/api/v1/lake/dids/remote:pushed/{name}/content").content
        assert hashlib.sha256(data).hexdigest() == digest
    assert consumer.ok("GET", "/api/v1/lake/dids/remote:pushed")["meta"]["dataspace"]["agreement"] == agreement
    usage = provider.ok("GET", f"/api/v1/dataspace/agreements/{agreement}/accesses")
    assert {a["file"] for a in usage if a["transfer_id"] == served["id"] and a["outcome"] == "served"} == \
        {"(list)", *gauges["sums"]}

    # the consumer's push address, asked by someone else: no bearer, a wrong one, a closed transfer
    address = f"{consumer.url}/dsp/push/{landed['consumer_pid']}"
    token = consumer.runtime.dataspace.push_token(landed["consumer_pid"])
    assert httpx.post(address, json={"files": []}).status_code == 401
    assert httpx.post(address, json={"files": []}, headers={"Authorization": "Bearer nope"}).status_code == 403
    closed = httpx.put(address + "/levels.bin", content=b"x", headers={"Authorization": f"Bearer {token}"})
    assert closed.status_code == 403 and "COMPLETED" in closed.text

    # a started push whose provider sends what it did not list, or other bytes than it listed
    from sqlalchemy import update

    from twinengine.dataspace.models import TransferProcess

    second = consumer.ok("POST", "/api/v1/dataspace/transfers", expect=201, json={
        "agreement": agreement, "did": "remote:pushed-2", "format": "HttpData-PUSH"})
    wait_state(consumer, "transfers", second["id"], "COMPLETED")
    with consumer.runtime.db.session() as session:  # opened again, as if the provider were still pushing
        session.execute(update(TransferProcess).where(TransferProcess.id == second["id"]).values(
            state="STARTED", files=None))
    pid = consumer.ok("GET", f"/api/v1/dataspace/transfers/{second['id']}")["consumer_pid"]
    bearer = {"Authorization": f"Bearer {consumer.runtime.dataspace.push_token(pid)}"}
    other = {"Authorization": f"Bearer {token}"}  # the first transfer's bearer
    where = f"{consumer.url}/dsp/push/{pid}"
    assert httpx.post(where, json={"files": [{"name": "a.bin", "bytes": 3, "sha256": "0" * 64}]},
                      headers=other).status_code == 403
    bad = httpx.post(where, json={"files": [{"name": "../a", "bytes": 3, "sha256": "0" * 64}]}, headers=bearer)
    assert bad.status_code == 400 and "files[0].name" in bad.text
    listed = {"name": "a.bin", "bytes": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}
    assert httpx.post(where, json={"files": [listed]}, headers=bearer).status_code == 200
    assert httpx.put(where + "/b.bin", content=b"abc", headers=bearer).status_code == 404
    wrong = httpx.put(where + "/a.bin", content=b"abd", headers=bearer)
    assert 400 <= wrong.status_code < 500, wrong.text
    assert consumer.api("GET", "/api/v1/lake/dids/remote:pushed-2/a.bin").status_code == 404
    assert httpx.put(where + "/a.bin", content=b"abc", headers=bearer).status_code == 201
    data = consumer.api("GET", "/api/v1/lake/dids/remote:pushed-2/a.bin/content").content
    assert data == b"abc"
    # a file over the engine's default body limit: read only for the bearer of this push, else refused unread
    big = os.urandom(consumer.runtime.settings.max_request_bytes + 1024)
    listed = {"name": "big.bin", "bytes": len(big), "sha256": hashlib.sha256(big).hexdigest()}
    assert httpx.post(where, json={"files": [listed]}, headers=bearer).status_code == 200
    for refused in ({}, other):
        assert httpx.put(where + "/big.bin", content=big, headers=refused).status_code == 401
    assert httpx.put(where + "/big.bin", content=big, headers=bearer, timeout=60).status_code == 201
    assert consumer.ok("GET", "/api/v1/lake/dids/remote:pushed-2/big.bin")["sha256"] == listed["sha256"]


def test_a_live_stream_is_pushed_as_it_grows_suspended_and_resumed(engines: tuple[Participant, Participant]) -> None:
    """A live stream offer, pushed: the history first, then each part that arrives, until the consumer suspends
    (nothing comes while it is suspended), resumes (what arrived meanwhile comes, from where it stopped) and ends
    it. The parts, read in order, are every reading once: no gap, no repeat."""
    import io

    import pyarrow as pa

    from helpers import RIVER_REACH
    from twinengine.client import Client

    provider, consumer = engines
    with Client(provider.url, provider.admin) as ours:
        if not [a for a in ours.list_apps().items if a.name == "river-reach"]:
            ours.publish_app(RIVER_REACH)
        ours.create_twin("river-reach", "live-reach", {"station": "RR-01"})
        ours.streams.append("live-reach", "gauges", _gauge_readings(0, 24))
        refused = provider.api("POST", "/api/v1/dataspace/offers", json={
            "did": "reach:gauge-history", "title": "t", "live": True})
        assert refused.status_code == 422, refused.text  # only a stream is offered live (an unknown field here)
        made = ours.dataspace.offer_stream("live-reach", "gauges", "RR-01, live", live=True)
        assert made.live
        asked = consumer.ok("POST", "/api/v1/dataspace/negotiations", expect=201, json={
            "url": provider.url, "dataset": made.dataset_id,
            "land": {"did": "remote:live-gauges", "format": "HttpData-PUSH"}})
        agreement = wait_state(consumer, "negotiations", asked["id"], "FINALIZED")["agreement_id"]
        mine = eventually(lambda: consumer.ok(
            "GET", f"/api/v1/dataspace/transfers?role=consumer&agreement={agreement}"))[0]["id"]

        def parts(count: int) -> list[dict[str, Any]]:
            def landed() -> Any:
                found = consumer.ok("GET", f"/api/v1/dataspace/transfers/{mine}")["files"] or []
                return found if len(found) >= count and all(f.get("landed") for f in found) else None
            return list(eventually(landed, timeout=60))

        assert [f["name"] for f in parts(1)] == ["gauges-000000000000-000000000024.arrow"]
        ours.streams.append("live-reach", "gauges", _gauge_readings(24, 12))
        assert [f["name"] for f in parts(2)][1] == "gauges-000000000024-000000000036.arrow"
        assert consumer.ok("GET", f"/api/v1/dataspace/transfers/{mine}")["state"] == "STARTED"

        consumer.ok("POST", f"/api/v1/dataspace/transfers/{mine}/suspend")
        wait_state(consumer, "transfers", mine, "SUSPENDED")
        ours.streams.append("live-reach", "gauges", _gauge_readings(36, 4))
        time.sleep(LIVE.total_seconds() * 6)
        assert len(consumer.ok("GET", f"/api/v1/dataspace/transfers/{mine}")["files"]) == 2  # none while suspended
        consumer.ok("POST", f"/api/v1/dataspace/transfers/{mine}/start")
        assert [f["name"] for f in parts(3)][2] == "gauges-000000000036-000000000040.arrow"

        consumer.ok("POST", f"/api/v1/dataspace/transfers/{mine}/terminate")
        ended = wait_state(consumer, "transfers", mine, "TERMINATED")
        levels: list[float] = []
        for f in ended["files"]:
            data = consumer.api("GET", f"/api/v1/lake/dids/remote:live-gauges/{f['name']}/content").content
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
            levels += pa.ipc.open_file(io.BytesIO(data)).read_all().column("level").to_pylist()
        assert levels == [r["level"] for r in _gauge_readings(0, 40)]
        served = provider.ok("GET", f"/api/v1/dataspace/transfers?role=provider&agreement={agreement}")
        assert [t["state"] for t in served] == ["TERMINATED"]
        assert [f["offsets"] for f in served[0]["files"]] == [[0, 24], [24, 36], [36, 40]]


def test_an_edr_collection_is_offered_for_queries_not_files(engines: tuple[Participant, Participant],
                                                            gauges: dict[str, Any], tmp_path: Path) -> None:
    """An EDR collection offered: the consumer queries it through its own engine (the provider's answer equals
    the provider's own EDR answer), each query an access in the provider's usage record; no file is served, no
    other collection is reached, nobody but the transfer's owner sends a query, and it is never pushed."""
    from twinengine.client import Client

    provider, consumer = engines
    _rain_collection(provider, tmp_path, "grid:rain")
    for wrong, why in (("grid.nothing", "no EDR collection"), ("no-dot", "scope.name"),
                       ("reach.gauge-history", "EDR cannot read")):
        refused = provider.api("POST", "/api/v1/dataspace/offers", json={"collection": wrong, "title": "x"})
        assert refused.status_code == 422 and refused.json()["details"][0]["loc"] == "collection", refused.text
        assert why in refused.json()["details"][0]["msg"]
    made = provider.ok("POST", "/api/v1/dataspace/offers", expect=201, json={
        "collection": "grid.rain", "title": "Rain field, by query", "terms": {"count": 3}})
    assert made["collection"] == "grid.rain" and made["did"] == "grid:rain"
    listed = consumer.ok("POST", "/api/v1/dataspace/catalog", json={"url": provider.url})
    dataset = next(d for d in listed["dataset"] if d["@id"] == made["dataset_id"])
    assert [d["format"] for d in dataset["distribution"]] == ["HttpData-PULL"]  # queries are not pushed
    assert "EDR collection grid.rain" in dataset["dct:description"]
    agreement = wait_state(consumer, "negotiations", negotiate(consumer, provider, made)["id"],
                           "FINALIZED")["agreement_id"]
    pushed = consumer.ok("POST", "/api/v1/dataspace/transfers", expect=201, json={
        "agreement": agreement, "did": "remote:rain-pushed", "format": "HttpData-PUSH"})
    ended = wait_state(consumer, "transfers", pushed["id"], "TERMINATED")
    assert "HttpData-PUSH" in (ended["error"] or ""), ended
    started = wait_state(consumer, "transfers", _transfer(consumer, agreement, None)["id"], "STARTED")
    root = f"/api/v1/dataspace/transfers/{started['id']}/edr"
    collections = consumer.ok("GET", f"{root}/collections")["collections"]
    assert [c["id"] for c in collections] == ["grid.rain"]
    assert all(link["href"].startswith(provider.url + "/dsp/edr/") for link in collections[0]["links"]
               if "/collections/grid.rain" in link["href"])  # its queries under the transfer's root
    query = "coords=POINT(7.5 46.5)&parameter-name=rain&datetime=2026-03-01T00:00:00Z/2026-03-01T05:00:00Z"
    theirs = consumer.ok("GET", f"{root}/collections/grid.rain/position?{query}")
    own = provider.ok("GET", f"/edr/collections/grid.rain/position?{query}")
    assert theirs["ranges"]["rain"]["values"] == own["ranges"]["rain"]["values"]
    assert len(theirs["ranges"]["rain"]["values"]) == 6
    with Client(consumer.url, token=consumer.admin) as sdk:  # the SDK, as client.edr is used
        area = sdk.dataspace.edr(started["id"]).area("grid.rain", "POLYGON((7 46,8 46,8 46.6,7 46.6,7 46))",
                                                     parameter_name="rain", datetime="2026-03-01T03:00:00Z")
    assert area.to_xarray()["rain"].size > 1
    other = consumer.api("GET", f"{root}/collections/reach.gauge-history/position?coords=POINT(7.5 46.5)")
    assert other.status_code == 404  # the provider's answer: only the offered collection
    bad = consumer.api("GET", f"{root}/collections/grid.rain/position?coords=POINT(7.5)")
    assert bad.status_code == 400 and "coords" in bad.text
    # nothing outside the EDR root (dots escaped, so that the client does not resolve them before sending)
    for escape in ("collections/%2E%2E/%2E%2E/data", "collections/%2e%2e", "collections/grid.rain/locations",
                   "collections/grid.rain/position/%2E%2E/%2E%2E/%2E%2E", "%2E%2E/%2E%2E/%2E%2E/api/v1/me"):
        refused = consumer.api("GET", f"{root}/{escape}")
        assert refused.status_code in (404, 422), (escape, refused.status_code)
        if refused.status_code == 422:
            assert refused.json()["details"][0]["loc"] == "path"
    eve = consumer.token("eve-edr")  # another user of the consumer's engine: not her transfer
    assert consumer.api("GET", f"{root}/collections", token=eve).status_code == 404
    with consumer.runtime.db.session(readonly=True) as session:
        from twinengine.dataspace.models import TransferProcess

        row = session.get(TransferProcess, started["id"])
        assert row is not None and row.data_address is not None and row.landed is None
        endpoint = row.data_address["endpoint"]
        token = next(p["value"] for p in row.data_address["endpointProperties"] if p["name"] == "authorization")
    import httpx2 as httpx

    files = httpx.get(endpoint.replace("/dsp/edr/", "/dsp/data/"), headers={"Authorization": f"Bearer {token}"})
    assert files.status_code == 404 and "EDR queries" in files.text  # the collection's file is never served
    assert httpx.get(f"{endpoint}/collections").status_code == 401  # no token
    accesses = provider.ok("GET", f"/api/v1/dataspace/agreements/{agreement}/accesses")
    served = [a["file"] for a in accesses if a["outcome"] == "served"]
    assert sum(f.startswith("edr position") for f in served) == 1 and sum(f.startswith("edr area") for f in served) == 1
    sizes = {a["file"].split("?")[0]: a["bytes"] for a in accesses if a["outcome"] == "served"}
    assert sizes["edr position"] > 200 and sizes["edr area"] > 200, sizes  # each answer counted in bytes
    refusals = [a["reason"] for a in accesses if a["outcome"] == "refused"]
    assert "another collection" in refusals and "an EDR collection offer" in refusals


def test_a_window_of_a_stream_history_is_offered(engines: tuple[Participant, Participant]) -> None:
    """A stream offered in a window: a fixed one ([since, until), by the records' time field) and a rolling one
    (the last hours before each transfer starts); the snapshot holds exactly those readings, the catalog says
    which, and a window that cannot be served is refused naming its field."""
    import io
    from datetime import UTC, datetime

    import pyarrow as pa

    from helpers import RIVER_REACH
    from twinengine.client import Client

    provider, consumer = engines
    with Client(provider.url, provider.admin) as ours:
        if not [a for a in ours.list_apps().items if a.name == "river-reach"]:
            ours.publish_app(RIVER_REACH)
        ours.create_twin("river-reach", "windowed-reach", {"station": "RR-01"})
        ours.streams.append("windowed-reach", "gauges", _gauge_readings(0, 96))  # 2026-03-01, every 15 minutes
        now = datetime.now(UTC).replace(microsecond=0)
        recent = [{"time": (now - timedelta(hours=h)).isoformat().replace("+00:00", "Z"), "station": "RR-01",
                   "rain": 0.0, "level": 2.0 + h / 100} for h in (240, 5, 1)]
        ours.create_twin("river-reach", "rolling-reach", {"station": "RR-01"})
        ours.streams.append("rolling-reach", "gauges", recent)
        for window, field in (({"since": "2026-03-01T12:00:00Z", "until": "2026-03-01T06:00:00Z"}, "until"),
                              ({"since": "2026-03-01T06:00:00Z", "last": "PT6H"}, "last"),
                              ({"until": "2026-03-02T00:00:00Z", "live": True}, "until"),
                              ({"last": 0}, "last")):
            refused = provider.api("POST", "/api/v1/dataspace/offers", json={
                "stream": {"twin": "windowed-reach", "stream": "gauges", **window}, "title": "t"})
            assert refused.status_code == 422 and refused.json()["details"][0]["loc"] == f"stream.{field}", \
                (window, refused.text)
        naive = provider.api("POST", "/api/v1/dataspace/offers", json={
            "stream": {"twin": "windowed-reach", "stream": "gauges", "since": "2026-03-01T06:00:00"}, "title": "t"})
        assert naive.status_code == 422 and "since" in naive.text
        fixed = ours.dataspace.offer_stream("windowed-reach", "gauges", "Gauge RR-01, 1 March 06-12 UTC", window=(
            datetime(2026, 3, 1, 6, tzinfo=UTC), datetime(2026, 3, 1, 12, tzinfo=UTC)))
        rolling = ours.dataspace.offer_stream("rolling-reach", "gauges", "Gauge RR-01, the last 6 hours",
                                              window=timedelta(hours=6))
    assert fixed.window == {"since": "2026-03-01T06:00:00Z", "until": "2026-03-01T12:00:00Z"}
    assert rolling.window == {"last": 21600.0}
    listed = {d["@id"]: d for d in consumer.ok("POST", "/api/v1/dataspace/catalog",
                                               json={"url": provider.url})["dataset"]}
    assert "from 2026-03-01T06:00:00Z until 2026-03-01T12:00:00Z" in listed[fixed.dataset_id]["dct:description"]
    assert "of the last 6 hours" in listed[rolling.dataset_id]["dct:description"]

    def pulled(made: Any, land: str) -> pa.Table:
        started = negotiate(consumer, provider, made.model_dump(mode="json"), land=land)
        agreement = wait_state(consumer, "negotiations", started["id"], "FINALIZED")["agreement_id"]
        mine = consumer.ok("GET", "/api/v1/dataspace/transfers?role=consumer&agreement=" + agreement)
        wait_state(consumer, "transfers", mine[0]["id"], "COMPLETED")
        data = consumer.api("GET", f"/api/v1/lake/dids/{land}/gauges.arrow/content").content
        return pa.ipc.open_file(io.BytesIO(data)).read_all()

    morning = pulled(fixed, "remote:windowed-gauges")
    expected = [r for r in _gauge_readings(0, 96) if "2026-03-01T06:00:00Z" <= r["time"] < "2026-03-01T12:00:00Z"]
    assert len(expected) == 24 and morning.column("level").to_pylist() == [r["level"] for r in expected]
    last_hours = pulled(rolling, "remote:rolling-gauges")
    assert last_hours.column("level").to_pylist() == [r["level"] for r in recent[1:]]  # not the one 10 days old


def _pulled_stream(consumer: Participant, provider: Participant, made: dict[str, Any], land: str) -> Any:
    """A stream offer negotiated, pulled into the consumer's lake as ``land`` and read back (an Arrow table)."""
    import io

    import pyarrow as pa

    started = negotiate(consumer, provider, made, land=land)
    agreement = wait_state(consumer, "negotiations", started["id"], "FINALIZED")["agreement_id"]
    mine = consumer.ok("GET", "/api/v1/dataspace/transfers?role=consumer&agreement=" + agreement)
    wait_state(consumer, "transfers", mine[0]["id"], "COMPLETED")
    data = consumer.api("GET", f"/api/v1/lake/dids/{land}/gauges.arrow/content").content
    return pa.ipc.open_file(io.BytesIO(data)).read_all()


def test_one_station_s_readings_of_a_quality_are_offered(engines: tuple[Participant, Participant]) -> None:
    """A stream offered for one source, the readings its checks did not flag bad, and two of its fields: the
    snapshot holds exactly station RR-01's readings but its bad one (RR-02's are left out), of the time and the
    level only, the catalog says which in words, and a key on a stream that has none, quality on one without
    checks, a flag that does not exist or a field the stream lacks are refused naming their field."""


    from helpers import REPO, RIVER_REACH
    from twinengine.client import Client

    provider, consumer = engines
    one = _gauge_readings(0, 24)
    other = [{**r, "station": "RR-02", "level": round(r["level"] + 0.001, 3)} for r in one]
    wrong = {**_gauge_readings(24, 1)[0], "level": -5.0}  # below the range check's 0: flagged bad
    with Client(provider.url, provider.admin) as ours:
        if not [a for a in ours.list_apps().items if a.name == "river-reach"]:
            ours.publish_app(RIVER_REACH)
        if not [a for a in ours.list_apps().items if a.name == "lorenz96"]:
            ours.publish_app(REPO / "examples" / "apps" / "lorenz96")
        ours.create_twin("river-reach", "two-stations", {"station": "RR-01"})
        ours.streams.append("two-stations", "gauges", [r for pair in zip(one, other, strict=True) for r in pair])
        ours.streams.append("two-stations", "gauges", [wrong])
        ours.create_twin("lorenz96", "keyless", {})
        for stream, chosen, field in ((("keyless", "obs"), {"key": "RR-01"}, "key"),
                                      (("keyless", "obs"), {"keys": ["RR-01", "RR-02"]}, "keys"),
                                      (("keyless", "obs"), {"quality": ["good"]}, "quality"),
                                      (("two-stations", "gauges"), {"quality": ["excellent"]}, "quality"),
                                      (("two-stations", "gauges"), {"key": ""}, "key"),
                                      (("two-stations", "gauges"), {"fields": ["level", "depth"]}, "fields"),
                                      (("two-stations", "gauges"), {"fields": []}, "fields")):
            refused = provider.api("POST", "/api/v1/dataspace/offers", json={
                "stream": {"twin": stream[0], "stream": stream[1], **chosen}, "title": "t"})
            assert refused.status_code == 422, (chosen, refused.text)
            assert refused.json()["details"][0]["loc"].startswith(f"stream.{field}"), (chosen, refused.text)
        made = ours.dataspace.offer_stream("two-stations", "gauges", "Gauge RR-01, flagged good or suspect",
                                           key="RR-01", quality=["suspect", "good"], fields=["level", "level"])
    # the time field always, in the stream's order; the station (the key) chooses the readings but stays home
    assert made.window == {"key": "RR-01", "key_field": "station", "quality": ["good", "suspect"],
                           "fields": ["time", "level"]}
    listed = {d["@id"]: d for d in consumer.ok("POST", "/api/v1/dataspace/catalog",
                                               json={"url": provider.url})["dataset"]}
    assert ("stream gauges of station RR-01 flagged good or suspect (fields time, level)"
            in listed[made.dataset_id]["dct:description"])
    got = _pulled_stream(consumer, provider, made.model_dump(mode="json"), "remote:station-gauges")
    assert got.column_names == ["time", "level"]  # neither the station nor the rain left the provider
    assert got.column("level").to_pylist() == [r["level"] for r in one]  # RR-01's alone, the bad reading left out


def test_several_stations_readings_are_offered_in_one_offer(engines: tuple[Participant, Participant]) -> None:
    """A stream of three stations offered for two of them: the snapshot holds exactly RR-01's and RR-03's
    readings, in the stream's order (RR-02's stay home), the catalog names both, a list of one source is a
    ``key``, and a key beside keys, keys on a stream without a key or an empty key are refused naming
    ``stream.keys``."""


    from helpers import RIVER_REACH
    from twinengine.client import Client

    provider, consumer = engines
    readings = [{**r, "station": station, "level": round(r["level"] + offset, 3)}
                for r in _gauge_readings(0, 12) for station, offset in (("RR-01", 0.0), ("RR-02", 0.1),
                                                                         ("RR-03", 0.2))]
    with Client(provider.url, provider.admin) as ours:
        if not [a for a in ours.list_apps().items if a.name == "river-reach"]:
            ours.publish_app(RIVER_REACH)
        ours.create_twin("river-reach", "three-stations", {"station": "RR-01"})
        ours.streams.append("three-stations", "gauges", readings)
        for chosen in ({"key": "RR-01", "keys": ["RR-02"]}, {"keys": []}, {"keys": ["RR-01", ""]}):
            refused = provider.api("POST", "/api/v1/dataspace/offers", json={
                "stream": {"twin": "three-stations", "stream": "gauges", **chosen}, "title": "t"})
            assert refused.status_code == 422, (chosen, refused.text)
            assert refused.json()["details"][0]["loc"].startswith("stream.keys"), (chosen, refused.text)
        one = ours.dataspace.offer_stream("three-stations", "gauges", "Gauge RR-02", key=["RR-02"])
        made = ours.dataspace.offer_stream("three-stations", "gauges", "Gauges RR-01 and RR-03",
                                           key=["RR-03", "RR-01", "RR-03"])
    assert one.window == {"key": "RR-02", "key_field": "station"}
    assert made.window == {"keys": ["RR-03", "RR-01"], "key_field": "station"}
    listed = {d["@id"]: d for d in consumer.ok("POST", "/api/v1/dataspace/catalog",
                                               json={"url": provider.url})["dataset"]}
    assert "stream gauges of station RR-03 and RR-01" in listed[made.dataset_id]["dct:description"]
    got = _pulled_stream(consumer, provider, made.model_dump(mode="json"), "remote:two-of-three")
    assert list(zip(got.column("station").to_pylist(), got.column("level").to_pylist(), strict=True)) == [
        (r["station"], r["level"]) for r in readings if r["station"] != "RR-02"]


def test_a_delete_duty_is_carried_out_on_the_consumers_copy(engines: tuple[Participant, Participant],
                                                            gauges: dict[str, Any]) -> None:
    """An offer obliging the consumer to delete its copy two days after the agreement: the consumer's engine
    keeps when, lets the copy be used until then, and deletes exactly what it landed once due (its bytes too),
    writing the deletion to its audit log; a delete duty that does not say by when is refused at offer time."""
    from datetime import datetime

    from sqlalchemy import update

    from twinengine.dataspace.models import TransferProcess
    from twinengine.store.base import utcnow

    provider, consumer = engines
    for duty in ({"action": "delete"}, {"action": "delete", "constraint": [
            {"leftOperand": "count", "operator": "lteq", "rightOperand": "3"}]}):
        refused = provider.api("POST", "/api/v1/dataspace/offers", json={
            "did": gauges["did"], "title": "x", "policy": {"permission": [{"action": "use"}], "obligation": [duty]}})
        assert refused.status_code == 422 and "by when" in refused.text, refused.text
        assert refused.json()["details"][0]["loc"] == "policy.obligation[0].constraint"
    made = offer(provider, gauges, delete_after=2)
    assert made["policy"]["obligation"] == [{"action": "delete", "constraint": [
        {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": "P2D"}]}]
    started = negotiate(consumer, provider, made, land="remote:to-delete")
    agreement = wait_state(consumer, "negotiations", started["id"], "FINALIZED")["agreement_id"]
    mine = consumer.ok("GET", "/api/v1/dataspace/transfers?role=consumer&agreement=" + agreement)[0]
    landed = wait_state(consumer, "transfers", mine["id"], "COMPLETED")
    signed = datetime.fromisoformat(consumer.ok("GET", f"/api/v1/dataspace/agreements/{agreement}")["signed_at"])
    assert datetime.fromisoformat(landed["delete_by"]) - signed == timedelta(days=2) and landed["deleted_at"] is None
    kept = consumer.ok("POST", "/api/v1/lake/dids", json={"did": "remote:unrelated", "type": "dataset"}, expect=201)
    assert kept["did"] == "remote:unrelated"
    for name in gauges["sums"]:  # used meanwhile
        assert consumer.api("GET", f"/api/v1/lake/dids/remote:to-delete/{name}/content").status_code == 200
    paths = [r["path"] for name in gauges["sums"]
             for r in consumer.ok("GET", f"/api/v1/lake/dids/remote:to-delete/{name}")["replicas"]]
    with consumer.runtime.db.session() as session:  # two days later, as the consumer's engine sees it
        session.execute(update(TransferProcess).where(TransferProcess.id == mine["id"]).values(delete_by=utcnow()))
    # the transfer's record says so last (``copies.delete_due``: the files, the dataset, then the record), so a
    # look between the dataset's deletion and that write saw the copy gone and the record not yet marked
    eventually(lambda: consumer.ok("GET", f"/api/v1/dataspace/transfers/{mine['id']}")["deleted_at"] is not None,
               timeout=60)
    assert consumer.api("GET", "/api/v1/lake/dids/remote:to-delete").status_code == 404
    for name in gauges["sums"]:
        assert consumer.api("GET", f"/api/v1/lake/dids/remote:to-delete/{name}").status_code == 404
    site = consumer.runtime.settings.data_dir / "lake" / "site"
    assert paths and not [p for p in paths if (site / p).exists()]  # the bytes erased
    assert consumer.api("GET", "/api/v1/lake/dids/remote:unrelated").status_code == 200  # nothing else
    done = consumer.ok("GET", f"/api/v1/dataspace/transfers/{mine['id']}")
    assert done["deleted_at"] is not None and done["state"] == "COMPLETED"
    events = consumer.ok("GET", "/api/v1/audit", params={"action": "dataspace.copy", "limit": 50})["items"]
    assert [e["target"] for e in events if (e.get("detail") or {}).get("agreement") == agreement] == \
        ["remote:to-delete"]


def test_the_provider_writes_into_the_consumers_bucket(engines: tuple[Participant, Participant],
                                                       gauges: dict[str, Any]) -> None:
    """AmazonS3-PUSH against an S3 server on loopback (moto): the consumer names a bucket of its lake whose
    endpoint accepts pushes; the provider writes each file and its listing there; once the provider completes,
    the consumer reads each file back and registers it, with the provider's SHA-256, as its landing dataset's.
    An endpoint that does not accept pushes is refused before anything is asked, and the provider forgets the
    consumer's keys once the transfer has ended."""
    from s3_fixtures import bucket, keys, s3_server
    from twinengine.dataspace.models import TransferProcess

    provider, consumer = engines
    with s3_server() as url:
        incoming, closed = bucket(url, keys("in"), "incoming"), bucket(url, keys("in"), "closed")
        consumer.ok("POST", "/api/v1/lake/endpoints", expect=201, json={
            "name": "s3-incoming", "protocol": "s3", "location": f"{incoming}/lake",
            "options": {"endpoint_url": url, "accept_pushes": "true"}, "credential": keys("in")})
        consumer.ok("POST", "/api/v1/lake/endpoints", expect=201, json={
            "name": "s3-closed", "protocol": "s3", "location": closed, "options": {"endpoint_url": url},
            "credential": keys("in")})
        agreement = _agreed(provider, consumer, gauges)
        for endpoint, why in (("s3-closed", "does not accept pushes"), ("site", "S3 endpoints")):
            refused = consumer.api("POST", "/api/v1/dataspace/transfers", json={
                "agreement": agreement, "did": "remote:bucket-gauges", "endpoint": endpoint,
                "format": "AmazonS3-PUSH"})
            assert refused.status_code == 422 and why in refused.text, refused.text
            assert refused.json()["details"][0]["loc"] == "land.endpoint"
        made = consumer.ok("POST", "/api/v1/dataspace/transfers", expect=201, json={
            "agreement": agreement, "did": "remote:bucket-gauges", "endpoint": "s3-incoming",
            "format": "AmazonS3-PUSH"})

        def landed() -> Any:
            row = consumer.ok("GET", f"/api/v1/dataspace/transfers/{made['id']}")
            assert row["state"] != "TERMINATED" and not (row["state"] == "COMPLETED" and row["error"]), row
            return row if row["landed"] and not row["pending"] else None

        done = eventually(landed, timeout=120)
        assert done["state"] == "COMPLETED" and done["format"] == "AmazonS3-PUSH"
        assert {f["name"]: f["sha256"] for f in done["files"]} == gauges["sums"]
        for name, digest in gauges["sums"].items():
            did = consumer.ok("GET", f"/api/v1/lake/dids/remote:bucket-gauges/{name}")
            assert did["sha256"] == digest and [r["endpoint"] for r in did["replicas"]] == ["s3-incoming"]
            data = consumer.api("GET", f"/api/v1/lake/dids/remote:bucket-gauges/{name}/content").content
            assert hashlib.sha256(data).hexdigest() == digest
        dataset = consumer.ok("GET", "/api/v1/lake/dids/remote:bucket-gauges")
        assert dataset["meta"]["dataspace"]["agreement"] == agreement
        served = provider.ok("GET", "/api/v1/dataspace/transfers?role=provider&agreement=" + agreement)
        assert [t["state"] for t in served] == ["COMPLETED"] and served[0]["format"] == "AmazonS3-PUSH"
        usage = provider.ok("GET", f"/api/v1/dataspace/agreements/{agreement}/accesses")
        assert sorted(a["file"] for a in usage if a["outcome"] == "served") == sorted(gauges["sums"])
        with provider.runtime.db.session(readonly=True) as session:
            kept = session.get(TransferProcess, served[0]["id"])
            assert kept is not None and kept.data_address is None  # the consumer's keys, forgotten
