"""SPI and SPEI: the closed form of the drought frequency, the gamma fit against scipy's maximum likelihood,
and both indices against climate-indices (the reference implementation; in the app's environment)."""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np
import pytest
from climate_impacts.generator import generate
from climate_impacts.readers import daily_weather
from climate_impacts.standardized import (
    expected_frequency,
    expected_frequency_given_fit,
    fit_gamma,
    monthly_sums,
    spei,
    spi,
    spi_fits,
)
from scipy import stats


def test_closed_form_of_the_drought_frequency() -> None:
    got = [expected_frequency(s, 2.0) for s in (1.0, 0.9, 0.8, 0.7)]
    assert np.allclose(got, [0.1587, 0.1866, 0.2223, 0.2687], atol=5e-4)
    assert abs(expected_frequency(1.0, 2.0, 0.05) - 0.1587) < 5e-4               # SPI's own definition
    assert expected_frequency(0.8, 2.0, 0.05) < expected_frequency(0.8, 2.0)     # less rain leaves zeros at zero
    assert expected_frequency(1.0, 2.0, 0.2) == 0.0                             # a dry month scores above -1


def test_gamma_fit_is_scipys_maximum_likelihood_with_the_location_at_zero() -> None:
    x = np.random.default_rng(1).gamma(2.0, 25.0, size=(30, 6))
    shape, scale = fit_gamma(x)
    for j in range(6):
        a, _loc, b = stats.gamma.fit(x[:, j], floc=0)
        assert abs(shape[j] - a) < 1e-6 * a and abs(scale[j] - b) < 1e-6 * b


def test_frequency_with_dry_months_matches_the_closed_form_given_the_fit() -> None:
    """Monthly rain with dry Julys: the share of SPI-1 <= -1 over many scaled years is the closed form of the
    fitted calibration, cell by cell (binomial 4-sigma bound)."""
    rng = np.random.default_rng(7)
    years, cells, p0, s = 30, 400, 0.1, 0.8
    base = np.where(rng.random((years, cells)) < p0, 0.0, rng.gamma(2.0, 6.0, (years, cells)))
    later = s * np.where(rng.random((200, cells)) < p0, 0.0, rng.gamma(2.0, 6.0, (200, cells)))
    monthly = np.zeros(((years + 200) * 12, cells, 1)) + 50.0
    monthly[6::12, :, 0] = np.concatenate([base, later])
    z = spi(monthly, 1, 2000, (2000, 2000 + years - 1))[6::12][years:, :, 0]
    fit = [f[:, 0] for f in spi_fits(monthly, 1, 2000, (2000, 2000 + years - 1))[6]]
    expected = expected_frequency_given_fit(tuple(fit), s, 2.0, 6.0, p0)
    observed = np.mean(z <= -1, axis=0)
    assert abs(observed.mean() - expected.mean()) < 4 * np.sqrt(expected.mean() / (200 * cells))


@pytest.fixture(scope="module")
def rain_and_pet() -> tuple[np.ndarray, np.ndarray]:
    w = daily_weather(generate({"years": 10, "baseline_years": 30, "grid_cells": 6, "rain_factor": 0.8,
                                "warming_k": 2.0}, member=3).data)
    rain, _months = monthly_sums(w.pr, w.time)
    ci = _climate_indices()
    tmean = monthly_sums(w.tmean, w.time)[0] / np.unique(w.time.astype("datetime64[M]"), return_counts=True)[1][
        :, None, None]
    with np.errstate(all="ignore"):
        pet = ci.pet(tmean, np.broadcast_to(w.lat[:, None], tmean.shape[1:]), 2001, spatial_time_major=True)
    return rain, np.asarray(pet)


def _climate_indices():  # type: ignore[no-untyped-def]
    os.environ.setdefault("CLIMATE_INDICES_LOG_LEVEL", "WARNING")
    indices = pytest.importorskip("climate_indices.indices")
    logging.getLogger("climate_indices").setLevel(logging.WARNING)
    return indices


@pytest.mark.parametrize("scale", [1, 3, 6, 12])
def test_spi_agrees_with_climate_indices(rain_and_pet: tuple[np.ndarray, np.ndarray], scale: int) -> None:
    """Within 0.02 at every cell and month (gamma, location 0, the same calibration years)."""
    ci = _climate_indices()
    from climate_indices import compute

    rain, _pet = rain_and_pet
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ref = ci.spi(rain, scale, ci.Distribution.gamma, 2001, 2001, 2030, compute.Periodicity.monthly,
                     spatial_time_major=True)
    ours = spi(rain, scale, 2001, (2001, 2030))
    both = np.isfinite(ref) & np.isfinite(ours)
    assert both.sum() == np.isfinite(ours).sum() > 0.9 * ours.size
    assert np.max(np.abs(ref[both] - ours[both])) < 0.02


def test_spei_agrees_with_climate_indices(rain_and_pet: tuple[np.ndarray, np.ndarray]) -> None:
    """The generalised logistic by L-moments, as climate-indices (and the SPEI package) fit it."""
    ci = _climate_indices()
    from climate_indices import compute

    rain, pet = rain_and_pet
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ref = ci.spei(rain, pet, 3, ci.Distribution.loglogistic, compute.Periodicity.monthly, 2001, 2001, 2030,
                      spatial_time_major=True)
    ours = spei(rain - pet, 3, 2001, (2001, 2030))
    both = np.isfinite(ref) & np.isfinite(ours)
    assert both.sum() > 0.9 * ours.size
    assert np.max(np.abs(ref[both] - ours[both])) < 0.05
