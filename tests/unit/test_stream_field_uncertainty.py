"""Stream fields that declare uncertainty: the declaration (checked at validate and publish), and the
``_uncertainty`` column's helpers (Arrow in and out, dataset variables) without an engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from helpers import make_app
from twinengine.catalog.manifest import Stream
from twinengine.catalog.validate import check_app_dir
from twinengine.errors import ValidationFailed
from twinengine.streams import records
from twinengine.streams.uncertainty import UNCERTAINTY_TYPE, column_of, plain_records, variables

FIELDS = {"time": {"type": "timestamp"}, "level": {"type": "float", "uncertainty": ["std", "members"]},
          "n": {"type": "integer", "uncertainty": "quantiles"}, "station": {"type": "string"}}


def test_the_declaration_names_forms_of_number_fields_only(tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={"streams": {
        "ok": {"fields": FIELDS},
        "text": {"fields": {"time": {"type": "timestamp"}, "station": {"type": "string", "uncertainty": "std"}}},
        "twice": {"fields": {"time": {"type": "timestamp"}, "x": {"type": "float", "uncertainty": ["std", "std"]}}},
        "form": {"fields": {"time": {"type": "timestamp"}, "x": {"type": "float", "uncertainty": "interval"}}},
        "array": {"fields": {"time": {"type": "timestamp"}, "x": {"type": "array", "items": "float",
                                                                  "uncertainty": "std"}}},
        "reserved": {"fields": {"time": {"type": "timestamp"}, "x": {"type": "float", "uncertainty": "std"},
                                "_uncertainty": {"type": "string"}}}}})
    manifest, problems = check_app_dir(folder)
    assert manifest is None
    found = {p.loc: p.msg for p in problems}
    assert "uncertainty applies to float and integer fields, not to a string field" in found[
        "streams.text.fields.station"]
    assert "names a form twice" in found["streams.twice.fields.x"]
    assert "'std', 'quantiles' or 'members'" in found["streams.form.fields.x.uncertainty[0]"]
    assert "not to a array field" in found["streams.array.fields.x"]
    assert "'_uncertainty' is where records keep" in found["streams.reserved"]
    assert not any(loc.startswith("streams.ok") for loc in found)


def test_records_keep_values_in_fields_and_uncertainty_apart() -> None:
    stream = Stream.model_validate({"fields": FIELDS})
    table = records.check_records(stream, [
        {"time": "2026-01-01T00:00:00Z", "level": {"value": 2.0, "uncertainty": {"std": 0.5}}, "n": 3,
         "station": "a"},
        {"time": "2026-01-01T00:01:00Z", "level": 2.5, "n": {"value": 4, "uncertainty": {"quantiles": {
            "0.25": 3, "0.75": 5}}}, "station": "a"}])
    assert table.column("level").to_pylist() == [2.0, 2.5] and table.column("n").to_pylist() == [3, 4]
    assert table.schema.field("_uncertainty").type == UNCERTAINTY_TYPE
    assert [r["_uncertainty"] for r in plain_records(table)] == [
        {"level": {"std": 0.5}}, {"n": {"quantiles": {"0.25": 3.0, "0.75": 5.0}}}]
    plain = Stream.model_validate({"fields": {"time": {"type": "timestamp"}, "x": {"type": "float"}}})
    assert records.check_records(plain, [{"time": "2026-01-01T00:00:00Z", "x": 1.0}]).column_names == ["time", "x"]


def test_a_repeated_key_in_an_arrow_column_is_refused() -> None:
    stream = Stream.model_validate({"fields": FIELDS})
    forms = pa.array([[("level", {"std": 1.0, "quantiles": None, "members": None}),
                       ("level", {"std": 2.0, "quantiles": None, "members": None})]], type=UNCERTAINTY_TYPE)
    table = pa.table({"time": pa.array(["2026-01-01T00:00:00Z"]).cast(pa.timestamp("us", tz="UTC")),
                      "level": [1.0], "n": [1], "station": ["a"], "_uncertainty": forms})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(ValidationFailed, match=r"records\[0\]\.level: given twice"):
        records.parse_arrow(stream, sink.getvalue().to_pybytes())


def test_variables_follow_netcdf_u_with_nan_where_a_record_carries_none() -> None:
    column = column_of([{"level": {"std": 0.5, "members": [1.0, 2.0, 3.0]}}, None,
                        {"level": {"members": [4.0]}, "n": {"quantiles": {"0.5": 7.0}}}])
    found = variables(column)
    dims, std, attrs = found["level"]["level_std"]
    assert dims == ("record",) and attrs["ref"].endswith("/standard-deviation")
    np.testing.assert_array_equal(std, [0.5, np.nan, np.nan])
    dims, members, _ = found["level"]["level_members"]
    assert dims == ("record", "level_member")
    np.testing.assert_array_equal(members, [[1.0, 2.0, 3.0], [np.nan] * 3, [4.0, np.nan, np.nan]])
    _, median, attrs = found["n"]["n_q5"]
    assert attrs["quantile"] == 0.5
    np.testing.assert_array_equal(median, [np.nan, np.nan, 7.0])
