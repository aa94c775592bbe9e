"""Climate indices of one member's weather, computed by xclim (imported here, where it is first needed: it
lives in the app's own environment, see the manifest's ``requires``).

- ``tx90p``: days per year with a daily maximum above the 90th percentile of the baseline years (per day of
  year, 5-day window), the baseline being the years before the scenario starts (``percentile_doy``);
- ``heat_wave_frequency``: heat waves per year (3+ days with tasmin > 18 degC and tasmax > 28 degC);
- ``rx1day``: the year's largest daily precipitation (mm/d);
- ``fwi``: the Canadian Fire Weather Index (``cffwis_indices`` from tas, pr, sfcWind, hurs; no overwintering),
  as the count of days per year with FWI above 20 (high fire danger).

Each is reduced to its area mean per year (cos-latitude weights) over the scenario years.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["INDICES", "annual_indices"]

INDICES = ("tx90p", "heat_wave_frequency", "rx1day", "fwi")
FWI_HIGH = 20.0


def _area_mean(da: xr.DataArray) -> xr.DataArray:
    weights = np.cos(np.radians(da["lat"]))
    return da.weighted(weights).mean(("lat", "lon"))


def annual_indices(ds: xr.Dataset, start_year: int, *, which: tuple[str, ...] = INDICES) -> dict[str, Any]:
    """``{"years": [...], "tx90p": [...], ...}``: each index's area mean per scenario year (from ``start_year``)."""
    import xclim.indices as xi
    from xclim.core.calendar import percentile_doy

    ds = ds.astype("float64", keep_attrs=True)
    for name in ds.data_vars:
        ds[name].attrs = dict(ds[name].attrs)
    baseline = ds.sel(time=slice(None, f"{start_year - 1}-12-31"))
    scenario = ds.sel(time=slice(f"{start_year}-01-01", None))
    out: dict[str, xr.DataArray] = {}
    if "tx90p" in which:
        per = percentile_doy(baseline["tasmax"], window=5, per=90).sel(percentiles=90)
        out["tx90p"] = xi.tx90p(scenario["tasmax"], per, freq="YS")
    if "heat_wave_frequency" in which:
        out["heat_wave_frequency"] = xi.heat_wave_frequency(
            scenario["tasmin"], scenario["tasmax"], thresh_tasmin="18 degC", thresh_tasmax="28 degC", window=3,
            freq="YS")
    if "rx1day" in which:
        out["rx1day"] = xi.max_1day_precipitation_amount(scenario["pr"], freq="YS")
    if "fwi" in which:
        lat = xr.broadcast(scenario["lat"], scenario["tas"].isel(time=0))[0]
        *_codes, fwi = xi.cffwis_indices(scenario["tas"], scenario["pr"], scenario["sfcWind"], scenario["hurs"],
                                         lat=lat)
        out["fwi"] = (fwi > FWI_HIGH).resample(time="YS").sum()
    years = [int(y) for y in scenario["time"].dt.year.groupby(scenario["time"].dt.year).first().values]
    result: dict[str, Any] = {"years": years}
    for name, values in out.items():
        series = _area_mean(values.astype("float64")).values
        result[name] = [round(float(v), 5) for v in series]
    return result
