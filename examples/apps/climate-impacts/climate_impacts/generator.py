"""A weather generator with known truth: one member of one scenario as daily CF netCDF fields in the units
of CMIP6 daily output (``pr`` kg m-2 s-1, ``tasmax``/``tas`` K, ``hursmin`` %, ``sfcWind`` m s-1).

What the science checks recover is planted here, in closed form:

- **monthly rain** per calendar month and cell: zero with the month's dry-month probability ``p0`` (July and
  August's ``dry_month_probability``, none by default), else
  gamma(shape ``rain_shape``, the month's scale). It is drawn through a Gaussian copula (a latent standard
  normal ``Z`` per month and cell, mildly correlated in space, independent in time), so the marginal is
  exactly that mixture: ``rain = F⁻¹(Φ(Z))`` and the true SPI-1 of an unscaled month is ``Z`` itself;
- **scenarios**: from ``start_year`` on, every amount is scaled by ``rain_factor`` (s = 1, 0.9, 0.8, 0.7) and
  every temperature raised by ``warming_k``; the baseline years before it stay unscaled (SPI's calibration);
- **planted droughts**: blocks of months x cells in the scenario years whose latent values are set near a
  chosen intensity, so their duration, extent (share of the grid's cells) and intensity (mean true SPI-1)
  are known.

Each month's total is spread over its wet days (their number grows with the total), so the daily ``pr``
sums to the monthly draw. Temperature, humidity and wind are daily: a seasonal cycle, AR(1) anomalies, hotter
and drier air in dry months and on dry days (what couples drought and fire danger). Seeded: the same
parameters and member give the same weather.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage, special, stats

__all__ = ["DRIEST_MONTHS", "MONTHLY_MEAN_MM", "Config", "Drought", "Weather", "generate", "true_spi"]

# mean monthly rain (mm) and dry-month probability per calendar month: a dry-summer (Mediterranean) climate
MONTHLY_MEAN_MM = (48.0, 42.0, 36.0, 46.0, 44.0, 26.0, 12.0, 12.0, 26.0, 52.0, 56.0, 52.0)
DRIEST_MONTHS = (6, 7)  # July and August (0-based): where ``dry_month_probability`` applies
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Config:
    """What a twin's parameters say about its weather; ``from_parameters`` fills the defaults."""

    scenario: str = "reference"
    rain_factor: float = 1.0
    warming_k: float = 0.0
    start_year: int = 2031
    years: int = 30
    baseline_years: int = 30
    grid_cells: int = 12
    cell_deg: float = 0.5
    longitude: float = -3.7
    latitude: float = 40.4
    rain_shape: float = 2.0
    dry_month_probability: float = 0.0
    rain_correlation: float = 0.3
    droughts: int = 2
    seed: int = 1

    @classmethod
    def from_parameters(cls, p: dict[str, Any]) -> Config:
        known = {k: p[k] for k in cls.__dataclass_fields__ if k in p and p[k] is not None}
        return cls(**known)

    @property
    def first_year(self) -> int:
        return int(self.start_year) - int(self.baseline_years)

    @property
    def last_year(self) -> int:
        return int(self.start_year) + int(self.years) - 1

    def dry_probabilities(self) -> np.ndarray:
        """The probability of a month without rain, per calendar month."""
        p0 = np.zeros(12)
        p0[list(DRIEST_MONTHS)] = float(self.dry_month_probability)
        return p0

    def scales(self) -> np.ndarray:
        """Gamma scale (mm) per calendar month: the month's mean over the shape."""
        return np.asarray(MONTHLY_MEAN_MM) / float(self.rain_shape)

    def lon(self) -> np.ndarray:
        n, d = int(self.grid_cells), float(self.cell_deg)
        return np.round(self.longitude + (np.arange(n) - (n - 1) / 2) * d, 4)

    def lat(self) -> np.ndarray:
        n, d = int(self.grid_cells), float(self.cell_deg)
        return np.round(self.latitude + (np.arange(n) - (n - 1) / 2) * d, 4)

    def months(self) -> pd.DatetimeIndex:
        return pd.date_range(f"{self.first_year}-01-01", f"{self.last_year}-12-01", freq="MS")

    def days(self) -> pd.DatetimeIndex:
        return pd.date_range(f"{self.first_year}-01-01", f"{self.last_year}-12-31", freq="D")


@dataclass(frozen=True)
class Drought:
    """One planted drought: months ``[start, start + duration)`` of the monthly axis, cells ``[y0, y1) x
    [x0, x1)``; ``extent`` is its share of the grid's cells and ``intensity`` the mean true SPI-1 over it."""

    ident: str
    start: int
    duration: int
    y0: int
    y1: int
    x0: int
    x1: int
    extent: float
    intensity: float
    first_month: str
    dry_share: float = 1.0   # share of its cell-months whose true SPI-1 is at most -1


