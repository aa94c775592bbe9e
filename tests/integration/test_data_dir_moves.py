"""A data dir moved or restored to another folder keeps its stream history and its own lake: a compacted
segment is recorded relative to the engine's Parquet folder and a `file` endpoint in the data dir's ``lake``
folder relative to the data dir (one recorded absolute by an older engine is recorded relative at start), so
nothing the store holds names the folder the data dir was made in."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from helpers import RIVER_REACH
from streams_fixtures import gauge
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.config import Settings
from twinengine.daemons.streams_compactor import Compactor
from twinengine.lake import endpoints, uploads
from twinengine.lake.models import Endpoint
from twinengine.lake.replicas import open_replica
from twinengine.lake.schemas import EndpointCreate
from twinengine.runtime import Runtime
from twinengine.streams import records
from twinengine.streams.compaction import load_stream
from twinengine.streams.hub import stream_key
from twinengine.streams.models import CompactedSegment
from twinengine.twins import service as twins

UMA = Principal("uma", Role.USER)


def _runtime(data_dir: Path) -> Runtime:
    runtime = Runtime.from_settings(Settings(data_dir=data_dir, stream_segment_bytes=4096,
                                             stream_segment_entries=6))
    runtime.start()
    return runtime


def _history(runtime: Runtime, twin_id: str) -> list[Any]:
    with runtime.db.session(readonly=True) as session:
        table = load_stream(session, runtime.streams, twin_id=twin_id, stream="gauges", time_field="time",
                            sink=runtime.segment_sink)
    assert table is not None
    return list(table.column("_offset").to_pylist())


def test_a_moved_data_dir_keeps_its_stream_history_and_its_lake(tmp_path: Path) -> None:
    first, moved = tmp_path / "first place" / "data", tmp_path / "restored" / "data"
    runtime = _runtime(first)
    try:
        with runtime.db.session() as session:
            publish(session, runtime.blobs, principal=SYSTEM, archive=pack(RIVER_REACH), max_archive_bytes=10**8,
                    max_unpacked_bytes=10**8, steps=runtime.publish_steps)
            twin = twins.create_twin(session, principal=UMA, app="river-reach@0.1.0", name="reach",
                                     parameters={"station": "RR-01"})
            twin_id, declared = twin.id, twins.manifest_for(session, twin).streams["gauges"]
            endpoints.add_endpoint(session, runtime.lake, principal=SYSTEM, spec=EndpointCreate(
                name="own", protocol="file", location=str(first / "lake" / "own")))
            endpoints.add_endpoint(session, runtime.lake, principal=SYSTEM, spec=EndpointCreate(
                name="old", protocol="file", location=str(first / "lake" / "old")))
        for start in range(0, 200, 20):
            runtime.streams.append(stream_key(twin_id, "gauges"),
                                   records.check_records(declared, [gauge(i) for i in range(start, start + 20)]),
                                   time_field="time")
        with runtime.db.session() as session:
            assert Compactor(runtime).run_once(session) >= 2
        payload = tmp_path / "rain.bin"
        payload.write_bytes(b"rain over the catchment" * 100)
        for name in ("own", "old"):
            uploads.upload_file(runtime.db, runtime.lake, principal=SYSTEM, path=payload, did=f"maps:{name}.bin",
                                endpoint=name)
        assert _history(runtime, twin_id) == list(range(200))
        with runtime.db.session() as session:  # as an older engine recorded it: absolute
            session.execute(update(Endpoint).where(Endpoint.name == "old")
                            .values(location=str(first / "lake" / "old")))
    finally:
        runtime.close()
    again = _runtime(first)  # its start records the old one relative, while the data dir is still here
    again.close()

    shutil.copytree(first, moved)
    shutil.rmtree(first.parent)
    runtime = _runtime(moved)
    try:
        with runtime.db.session(readonly=True) as session:
            stored = {name: location for name, location in session.execute(select(Endpoint.name, Endpoint.location))}
            segments = list(session.scalars(select(CompactedSegment)))
            shown = {row.name: endpoints.endpoint_read(session, runtime.lake, row).location
                     for row in session.scalars(select(Endpoint))}
        assert stored == {"own": "lake/own", "old": "lake/old"}
        assert shown == {"own": str(moved / "lake" / "own"), "old": str(moved / "lake" / "old")}
        assert segments and not any(Path(s.path).is_absolute() for s in segments)
        assert _history(runtime, twin_id) == list(range(200))  # the compacted segments, then the log's tail
        for name in ("own", "old"):
            with runtime.db.session(readonly=True) as session:
                readable = open_replica(session, runtime.lake, principal=SYSTEM, did=f"maps:{name}.bin",
                                        db=runtime.db)
                assert b"".join(readable.read()) == payload.read_bytes()
    finally:
        runtime.close()
