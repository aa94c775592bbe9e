"""A stochastic weather generator: daily gridded maximum/minimum/mean temperature, precipitation, relative
humidity and near-surface wind over a small region, for one member of one warming pathway.

Everything that the science checks later recover is planted here, in closed form:

- warming: ``dT(t) = rate * (t - start)`` (K, from the first scenario year; zero over the baseline years
  before it), added to every temperature;
- precipitation intensity: every amount (wet-day and storm rain) is scaled by ``1 + alpha * dT(t)``
  (Clausius-Clapeyron-like, alpha = 7 % per K), wet-day occurrence is stationary;
- relative humidity: 2 % lower per K of warming (what drives the fire weather index up);
- cyclone-like vortices: Gaussian vortices (counter-clockwise, the northern hemisphere's cyclones) that drift
  eastwards for a few days, with rain near their centres; their daily centres are returned as the truth.

Temperature anomalies are AR(1) in time with a stationary N(0, sigma^2) marginal, spatially smooth (a
domain-wide part plus filtered white noise on a periodic grid, so every cell has the same variance).
Seeded: the same parameters and member give the same weather.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage, signal

__all__ = ["ALPHA", "SIGMA_T", "Config", "Storm", "Weather", "generate", "warming"]

ALPHA = 0.07  # precipitation intensity per K of warming
SIGMA_T = 3.0  # K, standard deviation of daily temperature anomalies (every cell, every season)
PHI_T = 0.75  # lag-1 autocorrelation of daily temperature anomalies
COMMON_T = 0.6  # share (as a weight) of the domain-wide part of the temperature innovations
WET_SHARE = 0.35  # probability that a cell is wet on a day
GAMMA_SHAPE, GAMMA_SCALE = 0.75, 6.0  # wet-day amounts (mm/d) before scaling
WIND_WEST, WIND_NOISE = 6.0, 3.0  # m/s: mean westerly, amplitude of the smooth wind noise
HURS_PER_K = 2.0  # %: relative humidity lost per K of warming (land dries as it warms)


@dataclass(frozen=True)
class Config:
    """What a twin's parameters say about its weather; ``from_parameters`` fills the defaults."""

    warming_k_per_decade: float = 0.3
    start_year: int = 2021
    years: int = 20
    baseline_years: int = 10
    grid_cells: int = 16
    cell_deg: float = 1.0
    longitude: float = 8.0
    latitude: float = 48.0
    storms_per_year: float = 8.0
    seed: int = 1

    @classmethod
    def from_parameters(cls, p: dict[str, Any]) -> Config:
        known = {k: p[k] for k in cls.__dataclass_fields__ if k in p and p[k] is not None}
        return cls(**known)

    @property
    def rate(self) -> float:
        """Warming in K per year."""
        return float(self.warming_k_per_decade) / 10.0

    @property
    def first_year(self) -> int:
        return int(self.start_year) - int(self.baseline_years)

    def lon(self) -> np.ndarray:
        n, d = int(self.grid_cells), float(self.cell_deg)
        return np.round(self.longitude + (np.arange(n) - (n - 1) / 2) * d, 4)

    def lat(self) -> np.ndarray:
        n, d = int(self.grid_cells), float(self.cell_deg)
        return np.round(self.latitude + (np.arange(n) - (n - 1) / 2) * d, 4)

    def times(self) -> pd.DatetimeIndex:
        return pd.date_range(f"{self.first_year}-01-01", f"{int(self.start_year) + int(self.years) - 1}-12-31",
                             freq="D")


def warming(cfg: Config, times: pd.DatetimeIndex) -> np.ndarray:
    """dT(t) in K: zero before the first scenario year, then ``rate`` per year (by fractional year)."""
    years = (times - pd.Timestamp(f"{cfg.start_year}-01-01")).days.to_numpy() / 365.25
    return np.where(years > 0, cfg.rate * years, 0.0)


@dataclass(frozen=True)
class Storm:
    """One planted vortex: its daily centres (grid x, y in cells; day index into the time axis)."""

    ident: str
    days: list[int]
    x: list[float]
    y: list[float]
    vmax: float
    radius: float


