"""Trends: the OLS slope and the ensemble's interval on known cases, and the planted trends' closed forms."""

from __future__ import annotations

import math

import numpy as np
from climate_extremes.trends import confidence_interval, index_trends, planted_trends, slope_per_decade


def test_slope_of_a_line() -> None:
    years = np.arange(2021, 2041)
    assert math.isclose(slope_per_decade(years, 3.0 + 0.25 * years), 2.5)
    got = index_trends({"years": list(years), "rx1day": list(30 * np.exp(0.004 * (years - 2021))),
                        "tx90p": list(36.5 + 0.5 * (years - 2021))})
    assert math.isclose(got["rx1day_trend"], 4.0, abs_tol=1e-4) and math.isclose(got["tx90p_trend"], 5.0)


def test_planted_trends_grow_with_warming_and_vanish_without() -> None:
    none = planted_trends({"warming_k_per_decade": 0.0})
    assert none["rx1day_trend"] == 0.0
    assert abs(none["tx90p_trend"]) < 0.02  # leap years hold a tenth of a hot day more, nothing else
    low, high = planted_trends({"warming_k_per_decade": 0.15}), planted_trends({"warming_k_per_decade": 0.7})
    assert 0 < low["tx90p_trend"] < high["tx90p_trend"]
    # small warming: d(count)/dT = 365.25 * phi(z90) / sigma days per K, times the rate
    assert math.isclose(low["tx90p_trend"], 365.25 * 0.17550 / 3.0 * 0.15, rel_tol=0.08)
    # rx1day: log(1 + alpha dT) is nearly alpha dT: 7 % per K times the rate
    assert math.isclose(high["rx1day_trend"], 7.0 * 0.7, rel_tol=0.06)


def test_confidence_interval() -> None:
    mean, _low, high = confidence_interval([1.0, 2.0, 3.0], level=0.95)
    assert mean == 2.0 and math.isclose(high - mean, 4.302653 * 1.0 / math.sqrt(3), rel_tol=1e-6)
    assert confidence_interval([1.0])[1] == -math.inf
