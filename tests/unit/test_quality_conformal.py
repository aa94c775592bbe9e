"""Split-conformal intervals: the quantile formula, MAPIE's definition, and coverage on a known problem."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twinengine.quality.conformal import ConformalInterval, calibrate, coverage


def test_half_width_is_the_corrected_quantile_of_the_residuals() -> None:
    residuals = np.arange(1.0, 20.0)  # 19 residuals: k = ceil(20 * 0.9) = 18
    interval = calibrate(np.zeros(19), residuals, level=0.9)
    assert interval.half_width == 18.0 and interval.n == 19
    assert math.isinf(calibrate(np.zeros(5), np.ones(5), level=0.9).half_width)  # ceil(6 * .9) = 6 > 5
    assert ConformalInterval.from_dict(interval.to_dict()) == interval


def test_half_width_matches_mapie() -> None:
    mapie = pytest.importorskip("mapie.regression")
    from sklearn.dummy import DummyRegressor

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 1)), rng.standard_normal(200)
    model = DummyRegressor(strategy="constant", constant=0.0).fit(x, y)
    regressor = mapie.SplitConformalRegressor(model, confidence_level=0.9, prefit=True)
    regressor.conformalize(x, y)
    _, bounds = regressor.predict_interval(x[:1])
    ours = calibrate(model.predict(x), y, level=0.9)
    assert bounds[0, 1, 0] == pytest.approx(ours.half_width)


def test_ninety_percent_intervals_cover_about_ninety_percent() -> None:
    """A linear model with heavy-tailed noise: over many held-out points, coverage is within 88-92 %."""
    rng = np.random.default_rng(42)
    covered = []
    for _ in range(200):
        x = rng.uniform(-2, 2, 600)
        y = 1.5 * x + rng.standard_t(4, 600)
        slope = np.polyfit(x[:200], y[:200], 1)  # trained on its own data
        predicted = np.polyval(slope, x)
        interval = calibrate(predicted[200:400], y[200:400], level=0.9)
        covered.append(coverage(interval, predicted[400:], y[400:]))
    assert 0.88 <= float(np.mean(covered)) <= 0.92


def test_scaled_intervals_cover_about_ninety_percent_and_follow_the_spread() -> None:
    """Noise whose size the spread knows (heteroscedastic): mean ± q·s covers 88-92 % of held-out points over
    many repetitions, and is narrow where the noise is small, which one half-width cannot be."""
    from twinengine.quality.conformal import calibrate_scaled, coverage_scaled

    rng = np.random.default_rng(7)
    covered, narrow, wide = [], [], []
    for _ in range(200):
        spread = rng.uniform(0.1, 2.0, 400)
        y = rng.standard_normal(400) * spread  # the prediction is 0, the spread the noise's size (up to a factor)
        interval = calibrate_scaled(np.zeros(200), 1.7 * spread[:200], y[:200], level=0.9)
        covered.append(coverage_scaled(interval, np.zeros(200), 1.7 * spread[200:], y[200:]))
        lower, upper = interval.bounds(np.zeros(200), 1.7 * spread[200:])
        small = spread[200:] < 0.5
        narrow.append(float(np.mean((upper - lower)[small])))
        wide.append(float(np.mean((upper - lower)[~small])))
    assert 0.88 <= float(np.mean(covered)) <= 0.92
    assert np.mean(narrow) < 0.4 * np.mean(wide)


def test_a_scaled_interval_needs_enough_points_and_a_level() -> None:
    from twinengine.quality.conformal import calibrate_scaled

    assert math.isinf(calibrate_scaled(np.zeros(5), np.ones(5), np.ones(5), level=0.9).scale)
    assert calibrate_scaled(np.zeros(3), np.zeros(3), np.ones(3), level=0.5).floor == 1.0  # no spread: unit floor
    with pytest.raises(ValueError, match="level"):
        calibrate_scaled(np.zeros(3), np.ones(3), np.ones(3), level=1.0)
