"""Cycles in batches: the worker-side run of many cycles gives, cycle for cycle, exactly what one cycle per
call gives (the same seed, the same inputs), a failing cycle keeps the ones before it, a malformed answer is
refused, the revision values built without ``validate_write`` are the ones it builds, and the backlog counted
on Arrow columns is the one counted on records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from twinengine.assimilation.reference_models import lorenz96_step
from twinengine.auth.principal import Principal, Role
from twinengine.catalog.assimilation_spec import AssimilationSpec, Method
from twinengine.catalog.manifest import Manifest
from twinengine.twin_assimilation import worker_side
from twinengine.twin_assimilation.answer import malformed
from twinengine.twin_assimilation.backlog import usable, window
from twinengine.twin_assimilation.observations import ObservationTime, next_time, pending_times
from twinengine.twin_assimilation.plan import Planned
from twinengine.twin_assimilation.record import Batch, statistics, values_of
from twinengine.twins.models import Twin

N, n = 10, 6
NAMES = [f"x[{i}]" for i in range(n)]


def _step(state: dict[str, float], parameters: dict[str, Any], forcing: dict[str, float],
          dt: float) -> dict[str, float]:
    x = lorenz96_step(np.array([state[k] for k in NAMES]), dt=0.05, forcing=8.0)
    return dict(zip(NAMES, x.tolist(), strict=True))


def _plan(numbers: range, y: np.ndarray) -> list[dict[str, Any]]:
    return [{"number": k, "forcing": [{}] if k > 1 else [], "columns": np.arange(0, n, 2),
             "values": y[k - 1], "sd": np.ones(n // 2), "positions": np.arange(0, n, 2, dtype=float), "errors": []}
            for k in numbers]


def _array_step(x: np.ndarray, parameters: dict[str, Any], forcing: dict[str, float], dt: float) -> np.ndarray:
    return lorenz96_step(x, dt=0.05, forcing=8.0)


def _run(monkeypatch: pytest.MonkeyPatch, plan: list[dict[str, Any]], members: np.ndarray,
         method: str = "etkf", step: Any = _step, log_weights: np.ndarray | None = None, form: str = "mapping",
         noise: float = 0.01) -> dict[str, Any]:
    monkeypatch.setattr(worker_side, "_resolve", lambda entrypoint: step)
    return worker_side.cycles(
        step="m:step", names=NAMES, parameters={}, dt=180.0, operators={}, members=members, log_weights=log_weights,
        method=method, tuning={"inflation": 1.05, "rotate": True}, seed=7, noise_std=np.full(n, noise),
        lower=np.full(n, -np.inf), upper=np.full(n, np.inf), coords=np.arange(n, dtype=float), plan=plan, form=form)


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_a_step_in_array_form_gives_what_the_same_step_as_a_mapping_gives(monkeypatch: pytest.MonkeyPatch,
                                                                           noise: float) -> None:
    """``state_form: array`` hands the step the member as an array in the state's order (no mapping per member
    and step); the analyses are the same, with or without model noise."""
    rng = np.random.default_rng(4)
    start, y = 8.0 + rng.standard_normal((N, n)), 8.0 + rng.standard_normal((6, n // 2))
    mapped = _run(monkeypatch, _plan(range(1, 7), y), start, noise=noise)
    arrayed = _run(monkeypatch, _plan(range(1, 7), y), start, step=_array_step, form="array", noise=noise)
    assert mapped["error"] is None and arrayed["error"] is None
    np.testing.assert_array_equal(arrayed["members"], mapped["members"])


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_a_step_of_the_whole_ensemble_gives_what_the_step_of_each_member_gives(monkeypatch: pytest.MonkeyPatch,
                                                                               noise: float) -> None:
    """``state_form: ensemble`` hands the step every member at once, an (N, n) array (one call a step for the
    whole ensemble, where a member at a time cost a call each); the analyses are the same."""
    rng = np.random.default_rng(5)
    start, y = 8.0 + rng.standard_normal((N, n)), 8.0 + rng.standard_normal((6, n // 2))
    calls: list[tuple[int, ...]] = []

    def whole(x: np.ndarray, *_: Any) -> np.ndarray:
        calls.append(x.shape)
        return _array_step(x, {}, {}, 180.0)

    mapped = _run(monkeypatch, _plan(range(1, 7), y), start, noise=noise)
    together = _run(monkeypatch, _plan(range(1, 7), y), start, step=whole, form="ensemble", noise=noise)
    assert mapped["error"] is None and together["error"] is None
    np.testing.assert_allclose(together["members"], mapped["members"], rtol=1e-12, atol=1e-12)
    assert calls == [(N, n)] * 5  # one call per model step (cycle 1 has none in this plan)


@pytest.mark.parametrize(("answer", "says"), [(lambda x: x[:, :-1], f"shape ({N}, 5), not ({N}, 6)"),
                                              (lambda x: x[0], f"shape (6,), not ({N}, 6)"),
                                              (lambda x: [[0.0]], "shape (1, 1)"),
                                              (lambda x: {"x[0]": 1.0}, "not an array of the ensemble"),
                                              (lambda x: x * np.nan, "not a finite number")])
def test_an_ensemble_step_that_answers_wrongly_is_named(monkeypatch: pytest.MonkeyPatch, answer: Any,
                                                        says: str) -> None:
    got = _run(monkeypatch, _plan(range(1, 3), np.zeros((2, n // 2))), 8.0 + np.zeros((N, n)),
               step=lambda x, *_: answer(x), form="ensemble")
    assert got["error"]["where"] == "step" and says in got["error"]["message"], got["error"]


@pytest.mark.parametrize(("answer", "says"), [(lambda x: x[:-1], "shape (5,), not (6,)"),
                                              (lambda x: {"x[0]": 1.0}, "not an array of the state"),
                                              (lambda x: x * np.nan, "not a finite number")])
def test_an_array_step_that_answers_wrongly_is_named(monkeypatch: pytest.MonkeyPatch, answer: Any, says: str) -> None:
    got = _run(monkeypatch, _plan(range(1, 3), np.zeros((2, n // 2))), 8.0 + np.zeros((N, n)),
               step=lambda x, *_: answer(x), form="array")
    assert got["error"]["where"] == "step" and says in got["error"]["message"], got["error"]


@pytest.mark.parametrize("method", ["etkf", "enkf", "pf"])
def test_one_call_of_many_cycles_equals_one_call_per_cycle(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    rng = np.random.default_rng(3)
    start = 8.0 + rng.standard_normal((N, n))
    y = 8.0 + rng.standard_normal((12, n // 2))
    batched = _run(monkeypatch, _plan(range(1, 13), y), start, method)
    members, weights, single = start, None, []
    for k in range(1, 13):  # as the service goes on from a kept cycle: its members and (particles) weights
        got = _run(monkeypatch, _plan(range(k, k + 1), y), members, method, log_weights=weights)
        single.append(got)
        members, weights = got["members"][-1], got["log_weights"][-1]
    assert batched["error"] is None and batched["members"].shape == (12, N, n)
    np.testing.assert_array_equal(batched["members"], np.stack([g["members"][0] for g in single]))
    np.testing.assert_array_equal(batched["obs"], np.concatenate([g["obs"] for g in single]))
    assert batched["ess"] == [g["ess"][0] for g in single]
    for a, b in zip(batched["log_weights"], [g["log_weights"][0] for g in single], strict=True):
        assert (a is None and b is None) or np.array_equal(a, b)
    assert not np.array_equal(batched["members"][0], batched["members"][1])  # the cycles did move the members


def test_parts_sent_as_the_cycles_go_add_up_to_the_whole_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``part``, the cycles done go to the engine in parts while the next ones run (here every cycle
    would be late: ``part_seconds`` 0), shrinking at the end, from a plan still arriving (an iterator with
    its ``count``); parts and answer together are the answer of one call without parts."""
    rng = np.random.default_rng(5)
    start, y = 8.0 + rng.standard_normal((N, n)), 8.0 + rng.standard_normal((40, n // 2))
    whole = _run(monkeypatch, _plan(range(1, 41), y), start)
    parts: list[dict[str, Any]] = []
    monkeypatch.setattr(worker_side, "_resolve", lambda entrypoint: _step)
    last = worker_side.cycles(
        step="m:step", names=NAMES, parameters={}, dt=180.0, operators={}, members=start, log_weights=None,
        method="etkf", tuning={"inflation": 1.05, "rotate": True}, seed=7, noise_std=np.full(n, 0.01),
        lower=np.full(n, -np.inf), upper=np.full(n, np.inf), coords=np.arange(n, dtype=float),
        plan=iter(_plan(range(1, 41), y)), count=40, part=parts.append, part_seconds=3600.0)
    sizes = [p["members"].shape[0] for p in parts]
    assert sizes == [20, 10, 5, 3, 1] and last["members"].shape[0] == 1  # as many as are left, then the answer
    assert all(p["error"] is None and malformed(p, [n // 2] * len(p["ess"]), (N, n)) is None for p in parts)
    np.testing.assert_array_equal(np.concatenate([p["members"] for p in [*parts, last]]), whole["members"])
    np.testing.assert_array_equal(np.concatenate([p["obs"] for p in [*parts, last]]), whole["obs"])
    timed: list[dict[str, Any]] = []
    worker_side.cycles(
        step="m:step", names=NAMES, parameters={}, dt=180.0, operators={}, members=start, log_weights=None,
        method="etkf", tuning={"inflation": 1.05, "rotate": True}, seed=7, noise_std=np.full(n, 0.01),
        lower=np.full(n, -np.inf), upper=np.full(n, np.inf), coords=np.arange(n, dtype=float),
        plan=_plan(range(1, 41), y), part=timed.append, part_seconds=0.0)
    assert [p["members"].shape[0] for p in timed] == [1] * 39  # every cycle is late: a part each, the last answered
    sized: list[dict[str, Any]] = []
    last = worker_side.cycles(
        step="m:step", names=NAMES, parameters={}, dt=180.0, operators={}, members=start, log_weights=None,
        method="etkf", tuning={"inflation": 1.05, "rotate": True}, seed=7, noise_std=np.full(n, 0.01),
        lower=np.full(n, -np.inf), upper=np.full(n, np.inf), coords=np.arange(n, dtype=float),
        plan=_plan(range(1, 41), y), part=sized.append, part_seconds=3600.0, part_bytes=3 * start.nbytes)
    assert [p["members"].shape[0] for p in sized] == [3] * 12 + [2, 1]  # 3 ensembles' bytes, then as many as are left
    np.testing.assert_array_equal(np.concatenate([p["members"] for p in [*sized, last]]), whole["members"])


def test_a_failing_cycle_keeps_the_ones_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}

    def tired(state: dict[str, float], parameters: dict[str, Any], forcing: dict[str, float],
              dt: float) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] > 2 * N:  # the third cycle's steps
            raise RuntimeError("the model gave up")
        return _step(state, parameters, forcing, dt)

    y = np.zeros((5, n // 2))
    got = _run(monkeypatch, _plan(range(1, 6), y), 8.0 + np.random.default_rng(1).standard_normal((N, n)),
               step=tired)
    assert got["members"].shape == (3, N, n) and got["error"]["where"] == "step"
    assert "RuntimeError: the model gave up" in got["error"]["line"]
    assert malformed(got, [n // 2] * 5, (N, n)) is None


def test_a_malformed_answer_is_named() -> None:
    good = {"members": np.zeros((2, N, n)), "log_weights": [None, None], "obs": np.zeros((6, 3)), "ess": [None, None],
            "error": None}
    assert malformed(good, [3, 3], (N, n)) is None
    assert "members" in str(malformed({**good, "members": np.zeros((2, N, n + 1))}, [3, 3], (N, n)))
    assert "obs" in str(malformed({**good, "obs": np.zeros((5, 3))}, [3, 3], (N, n)))
    assert "no error" in str(malformed(good, [3, 3, 3], (N, n)))
    assert "log_weights" in str(malformed({**good, "log_weights": [np.zeros(N + 1), None]}, [3, 3], (N, n)))
    assert malformed([1, 2], [3], (N, n)) is not None


def test_values_built_directly_are_the_ones_validate_write_builds() -> None:
    manifest = Manifest.model_validate({
        "manifest_version": 1, "name": "ring", "version": "0.1.0", "package": "ring", "title": "Ring",
        "domain": "physics", "authors": [{"name": "a"}], "license": "MIT",
        "state": {"x": {"type": "number", "key": "i", "unit": "m", "uncertainty": ["std", "quantiles", "members"]},
                  "h": {"type": "number", "uncertainty": ["std"]}},
        "assimilation": {"state": ["x[0]", "x[1]", "h"], "step": {"entrypoint": "ring.model:step", "dt": "1h"},
                         "observations": {"y": {"observes": "x[0]", "error": 1.0}}}})
    assert manifest.assimilation is not None
    batch = Batch(Twin(id="tw-1", name="ring"), manifest, manifest.assimilation,
                  Principal(name="uma", role=Role.USER, issuer="internal"), Method.ETKF, 5, 0)
    when = ObservationTime(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=1), [])
    planned = Planned(1, "obs", when, [], {}, [], [], [], [], [], [], [])
    members = np.random.default_rng(2).standard_normal((3, 5, 3))
    for weights in ([None, None, None], [None, np.log(np.arange(1.0, 6.0)), None]):
        mean, std, q = statistics(members, weights)
        for k in range(3):
            direct = values_of(batch, planned, members[k], mean[k], std[k], q[k], checked=False)
            checked = values_of(batch, planned, members[k], mean[k], std[k], q[k], checked=True)
            assert direct == checked
    assert direct[0].unit == "m" and set(direct[0].uncertainty or {}) == {"std", "quantiles", "members"}
    assert list((direct[2].uncertainty or {}).keys()) == ["std"]


def test_the_backlog_is_counted_on_columns_as_on_records() -> None:
    """``window`` counts the observation times ``pending_times`` counts, and the records it keeps give the
    first cycles exactly as every record does."""
    spec = AssimilationSpec.model_validate({
        "state": ["storage"], "step": {"entrypoint": "pkg.mod:step", "dt": "15min", "forcing": {"rain": "rain"}},
        "observations": {"level": {"operator": "pkg.mod:level", "error": 0.05}}})
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    rng = np.random.default_rng(5)
    for case in range(20):
        records = []
        for offset in range(40):  # forcing-only records, repeated times, late records: in arrival order
            minutes = int(15 * (offset // 2 + rng.integers(-2, 2)))
            level = float(rng.normal()) if rng.random() < 0.6 else None
            rain = float(rng.random()) if rng.random() < 0.5 else None
            records.append({"_offset": offset, "time": t0 + timedelta(minutes=minutes), "rain": rain, "level": level,
                            "_quality": "bad" if rng.random() < 0.1 else "ok"})
        after = None if case % 2 else t0 + timedelta(minutes=15)
        table = usable(pa.Table.from_pylist(records, schema=pa.schema([
            ("_offset", pa.int64()), ("time", pa.timestamp("us", tz="UTC")), ("rain", pa.float64()),
            ("level", pa.float64()), ("_quality", pa.string())])))
        kept = [r for r in records if r["_quality"] != "bad"]
        cycles = int(rng.integers(1, 6))
        total, cut = window(spec, table, "time", after, cycles)
        assert total == pending_times(spec, kept, "time", after, 0)
        whole, part = [], []
        for got, rows in ((whole, kept), (part, table.slice(0, cut).to_pylist())):
            when, start = after, 0
            for _ in range(cycles):
                found = next_time(spec, rows, "time", when, start)
                if found is None:
                    break
                got.append(found)
                when, start = found.time, found.end
        assert part == whole, case


def test_the_spin_up_inflation_holds_for_the_twin_s_first_cycles(monkeypatch: pytest.MonkeyPatch) -> None:
    """``tuning.spin_up``: cycles 1 to ``cycles`` inflate by its inflation, the later ones by the steady one (from
    a poor first guess, a steady inflation small enough for the long run let the ensemble collapse first)."""
    monkeypatch.setattr(worker_side, "_resolve", lambda entrypoint: _step)
    rng = np.random.default_rng(6)
    start, y = 8.0 + rng.standard_normal((N, n)), 8.0 + rng.standard_normal((4, n // 2))

    def cycles(numbers: range, members: np.ndarray, tuning: dict[str, Any]) -> np.ndarray:
        got = worker_side.cycles(
            step="m:step", names=NAMES, parameters={}, dt=180.0, operators={}, members=members, log_weights=None,
            method="etkf", tuning=tuning, seed=7, noise_std=np.zeros(n), lower=np.full(n, -np.inf),
            upper=np.full(n, np.inf), coords=np.arange(n, dtype=float), plan=_plan(numbers, y))
        assert got["error"] is None
        return np.asarray(got["members"])

    spun = cycles(range(1, 5), start, {"inflation": 1.01, "spin_up": {"cycles": 2, "inflation": 1.5}})
    first = cycles(range(1, 3), start, {"inflation": 1.5})
    later = cycles(range(3, 5), first[-1], {"inflation": 1.01})
    np.testing.assert_array_equal(spun, np.concatenate([first, later]))
    assert not np.allclose(spun, cycles(range(1, 5), start, {"inflation": 1.01}))


def test_a_record_keeps_its_observations_as_columns_and_reads_back_either_form() -> None:
    """A cycle record keeps its observations and innovations a list per field (a dictionary per observation
    was most of a Lorenz-96 record's cost); the API reads them back a mapping per observation, as it reads the
    records kept before."""
    from twinengine.twin_assimilation.record import COLUMNS, innovation_rows, observation_rows

    kept = {"name": ["y0", "y1"], "stream": "obs", "offset": [7, 7], "value": [1.5, 2.0], "std": [1.0, 0.5]}
    rows = [{"name": "y0", "stream": "obs", "offset": 7, "value": 1.5, "std": 1.0},
            {"name": "y1", "stream": "obs", "offset": 7, "value": 2.0, "std": 0.5}]
    assert observation_rows(kept) == rows and observation_rows(rows) == rows
    columns = {COLUMNS: {"name": ["y0", "y1"], "observed": [1.5, 2.0], "background": [1.0, 2.5],
                         "expected": [1.2, 1.1], "std": [1.0, 0.5]}}
    mapping = {"y0": {"observed": 1.5, "background": 1.0, "innovation": 0.5, "expected": 1.2, "std": 1.0},
               "y1": {"observed": 2.0, "background": 2.5, "innovation": -0.5, "expected": 1.1, "std": 0.5}}
    assert innovation_rows(columns) == mapping and innovation_rows(mapping) == mapping and innovation_rows({}) == {}
