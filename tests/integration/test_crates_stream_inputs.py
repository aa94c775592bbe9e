"""A stream a run read is an input named by its records' SHA-256 (SQLite and PostgreSQL): the crate's checksum is
the one written here by hand from the records sent, following docs/reproducibility.md; the records moved from
the log into Parquet segments keep it, so a rerun finds them unchanged; a record changed or gone at the offsets
the run read makes the rerun's diff say the input changed, naming the stream and both checksums."""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from helpers import RIVER_REACH, Engine
from streams_fixtures import gauge
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.daemons.streams_compactor import Compactor
from twinengine.streams.models import CompactedSegment

pytestmark = pytest.mark.every_store

GRAPH = {"process_graph": {  # the stream is read before the state is written (nodes in the order listed)
    "load": {"process_id": "load_stream", "arguments": {"stream": "gauges"}},
    "state": {"process_id": "update_twin_state", "arguments": {"reported": {"forecast_peak_level": 1.4}}},
    "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "state"}, "format": "JSON"},
             "result": True}}}
RECORDS = 12


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    """Small log segments: three entries close one, which the compactor writes as Parquet."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, warm_routes=False,
                    stream_segment_bytes=4096, stream_segment_entries=3)


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    for start in range(0, RECORDS, 3):
        client.streams.append("reach", "gauges", [gauge(i) for i in range(start, start + 3)])
    return client


def by_hand(records: dict[int, dict[str, Any]]) -> tuple[str, int]:
    """docs/reproducibility.md's definition, followed without the engine: per record in offset order, its fields
    and ``_offset`` as JSON with sorted keys and no spaces, times as UTC microseconds with ``Z``, then ``\\n``."""
    lines = b""
    for offset in sorted(records):
        record = dict(records[offset], _offset=offset)
        record["time"] = datetime.fromisoformat(record["time"]).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lines += json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return hashlib.sha256(lines).hexdigest(), len(lines)


def stream_entity(crate: bytes, kind: str = "stream") -> dict[str, Any]:
    """The crate's one input entity of ``kind`` (stream, records, observations)."""
    with zipfile.ZipFile(io.BytesIO(crate)) as archive:
        document = json.loads(archive.read("ro-crate-metadata.json"))
    (entity,) = [e for e in document["@graph"] if e.get("additionalType") == kind]
    return dict(entity)


def compact(engine: Engine) -> list[CompactedSegment]:
    runtime = engine.runtime
    with runtime.db.session() as session:
        Compactor(runtime).run_once(session)
    with runtime.db.session(readonly=True) as session:
        rows = list(session.scalars(select(CompactedSegment).order_by(CompactedSegment.first_offset)))
        session.expunge_all()
    assert rows and rows[0].first_offset == 0  # the first records are in Parquet now, no longer in the log
    return rows


def test_a_stream_input_is_named_by_its_records_checksum(engine: Engine, uma: Client) -> None:
    run = uma.workflows.submit(GRAPH, twin="reach", sync=True)
    assert run.status == "finished", run.error
    entity = stream_entity(uma.crates.crate(run.id))
    sha256, size = by_hand({i: gauge(i) for i in range(RECORDS)})
    assert (entity["sha256"], entity["contentSize"]) == (sha256, str(size))  # the same on either store
    assert entity["@type"] == "Dataset" and entity["version"] == str(RECORDS)
    assert f"{RECORDS} records, SHA-256 of their canonical JSON lines (taken when the run read them)" in \
        entity["description"]

    compact(engine)  # the same records, kept another way
    started = uma.crates.rerun(run.id)
    diff = uma.crates.wait_diff(started.rerun, timeout=120)
    assert not [w for w in diff.why if w.startswith("an input changed")], diff.why
    assert stream_entity(uma.crates.crate(started.rerun))["sha256"] == sha256  # the rerun read the same records


@pytest.mark.parametrize("how", ["changed", "gone"])
def test_records_changed_at_the_offsets_read_make_the_diff_say_the_input_changed(engine: Engine, uma: Client,
                                                                                 how: str) -> None:
    run = uma.workflows.submit(GRAPH, twin="reach", sync=True)
    assert run.status == "finished", run.error
    then = stream_entity(uma.crates.crate(run.id))["sha256"]
    first = compact(engine)[0]
    path = engine.runtime.segment_root / first.path  # history restored from another copy, or expired
    table = pq.read_table(path)
    records = {i: gauge(i) for i in range(RECORDS)}
    if how == "changed":
        table = table.set_column(table.schema.get_field_index("level"), "level",
                                 pa.array([9.5 if o == 1 else v for o, v in zip(table.column("_offset").to_pylist(),
                                                                                table.column("level").to_pylist(),
                                                                                strict=True)], pa.float64()))
        records[1]["level"] = 9.5
    else:
        table = table.filter(pc.not_equal(table.column("_offset"), 1))
        del records[1]
    pq.write_table(table, path)
    now, _ = by_hand(records)

    started = uma.crates.rerun(run.id)  # run again as for a collection marked changed; the diff says why
    diff = uma.crates.wait_diff(started.rerun, timeout=120)
    twin_id = uma.get_twin("reach").id
    said = [w for w in diff.why if w.startswith(f"an input changed: stream {twin_id}/gauges")]
    assert len(said) == 1, diff.why
    assert f"of stream gauges of twin reach at offsets [0, {RECORDS}) have sha256 {then} then, {now} now" in said[0]
    if how == "gone":
        assert f"1 of its {RECORDS} records are gone" in said[0]


