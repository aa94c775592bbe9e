"""What staging moved and what a run's outputs occupy, in the run's usage record (bytes transferred, bytes
stored); and a run placed on a site reads its inputs from the replica near that site. Real store, real file
endpoints, real copies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import Engine
from lake_fixtures import rain_field
from staging_fixtures import GRAPH


def _setup(engine: Engine, tmp_path: Path, *, near: str = "edge-disk") -> tuple[Any, Any, int]:
    """Endpoints ``disk`` (results), ``home`` (the user's data) and ``near`` (near site ``edge``)."""
    provider, user = engine.as_role("pat", "provider"), engine.as_role("uma", "user")
    for name in ("disk", "home", near):
        provider.lake.add_endpoint(name, "file", str(tmp_path / name))
    provider.compute.add_site("edge", "local", cores=4, memory_bytes=2**31, endpoints=[near])
    nc = tmp_path / "rain.nc"
    rain_field().to_netcdf(nc, engine="h5netcdf")
    user.lake.add_dataset("wx:rain-2026")
    user.lake.upload(nc, "wx:rain-2026/rain.nc", endpoint="home", dataset="wx:rain-2026")
    return provider, user, nc.stat().st_size


def _record(user: Any, run_id: str) -> Any:
    (record,) = [r for r in user.compute.usage_records().items if r.run_id == run_id]
    return record


def test_a_staged_run_is_charged_what_its_staging_moved_and_what_it_stored(lake_engine: Engine,
                                                                            tmp_path: Path) -> None:
    _, user, size = _setup(lake_engine, tmp_path)
    first = user.workflows.submit(GRAPH, sync=True, options={"site": "edge"})
    assert first.status == "finished", first.error
    record = _record(user, first.id)
    assert record.site == "edge" and record.bytes_transferred == size
    kept = [a for a in user.workflows.get(first.id).assets if a.get("did")]
    assert kept, "the run kept no result in the lake"
    lake_sizes = [user.lake.get(a["did"]).bytes for a in kept]
    assert all(lake_sizes) and record.bytes_stored == sum(lake_sizes)

    again = user.workflows.submit(GRAPH, sync=True, options={"site": "edge", "no_cache": True})
    assert again.status == "finished", again.error
    assert _record(user, again.id).bytes_transferred == 0  # the replica near edge was there: nothing copied

    summary = user.compute.usage(by="site")
    (edge,) = [g for g in summary.groups if g.key == "edge"]
    assert edge.bytes_transferred == size and edge.bytes_stored >= record.bytes_stored


def test_a_run_reads_its_input_from_the_replica_near_its_site(lake_engine: Engine, tmp_path: Path) -> None:
    """The input is on ``home`` and (staged) on ``zone-disk``, which the usual order (by name) reads last;
    ``home``'s copy is then spoiled: a run on ``edge`` still reads (its near copy), a run on ``local`` (no
    endpoint near it) reads ``home``'s and fails."""
    _, user, _ = _setup(lake_engine, tmp_path, near="zone-disk")
    staged = user.workflows.submit(GRAPH, sync=True, options={"site": "edge"})
    assert staged.status == "finished", staged.error
    assert {r.endpoint for r in user.lake.replicas(did="wx:rain-2026/rain.nc")} == {"home", "zone-disk"}
    (home,) = [p for p in (tmp_path / "home").rglob("rain.nc")]
    home.write_bytes(b"not a netCDF file" * 64)
    lake_engine.runtime.collections.close()  # what the first run opened is forgotten

    near = user.workflows.submit(GRAPH, sync=True, options={"site": "edge", "no_cache": True})
    assert near.status == "finished", near.error
    far = user.workflows.submit(GRAPH, sync=True, options={"site": "local", "no_cache": True})
    assert far.status == "error"  # proves home's copy is the one a run with no near endpoint reads
