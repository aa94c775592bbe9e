"""Compute sites, usage accounting and quotas through the REST API and the SDK, on SQLite and PostgreSQL:
credentials sealed and never shown, hostile site input refused naming the field, every run's usage recorded
per identity and site and shown to its owner only, quotas refusing runs before they start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import Engine
from twinengine.compute.models import ComputeSite, UsageRecord
from twinengine.errors import Conflict, PermissionDenied, QuotaExceeded, ValidationFailed

ADD = {"process_graph": {"a": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": True}}}
DEAD_ENGINE = "http://127.0.0.1:9"  # the discard port: nothing answers there


def _site(**overrides: Any) -> dict[str, Any]:
    return {"name": "hpc", "kind": "engine", "address": DEAD_ENGINE, "cores": 64, "memory_bytes": 2**38,
            **overrides}


def test_the_engine_executor_is_the_default_site(engine: Engine) -> None:
    page = engine.as_role("uma", "user").compute.sites()
    assert [(s.name, s.kind, s.status) for s in page.items] == [("local", "local", "healthy")]
    assert page.items[0].cores >= 1


def test_providers_register_sites_with_sealed_credentials(engine: Engine) -> None:
    provider = engine.as_role("pat", "provider")
    site = provider.compute.add_site("other-engine", "engine", address=DEAD_ENGINE, cores=8, memory_bytes=2**34,
                                     gpus=2, environments=["river-reach@1.0.0"],
                                     credential={"kind": "bearer", "token": "s1te-s3cret"})
    assert site.credential == "bearer" and site.gpus == 2
    assert site.status == "down" and site.health_error and "does not answer" in site.health_error
    listing = engine.http.get("/api/v1/compute/sites", headers=engine.headers(engine.token("uma", "user")))
    assert listing.status_code == 200 and "s1te-s3cret" not in listing.text and "other-engine" in listing.text
    with engine.runtime.db.session(readonly=True) as session:
        row = session.query(ComputeSite).filter_by(name="other-engine").one()
        assert row.credential_cipher and "s1te-s3cret" not in row.credential_cipher
        assert engine.runtime.lake.keyring.open(row.credential_cipher)["token"] == "s1te-s3cret"
    assert provider.compute.drain_site("local").status == "draining"
    assert provider.compute.drain_site("local", undo=True).status == "healthy"
    with pytest.raises(Conflict):
        provider.compute.remove_site("local")
    with pytest.raises(Conflict):
        provider.compute.add_site("other-engine", "local", cores=1, memory_bytes=0)
    provider.compute.remove_site("other-engine")
    assert [s.name for s in provider.compute.sites().items] == ["local"]


def test_a_dask_site_answers_its_heartbeat(engine: Engine) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        provider = engine.as_role("pat", "provider")
        site = provider.compute.add_site("cluster", "dask", address=cluster.scheduler_address, cores=1,
                                         memory_bytes=2**30)
        assert site.status == "healthy" and site.heartbeat_at is not None
    from twinengine.compute.heartbeats import run_once

    assert run_once(engine.runtime.db, engine.runtime.lake.keyring) == 0  # nothing due yet
    assert run_once(engine.runtime.db, engine.runtime.lake.keyring, every=0) == 2  # local and cluster
    assert provider.compute.site("cluster").status == "down"  # the scheduler is gone
    assert provider.compute.heartbeat("local").status == "healthy"


@pytest.mark.parametrize(("body", "field"), [
    (_site(address="http://169.254.169.254/latest/meta-data/"), "address"),
    (_site(address="http://metadata.google.internal/"), "address"),
    (_site(address="file:///etc/passwd"), "address"),
    (_site(kind="dask", address="http://127.0.0.1:8786"), "address"),
    (_site(address="http://user@127.0.0.1:8080"), "address"),
    (_site(kind="local", address=DEAD_ENGINE), "address"),
    (_site(cores=-4), "cores"),
    (_site(memory_bytes=-1), "memory_bytes"),
    (_site(options={"password": "x"}), "options.password"),
    (_site(endpoints=["nowhere"]), "endpoints[0]"),
    (_site(environments=["bad name;rm"]), "environments[0]"),
    (_site(name="../etc"), "name"),
])
def test_hostile_sites_are_refused_naming_the_field(engine: Engine, body: dict[str, Any], field: str) -> None:
    answer = engine.http.post("/api/v1/compute/sites", json=body,
                              headers=engine.headers(engine.token("pat", "provider")))
    assert answer.status_code == 422, answer.text
    locations = [d.get("loc") for d in answer.json().get("details", [])]
    assert any(field == loc or (isinstance(loc, str) and loc.endswith(field)) for loc in locations), answer.json()


def test_users_cannot_add_sites_or_set_quotas(engine: Engine) -> None:
    user = engine.as_role("uma", "user")
    with pytest.raises(PermissionDenied):
        user.compute.add_site("mine", "local", cores=1, memory_bytes=0)
    with pytest.raises(PermissionDenied):
        user.compute.set_quota("uma", 1000.0)
    with pytest.raises(PermissionDenied):
        engine.as_role("pat", "provider").compute.set_quota("uma", 1000.0)
    with pytest.raises(ValidationFailed) as refused:
        engine.sdk(engine.admin_token).compute.set_quota("uma", 1.0, site="nowhere")
    assert refused.value.problems[0].loc == "site"


def test_every_run_records_its_usage_for_its_owner_only(engine: Engine, tmp_path: Path) -> None:
    uma, ola = engine.as_role("uma", "user"), engine.as_role("ola", "user")
    engine.as_role("pat", "provider").lake.add_endpoint("disk", "file", str(tmp_path / "disk"), quota_bytes=10**9)
    first = uma.workflows.submit(ADD, sync=True)
    second = uma.workflows.submit(ADD, sync=True, no_cache=True)
    theirs = ola.workflows.submit(ADD, sync=True)
    assert {first.status, second.status, theirs.status} == {"finished"}
    records = uma.compute.usage_records()
    assert sorted(r.run_id for r in records.items) == sorted([first.id, second.id])
    for record in records.items:
        assert record.identity == "uma" and record.site == "local" and record.status == "finished"
        assert record.wall_seconds > 0 and record.core_seconds >= 0 and record.peak_memory_bytes > 0
        assert record.finished_at >= record.started_at and "rusage" in record.source
        assert record.bytes_written > 0  # its result.json
    summary = uma.compute.usage(by="site")
    assert [(g.key, g.runs) for g in summary.groups] == [("local", 2)]
    assert [(s.endpoint, s.used_bytes, s.quota_bytes) for s in summary.storage] == [("disk", 0, 10**9)]
    everyone = engine.sdk(engine.admin_token).compute.usage(by="identity")
    assert {g.key: g.runs for g in everyone.groups} == {"uma": 2, "ola": 1}
    with pytest.raises(PermissionDenied):
        uma.compute.usage(identity="ola")
    with pytest.raises(ValidationFailed) as backwards:
        uma.compute.usage(since="2026-12-01T00:00:00Z", until="2026-11-01T00:00:00Z")
    assert backwards.value.problems[0].loc == "until"
    garbled = engine.http.get("/api/v1/usage?since=yesterday&by=planet",
                              headers=engine.headers(engine.token("uma", "user")))
    assert garbled.status_code == 422 and {"query.since", "query.by"} <= {d["loc"] for d in garbled.json()["details"]}
    apel = engine.sdk(engine.admin_token).compute.usage_apel()
    assert apel.startswith("APEL-summary-job-message: v0.3\n") and apel.count("%%") == 2
    assert "GlobalUserName: uma" in apel and "NumberOfJobs: 2" in apel and "Infrastructure: twinengine:local" in apel
    with engine.runtime.db.session(readonly=True) as session:
        assert session.query(UsageRecord).count() == 3


def test_a_used_up_quota_refuses_the_run_before_it_starts(engine: Engine) -> None:
    admin, uma = engine.sdk(engine.admin_token), engine.as_role("uma", "user")
    assert uma.workflows.submit(ADD, sync=True).status == "finished"
    quota = admin.compute.set_quota("uma", 0.0, site="local", period="day")
    assert quota.used_core_hours >= 0 and quota.period_start is not None
    with pytest.raises(QuotaExceeded) as refused:
        uma.workflows.submit(ADD)
    message = refused.value.message
    assert "uma" in message and "site local" in message and "of 0 core-hours per day" in message
    assert refused.value.status == 429
    assert [q.subject for q in uma.compute.quotas().items] == ["uma"]
    assert engine.as_role("ola", "user").compute.quotas().items == []  # another's quota stays theirs
    assert engine.as_role("ola", "user").workflows.submit(ADD, sync=True).status == "finished"
    admin.compute.set_quota("uma", 1000.0, site="local", period="day")
    assert uma.workflows.submit(ADD, sync=True).status == "finished"


def test_group_quotas_count_the_whole_group(engine: Engine) -> None:
    from twinengine.auth.principal import SYSTEM, Principal, Role
    from twinengine.compute.hooks import before_queue
    from twinengine.compute.quotas import set_quota
    from twinengine.compute.schemas import QuotaSet

    with engine.runtime.db.session() as session:
        set_quota(session, principal=SYSTEM, spec=QuotaSet(subject="group:hydro", core_hours=0.0, period="total"))
    member = Principal(name="uma", role=Role.USER, groups=frozenset({"hydro"}))
    with engine.runtime.db.session() as session, pytest.raises(QuotaExceeded) as refused:
        before_queue(session, principal=member, options={})
    assert "group:hydro" in refused.value.message
    with engine.runtime.db.session() as session:
        options: dict[str, Any] = {}
        before_queue(session, principal=Principal(name="uma", role=Role.USER), options=options)
        assert options == {"groups": [], "site": "local"}