def test_a_training_names_the_records_it_read_by_their_checksum(engine: Engine, uma: Client) -> None:
    """Taken where the training reads its records by offsets (``ml.engine.read_records``), flags excluded."""
    from twinengine.catalog.manifest import Manifest
    from twinengine.twins import service as twins
    from twinengine.twins.models import Twin

    runtime = engine.runtime
    with runtime.db.session(readonly=True) as session:
        twin = session.scalar(select(Twin).where(Twin.name == "reach"))
        assert twin is not None
        manifest = Manifest.model_validate(twins.manifest_for(session, twin).model_dump())
        session.expunge(twin)
    _, read = runtime.ml.read_records(twin, manifest, {"stream": "gauges", "start": 2, "end": 9})
    assert (read["sha256"], read["bytes"]) == by_hand({i: gauge(i) for i in range(2, 9)})


def test_assimilation_cycles_name_their_observations_by_a_checksum_taken_with_the_crate(
        engine: Engine, uma: Client) -> None:
    from twinengine.twins.schemas import PropertyWrite

    uma.write_state("reach", reported={"storage": PropertyWrite(value=5.0, timestamp=datetime.fromisoformat(
        gauge(0)["time"]))})
    cycles = uma.assimilation.run("reach", cycles=RECORDS).cycles
    assert len(cycles) == RECORDS, cycles
    crate = uma.crates.crate(cycles[0].id)
    observed = stream_entity(crate, "observations")
    records = {i: gauge(i) for i in range(RECORDS)}
    sha256, size = by_hand(records)  # the offsets the cycles read, [0, 12)
    assert (observed["sha256"], observed["contentSize"]) == (sha256, str(size))
    assert "taken when the crate was made: the records may have changed since the run" in observed["description"]

    path = engine.runtime.segment_root / compact(engine)[0].path  # then a record is gone from the history
    pq.write_table(pq.read_table(path).filter(pc.not_equal(pc.field("_offset"), 2)), path)
    del records[2]
    diff = uma.crates.wait_diff(uma.crates.rerun_crate(crate).rerun, timeout=120)  # from the crate made before
    said = [w for w in diff.why if w.startswith("an input changed: observations reach/gauges")]
    assert len(said) == 1 and f"have sha256 {sha256} then, {by_hand(records)[0]} now" in said[0], diff.why


@pytest.mark.sandbox
def test_a_calibration_names_the_observations_in_its_window_by_their_checksum(engine: Engine, uma: Client) -> None:
    """Taken where the runner reads the window's records; a record changed in the window makes the rerun's diff
    say so."""
    uma.streams.append("reach", "gauges", [gauge(i) for i in range(RECORDS, 48)])
    started = uma.calibration.start("reach", method="de", runs=12, seed=3, workers=1, posterior_share=0.0)
    deadline = time.monotonic() + 180
    while (done := uma.calibration.get(started.id)).status not in ("done", "failed", "canceled"):
        assert time.monotonic() < deadline, done
        time.sleep(0.2)
    assert done.status == "done", done.error
    observed = stream_entity(uma.crates.crate(started.id), "observations")
    sha256, size = by_hand({i: gauge(i) for i in range(48)})  # every record: the window from the first to the last
    assert (observed["sha256"], observed["contentSize"]) == (sha256, str(size))
    assert "48 records, SHA-256 of their canonical JSON lines (taken when the run read them)" in observed["description"]

    path = engine.runtime.segment_root / compact(engine)[0].path
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index("rain"), "rain", pc.add(table.column("rain"), 1.0)),
                   path)  # the history restored from another copy: the rain of the first records is not the same
    rerun = uma.crates.rerun(started.id).rerun
    diff = uma.crates.wait_diff(rerun, timeout=180)
    said = [w for w in diff.why if w.startswith("an input changed: observations reach observations")]
    assert len(said) == 1 and f"have sha256 {sha256} then" in said[0] and "(48 records)" in said[0], diff.why


def test_the_records_a_graph_kept_by_time_and_flag_are_those_checked_again(engine: Engine, uma: Client) -> None:
    """``load_stream`` with a time extent and ``quality: good``: the crate names the good records in the extent,
    and the rerun finds the same ones in the Parquet segments (flags and times filtered there as in the log)."""
    sent = {i: gauge(i) for i in range(RECORDS, 2 * RECORDS)}
    sent[RECORDS + 4]["level"] = 20.0  # out of the declared range: flagged bad
    for start in range(RECORDS, 2 * RECORDS, 3):
        uma.streams.append("reach", "gauges", [sent[i] for i in range(start, start + 3)])
    since, until = gauge(RECORDS + 1)["time"], gauge(2 * RECORDS - 2)["time"]
    graph = {"process_graph": {
        "load": {"process_id": "load_stream", "arguments": {"stream": "gauges", "temporal_extent": [since, until],
                                                            "quality": "good"}},
        "state": {"process_id": "update_twin_state", "arguments": {"reported": {"forecast_peak_level": 1.4}}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "state"}, "format": "JSON"},
                 "result": True}}}
    run = uma.workflows.submit(graph, twin="reach", sync=True)
    assert run.status == "finished", run.error
    good = {int(r["_offset"]) for r in uma.streams.read("reach", "gauges", since=since, until=until,
                                                        quality=["good"]).items}
    assert RECORDS + 4 not in good and len(good) >= 6
    sha256, _ = by_hand({i: sent[i] for i in sorted(good)})
    entity = stream_entity(uma.crates.crate(run.id))
    assert entity["sha256"] == sha256 and f"{len(good)} records" in entity["description"]

    compact(engine)
    diff = uma.crates.wait_diff(uma.crates.rerun(run.id).rerun, timeout=120)
    assert not [w for w in diff.why if w.startswith("an input changed")], diff.why
