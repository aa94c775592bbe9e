"""The weather generator's truth: monthly rain has the planted gamma marginal (dry months included), the daily
rain sums to it, the scenario scales it exactly, the planted droughts are what they say, CF metadata."""

from __future__ import annotations

import numpy as np
from climate_impacts.generator import Config, generate, rain_from_latent, true_spi
from climate_impacts.readers import daily_weather
from climate_impacts.standardized import monthly_sums
from scipy import stats

SMALL = {"years": 6, "baseline_years": 10, "grid_cells": 8, "droughts": 1}


def test_monthly_rain_is_the_planted_gamma_mixture() -> None:
    cfg = Config.from_parameters({"dry_month_probability": 0.1})
    z = np.random.default_rng(3).standard_normal((12 * 400, 1, 1))
    moy = np.arange(z.shape[0]) % 12
    rain = rain_from_latent(z, moy, cfg)[:, 0, 0]
    july = rain[moy == 6]
    assert abs(np.mean(july == 0) - 0.1) < 0.045
    wet = july[july > 0] / cfg.scales()[6]
    assert stats.kstest(wet, stats.gamma(2.0).cdf).pvalue > 0.01
    january = rain[moy == 0] / cfg.scales()[0]
    assert np.all(january > 0) and stats.kstest(january, stats.gamma(2.0).cdf).pvalue > 0.01
    # the copula's inverse: the true SPI of an unscaled month is its latent value
    wet_months = ~np.isin(moy, (6, 7))[:, None, None] & (np.abs(z) < 3.09)
    assert np.allclose(true_spi(rain_from_latent(z, moy, cfg), moy, cfg)[wet_months], z[wet_months], atol=1e-6)


def test_daily_rain_sums_to_the_months_and_the_scenario_scales_it() -> None:
    base = generate(SMALL, member=2)
    dry = generate(SMALL | {"rain_factor": 0.7}, member=2)
    w = daily_weather(base.data)
    sums, months = monthly_sums(w.pr, w.time)
    assert len(months) == 16 * 12 and np.allclose(sums, base.monthly_rain, rtol=1e-5, atol=1e-3)
    first = 10 * 12
    assert np.allclose(dry.monthly_rain[:first], base.monthly_rain[:first])  # the baseline is unscaled
    assert np.allclose(dry.monthly_rain[first:], 0.7 * base.monthly_rain[first:])
    tmax = daily_weather(generate(SMALL | {"warming_k": 2.0}, member=2).data).tmax
    assert np.allclose(tmax[w.time >= np.datetime64("2031-01-01")] - w.tmax[w.time >= np.datetime64("2031-01-01")],
                       2.0, atol=1e-3)


def test_planted_droughts_are_dry_blocks_of_the_scenario_years() -> None:
    w = generate(SMALL | {"droughts": 2}, member=5)
    cfg = Config.from_parameters(SMALL)
    moy = np.arange(w.monthly_rain.shape[0]) % 12
    spi = true_spi(w.monthly_rain, moy, cfg)
    assert len(w.droughts) == 2
    for d in w.droughts:
        block = spi[d.start:d.start + d.duration, d.y0:d.y1, d.x0:d.x1]
        assert d.start >= 10 * 12 and 3 <= d.duration <= 8
        assert np.all(block <= -1.2 + 1e-9) and abs(block.mean() - d.intensity) < 1e-9
        assert d.extent == (d.y1 - d.y0) * (d.x1 - d.x0) / 64 and d.dry_share == 1.0


def test_cf_metadata_and_seeds() -> None:
    a, b = generate(SMALL, member=1).data, generate(SMALL, member=1).data
    assert a.attrs["Conventions"] == "CF-1.10" and "simulator" in a.attrs["title"]
    assert a["pr"].attrs["units"] == "kg m-2 s-1" and a["tasmax"].attrs["units"] == "K"
    assert a["hursmin"].attrs["standard_name"] == "relative_humidity"
    assert a.equals(b) and not a.equals(generate(SMALL, member=2).data)
