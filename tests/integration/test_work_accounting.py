"""Every kind of work is accounted and bounded by quotas, as the people it is charged to are: an assimilation
request is refused with 429 once its owner's quota is used up and otherwise records its usage (its sandboxed
worker's CPU included); an ensemble's members carry their owner's groups, so group quotas and the APEL export's
VO see them; APEL names an identity that signed in through an OpenID provider by its OIDC subject."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from helpers import RIVER_REACH, Engine
from twinengine.auth.models import Identity
from twinengine.client import Client
from twinengine.errors import QuotaExceeded
from twinengine.twins.schemas import PropertyWrite
from workflow_data import rain_cube, write_collection

START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def uma(engine: Engine) -> Client:
    """uma, a user in the group ``hydro``, with a river reach and its rain forecast."""
    admin, client = engine.sdk(engine.admin_token), engine.as_role("uma", "user")
    admin.access.create_group("hydro")
    admin.access.add_member("hydro", "uma")
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    ds = rain_cube(days=2)
    ds["rain"].values[:] = 0.0
    ds["rain"].values[6:12] = 12.0
    write_collection(engine.runtime.data_dir / "collections", "rain-forecast", ds)
    client.create_twin("river-reach", "reach", {"station": "RR-01"})
    return client


def _gauges(count: int) -> list[dict[str, object]]:
    return [{"time": (START + timedelta(minutes=15 * k)).isoformat(), "station": "RR-01", "rain": 0.0,
             "level": 0.6} for k in range(1, count + 1)]


def test_an_assimilation_is_refused_at_a_used_up_quota_and_records_its_usage(engine: Engine, uma: Client) -> None:
    admin = engine.sdk(engine.admin_token)
    uma.write_state("reach", reported={"storage": PropertyWrite(value=5.0, timestamp=START)})
    uma.streams.append("reach", "gauges", _gauges(6))
    admin.compute.set_quota("uma", 0, site="local", period="day")
    with pytest.raises(QuotaExceeded) as refused:
        uma.assimilation.run("reach", members=50, cycles=6)
    assert "compute quota of uma on site local is used up" in str(refused.value)
    assert "the assimilation is refused" in str(refused.value)
    assert uma.assimilation.list("reach").total == 0  # nothing ran
    admin.compute.remove_quota("uma", site="local")
    got = uma.assimilation.run("reach", members=50, cycles=6)
    assert len(got.cycles) == 6
    [record] = [r for r in uma.compute.usage_records().items if r.kind == "assimilation"]
    assert record.identity == "uma" and record.groups == ["hydro"] and record.status == "finished"
    assert record.twin == "reach" and record.app is not None and record.app.startswith("river-reach@")
    assert record.remote_core_seconds > 0 and "worker-cpu" in record.source  # the app's worker ran the cycles
    assert record.core_seconds >= record.remote_core_seconds and record.wall_seconds > 0
    # what it used counts: a quota of what was used already is used up, for the group too
    admin.compute.set_quota("group:hydro", record.core_seconds / 3600, site="*", period="day")
    uma.streams.append("reach", "gauges", [{**g, "time": (START + timedelta(hours=3, minutes=15 * k)).isoformat()}
                                           for k, g in enumerate(_gauges(2), start=1)])
    with pytest.raises(QuotaExceeded) as again:
        uma.assimilation.run("reach", cycles=2)
    assert "compute quota of group:hydro on all sites is used up" in str(again.value)


def test_ensemble_members_are_charged_to_their_owners_groups(engine: Engine, uma: Client) -> None:
    got = uma.ensembles.run("reach", "forecast", members=3, seed=3, parameters={"alert_level": 1.0}, sync=True)
    assert got.status == "finished", got.error
    members = {m.run_id for m in got.members}
    records = [r for r in uma.compute.usage_records().items if r.run_id in members]
    assert len(records) == 3 and {tuple(r.groups) for r in records} == {("hydro",)}
    assert "(no group)" not in {g.key for g in uma.compute.usage(by="group").groups}
    apel = engine.sdk(engine.admin_token).compute.usage_apel()
    assert "VO: none" not in apel and "VO: hydro" in apel
    engine.sdk(engine.admin_token).compute.set_quota("group:hydro", 1000.0, site="*", period="day")
    quotas = {q.subject: q for q in uma.compute.quotas().items}
    assert quotas["group:hydro"].used_core_hours >= round(sum(r.core_seconds for r in records) / 3600, 9) > 0


def test_apel_names_a_person_by_their_oidc_subject(engine: Engine) -> None:
    kit = engine.as_role("kit", "user")
    ran = kit.workflows.submit({"process_graph": {"add": {"process_id": "add", "arguments": {"x": 1, "y": 2},
                                                          "result": True}}}, sync=True)
    assert ran.status == "finished", ran.error
    with engine.runtime.db.session() as session:  # kit signed in through a provider (its subject is kept)
        person = session.get(Identity, "kit")
        assert person is not None
        person.issuer, person.subject = "https://aai.example.org/oidc/", "8f2c1e0a-7b4d@aai.example.org"
    apel = engine.sdk(engine.admin_token).compute.usage_apel()
    assert "GlobalUserName: 8f2c1e0a-7b4d@aai.example.org" in apel and "GlobalUserName: kit" not in apel
