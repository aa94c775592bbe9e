"""One member's drought, fire-danger and compound-event figures, from daily CF weather (any that
``readers.daily_weather`` reads: the generator's, or real CMIP6/CORDEX/E-OBS files unchanged).

- SPI at 1, 3, 6 and 12 months and SPEI at 3 months, calibrated on the baseline years (before the scenario);
- drought frequency (share of the scenario's cell-months with SPI-1 or SPI-3 at most -1) beside the closed
  form of SPI-1's (the generator's known gamma, scaled by the scenario's rain factor);
- drought events of SPI-1 (``events``) and the planted droughts recovered from them;
- daily FWI (climate-indices), days per year with FWI above 20;
- compound days: SPI-3 of the day's month at most -1 **and** FWI above 20 the same day, per year.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from climate_impacts import events as ev
from climate_impacts import fire
from climate_impacts.generator import Config, Drought
from climate_impacts.readers import daily_weather
from climate_impacts.standardized import (
    expected_frequency,
    expected_frequency_given_fit,
    monthly_means,
    monthly_sums,
    spei,
    spi,
    spi_fits,
)

__all__ = ["FWI_HIGH", "Analysis", "analyse", "closed_form_frequency"]

FWI_HIGH = 20.0      # "high" fire danger and above
DROUGHT = -1.0       # SPI/SPEI at most this: moderate drought or worse
SCALES = (1, 3, 6, 12)


@dataclass
class Analysis:
    years: list[int]
    spi: dict[int, np.ndarray]                 # scale -> (month, lat, lon), every month
    spei3: np.ndarray
    fwi: np.ndarray                            # (day, lat, lon), the scenario's days
    compound_per_year: list[float]             # area mean of compound days per scenario year
    state: dict[str, Any]
    events: list[ev.Event] = field(default_factory=list)
    planted: list[dict[str, Any]] = field(default_factory=list)
    months: np.ndarray | None = None


def closed_form_frequency(cfg: Config, planted: list[Drought] | None = None, months: int = 0,
                          fits: list[Any] | None = None) -> float:
    """The expected share of the scenario's ``months`` x cells with SPI-1 <= -1: under the true distribution,
    or, with ``fits`` (``spi_fits`` per calendar month), under the member's own calibration; the planted
    droughts' cell-months weighed in with their known dry share."""
    n = int(cfg.grid_cells)
    per_month = []
    for m, p0 in enumerate(cfg.dry_probabilities()):
        if fits is None:
            per_month.append(np.full((n, n), expected_frequency(cfg.rain_factor, cfg.rain_shape, p0)))
        else:
            per_month.append(expected_frequency_given_fit(fits[m], cfg.rain_factor, cfg.rain_shape,
                                                          float(cfg.scales()[m]), p0))
    if not months:
        return float(np.mean(per_month))
    chance = np.stack(per_month)[np.arange(months) % 12]
    natural = np.ones(chance.shape, dtype=bool)
    dry = 0.0
    for d in planted or []:
        natural[d.start:d.start + d.duration, d.y0:d.y1, d.x0:d.x1] = False
        dry += d.duration * (d.y1 - d.y0) * (d.x1 - d.x0) * d.dry_share
    return float((chance[natural].sum() + dry) / chance.size)


def _pet_thornthwaite(tmean_monthly: np.ndarray, lat: np.ndarray, first_year: int) -> np.ndarray:
    """Thornthwaite's PET (mm/month) per cell, by climate-indices (its per-cell latitudes)."""
    fire._quiet()
    from climate_indices import indices

    with np.errstate(all="ignore"):
        return np.asarray(indices.pet(tmean_monthly, np.broadcast_to(lat[:, None], tmean_monthly.shape[1:]),
                                      first_year, spatial_time_major=True), dtype="float64")


