"""The plain parts of the assimilation service: records grouped into observation times (offsets, forcing, late
records), the analysis by state augmentation against the filters with the operator as a callable, and the
worker-side advance of members (numbers checked, noise added)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from twinengine.assimilation import etkf
from twinengine.catalog.assimilation_spec import AssimilationSpec, Method, Tuning
from twinengine.twin_assimilation import worker_side
from twinengine.twin_assimilation.analysis import Background, analyse
from twinengine.twin_assimilation.observations import next_time, pending_times

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SPEC = AssimilationSpec.model_validate({
    "state": ["storage"], "step": {"entrypoint": "pkg.mod:step", "dt": "15min", "forcing": {"rain": "rain"}},
    "observations": {"level": {"operator": "pkg.mod:level", "error": 0.05}}})


def _record(offset: int, minutes: int, *, rain: float | None = None, level: float | None = None) -> dict[str, Any]:
    return {"_offset": offset, "time": T0 + timedelta(minutes=minutes), "rain": rain, "level": level}


def test_records_become_observation_times_in_offset_order() -> None:
    records = [_record(0, 0, rain=1.0), _record(1, 15, rain=2.0, level=1.1), _record(2, 15, level=1.2),
               _record(3, 30, rain=0.0), _record(4, 45, level=1.3)]
    first = next_time(SPEC, records, "time", None, 0)
    assert first is not None and first.time == T0 + timedelta(minutes=15)
    assert [(r.name, r.value, r.offset) for r in first.readings] == [("level", 1.1, 1), ("level", 1.2, 2)]
    assert [f for _t, f in first.forcing] == [{"rain": 1.0}, {"rain": 2.0}] and (first.first, first.end) == (0, 3)
    second = next_time(SPEC, records, "time", first.time, first.end)
    assert second is not None and second.time == T0 + timedelta(minutes=45) and (second.first, second.end) == (3, 5)
    assert second.forcing == [(T0 + timedelta(minutes=30), {"rain": 0.0})]
    assert next_time(SPEC, records, "time", second.time, second.end) is None
    assert pending_times(SPEC, records, "time", None, 0) == 2


def test_late_records_are_passed_over() -> None:
    records = [_record(5, 0, level=1.0), _record(6, 60, level=2.0)]
    got = next_time(SPEC, records, "time", T0 + timedelta(minutes=30), 5)
    assert got is not None and got.time == T0 + timedelta(minutes=60) and got.late == 1 and got.end == 7


def test_augmentation_gives_the_filter_with_the_operator_as_a_callable() -> None:
    rng = np.random.default_rng(1)
    members = 30 + 5 * rng.standard_normal((20, 1))

    def level(x: np.ndarray) -> np.ndarray:
        return np.asarray(0.2 + (x / 6 * 120 / 3.6 / 18) ** (1 / 1.6), dtype=float)

    observed = level(members)
    y, var = np.array([2.0]), np.array([0.05**2])
    bg = Background(members, observed, y, var, np.array([1]), np.array([0.0, 0.0]), np.array([0.0]))
    got = analyse(bg, Method.ETKF, Tuning(), np.random.default_rng(2))
    # the ETKF on the augmented state equals the ETKF whose operator is the function, on the state alone
    Z = etkf(np.hstack([members, observed]), y, np.array([[0.0, 1.0]]), var)
    direct = etkf(members, y, lambda x: level(x), var)
    np.testing.assert_allclose(got.members, Z[:, :1], atol=1e-12)
    np.testing.assert_allclose(got.members, direct, atol=1e-9)
    assert got.background_mean[0] == pytest.approx(float(observed.mean()))
    assert got.expected[0] == pytest.approx(float(np.sqrt(observed.var(ddof=1) + var[0])))


def test_3dvar_moves_every_member_by_the_same_increment() -> None:
    members = np.array([[1.0, 2.0], [3.0, 2.5], [2.0, 1.5]])
    bg = Background(members, np.zeros((3, 0)), np.array([4.0]), np.array([1.0]), np.array([0]), np.array([0.0, 1.0]),
                    np.array([0.0]))
    got = analyse(bg, Method.THREE_DVAR, Tuning(background_std=1.0), np.random.default_rng(0))
    shift = got.members - members
    assert np.allclose(shift, shift[0]) and shift[0, 0] == pytest.approx((4.0 - 2.0) / 2) and shift[0, 1] == 0


def test_the_worker_side_advance_checks_what_the_app_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    def step(state: dict[str, float], parameters: dict[str, Any], forcing: dict[str, float],
             dt: float) -> dict[str, float]:
        return {"s": state["s"] + forcing.get("rain", 0.0) * dt}

    def bad(state: dict[str, float], parameters: dict[str, Any], forcing: dict[str, float], dt: float) -> Any:
        return {"s": float("nan")}

    found = {"m:step": step, "m:bad": bad, "m:obs": lambda state, parameters: 2 * state["s"]}
    monkeypatch.setattr(worker_side, "_resolve", lambda entrypoint: found[entrypoint])
    got = worker_side.advance(step="m:step", names=["s"], members=[[1.0], [2.0]], parameters={},
                                forcing=[{"rain": 1.0}, {}], dt=2.0, noise=[[[0.5], [0.0]], [[0.0], [0.0]]],
                                operators={"o": "m:obs"}, errors={})
    assert got["members"] == [[3.5], [4.0]] and got["observed"] == {"o": [7.0, 8.0]}
    with pytest.raises(ValueError, match="not a finite number"):
        worker_side.advance(step="m:bad", names=["s"], members=[[1.0]], parameters={}, forcing=[{}], dt=1.0,
                              noise=[[[0.0]]], operators={}, errors={})