@dataclass
class Weather:
    data: xr.Dataset
    storms: list[Storm] = field(default_factory=list)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """White noise filtered in space (periodic), scaled back to unit variance in every cell."""
    white = rng.standard_normal(shape)
    smooth = ndimage.gaussian_filter(white, sigma=(0, sigma, sigma), mode="wrap")
    probe = np.zeros(shape[1:])
    probe[0, 0] = 1.0
    norm = math.sqrt(float((ndimage.gaussian_filter(probe, sigma=sigma, mode="wrap") ** 2).sum()))
    return smooth / norm


def _ar1(innovations: np.ndarray, phi: float) -> np.ndarray:
    """AR(1) along axis 0 with a unit-variance stationary marginal, started from it:
    x[0] = e[0], x[t] = phi x[t-1] + sqrt(1 - phi^2) e[t]."""
    scale = math.sqrt(1.0 - phi * phi)
    start = (1.0 - scale) * innovations[:1]  # the filter's state that makes x[0] = e[0]
    out, _ = signal.lfilter([scale], [1.0, -phi], innovations, axis=0, zi=start)
    return np.asarray(out)


def _plant_storms(cfg: Config, rng: np.random.Generator, ndays: int, member: int) -> list[Storm]:
    """Poisson storm starts; each drifts eastwards from the western part of the grid for 3 to 6 days. A storm
    whose track comes within 5 cells of another's on a shared day is drawn again (centres stay apart)."""
    n = int(cfg.grid_cells)
    storms: list[Storm] = []
    occupied: dict[int, list[tuple[float, float]]] = {}
    count = rng.poisson(cfg.storms_per_year * ndays / 365.25)
    for k in range(int(count)):
        for _attempt in range(20):
            start = int(rng.integers(0, max(1, ndays - 6)))
            life = int(rng.integers(3, 7))
            x0, y0 = rng.uniform(1.0, 0.35 * n), rng.uniform(3.0, n - 4.0)
            u, v = rng.uniform(1.2, 2.5), rng.uniform(-0.6, 0.6)
            days = [start + d for d in range(life) if start + d < ndays]
            xs = [x0 + u * d for d in range(len(days))]
            ys = [y0 + v * d for d in range(len(days))]
            clash = any(math.hypot(x - ox, y - oy) < 5.0 for d, x, y in zip(days, xs, ys, strict=True)
                        for ox, oy in occupied.get(d, []))
            if not clash:
                break
        else:
            continue
        for d, x, y in zip(days, xs, ys, strict=True):
            occupied.setdefault(d, []).append((x, y))
        storms.append(Storm(f"m{member}-s{k:03d}", days, [round(x, 4) for x in xs], [round(y, 4) for y in ys],
                            vmax=float(rng.uniform(15.0, 30.0)), radius=float(rng.uniform(1.5, 2.5))))
    return storms