def analyse(ds: xr.Dataset, start_year: int, *, planted: list[Drought] | None = None,
            rain_factor: float | None = None, config: Config | None = None) -> Analysis:
    """Every figure of one member; the baseline is the whole years before ``start_year``."""
    w = daily_weather(ds)
    rain, months = monthly_sums(w.pr, w.time)
    first_year = int(str(months[0])[:4])
    if str(months[0])[5:7] != "01" or len(months) % 12:
        raise ValueError("the data must hold whole calendar years (January to December)")
    calibration = (first_year, start_year - 1)
    if calibration[1] < calibration[0] + 9:
        raise ValueError(f"the baseline before {start_year} holds {calibration[1] - calibration[0] + 1} years; "
                         "SPI needs at least 10 to calibrate on")
    indices = {s: spi(rain, s, first_year, calibration) for s in SCALES}
    pet = _pet_thornthwaite(monthly_means(w.tmean, w.time), w.lat, first_year)
    spei3 = spei(rain - pet, 3, first_year, calibration)
    first = (start_year - first_year) * 12
    scen = slice(first, None)

    # daily FWI over the scenario, started a year earlier so that the codes have settled
    days = w.time.astype("datetime64[D]")
    month_index = (days.astype("datetime64[M]") - months[0]).astype(int)
    spin = int(np.searchsorted(month_index, first - 12))
    day_month = (days.astype("datetime64[M]").astype(int) % 12) + 1
    fwi_all = fire.fwi_grid(w.tmax[spin:], w.rh[spin:], w.wind[spin:], w.pr[spin:], w.lat, day_month[spin:])
    in_scenario = month_index[spin:] >= first
    fwi = fwi_all[in_scenario]
    scen_month = month_index[spin:][in_scenario]
    high = fwi > FWI_HIGH
    compound = high & (indices[3][scen_month] <= DROUGHT)
    years = sorted(set(int(str(d)[:4]) for d in days[spin:][in_scenario]))
    year_of_day = days[spin:][in_scenario].astype("datetime64[Y]").astype(int) + 1970
    per_year = [float(compound[year_of_day == y].sum(axis=0).mean()) for y in years]
    high_per_year = [float(high[year_of_day == y].sum(axis=0).mean()) for y in years]

    found, number = ev.find_events(indices[1][scen])
    shifted = [Drought(d.ident, d.start - first, d.duration, d.y0, d.y1, d.x0, d.x1, d.extent, d.intensity,
                       d.first_month, d.dry_share) for d in planted or []]
    matched = ev.match_planted(found, number, shifted) if shifted else []
    n_years = len(years)
    state: dict[str, Any] = {
        "spi1_drought_frequency": float(np.mean(indices[1][scen] <= DROUGHT)),
        "spi3_drought_frequency": float(np.mean(indices[3][scen] <= DROUGHT)),
        "spei3_drought_frequency": float(np.mean(spei3[scen] <= DROUGHT)),
        "baseline_spi1_drought_frequency": float(np.mean(indices[1][:first] <= DROUGHT)),
        "fwi_high_days": float(np.mean(high_per_year)),
        "compound_days": float(np.mean(per_year)),
        "drought_events": len(found),
        "drought_events_per_decade": len(found) / n_years * 10,
        "drought_mean_duration": float(np.mean([e.duration for e in found])) if found else 0.0,
        "drought_mean_extent": float(np.mean([e.extent for e in found])) if found else 0.0,
        "drought_mean_intensity": float(np.mean([e.intensity for e in found])) if found else 0.0,
    }
    if config is not None:
        scenario_months = indices[1].shape[0] - first
        state["spi1_closed_form_frequency"] = closed_form_frequency(config, shifted, scenario_months)
        state["spi1_expected_frequency"] = closed_form_frequency(
            config, shifted, scenario_months, fits=spi_fits(rain, 1, first_year, calibration))
    if matched:
        hits = [m for m in matched if m["found"]]
        state |= {"planted_droughts": len(matched), "planted_found": len(hits),
                  "planted_duration_error": max((abs(m["duration_error"]) for m in hits), default=None),
                  "planted_extent_error": max((abs(m["extent_error"]) for m in hits), default=None),
                  "planted_intensity_error": max((abs(m["intensity_error"]) for m in hits), default=None)}
    return Analysis(years=years, spi=indices, spei3=spei3, fwi=fwi, compound_per_year=per_year, state=state,
                    events=found, planted=matched, months=months)
