"""The app's processes for its workflows. Each regenerates the member's weather from the twin's parameters
and the member number (seeded, so every process of a run sees the same weather) rather than passing tens of
megabytes of daily fields from process to process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from climate_impacts import fire
from climate_impacts.generator import Config, generate
from climate_impacts.impacts import DROUGHT, FWI_HIGH, analyse
from climate_impacts.readers import read_cffdrs_table
from twinengine.app import app_process

REFERENCE_TABLE = Path(__file__).resolve().parents[1] / "data" / "fwi_01.csv"
_PARAMETERS = {"schema": {"type": "object"}, "description": "The twin's parameters (scenario, rain factor, grid)"}
_MEMBER = {"schema": {"type": "number", "minimum": 0}, "description": "Member of the ensemble: the seed of its "
                                                                      "internal variability (its integer part)"}
_RESULT = {"schema": {"type": "object"}, "description": "member_impacts' result"}
# what member_impacts writes to the twin's state (the manifest declares each)
STATE = ("rain_factor", "warming_k", "spi1_drought_frequency", "spi1_expected_frequency",
         "spi1_closed_form_frequency", "spi3_drought_frequency", "spei3_drought_frequency",
         "baseline_spi1_drought_frequency", "fwi_high_days", "compound_days", "drought_events",
         "drought_events_per_decade", "drought_mean_duration", "drought_mean_extent", "drought_mean_intensity",
         "planted_droughts", "planted_found", "planted_duration_error", "planted_extent_error",
         "planted_intensity_error")


def _member(member: Any) -> int:
    return int(float(member))


@app_process(summary="Daily weather of one member (CF-1.10, CMIP6 units): pr, tasmax, tas, hursmin, sfcWind",
             parameters={"parameters": _PARAMETERS, "member": _MEMBER},
             returns={"description": "Dataset (time, lat, lon)", "schema": {"type": "object",
                                                                            "subtype": "datacube"}})
def weather(parameters: dict, member: float = 0) -> Any:
    """The generator's daily fields of the member (baseline and scenario years)."""
    return generate(parameters, _member(member)).data


@app_process(summary="Drought, fire danger and compound events of one member, against the planted truth",
             parameters={"parameters": _PARAMETERS, "member": _MEMBER},
             returns={"description": "{state: {...}, years: [...], compound_days: [...], planted: [...], "
                                     "events: [...]}", "schema": {"type": "object"}})
def member_impacts(parameters: dict, member: float = 0) -> dict:
    """Generate the member's weather and compute SPI (1, 3, 6, 12 months), SPEI-3, FWI, compound days and
    drought events; the planted droughts matched to the events found."""
    cfg = Config.from_parameters(parameters)
    w = generate(parameters, _member(member))
    result = analyse(w.data, int(cfg.start_year), planted=w.droughts, config=cfg)
    state = {"rain_factor": float(cfg.rain_factor), "warming_k": float(cfg.warming_k), **result.state}
    return {"member": _member(member), "scenario": cfg.scenario, "state": state, "years": result.years,
            "compound_days": [round(v, 4) for v in result.compound_per_year], "planted": result.planted,
            "events": [e.to_dict() | {"first_month": str(result.months[(int(cfg.start_year) - cfg.first_year)
                                                                        * 12 + e.start])[:7]}
                       for e in result.events if e.extent >= 0.1]}


@app_process(summary="The impacts as the twin's state values",
             parameters={"result": _RESULT},
             returns={"description": "{spi1_drought_frequency, compound_days, ...}", "schema": {"type": "object"}})
def impacts_state(result: dict) -> dict:
    """The figures of ``member_impacts`` named as the twin's state properties (a value it has none of is left
    out)."""
    return {k: result["state"][k] for k in STATE if result["state"].get(k) is not None}


@app_process(summary="Compound days per scenario year (what an ensemble stacks)",
             parameters={"result": _RESULT},
             returns={"description": "Area mean of compound days per year", "schema": {"type": "array",
                                                                                        "items": {"type": "number"}}})
def compound_series(result: dict) -> list:
    """The yearly series of compound drought and fire-danger days of ``member_impacts``' result."""
    return list(result["compound_days"])


@app_process(summary="Monthly drought and fire-danger maps of one member (CF netCDF): SPI-1/3/12, SPEI-3, FWI",
             parameters={"parameters": _PARAMETERS, "member": _MEMBER},
             returns={"description": "Dataset (time, lat, lon), the scenario's months",
                      "schema": {"type": "object", "subtype": "datacube"}})
