"""Run crates without an engine: a record packed and read back, a crate whose contents do not match its checksums
refused naming what, and the diff's three verdicts with the largest difference per variable and the reasons."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime

import pytest

from twinengine.crates.diff import compare
from twinengine.crates.jsonld import PROFILES
from twinengine.crates.package import pack, unpack
from twinengine.crates.record import Input, Output, RunRecord, Step
from twinengine.errors import InvalidInput


def _output(name: str, value: object) -> Output:
    content = json.dumps(value).encode()
    return Output(name=name, size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                  media_type="application/json", content=content)


def _record(run_id: str = "run-1", value: object = None, **changes: object) -> RunRecord:
    graph = {"process_graph": {"add": {"process_id": "add", "arguments": {"x": {"from_parameter": "a"}, "y": 1},
                                       "result": True}}, "parameters": [{"name": "a", "schema": {"type": "number"}}]}
    canonical = json.dumps(graph, sort_keys=True, separators=(",", ":")).encode()
    record = RunRecord(
        id=run_id, kind="workflow", name="add one", description="a run of add", status="finished", owner="uma",
        created=datetime(2026, 3, 1, tzinfo=UTC), started=datetime(2026, 3, 1, 0, 0, 1, tzinfo=UTC),
        ended=datetime(2026, 3, 1, 0, 0, 2, 500000, tzinfo=UTC), procedure=graph,
        procedure_name="process-graph.json", procedure_language="openeo",
        procedure_sha256=hashlib.sha256(canonical).hexdigest(), engine_version="1.0", parameters={"a": 2},
        seeds={"a_seed": 7}, inputs=[Input(id="rain", kind="collection", name="rain", version="v1", sha256="ab" * 32)],
        outputs=[_output("result.json", {"level": [1.0, 2.0], "alert": 0.5} if value is None else value)],
        steps=[Step(id="add", tool="add", status="finished", started=datetime(2026, 3, 1, 0, 0, 1, tzinfo=UTC),
                    ended=datetime(2026, 3, 1, 0, 0, 2, tzinfo=UTC), arguments={"x": {"from_parameter": "a"}, "y": 1})])
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def test_a_crate_reads_back_as_it_was_packed_and_names_its_profiles() -> None:
    data = pack(_record())
    assert data == pack(_record())  # the same run gives the same bytes
    crate = unpack(data)
    assert crate.record.parameters == {"a": 2} and crate.record.seeds == {"a_seed": 7}
    assert crate.output("result.json") == json.dumps({"level": [1.0, 2.0], "alert": 0.5}).encode()
    graph = {e["@id"]: e for e in crate.document["@graph"]}
    root = graph["./"]
    assert {p["@id"] for p in root["conformsTo"]} == set(PROFILES)
    assert graph["#run-run-1"]["startTime"] == "2026-03-01T00:00:01.000+00:00"
    assert graph["#run-run-1"]["endTime"] == "2026-03-01T00:00:02.500+00:00"
    assert graph["#step-add"]["connection"] == {"@id": "#connection-add-x-param-a"}
    assert graph["outputs/result.json"]["sha256"] == crate.record.outputs[0].sha256


def _rezip(data: bytes, name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            target.writestr(item, content if item.filename == name else source.read(item.filename))
    return out.getvalue()


@pytest.mark.parametrize(("name", "words"), [("outputs/result.json", "outputs/result.json does not match"),
                                             ("process-graph.json", "process-graph.json is missing or does not")])
def test_a_crate_whose_files_do_not_match_their_checksums_is_refused(name: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        unpack(_rezip(pack(_record()), name, b'{"level": [9]}'))


def test_what_is_no_crate_is_refused_naming_the_crate() -> None:
    with pytest.raises(InvalidInput, match="crate: not a zip file"):
        unpack(b"not a zip")
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("README.md", "hello")
    with pytest.raises(InvalidInput, match=r"holds no ro-crate-metadata\.json"):
        unpack(empty.getvalue())


def _diff(original: RunRecord, rerun: RunRecord) -> dict[str, object]:
    def read(record: RunRecord) -> object:
        return lambda name: next(o.content for o in record.outputs if o.name == name)
    return compare(original, read(original), rerun, read(rerun))


def test_the_diff_says_identical_within_tolerance_or_different_with_the_largest_difference() -> None:
    original = _record()
    assert _diff(original, _record("run-2"))["verdict"] == "identical"
    close = _diff(original, _record("run-2", {"level": [1.0, 2.0 + 1e-12], "alert": 0.5}))
    assert close["verdict"] == "within_tolerance"
    assert close["outputs"][0]["largest_difference"]["level"] == pytest.approx(1e-12, rel=0.5)
    far = _diff(original, _record("run-2", {"level": [1.0, 2.5], "alert": 0.5}))
    assert far["verdict"] == "different" and far["outputs"][0]["largest_difference"] == {"alert": 0.0, "level": 0.5}


def test_the_diff_says_why_an_output_differs() -> None:
    changed = _record("run-2", {"level": [3.0, 2.0], "alert": 0.5},
                      inputs=[Input(id="rain", kind="collection", name="rain", version="v2", sha256="cd" * 32)],
                      app_sha256="ff" * 32, nondeterministic="a sampler without a seed")
    why = _diff(_record(app_sha256="ee" * 32), changed)["why"]
    assert any(w.startswith("an input changed: collection rain") for w in why)
    assert any(w.startswith("the app version changed") for w in why)
    assert "nondeterminism declared by the app: a sampler without a seed" in why


def _stream_input(sha256: str) -> Input:
    from twinengine.crates.stream_inputs import RecordSelection, with_checksum
    from twinengine.streams.checksum import RecordsChecksum

    selection = RecordSelection(twin="reach", stream="gauges", ranges=[(0, 12)])
    return with_checksum(Input(id="stream:t1/gauges", kind="stream", name="t1/gauges", version="12"), selection,
                         RecordsChecksum(sha256=sha256, records=12, bytes=900))


def test_a_stream_input_is_a_dataset_with_its_records_checksum() -> None:
    crate = unpack(pack(_record(inputs=[_stream_input("ab" * 32)])))
    (entity,) = [e for e in crate.document["@graph"] if e.get("additionalType") == "stream"]
    assert entity["@type"] == "Dataset" and entity["identifier"] == "stream:t1/gauges"
    assert entity["sha256"] == "ab" * 32 and entity["contentSize"] == "900"
    assert "12 records, SHA-256 of their canonical JSON lines (taken when the run read them)" in entity["description"]
    (read,) = crate.record.inputs
    assert read.properties["selection"]["ranges"] == [[0, 12]] and read.properties["records"] == 12


def test_the_diff_names_a_stream_whose_records_changed_with_both_checksums() -> None:
    from twinengine.crates.stream_inputs import RecordSelection, StreamChange

    original, rerun = _record(inputs=[_stream_input("ab" * 32)]), _record("run-2", inputs=[_stream_input("cd" * 32)])
    change = StreamChange(kind="stream", name="t1/gauges", then="ab" * 32, now="cd" * 32, records_then=12,
                          records_now=11, selection=RecordSelection(twin="reach", stream="gauges", ranges=[(0, 12)]))
    why = compare(original, lambda n: None, rerun, lambda n: None, changed=[change])["why"]
    assert why == [f"an input changed: stream t1/gauges: the records of stream gauges of twin reach at offsets [0, 12) "
                   f"have sha256 {'ab' * 32} then, {'cd' * 32} now (11 records; 1 of its 12 records are gone)"]
    gone = change.model_copy(update={"now": None, "records_now": 0})
    assert "is not here" in compare(original, lambda n: None, rerun, lambda n: None, changed=[gone])["why"][0]
    told = _diff(original, _record("run-2", {"level": [9.0]}, inputs=[_stream_input("cd" * 32)]))["why"]
    assert f"an input changed: stream t1/gauges (sha256 {'ab' * 6} then, {'cd' * 6} now)" in told
