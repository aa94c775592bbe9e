"""The app's processes for its workflows. Each regenerates the member's weather from the twin's parameters
and the member number (seeded, so every process of a run sees the same weather) rather than passing a
90 MB dataset from process to process."""

from __future__ import annotations

import os
from typing import Any

from climate_extremes.generator import Config, generate
from climate_extremes.indices import INDICES, annual_indices
from climate_extremes.storms import detect, score, to_geojson, track, vorticity
from climate_extremes.trends import index_trends
from twinengine.app import app_process

_PARAMETERS = {"schema": {"type": "object"}, "description": "The twin's parameters (pathway, warming, grid)"}
_MEMBER = {"schema": {"type": "number", "minimum": 0}, "description": "Member of the ensemble: the seed of its "
                                                                      "internal variability (its integer part)"}
_INDICES = {"schema": {"type": "object"}, "description": "Annual index series (climate_indices' result)"}


def _member(member: Any) -> int:
    return int(float(member))


@app_process(summary="Daily weather of one member (CF-1.10): tasmax, tasmin, tas, pr, hurs, uas, vas, sfcWind",
             parameters={"parameters": _PARAMETERS, "member": _MEMBER},
             returns={"description": "Dataset (time, lat, lon)", "schema": {"type": "object",
                                                                            "subtype": "datacube"}})
def weather(parameters: dict, member: float = 0) -> Any:
    """The generator's daily fields of the member (baseline and scenario years)."""
    return generate(parameters, _member(member)).data


@app_process(summary="Climate indices (xclim) of one member: TX90p, heat-wave frequency, Rx1day, fire-danger days",
             parameters={"parameters": _PARAMETERS, "member": _MEMBER},
             returns={"description": "{years, tx90p, heat_wave_frequency, rx1day, fwi}: area means per year",
                      "schema": {"type": "object"}})
def climate_indices(parameters: dict, member: float = 0) -> dict:
    """Generate the member's weather and compute its annual indices over the scenario years."""
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.getcwd(), "numba-cache"))
    import xclim

    cfg = Config.from_parameters(parameters)
    with xclim.set_options(run_length_ufunc=True):  # xclim's numba run lengths: heat waves in a second, not ten
        return annual_indices(generate(parameters, _member(member)).data, int(cfg.start_year))


@app_process(summary="Trend per decade of each index (rx1day in % per decade): state values",
             parameters={"indices": _INDICES},
             returns={"description": "{tx90p_trend, heat_wave_frequency_trend, rx1day_trend, fwi_trend}",
                      "schema": {"type": "object"}})
def trends(indices: dict) -> dict:
    """OLS slopes per decade of the annual series, named as the twin's state properties."""
    return index_trends(indices)


@app_process(summary="One index's annual series (what an ensemble stacks)",
             parameters={"indices": _INDICES,
                         "index": {"schema": {"type": "string", "enum": list(INDICES)}, "description": "Index"}},
             returns={"description": "Area mean per year", "schema": {"type": "array", "items": {"type": "number"}}})
def index_series(indices: dict, index: str = "tx90p") -> list:
    """The series of ``index`` from ``climate_indices``' result."""
    if index not in indices:
        raise ValueError(f"index {index!r} is not one of {', '.join(k for k in indices if k != 'years')}")
    return list(indices[index])


def _storms(parameters: dict, member: int) -> tuple[Any, list[Any], dict[str, Any]]:
    w = generate(parameters, member)
    ds = w.data
    zeta = vorticity(ds["uas"].values.astype("float64"), ds["vas"].values.astype("float64"), ds["lon"].values,
                     ds["lat"].values)
    found = track(detect(zeta))
    truth = [(d, x, y) for s in w.storms for d, x, y in zip(s.days, s.x, s.y, strict=True)]
    return ds, found, score(found, truth, n=ds.sizes["lon"]) | {"storms_planted": len(w.storms)}


@app_process(summary="Cyclone tracks of one member as GeoJSON, scored against the planted vortices",
             parameters={"parameters": _PARAMETERS, "member": _MEMBER},
             returns={"description": "GeoJSON FeatureCollection (a LineString per track, a Point per daily centre) "
                                     "with the detection's scores under 'scores'", "schema": {"type": "object"}})
def storm_tracks(parameters: dict, member: float = 0) -> dict:
    """Detect and track the member's cyclones; the tracks in longitude and latitude, and the scores
    (precision, recall, F1, mean centre error in cells) against the planted vortices."""
    ds, found, scores = _storms(parameters, _member(member))
    times = [str(t)[:19] + "Z" for t in ds["time"].values.astype("datetime64[s]")]
    return to_geojson(found, ds["lon"].values, ds["lat"].values, times) | {"scores": scores}


@app_process(summary="The detection's scores as state values",
             parameters={"tracks": {"schema": {"type": "object"}, "description": "storm_tracks' result"}},
             returns={"description": "storm_tracks, storm_centres, storm_detection_f1, storm_centre_error_cells, ...",
                      "schema": {"type": "object"}})
def storm_scores(tracks: dict) -> dict:
    """Tracks found, centres found, F1, precision, recall and mean centre error (cells)."""
    scores = tracks["scores"]
    return {"storm_tracks": len({f["properties"]["track"] for f in tracks["features"]}),
            "storm_centres": scores["detected"], "storm_detection_f1": scores["f1"],
            "storm_precision": scores["precision"], "storm_recall": scores["recall"],
            "storm_centre_error_cells": scores["centre_error_cells"]}