def _vortex(storm: Storm, d: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """u, v (m/s) and a rain footprint in [0, 1] of the storm on its d-th day over an n x n grid."""
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    dx, dy = xx - storm.x[d], yy - storm.y[d]
    r = np.hypot(dx, dy)
    q = r / storm.radius
    speed = storm.vmax * q * np.exp(0.5 * (1.0 - q * q))
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.where(r > 0, -speed * dy / r, 0.0)
        v = np.where(r > 0, speed * dx / r, 0.0)
    return u, v, np.exp(-0.5 * q * q)


def generate(parameters: dict[str, Any], member: int = 0) -> Weather:
    """The member's daily weather as a CF-1.10 Dataset (time, lat, lon) and its planted storms."""
    cfg = Config.from_parameters(parameters)
    rng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed), int(member), 20_21]))
    times = cfg.times()
    nt, n = len(times), int(cfg.grid_cells)
    lon, lat = cfg.lon(), cfg.lat()
    doy = times.dayofyear.to_numpy()
    season = -np.cos(2 * np.pi * (doy - 20) / 365.25)  # -1 in late January, +1 in late July
    d_t = warming(cfg, times)

    # temperature: climatology (cooler to the north) + warming + AR(1) anomalies
    common = rng.standard_normal(nt)[:, None, None]
    local = _smooth_noise(rng, (nt, n, n), sigma=2.0)
    anomaly = _ar1(COMMON_T * common + math.sqrt(1 - COMMON_T**2) * local, PHI_T)
    clim = 17.0 - 0.7 * (lat[None, :, None] - 45.0) + 10.0 * season[:, None, None]
    tasmax = clim + d_t[:, None, None] + SIGMA_T * anomaly
    dtr = 9.0 + 1.5 * _ar1(_smooth_noise(rng, (nt, n, n), sigma=2.0), 0.5)
    tasmin = tasmax - dtr
    tas = 0.5 * (tasmax + tasmin)

    # precipitation: stationary wet days (thresholded smooth latent field), gamma amounts, scaled with warming
    latent = _ar1(_smooth_noise(rng, (nt, n, n), sigma=1.5), 0.5)
    wet = latent > _normal_quantile(1 - WET_SHARE)
    amount = rng.gamma(GAMMA_SHAPE, GAMMA_SCALE, size=(nt, n, n))
    base_rain = np.where(wet, amount, 0.0)

    # wind: westerly + smooth noise, plus the planted vortices (and their rain)
    uas = WIND_WEST + WIND_NOISE * _smooth_noise(rng, (nt, n, n), sigma=2.0)
    vas = WIND_NOISE * _smooth_noise(rng, (nt, n, n), sigma=2.0)
    storm_rain = np.zeros((nt, n, n))
    storms = _plant_storms(cfg, rng, nt, member)
    for storm in storms:
        for i, day in enumerate(storm.days):
            u, v, footprint = _vortex(storm, i, n)
            uas[day] += u
            vas[day] += v
            storm_rain[day] = np.maximum(storm_rain[day], 25.0 * storm.vmax / 20.0 * footprint)
    scale = (1.0 + ALPHA * d_t)[:, None, None]
    pr = scale * (base_rain + storm_rain)

    # relative humidity: lower when warm and dry, higher when it rains, drier by HURS_PER_K as it warms
    hurs = np.clip(70.0 - HURS_PER_K * d_t[:, None, None] - 2.5 * SIGMA_T * anomaly + 15.0 * wet
                   - 8.0 * season[:, None, None] + 5.0 * _smooth_noise(rng, (nt, n, n), sigma=2.0), 5.0, 100.0)
    sfc_wind = np.hypot(uas, vas)
    return Weather(_dataset(cfg, times, lon, lat, member, tasmax=tasmax, tasmin=tasmin, tas=tas, pr=pr,
                            hurs=hurs, uas=uas, vas=vas, sfcWind=sfc_wind), storms)


def _normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


_VARIABLES = {
    "tasmax": ("degC", "air_temperature", "Daily maximum near-surface air temperature", "time: maximum"),
    "tasmin": ("degC", "air_temperature", "Daily minimum near-surface air temperature", "time: minimum"),
    "tas": ("degC", "air_temperature", "Daily mean near-surface air temperature", "time: mean"),
    "pr": ("mm d-1", "lwe_precipitation_rate", "Precipitation", "time: mean"),
    "hurs": ("%", "relative_humidity", "Near-surface relative humidity", "time: mean"),
    "uas": ("m s-1", "eastward_wind", "Eastward near-surface wind", "time: mean"),
    "vas": ("m s-1", "northward_wind", "Northward near-surface wind", "time: mean"),
    "sfcWind": ("m s-1", "wind_speed", "Near-surface wind speed", "time: mean"),
}


def _dataset(cfg: Config, times: pd.DatetimeIndex, lon: np.ndarray, lat: np.ndarray, member: int,
             **values: np.ndarray) -> xr.Dataset:
    data = {}
    for name, array in values.items():
        units, standard, long_name, cell = _VARIABLES[name]
        data[name] = (("time", "lat", "lon"), np.round(array, 3).astype("float32"),
                      {"units": units, "standard_name": standard, "long_name": long_name, "cell_methods": cell})
    return xr.Dataset(
        data,
        coords={"time": ("time", times, {"standard_name": "time", "axis": "T"}),
                "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"})},
        attrs={"Conventions": "CF-1.10", "title": "climate-extremes: synthetic daily weather",
               "summary": f"Stochastic weather generator, warming {cfg.warming_k_per_decade} K per decade from "
                          f"{cfg.start_year} (baseline {cfg.first_year}-{cfg.start_year - 1}), member {member}, "
                          f"with planted cyclone-like vortices.",
               "source": f"climate_extremes.generator, seed {cfg.seed}, member {member}",
               "realization": int(member), "warming_k_per_decade": float(cfg.warming_k_per_decade)})
