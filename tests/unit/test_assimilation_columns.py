"""The columnar forms of a request's work: cycles planned on the records' Arrow columns are the cycles planned
on the records as dicts; a batch's innovation statistics computed at once are each cycle's own; packed
ensembles read back as the arrays they were; the plain ETKF path gives the ETKF's analysis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from twinengine.assimilation import etkf
from twinengine.catalog.assimilation_spec import AssimilationSpec, Method
from twinengine.twin_assimilation import worker_side
from twinengine.twin_assimilation.analysis import Background, analyse
from twinengine.twin_assimilation.backlog import usable
from twinengine.twin_assimilation.columns import Columns, columnar
from twinengine.twin_assimilation.observations import next_time
from twinengine.twin_assimilation.packed import array_of, list_of, pack
from twinengine.twin_assimilation.plan import Clock, Planned, layout, plan_cycle
from twinengine.twin_assimilation.record import _innovation_stats, _read, innovation_rows, observation_rows
from twinengine.twin_assimilation.schemas import CycleRead

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SPEC = AssimilationSpec.model_validate(
    {
        "state": ["a", "b", "c"],
        "step": {"entrypoint": "pkg.mod:step", "dt": "15min", "forcing": {"rain": "rain"}},
        "observations": {
            "a": {"observes": "a", "error": 0.5},
            "level": {"operator": "pkg.mod:level", "error": 0.05},
            "c": {"field": "cc", "observes": "c", "error": "pkg.mod:error"},
        },
    }
)
SCHEMA = pa.schema(
    [
        ("_offset", pa.int64()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("rain", pa.float64()),
        ("a", pa.float64()),
        ("level", pa.float64()),
        ("cc", pa.int64()),
        ("_quality", pa.string()),
    ]
)


def _records(rng: np.random.Generator) -> list[dict[str, Any]]:
    records = []
    for offset in range(60):  # forcing-only records, repeated times, late records, gaps: in arrival order
        minutes = int(15 * (offset // 2 + rng.integers(-2, 2)))
        records.append(
            {
                "_offset": offset,
                "time": T0 + timedelta(minutes=minutes, microseconds=7),
                "rain": float(rng.random()) if rng.random() < 0.5 else None,
                "a": float(rng.normal()) if rng.random() < 0.5 else None,
                "level": float(rng.normal()) if rng.random() < 0.4 else None,
                "cc": int(rng.integers(0, 9)) if rng.random() < 0.3 else None,
                "_quality": "bad" if rng.random() < 0.1 else "ok",
            }
        )
    return records


def _plain(planned: Planned) -> dict[str, Any]:
    out = dict(vars(planned))
    for key in ("offsets", "values", "stds", "columns", "positions"):
        out[key] = [None if v != v else v for v in np.asarray(out[key], dtype=float).tolist()]  # NaN: None
    out["when"] = (planned.when.time, planned.when.forcing, planned.when.first, planned.when.end, planned.when.late)
    return out


@pytest.mark.parametrize("case", range(12))
def test_cycles_planned_on_columns_are_those_planned_on_records(case: int) -> None:
    rng = np.random.default_rng(case)
    records = _records(rng)
    table = usable(pa.Table.from_pylist(records, schema=SCHEMA))
    rows = table.to_pylist()
    assert columnar(SPEC, table)
    observed = layout(SPEC, np.arange(3.0))
    after = None if case % 3 == 0 else T0 + timedelta(minutes=15 * (case % 4))
    columns = Columns.of(SPEC, table, "time")
    by_rows, by_columns = Clock(after, 0, {"rain": 0.25}, steps_from=None), Clock(after, 0, {"rain": 0.25})
    planned_rows, planned_columns = [], []
    for number in range(1, 40):
        when = next_time(SPEC, rows, "time", by_rows.time, by_rows.offset)
        made = None if when is None else plan_cycle(SPEC, by_rows, when, number, "obs", observed)
        other = columns.plan(SPEC, by_columns, number, "obs", observed)
        assert (made is None) == (other is None), number
        if made is None or other is None:
            break
        planned_rows.append(_plain(made))
        planned_columns.append(_plain(other))
    assert planned_rows, "the case plans no cycle"
    assert planned_columns == planned_rows
    assert any(p["errors"] for p in planned_rows) and any(p["steps"] for p in planned_rows)


def test_records_with_their_own_std_or_text_fields_are_planned_as_records() -> None:
    own = AssimilationSpec.model_validate(
        {
            "state": ["a"],
            "step": {"entrypoint": "pkg.mod:step", "dt": "15min"},
            "observations": {"a": {"observes": "a", "error": "record"}},
        }
    )
    table = pa.Table.from_pylist([{"_offset": 0, "time": T0, "a": 1.0, "cc": "x"}])
    assert not columnar(own, table)
    text = pa.Table.from_pylist([{"_offset": 0, "time": T0, "a": 1.0, "cc": "x"}])
    assert not columnar(SPEC, text)
    assert columnar(SPEC, pa.Table.from_pylist([{"_offset": 0, "time": T0, "a": 1.0}]))


def test_a_batch_s_innovation_statistics_are_each_cycle_s() -> None:
    rng = np.random.default_rng(3)
    counts = np.array([3, 0, 5, 1, 0])
    values, obs = rng.normal(size=9), rng.normal(size=(9, 3))
    got = _innovation_stats(counts, values, obs)
    at = 0
    for k, count in enumerate(counts.tolist()):
        if count == 0:
            assert got[k] == (None, None, None)
            continue
        d = values[at : at + count] - obs[at : at + count, 0]
        assert got[k] == pytest.approx(
            (d.mean(), np.sqrt(np.mean(d**2)), np.sqrt(np.mean(obs[at : at + count, 1] ** 2)))
        )
        at += count


def test_packed_columns_read_back_as_written_and_old_lists_still_read() -> None:
    members = np.random.default_rng(4).normal(size=(20, 40))
    assert np.array_equal(array_of(pack(members)), members)
    assert array_of(pack(np.arange(5))).tolist() == list(range(5))
    assert list_of(pack(np.array([3, 4]))) == [3, 4] and list_of([1.5, 2.5]) == [1.5, 2.5]
    assert np.array_equal(array_of(members.tolist()), members)  # a record kept the old way
    stored = {
        "name": ["y1", "y2"],
        "stream": "obs",
        "offset": pack(np.array([7, 7])),
        "value": pack(np.array([1.0, 2.0])),
        "std": [0.5, 0.5],
    }
    assert observation_rows(stored) == [
        {"name": "y1", "stream": "obs", "offset": 7, "value": 1.0, "std": 0.5},
        {"name": "y2", "stream": "obs", "offset": 7, "value": 2.0, "std": 0.5},
    ]
    rows = innovation_rows(
        {
            "#columns": {
                "name": ["y1"],
                "observed": [2.0],
                "background": pack(np.array([1.5])),
                "expected": [1.0],
                "std": [0.5],
            }
        }
    )
    assert rows == {"y1": {"observed": 2.0, "background": 1.5, "innovation": 0.5, "expected": 1.0, "std": 0.5}}


def test_a_cycle_read_built_directly_is_the_validated_one() -> None:
    values: dict[str, Any] = {
        "id": "as-1",
        "twin": "t",
        "number": 3,
        "method": Method.ETKF,
        "members": 20,
        "seed": 7,
        "tuning": {},
        "valid_time": T0,
        "obs_count": 2,
        "offsets": {"obs": [0, 2]},
        "innovation_mean": 0.1,
        "innovation_rms": 0.2,
        "expected_rms": 0.3,
        "spread": 0.4,
        "revision": 5,
        "origin_cycle": None,
        "created_at": T0,
        "innovations": None,
        "observations": None,
        "analysis": None,
        "provenance": None,
    }
    direct = _read(dict(values))
    assert direct.model_dump(mode="json") == CycleRead.model_validate(values).model_dump(mode="json")
    assert set(values) == set(CycleRead.model_fields)


@pytest.mark.parametrize("inflation", [1.0, 1.07])
def test_the_plain_etkf_path_is_the_etkf(inflation: float) -> None:
    rng = np.random.default_rng(5)
    members, observed = rng.normal(size=(12, 6)), rng.normal(size=(12, 1))
    columns, y, variances = np.array([0, 2, 6]), rng.normal(size=3), np.array([0.5, 1.0, 2.0])
    bg = Background(members, observed, y, variances, columns, np.arange(7.0), np.arange(3.0))
    got = analyse(bg, "etkf", worker_side._Knobs({"inflation": inflation}), np.random.default_rng(0))
    Z = np.hstack([members, observed])
    H = np.zeros((3, 7))
    H[np.arange(3), columns] = 1.0
    assert np.allclose(got.members, etkf(Z, y, H, variances, inflation=inflation)[:, :6], atol=1e-12)
    assert np.allclose(got.background_mean, Z[:, columns].mean(axis=0))
    assert np.allclose(got.expected, np.sqrt(Z[:, columns].var(axis=0, ddof=1) + variances))
    bad = Background(
        np.where(np.eye(12, 6) > 0, np.nan, members), observed, y, variances, columns, np.arange(7.0), np.arange(3.0)
    )
    with pytest.raises(ValueError, match="NaN"):
        analyse(bad, "etkf", worker_side._Knobs({"inflation": inflation}), np.random.default_rng(0))
