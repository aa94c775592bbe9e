"""Standardised drought indices on a monthly grid, every cell and calendar month fitted in one pass:

- **SPI** (McKee et al. 1993): rain summed over ``scale`` months, a gamma distribution fitted per calendar
  month to the calibration years by maximum likelihood with the location fixed at 0 (Newton's method on
  ``log a - digamma(a) = log(mean) - mean(log)``, started from Thom's approximation), the share of dry months
  ``p0`` mixed in, ``SPI = Φ⁻¹(p0 + (1 - p0) G(x))``, a dry month at ``Φ⁻¹(p0)``; clipped to ±3.09 as NOAA's
  reference implementation does.
- **SPEI** (Vicente-Serrano et al. 2010): the climatic water balance ``P - PET`` (Thornthwaite's PET) summed
  over ``scale`` months, a generalised logistic distribution (the "log-logistic" of the SPEI package, in
  Hosking's parametrisation) fitted per calendar month by L-moments.

The closed form of the frequency of ``SPI-1 <= -1`` in a scenario that scales the baseline's rain by ``s`` is
here too (``expected_frequency``): ``p0 + (1 - p0) G(q / s)``, with ``q`` the baseline's quantile at Φ(-1).
A calibration of n years moves it: the fitted quantile ``q̂`` scatters around ``q`` and the true chance of
falling below it, ``G(q̂ / s)``, is convex in it, so SPI from a 30-year fit finds about 0.012 more dry months
than the true distribution would (shape 2). ``expected_frequency_given_fit`` is the closed form for the fitted
``q̂`` of each cell and month, what a correct pipeline must reproduce up to the scenario's own sampling.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = ["SPI_LIMIT", "accumulate", "expected_frequency", "expected_frequency_given_fit", "fit_gamma",
           "monthly_means", "monthly_sums", "spei", "spi", "spi_fits"]

SPI_LIMIT = 3.09


def monthly_sums(daily: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calendar-month sums of daily values (time first) and the months' first days (``datetime64[M]``)."""
    months = np.asarray(time).astype("datetime64[M]")
    starts = np.flatnonzero(np.r_[True, months[1:] != months[:-1]])
    return np.add.reduceat(daily, starts, axis=0), months[starts]


def monthly_means(daily: np.ndarray, time: np.ndarray) -> np.ndarray:
    sums, _ = monthly_sums(daily, time)
    months = np.asarray(time).astype("datetime64[M]")
    counts = np.unique(months, return_counts=True)[1].reshape(-1, *([1] * (daily.ndim - 1)))
    return sums / counts


def accumulate(values: np.ndarray, scale: int) -> np.ndarray:
    """Running sums over ``scale`` months along axis 0; the first ``scale - 1`` months are NaN."""
    out = np.full(values.shape, np.nan)
    csum = np.cumsum(values, axis=0)
    out[scale - 1:] = csum[scale - 1:] - np.concatenate([np.zeros((1, *values.shape[1:])), csum[:-scale]])
    return out


