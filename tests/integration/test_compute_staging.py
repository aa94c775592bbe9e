"""Staging: a run placed on a site whose near endpoints lack its lake input has the input replicated there by
a lake rule before it starts (the lake's own transfer), with a percent in the run's status; its outputs are
kept on the endpoint that held the input; a second run on the same site reuses the replica (counted by
transfers); the run's provenance names what was staged. Real store, real file endpoints, real copies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers import Engine
from lake_fixtures import rain_field
from staging_fixtures import GRAPH
from twinengine.errors import ValidationFailed


def _setup(engine: Engine, tmp_path: Path) -> tuple[Any, Any, int]:
    provider, user = engine.as_role("pat", "provider"), engine.as_role("uma", "user")
    for name in ("disk", "home", "edge-disk"):
        provider.lake.add_endpoint(name, "file", str(tmp_path / name))
    provider.compute.add_site("edge", "local", cores=4, memory_bytes=2**31, endpoints=["edge-disk"])
    nc = tmp_path / "rain.nc"
    rain_field().to_netcdf(nc, engine="h5netcdf")
    user.lake.add_dataset("wx:rain-2026")
    user.lake.upload(nc, "wx:rain-2026/rain.nc", endpoint="home", dataset="wx:rain-2026")
    return provider, user, nc.stat().st_size


def _transfers(provider: Any) -> list[tuple[str, str, str]]:
    return [(t.did, t.destination, t.state) for t in provider.lake.transfers()]


def test_inputs_are_staged_once_near_the_site(lake_engine: Engine, tmp_path: Path) -> None:
    provider, user, size = _setup(lake_engine, tmp_path)
    assert _transfers(provider) == []
    run = user.workflows.submit(GRAPH, sync=True, options={"site": "edge"})
    assert run.status == "finished", run.error
    staging = user.workflows.get(run.id).staging
    assert staging is not None and staging["percent"] == 100.0 and staging["error"] is None, staging
    assert [s["did"] for s in staging["staged"]] == ["wx:rain-2026"] and staging["bytes_transferred"] == size
    (edge,) = [r for r in user.lake.replicas(did="wx:rain-2026/rain.nc") if r.endpoint == "edge-disk"]
    assert edge.state == "AVAILABLE"
    assert _transfers(provider) == [("wx:rain-2026/rain.nc", "edge-disk", "DONE")]
    rule = provider.lake.rule(staging["staged"][0]["rule"])
    assert rule.state == "OK" and rule.expires_at is not None and run.id in (rule.comment or "")
    provenance = json.dumps(user.workflows.provenance(run.id))
    assert "twin:staged" in provenance and "wx:rain-2026 -> edge-disk" in provenance
    assert "outputs to home" in provenance
    logs = " ".join(entry.message for entry in user.workflows.logs(run.id))
    assert "staged wx:rain-2026 (1 files" in logs and "near site edge" in logs
    kept = [a for a in user.workflows.get(run.id).assets if a.get("did")]
    assert kept, "the run kept no result in the lake"
    for asset in kept:  # outputs land where the user's data is, not on the engine's default endpoint
        assert {r.endpoint for r in user.lake.replicas(did=asset["did"])} == {"home"}

    again = user.workflows.submit(GRAPH, sync=True, options={"site": "edge", "no_cache": True})
    assert again.status == "finished", again.error
    second = user.workflows.get(again.id).staging
    assert second is not None and second["staged"] == [] and second["near"] == ["wx:rain-2026"], second
    assert second["bytes_transferred"] == 0
    assert len(_transfers(provider)) == 1  # nothing copied twice

    local = user.workflows.submit(GRAPH, sync=True, options={"site": "local", "no_cache": True})
    assert local.status == "finished" and user.workflows.get(local.id).staging is None  # no endpoint near local


def test_a_rate_limit_is_a_positive_number(lake_engine: Engine, tmp_path: Path) -> None:
    provider = lake_engine.as_role("pat", "provider")
    with pytest.raises(ValidationFailed) as refused:
        provider.lake.add_endpoint("slow", "file", str(tmp_path / "slow"), options={"rate_limit": "fast"})
    assert refused.value.problems[0].loc == "options.rate_limit"
    provider.lake.add_endpoint("slow", "file", str(tmp_path / "slow"), options={"rate_limit": "5e6"})


@pytest.mark.every_store  # reaches code only PostgreSQL runs
def test_an_ensemble_stages_its_members_input_once(lake_engine: Engine, tmp_path: Path) -> None:
    """An ensemble's input named by a member parameter is staged once, before its members run on the site;
    the members' outputs land on the endpoint that held the input; the first member's usage record is
    charged with what the staging moved."""
    from helpers import RIVER_REACH
    from workflow_data import rain_cube

    provider, user, _ = _setup(lake_engine, tmp_path)
    lake_engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    ds = rain_cube(days=2)
    ds["rain"].values[:] = 0.0
    ds["rain"].values[6:12] = 5.0
    nc = tmp_path / "forecast.nc"
    ds.to_netcdf(nc, engine="h5netcdf")
    user.lake.add_dataset("wx:rain-forecast")
    user.lake.upload(nc, "wx:rain-forecast/forecast.nc", endpoint="home", dataset="wx:rain-forecast")
    user.create_twin("river-reach", "reach", {"station": "RR-01"})
    body = {"workflow": "forecast", "parameter_sets": [{"collection": "wx.rain-forecast"}] * 3, "mode": "sync",
            "options": {"site": "edge"}}
    token = lake_engine.token("uma", "user")
    answer = lake_engine.http.post("/api/v1/twins/reach/ensembles", json=body, headers=lake_engine.headers(token))
    ensemble = answer.json()
    assert ensemble["status"] == "finished", ensemble.get("error")
    staging = user.workflows.get(ensemble["id"]).staging
    assert staging is not None and [s["did"] for s in staging["staged"]] == ["wx:rain-forecast"], staging
    assert _transfers(provider) == [("wx:rain-forecast/forecast.nc", "edge-disk", "DONE")]
    logs = " ".join(entry.message for entry in user.workflows.logs(ensemble["id"]))
    assert "staged wx:rain-forecast" in logs
    for member in ensemble["members"]:
        kept = [a for a in user.workflows.get(member["run_id"]).assets if a.get("did")]
        assert kept and all({r.endpoint for r in user.lake.replicas(did=a["did"])} == {"home"} for a in kept)
    records = {r.run_id: r for r in user.compute.usage_records().items}
    charged = [records[m["run_id"]].bytes_transferred for m in ensemble["members"]]
    assert charged == [nc.stat().st_size, 0, 0]  # its first member pays its staging
    assert records[ensemble["id"]].bytes_transferred == 0  # the ensemble's own record (its shared part) does not