@dataclass
class Weather:
    data: xr.Dataset                    # daily fields (time, lat, lon), CF-1.10, CMIP6 units
    monthly_rain: np.ndarray            # (month, lat, lon) mm, the drawn totals (what daily pr sums to)
    droughts: list[Drought] = field(default_factory=list)


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Unit-variance noise smoothed in space (periodic), every cell with the same variance."""
    smooth = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=(0, sigma, sigma), mode="wrap")
    probe = np.zeros(shape[1:])
    probe[0, 0] = 1.0
    return smooth / math.sqrt(float((ndimage.gaussian_filter(probe, sigma=sigma, mode="wrap") ** 2).sum()))


def rain_from_latent(z: np.ndarray, month_of_year: np.ndarray, cfg: Config) -> np.ndarray:
    """The copula's map: ``F⁻¹(Φ(z))`` of the month's mixture (zero below ``p0``, gamma above)."""
    p0 = cfg.dry_probabilities()[month_of_year][:, None, None]
    scale = cfg.scales()[month_of_year][:, None, None]
    u = special.ndtr(z)
    wet = (u - p0) / (1.0 - p0)
    amount = stats.gamma.ppf(np.clip(wet, 1e-12, 1.0 - 1e-12), float(cfg.rain_shape)) * scale
    return np.where(u <= p0, 0.0, amount)


def true_spi(rain: np.ndarray, month_of_year: np.ndarray, cfg: Config) -> np.ndarray:
    """SPI-1 under the true (baseline) distribution: ``Φ⁻¹(p0 + (1 - p0) G(rain))``, a dry month at ``Φ⁻¹(p0)``
    (the classic placement of a zero)."""
    p0 = cfg.dry_probabilities()[month_of_year][:, None, None]
    scale = cfg.scales()[month_of_year][:, None, None]
    prob = p0 + (1.0 - p0) * stats.gamma.cdf(rain / scale, float(cfg.rain_shape))
    return np.clip(special.ndtri(np.clip(prob, 1e-12, 1.0 - 1e-12)), -3.09, 3.09)


def _plant(cfg: Config, rng: np.random.Generator, z: np.ndarray, first: int, member: int) -> list[tuple]:
    """Drought blocks in the scenario months (``first`` on), apart in time; their latent values near a
    chosen intensity and at most -1.2, so every cell-month of a block is dry by SPI-1 <= -1."""
    n_months, n = z.shape[0], int(cfg.grid_cells)
    blocks: list[tuple] = []
    taken: list[tuple[int, int]] = []
    for k in range(int(cfg.droughts)):
        for _attempt in range(50):
            duration = int(rng.integers(3, 9))
            start = int(rng.integers(first + 3, n_months - duration - 3))
            if all(start + duration + 4 <= a or b + 4 <= start for a, b in taken):
                break
        else:
            continue
        extent_target = rng.uniform(0.12, 0.3)
        side = max(2, round(math.sqrt(extent_target) * n))
        h = int(np.clip(side + rng.integers(-1, 2), 2, n - 2))
        w = int(np.clip(round(extent_target * n * n / h), 2, n - 2))
        y0, x0 = int(rng.integers(0, n - h + 1)), int(rng.integers(0, n - w + 1))
        level = rng.uniform(-1.8, -1.4)
        values = np.minimum(level + 0.25 * rng.standard_normal((duration, h, w)), -1.2)
        z[start:start + duration, y0:y0 + h, x0:x0 + w] = values
        taken.append((start, start + duration))
        blocks.append((f"m{member}-d{k}", start, duration, y0, y0 + h, x0, x0 + w))
    return blocks


def generate(parameters: dict[str, Any], member: int = 0) -> Weather:
    """The member's daily weather as a CF-1.10 Dataset (time, lat, lon), its monthly totals and its planted
    droughts (with their true duration, extent and intensity)."""
    cfg = Config.from_parameters(parameters)
    rng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed), int(member), 66]))
    months, days = cfg.months(), cfg.days()
    n, nm, nd = int(cfg.grid_cells), len(months), len(days)
    moy = months.month.to_numpy() - 1
    first = int(np.searchsorted(months, pd.Timestamp(f"{cfg.start_year}-01-01")))
    scenario = np.arange(nm) >= first

    # monthly rain through the copula: mildly correlated latent normals, planted droughts, then the scenario
    rho = float(cfg.rain_correlation)
    z = math.sqrt(1 - rho) * rng.standard_normal((nm, n, n)) + math.sqrt(rho) * _smooth(rng, (nm, n, n), 1.5)
    blocks = _plant(cfg, rng, z, first, member)
    factor = np.where(scenario, float(cfg.rain_factor), 1.0)[:, None, None]
    monthly = rain_from_latent(z, moy, cfg) * factor
    spi_true = true_spi(monthly, moy, cfg)
    droughts = [Drought(ident, s, d, y0, y1, x0, x1, extent=(y1 - y0) * (x1 - x0) / (n * n),
                        intensity=float(spi_true[s:s + d, y0:y1, x0:x1].mean()),
                        first_month=str(months[s])[:7],
                        dry_share=float(np.mean(spi_true[s:s + d, y0:y1, x0:x1] <= -1.0)))
                for ident, s, d, y0, y1, x0, x1 in blocks]

    # daily rain: each month's total over its wet days (more days for more rain), exponential weights
    month_of_day = (days.year.to_numpy() - cfg.first_year) * 12 + days.month.to_numpy() - 1
    pr = np.zeros((nd, n, n))
    wet_days = np.zeros((nd, n, n), dtype=bool)
    bounds = np.searchsorted(month_of_day, np.arange(nm + 1))
    for t in range(nm):
        a, b = bounds[t], bounds[t + 1]
        total = monthly[t]
        count = np.clip(np.ceil(total / 7.0 + rng.uniform(0, 2, total.shape)), 1, b - a).astype(int)
        rank = np.argsort(np.argsort(rng.random((b - a, n, n)), axis=0), axis=0)
        weights = rng.exponential(size=(b - a, n, n)) * (rank < count[None])
        pr[a:b] = np.where(total > 0, total * weights / weights.sum(axis=0), 0.0)
        wet_days[a:b] = (pr[a:b] > 0.5)

    # temperature (noon / daily maximum): seasonal cycle, AR(1) anomalies, hotter in dry months and on dry
    # days, plus the scenario's warming
    doy = days.dayofyear.to_numpy()
    season = -np.cos(2 * np.pi * (doy - 20) / 365.25)[:, None, None]   # -1 in late January, +1 in late July
    dryness = -np.clip(z[month_of_day], -3, 3)                           # > 0 in a dry month
    anomaly = _ar1(0.7 * rng.standard_normal((nd, 1, 1)) + 0.71 * _smooth(rng, (nd, n, n), 2.0), 0.7)
    warming = np.where(scenario[month_of_day], float(cfg.warming_k), 0.0)[:, None, None]
    lat_term = -0.6 * (cfg.lat()[None, :, None] - float(cfg.latitude))
    tasmax = 19.5 + 11.0 * season + lat_term + 3.0 * anomaly + 0.8 * dryness - 2.0 * wet_days + warming
    tas = tasmax - 6.5 - 1.0 * season
    # minimum relative humidity: dry summers, drier air in dry months, after warming and on hot days
    hursmin = np.clip(56.0 - 18.0 * season - 3.5 * anomaly - 4.0 * dryness + 22.0 * wet_days - 2.5 * warming
                      + 6.0 * _smooth(rng, (nd, n, n), 2.0), 6.0, 100.0)
    wind = 4.0 * np.sqrt(-np.log(rng.uniform(1e-9, 1.0, (nd, n, n)))) / math.gamma(1.5) * 0.9 + 0.8 * wet_days

    data = _dataset(cfg, days, member, pr=pr / SECONDS_PER_DAY, tasmax=tasmax + 273.15, tas=tas + 273.15,
                    hursmin=hursmin, sfcWind=wind)
    return Weather(data, monthly, droughts)


def _ar1(innovations: np.ndarray, phi: float) -> np.ndarray:
    """AR(1) along time with a unit-variance stationary marginal, started from it."""
    from scipy import signal

    innovations = innovations / np.std(innovations)
    scale = math.sqrt(1.0 - phi * phi)
    start = (1.0 - scale) * innovations[:1]
    out, _ = signal.lfilter([scale], [1.0, -phi], innovations, axis=0, zi=start)
    return np.asarray(out)


_VARIABLES = {
    "pr": ("kg m-2 s-1", "precipitation_flux", "Precipitation", "time: mean"),
    "tasmax": ("K", "air_temperature", "Daily Maximum Near-Surface Air Temperature", "time: maximum"),
    "tas": ("K", "air_temperature", "Near-Surface Air Temperature", "time: mean"),
    "hursmin": ("%", "relative_humidity", "Daily Minimum Near-Surface Relative Humidity", "time: minimum"),
    "sfcWind": ("m s-1", "wind_speed", "Daily-Mean Near-Surface Wind Speed", "time: mean"),
}


def _dataset(cfg: Config, days: pd.DatetimeIndex, member: int, **values: np.ndarray) -> xr.Dataset:
    data = {}
    for name, array in values.items():
        units, standard, long_name, cell = _VARIABLES[name]
        data[name] = (("time", "lat", "lon"), array.astype("float32"),
                      {"units": units, "standard_name": standard, "long_name": long_name, "cell_methods": cell})
    return xr.Dataset(
        data,
        coords={"time": ("time", days, {"standard_name": "time", "axis": "T"}),
                "lat": ("lat", cfg.lat(), {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
                "lon": ("lon", cfg.lon(), {"units": "degrees_east", "standard_name": "longitude", "axis": "X"})},
        attrs={"Conventions": "CF-1.10", "title": "climate-impacts: synthetic daily weather (simulator)",
               "summary": f"Weather generator with known truth: scenario {cfg.scenario} (rain x {cfg.rain_factor}, "
                          f"+{cfg.warming_k} K from {cfg.start_year}; baseline {cfg.first_year}-"
                          f"{cfg.start_year - 1}), member {member}, {int(cfg.droughts)} planted droughts. "
                          "Not observations and not a climate model's output.",
               "source": f"climate_impacts.generator, seed {cfg.seed}, member {member}",
               "experiment_id": str(cfg.scenario), "realization_index": int(member),
               "frequency": "day"})
