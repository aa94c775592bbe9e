"""The well field's aquifer model: its exponential integral against scipy's, and Theis drawdown against the
Cooper-Jacob straight line where that approximation holds (u below 0.01)."""

from __future__ import annotations

import math

import pytest
from scipy.special import exp1 as scipy_exp1

from helpers import REPO


@pytest.fixture
def aquifer(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(REPO / "examples" / "apps" / "well-field"))
    from well_field import aquifer

    return aquifer


@pytest.mark.parametrize("u", [1e-9, 1e-4, 0.3, 0.999, 1.0, 1.7, 8.0, 60.0])
def test_the_well_function_is_the_exponential_integral(aquifer, u: float) -> None:  # type: ignore[no-untyped-def]
    assert aquifer.exp1(u) == pytest.approx(float(scipy_exp1(u)), rel=1e-12)


def test_late_drawdown_follows_cooper_jacob_and_a_pump_stop_recovers(aquifer) -> None:  # type: ignore[no-untyped-def]
    T, S, Q, r, t = 300.0, 2e-4, 1200.0, 25.0, 3.0
    jacob = Q / (4 * math.pi * T) * math.log(2.25 * T * t / (r * r * S))
    assert aquifer.theis_drawdown(r, t, Q, T, S) == pytest.approx(jacob, rel=1e-3)
    days = [0, 1, 5, 6]
    times = [f"2026-05-{4 + d:02d}T00:00:00+00:00" for d in days]
    got = aquifer.heads({"T": T, "S": S, "static_head": 50.0},
                        {"time": times, "distance": [r] * 4, "rate": [Q, Q, 0.0, None]})
    assert got[0] == 50.0 and got[1] == pytest.approx(50.0 - aquifer.theis_drawdown(r, 1.0, Q, T, S))
    assert got[2] == pytest.approx(50.0 - aquifer.theis_drawdown(r, 5.0, Q, T, S))  # stopped as it was read
    recovering = aquifer.theis_drawdown(r, 6.0, Q, T, S) - aquifer.theis_drawdown(r, 1.0, Q, T, S)
    assert 50.0 - got[3] == pytest.approx(recovering) and got[3] > got[2]  # the stop superposed: recovery
