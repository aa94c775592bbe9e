"""Array-valued stream fields (declaration, validation of JSON and Arrow batches, numpy out) and records a
function publishes to another stream (declaration, cycles, checks)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from helpers import make_app
from twinengine.app._context import FunctionContext
from twinengine.catalog.manifest import Manifest, Stream, StreamField
from twinengine.catalog.validate import check_app_dir
from twinengine.daemons.streams_functions import take_effects
from twinengine.errors import ValidationFailed
from twinengine.streams import records
from twinengine.streams.arrays import as_matrix, to_python
from twinengine.streams.backends.memory import MemoryLog
from twinengine.streams.hub import StreamHub, stream_key
from twinengine.streams.publish import append_published, check_published
from twinengine.workers.effects import EffectsWriter, read_effects
from twinengine.workflows.stream_processes import to_records_dataset

T0 = "2026-03-01T00:00:00Z"
CHANNEL = Stream.model_validate({"fields": {
    "time": {"type": "timestamp"},
    "strain": {"type": "array", "items": "float", "length": 4, "unit": "1"},
    "counts": {"type": "array", "items": "integer"},
    "label": {"type": "string", "nullable": True}}})


def lines(*items: dict[str, Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in items).encode()


def ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def problems(call: Any) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        call()
    return {p.loc: p.msg for p in info.value.problems}


# -- declaration ---------------------------------------------------------------------------------------------

def test_an_array_field_declares_its_items_and_maybe_a_length() -> None:
    field = StreamField.model_validate({"type": "array", "items": "float", "length": 4096, "unit": "m"})
    assert (field.items, field.length, field.unit) == ("float", 4096, "m")
    assert records.arrow_type(field) == pa.list_(pa.float64(), 4096)
    assert records.arrow_type(StreamField.model_validate({"type": "array", "items": "integer"})) == \
        pa.list_(pa.int64())
    refused = [({"type": "array"}, "needs items"),
               ({"type": "array", "items": "string"}, "'float' or 'integer'"),
               ({"type": "array", "items": "float", "nullable": True}, "cannot be nullable"),
               ({"type": "array", "items": "float", "length": 0}, "greater than or equal to 1"),
               ({"type": "float", "length": 3}, "apply to array fields"),
               ({"type": "string", "items": "float"}, "apply to array fields")]
    for data, words in refused:
        with pytest.raises(ValidationError, match=words):
            StreamField.model_validate(data)
    with pytest.raises(ValidationError, match="key 'x' is an array field"):
        Stream.model_validate({"key": "x", "fields": {"time": {"type": "timestamp"},
                                                      "x": {"type": "array", "items": "float"}}})


def test_array_fields_cannot_trigger_conditions_or_quality_checks(tmp_path: Path) -> None:
    streams = {"strain": {"fields": {"time": {"type": "timestamp"},
                                     "h": {"type": "array", "items": "float", "length": 8}},
                          "quality": [{"check": "range", "field": "h", "min": -1, "max": 1}]}}
    folder = make_app(tmp_path, manifest={"streams": streams, "functions": {
        "f": {"entrypoint": "test_app.fns:f", "stream": "strain",
              "trigger": {"kind": "condition", "field": "h", "op": "gt", "value": 0.5}}}},
        files={"test_app/fns.py": "def f(ctx, records):\n    pass\n"})
    _manifest, found = check_app_dir(folder)
    where = {p.loc: p.msg for p in found}
    assert "cannot be compared with the array field" in where["functions.f.trigger.value"]
    assert "'h' is an array field; quality checks judge numbers" in where["streams.strain.quality[0].field"]


# -- ingestion: JSON ---------------------------------------------------------------------------------------------

def test_json_lines_with_arrays_keep_every_sample_nan_and_infinity_included() -> None:
    body = (b'{"time": "2026-03-01T00:00:00Z", "strain": [1, 2.5, NaN, -Infinity], "counts": [1, 2]}\n'
            b'{"time": "2026-03-01T00:00:01Z", "strain": [0.1, 0.2, 0.3, 0.4], "counts": []}\n')
    table = records.parse_json_lines(CHANNEL, body)
    assert table.schema.field("strain").type == pa.list_(pa.float64(), 4)
    first = table.column("strain")[0].as_py()
    assert first[:2] == [1.0, 2.5] and math.isnan(first[2]) and first[3] == -math.inf
    assert table.column("counts").to_pylist() == [[1, 2], []]


@pytest.mark.parametrize(("record", "loc", "words"), [
    ({"strain": [1, 2, 3]}, "records[1].strain", "has 3 samples; the field holds exactly 4"),
    ({"strain": [1, 2, "x", 4]}, "records[1].strain[2]", "'x' is not a number"),
    ({"strain": [1, None, 3, 4]}, "records[1].strain[1]", "null is not a number"),
    ({"strain": [1, True, 3, 4]}, "records[1].strain[1]", "True is not a number"),
    ({"strain": 4.0}, "records[1].strain", "is not an array of float"),
    ({"counts": [1, 2.5]}, "records[1].counts[1]", "2.5 is not a 64-bit integer"),
    ({"counts": [2**64]}, "records[1].counts[0]", "is not a 64-bit integer"),
    ({"strain": None}, "records[1].strain", "required"),
])
def test_a_bad_array_value_is_named_by_record_field_and_sample(record: dict[str, Any], loc: str, words: str) -> None:
    good = {"time": T0, "strain": [0.0] * 4, "counts": [1]}
    body = lines(good, {**good, **record})
    found = problems(lambda: records.parse_json_lines(CHANNEL, body))
    assert loc in found and words in found[loc]
    found = problems(lambda: records.check_records(CHANNEL, [good, {**good, **record}]))
    assert loc in found and words in found[loc]


def test_numpy_arrays_are_array_values_in_python_records() -> None:
    table = records.check_records(CHANNEL, [{"time": T0, "strain": np.linspace(0, 1, 4), "counts": np.arange(3)}])
    assert table.column("strain").to_pylist() == [list(np.linspace(0, 1, 4))]
    assert table.column("counts").to_pylist() == [[0, 1, 2]]
    found = problems(lambda: records.check_records(CHANNEL, [{"time": T0, "strain": np.zeros((2, 2)), "counts": []}]))
    assert "shape (2, 2)" in found["records[0].strain"]
    found = problems(lambda: records.check_records(CHANNEL, [{"time": T0, "strain": [0.0] * 4,
                                                              "counts": np.array([0.5])}]))
    assert "dtype float64" in found["records[0].counts"]
    huge = np.array([1, 2**64 - 1], dtype=np.uint64)
    for counts in (huge, list(huge)):  # beyond int64: refused, never an overflow
        found = problems(lambda c=counts: records.check_records(CHANNEL, [{"time": T0, "strain": [0.0] * 4,
                                                                           "counts": c}]))
        assert "18446744073709551615 is not a 64-bit integer" in found["records[0].counts[1]"]


# -- ingestion: Arrow ---------------------------------------------------------------------------------------------

def test_arrow_lists_are_checked_then_cast_to_the_declared_type() -> None:
    times = pa.array([0, 1_000_000], pa.timestamp("us", tz="UTC"))
    table = records.parse_arrow(CHANNEL, ipc(pa.table({
        "time": times, "strain": pa.array([[1, 2, 3, 4], [5, 6, 7, 8]], pa.list_(pa.float32())),
        "counts": pa.array([[1], [2, 3]], pa.list_(pa.int32()))})))
    assert table.schema.field("strain").type == pa.list_(pa.float64(), 4)
    assert table.schema.field("counts").type == pa.list_(pa.int64())

    def refused(**columns: Any) -> dict[str, str]:
        base = {"time": times, "strain": pa.array([[0.0] * 4] * 2), "counts": pa.array([[1], [2]])}
        return problems(lambda: records.parse_arrow(CHANNEL, ipc(pa.table({**base, **columns}))))

    assert "has 2 samples" in refused(strain=pa.array([[0.0] * 4, [1.0, 2.0]]))["records[1].strain"]
    assert "null is not a number" in refused(strain=pa.array([[0.0] * 4, [1.0, None, 2.0, 3.0]]))[
        "records[1].strain[1]"]
    assert "cannot be read as array of float[4]" in refused(strain=pa.array([["a"] * 4] * 2))["columns.strain"]
    assert "cannot be read as array of integer" in refused(counts=pa.array([[0.5], [1.0]]))["columns.counts"]
    assert "cannot be read as array of float[4]" in refused(strain=pa.array([1.0, 2.0]))["columns.strain"]


# -- out: numpy for functions, a sample dimension for load_stream ----------------------------------------------

def test_functions_get_numpy_arrays_and_load_stream_a_sample_dimension() -> None:
    hub = StreamHub(MemoryLog())
    key = stream_key("twin-1", "channel")
    batch = records.check_records(CHANNEL, [
        {"time": T0, "strain": [1.0, 2.0, math.nan, 4.0], "counts": [1, 2, 3]},
        {"time": "2026-03-01T00:00:01Z", "strain": [5.0, 6.0, 7.0, 8.0], "counts": [4]}])
    hub.append(key, batch, time_field="time")
    read = hub.read(key, start=0, limit=10, time_field="time")
    assert read is not None and read.schema.field("strain").type == pa.list_(pa.float64(), 4)
    rows = to_python(read)
    assert isinstance(rows[1]["strain"], np.ndarray) and rows[1]["strain"].tolist() == [5.0, 6.0, 7.0, 8.0]
    assert np.isnan(rows[0]["strain"][2]) and rows[1]["counts"].tolist() == [4] and rows[0]["label"] is None
    ds = to_records_dataset(read, "time")
    assert ds["strain"].dims == ("record", "strain_sample") and ds["strain"].shape == (2, 4)
    assert ds["counts"].dims == ("record", "counts_sample")  # varying lengths: padded with NaN
    np.testing.assert_array_equal(ds["counts"].values, [[1, 2, 3], [4, np.nan, np.nan]])
    assert as_matrix(read.column("strain").slice(1)).tolist() == [[5.0, 6.0, 7.0, 8.0]]


# -- publishing ----------------------------------------------------------------------------------------------

PUBLISHING = {
    "raw": {"fields": {"time": {"type": "timestamp"}, "h": {"type": "array", "items": "float", "length": 4}}},
    "cleaned": {"fields": {"time": {"type": "timestamp"}, "h": {"type": "array", "items": "float", "length": 4},
                           "vetoed": {"type": "boolean"}}},
    "summary": {"fields": {"time": {"type": "timestamp"}, "rms": {"type": "float"}}}}


def publishing_app(tmp_path: Path, functions: dict[str, Any]) -> tuple[Manifest | None, dict[str, str]]:
    folder = make_app(tmp_path, manifest={"streams": PUBLISHING, "functions": functions},
                      files={"test_app/fns.py": "def f(ctx, records):\n    pass\n"})
    manifest, found = check_app_dir(folder)
    return manifest, {p.loc: p.msg for p in found}


def test_a_function_publishes_only_to_other_declared_streams_and_never_in_a_cycle(tmp_path: Path) -> None:
    manifest, found = publishing_app(tmp_path, {
        "clean": {"entrypoint": "test_app.fns:f", "stream": "raw", "publishes": ["cleaned"]},
        "sum": {"entrypoint": "test_app.fns:f", "stream": "cleaned", "publishes": ["summary"]}})
    assert found == {} and manifest is not None
    _manifest, found = publishing_app(tmp_path / "bad", {
        "self": {"entrypoint": "test_app.fns:f", "stream": "raw", "publishes": ["raw", "ghost"]}})
    assert "the stream it runs on" in found["functions.self.publishes[0]"]
    assert "not declared under streams" in found["functions.self.publishes[1]"]
    _manifest, found = publishing_app(tmp_path / "cycle", {
        "a": {"entrypoint": "test_app.fns:f", "stream": "raw", "publishes": ["cleaned"]},
        "b": {"entrypoint": "test_app.fns:f", "stream": "cleaned", "publishes": ["summary"]},
        "c": {"entrypoint": "test_app.fns:f", "stream": "summary", "publishes": ["raw"]}})
    (loc, msg), = ((k, v) for k, v in found.items() if "cycle" in v)
    assert loc.endswith(".publishes") and "(cleaned -> summary -> raw -> cleaned)" in msg


def test_published_records_travel_as_effects_and_are_checked_against_the_target(tmp_path: Path) -> None:
    manifest, found = publishing_app(tmp_path, {
        "clean": {"entrypoint": "test_app.fns:f", "stream": "raw", "publishes": ["cleaned", "summary"]}})
    assert manifest is not None and not found
    spec = manifest.functions["clean"]
    worker = FunctionContext(twin_id="t", twin_name="n", function="clean", parameters={})
    worker.publish("cleaned", [{"time": T0, "h": np.array([1.0, np.nan, 3.0, 4.0]), "vetoed": False}])
    worker.publish("summary", {"time": T0, "rms": 0.5})
    with pytest.raises(TypeError, match="records are mappings"):
        worker.publish("summary", pa.table({"time": [T0]}))
    # what the worker process answers for the call, and what the engine reads back
    writer = EffectsWriter()
    writer.add(worker, 0, 0, 0)
    (answer,) = read_effects(writer.document(), 1, tagged=writer.tagged)
    engine = FunctionContext(twin_id="t", twin_name="n", function="clean", parameters={})
    take_effects(engine, answer)
    checked = check_published(manifest, spec, engine.published)
    assert [(name, table.num_rows) for name, _decl, table in checked] == [("cleaned", 1), ("summary", 1)]
    assert math.isnan(checked[0][2].column("h")[0].as_py()[1])

    hub = StreamHub(MemoryLog())
    assert append_published(hub, "t", checked) == 2
    assert hub.end(stream_key("t", "cleaned")) == 1 and hub.end(stream_key("t", "summary")) == 1
    assert hub.end(stream_key("other-twin", "cleaned")) == 0

    def refused(stream: str, batch: list[dict[str, Any]]) -> str:
        with pytest.raises(ValueError) as info:
            check_published(manifest, spec, [{"stream": stream, "records": batch}])
        return str(info.value)

    assert "'raw' (the stream it runs on) is not a stream this function publishes to" in refused("raw", [])
    assert "'elsewhere' is not a stream this function publishes to (publishes: cleaned, summary)" in \
        refused("elsewhere", [{"time": T0}])
    assert "publish to 'cleaned': records[0].h: has 2 samples" in \
        refused("cleaned", [{"time": T0, "h": [1.0, 2.0], "vetoed": True}])
    assert "records[0].vetoed: required" in refused("cleaned", [{"time": T0, "h": [0.0] * 4}])
    with pytest.raises(ValueError, match="malformed"):
        check_published(manifest, spec, [{"stream": "cleaned"}])


def test_an_array_sent_to_a_scalar_field_is_named_briefly() -> None:
    found = problems(lambda: records.check_records(CHANNEL, [{"time": T0, "strain": [0.0] * 4, "counts": [],
                                                              "label": list(range(4096))}]))
    message = found["records[0].label"]
    assert message.endswith("... is not a string") and len(message) < 100


def test_the_cli_shows_an_array_field_as_its_length() -> None:
    from twinengine.cli import streams as cli_streams
    from twinengine.cli._common import console

    with console.capture() as captured:
        cli_streams._show("ifo/raw", [{"_offset": 0, "time": T0, "strain": [0.5] * 4096, "label": "x",
                                       "_arrival": T0, "_quality": "good", "_checks": None}])
    text = captured.get()
    assert "4096 samples" in text and "0.5, 0.5" not in text


def test_reads_stop_at_a_byte_budget_but_never_below_min_rows() -> None:
    wide = Stream.model_validate({"fields": {"time": {"type": "timestamp"},
                                             "x": {"type": "array", "items": "float", "length": 1000}}})
    hub = StreamHub(MemoryLog())
    for batch in range(3):
        hub.append("t/wide", records.check_records(wide, [{"time": T0, "x": [float(batch)] * 1000}] * 4),
                   time_field="time")

    def offsets(**options: Any) -> list[int]:
        table = hub.read("t/wide", limit=100, **options)
        return table.column("_offset").to_pylist() if table is not None else []

    assert offsets() == list(range(12))
    assert offsets(max_bytes=20_000) == [0, 1]  # about 8 kB a record
    assert offsets(max_bytes=20_000, start=3) == [3, 4]  # across entries
    assert offsets(max_bytes=20_000, min_rows=7) == list(range(7))
    assert offsets(max_bytes=1) == [0]  # never nothing
    assert offsets(max_bytes=10**9) == list(range(12))


def test_an_integer_beyond_float64_is_refused_not_overflowed() -> None:
    # (JSON text such a number is read as Infinity by the C++ parser, as 1e400 is; Python ints come from
    # records handed over as objects: the JSON body of a WebSocket message, what a function publishes)
    found = problems(lambda: records.check_records(CHANNEL, [{"time": T0, "strain": [1, 2, 3, 10**400],
                                                              "counts": []}]))
    assert "is beyond float64" in found["records[0].strain[3]"]
    scalar = Stream.model_validate({"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}})
    found = problems(lambda: records.check_records(scalar, [{"time": T0, "level": 10**400}]))
    assert "is beyond float64" in found["records[0].level"]