def fit_gamma(x: np.ndarray, axis: int = 0, iterations: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood gamma shape and scale (location 0) of the positive, finite values along ``axis``."""
    x = np.where(np.isfinite(x) & (x > 0), x, np.nan)
    mean = np.nanmean(x, axis=axis)
    a_stat = np.log(mean) - np.nanmean(np.log(x), axis=axis)
    shape = (1 + np.sqrt(1 + 4 * a_stat / 3)) / (4 * a_stat)  # Thom (1958): the start
    for _ in range(iterations):
        f = np.log(shape) - special.digamma(shape) - a_stat
        shape = np.maximum(shape - f / (1 / shape - special.polygamma(1, shape)), 1e-3)
    return shape, mean / shape


def _calibration_rows(n: int, first_year: int, calibration: tuple[int, int]) -> slice:
    start = (calibration[0] - first_year) * 12
    end = (calibration[1] - first_year + 1) * 12
    if start < 0 or end > n:
        raise ValueError(f"calibration years {calibration[0]}-{calibration[1]} are outside the data "
                         f"({first_year}-{first_year + n // 12 - 1})")
    return slice(start, end)


def _gamma_month(cal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One calendar month's fit over the calibration years (axis 0): dry share, gamma shape and scale."""
    valid = np.isfinite(cal)
    p0 = np.sum(valid & (cal <= 0), axis=0) / np.maximum(np.sum(valid, axis=0), 1)
    shape, scale = fit_gamma(cal)
    return p0, shape, scale


def spi_fits(rain: np.ndarray, scale: int, first_year: int,
             calibration: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per calendar month, the (dry share, shape, scale) that ``spi`` fits to the calibration years."""
    acc = accumulate(np.asarray(rain, dtype="float64"), scale)
    rows = _calibration_rows(acc.shape[0], first_year, calibration)
    return [_gamma_month(acc[rows][m::12]) for m in range(12)]


def spi(rain: np.ndarray, scale: int, first_year: int, calibration: tuple[int, int]) -> np.ndarray:
    """SPI of monthly rain (months from January of ``first_year``, time first), calibrated on the years
    ``calibration`` (inclusive)."""
    acc = accumulate(np.asarray(rain, dtype="float64"), scale)
    out = np.full(acc.shape, np.nan)
    for m, (p0, shape, scale_) in enumerate(spi_fits(rain, scale, first_year, calibration)):
        x = acc[m::12]
        prob = p0 + (1 - p0) * special.gammainc(shape, np.maximum(x, 0) / scale_)
        prob = np.where(x > 0, prob, p0)
        z = special.ndtri(np.clip(prob, 1e-12, 1 - 1e-12))
        out[m::12] = np.where(np.isfinite(x), np.clip(z, -SPI_LIMIT, SPI_LIMIT), np.nan)
    return out


def _glo_lmoments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generalised logistic (Hosking): location, scale and shape from the sample L-moments along axis 0."""
    s = np.sort(x, axis=0)
    n = s.shape[0]
    i = np.arange(n, dtype="float64").reshape(-1, *([1] * (x.ndim - 1)))
    b0 = s.mean(axis=0)
    b1 = (i / (n - 1) * s).mean(axis=0)
    b2 = (i * (i - 1) / ((n - 1) * (n - 2)) * s).mean(axis=0)
    l1, l2, l3 = b0, 2 * b1 - b0, 6 * b2 - 6 * b1 + b0
    k = -l3 / l2
    k = np.where(np.abs(k) < 1e-6, 1e-6, k)
    alpha = l2 * np.sin(k * np.pi) / (k * np.pi)
    xi = l1 - alpha * (1 / k - np.pi / np.sin(k * np.pi))
    return xi, alpha, k


def spei(balance: np.ndarray, scale: int, first_year: int, calibration: tuple[int, int]) -> np.ndarray:
    """SPEI of the monthly water balance ``P - PET`` (mm), calibrated on the years ``calibration``."""
    acc = accumulate(np.asarray(balance, dtype="float64"), scale)
    rows = _calibration_rows(acc.shape[0], first_year, calibration)
    out = np.full(acc.shape, np.nan)
    for m in range(12):
        cal = acc[rows][m::12]
        cal = cal[np.all(np.isfinite(cal.reshape(cal.shape[0], -1)), axis=1)]
        xi, alpha, k = _glo_lmoments(cal)
        x = acc[m::12]
        arg = 1 - k * (x - xi) / alpha
        with np.errstate(divide="ignore", invalid="ignore"):
            y = -np.log(arg) / k
        prob = np.where(arg > 0, special.expit(y), np.where(k > 0, 1.0, 0.0))
        z = special.ndtri(np.clip(prob, 1e-12, 1 - 1e-12))
        out[m::12] = np.where(np.isfinite(x), np.clip(z, -SPI_LIMIT, SPI_LIMIT), np.nan)
    return out


def expected_frequency_given_fit(fit: tuple[np.ndarray, np.ndarray, np.ndarray], rain_factor: float,
                                 shape: float, scale: float, dry_probability: float = 0.0,
                                 threshold: float = -1.0) -> np.ndarray:
    """The chance, per cell, that a month of the true distribution (gamma ``shape``, ``scale``, dry share
    ``dry_probability``) scaled by ``rain_factor`` gets an SPI at most ``threshold`` from the *fitted*
    calibration ``fit`` (dry share, shape, scale): the closed form with the calibration's sampling error in."""
    p0_fit, a_fit, b_fit = fit
    target = float(special.ndtr(threshold))
    wet_level = np.clip((target - p0_fit) / np.maximum(1 - p0_fit, 1e-12), 0.0, 1.0)
    q = stats.gamma.ppf(wet_level, a_fit) * b_fit
    dry_counts = np.where(p0_fit <= target, float(dry_probability), 0.0)
    return dry_counts + (1 - float(dry_probability)) * stats.gamma.cdf(q / (float(rain_factor) * scale), shape)


def expected_frequency(rain_factor: float, shape: float, dry_probability: float = 0.0,
                       threshold: float = -1.0) -> float:
    """The chance that SPI-1 (calibrated on the unscaled rain) is at most ``threshold`` once every amount is
    scaled by ``rain_factor``: ``p0 + (1 - p0) G(q / s)``, ``q`` the quantile where the baseline's mixture
    reaches Φ(threshold). The gamma's scale drops out. Shape 2, no dry months, s = 1, 0.9, 0.8, 0.7:
    0.159, 0.187, 0.222, 0.269."""
    p0, target = float(dry_probability), float(special.ndtr(threshold))
    if p0 >= target:  # a dry month's SPI, Φ⁻¹(p0), is above the threshold: only the mixture's wet part counts
        return 0.0
    q = stats.gamma.ppf((target - p0) / (1 - p0), shape)
    return float(p0 + (1 - p0) * stats.gamma.cdf(q / float(rain_factor), shape))