def drought_maps(parameters: dict, member: float = 0) -> Any:
    """SPI at 1, 3 and 12 months, SPEI at 3, the month's mean FWI and its compound days, per cell and month
    of the scenario years: what the engine serves as a gridded collection (EDR)."""
    cfg = Config.from_parameters(parameters)
    w = generate(parameters, _member(member))
    result = analyse(w.data, int(cfg.start_year), planted=w.droughts, config=cfg)
    first = (int(cfg.start_year) - cfg.first_year) * 12
    months = result.months[first:].astype("datetime64[ns]")
    ds = w.data
    day_month = ds["time"].values.astype("datetime64[M]")
    scen_days = day_month[day_month >= result.months[first]]
    starts = np.flatnonzero(np.r_[True, scen_days[1:] != scen_days[:-1]])
    counts = np.diff(np.r_[starts, len(scen_days)])
    fwi_mean = np.add.reduceat(result.fwi, starts, axis=0) / counts[:, None, None]
    spi3_days = result.spi[3][first:][np.repeat(np.arange(len(starts)), counts)]
    compound = np.add.reduceat((result.fwi > FWI_HIGH) & (spi3_days <= DROUGHT), starts, axis=0)
    dims = ("time", "lat", "lon")
    units = {"units": "1"}
    out = xr.Dataset(
        {"spi1": (dims, result.spi[1][first:].astype("float32"), units | {"long_name": "SPI, 1 month"}),
         "spi3": (dims, result.spi[3][first:].astype("float32"), units | {"long_name": "SPI, 3 months"}),
         "spi12": (dims, result.spi[12][first:].astype("float32"), units | {"long_name": "SPI, 12 months"}),
         "spei3": (dims, result.spei3[first:].astype("float32"), units | {"long_name": "SPEI, 3 months"}),
         "fwi": (dims, fwi_mean.astype("float32"), units | {"long_name": "Canadian Fire Weather Index, "
                                                                           "monthly mean"}),
         "compound_days": (dims, compound.astype("float32"), {"units": "d", "long_name": "Days with SPI-3 <= -1 "
                                                                                        "and FWI > 20"})},
        coords={"time": ("time", months, {"standard_name": "time", "axis": "T"}),
                "lat": ("lat", ds["lat"].values, dict(ds["lat"].attrs)),
                "lon": ("lon", ds["lon"].values, dict(ds["lon"].attrs))},
        attrs={"Conventions": "CF-1.10", "title": f"climate-impacts: drought and fire-danger maps, scenario "
                                                  f"{cfg.scenario}, member {_member(member)}",
               "source": "climate_impacts (SPI/SPEI: the app's fits; FWI: climate-indices) over the generator's "
                         "synthetic weather"})
    return out


@app_process(summary="The Fire Weather Index system on a station table in the cffdrs format",
             parameters={"table": {"schema": {"type": "string"},
                                   "description": "CSV with LONG,LAT,YR,MON,DAY,TEMP,RH,WS,PREC (WS in km/h)"}},
             returns={"description": "{dates, ffmc, dmc, dc, isi, bui, fwi, dsr}", "schema": {"type": "object"}})
def fire_weather_index(table: str) -> dict:
    """FFMC, DMC, DC, ISI, BUI, FWI and DSR of a station's daily noon weather (one station per table)."""
    weather = read_cffdrs_table(table)
    values = fire.fwi_station(weather)
    return {"dates": weather.dates, **{k: [round(float(v), 6) for v in values[k]] for k in fire.COMPONENTS}}


@app_process(summary="The Fire Weather Index system against the cffdrs reference table of the 48-day test weather",
             parameters={},
             returns={"description": "{max_abs_difference, components: {ffmc: {...}, ...}, light_rain_days}",
                      "schema": {"type": "object"}})
def fwi_reference_check() -> dict:
    """Van Wagner and Pickett (1985)'s 48 days of test weather (light-rain days of 0.2 and 0.4 mm among them)
    through climate-indices, each component against the cffdrs table (``data/fwi_01.csv``)."""
    return fire.compare_with_reference(read_cffdrs_table(REFERENCE_TABLE.read_text()))


@app_process(summary="The reference check as state values",
             parameters={"check": {"schema": {"type": "object"}, "description": "fwi_reference_check's result"}},
             returns={"description": "{fwi_max_abs_difference}", "schema": {"type": "object"}})
def fwi_check_state(check: dict) -> dict:
    """The largest difference over the seven components, as the twin's state."""
    return {"fwi_max_abs_difference": float(check["max_abs_difference"])}
