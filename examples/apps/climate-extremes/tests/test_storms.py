"""The cyclone detector and tracker against the planted vortices: F1 >= 0.9 and a mean centre error below two
grid cells, on members of every pathway; and the scoring itself on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from climate_extremes.generator import generate
from climate_extremes.storms import Centre, detect, score, to_geojson, track, vorticity

PARAMS = {"years": 6, "baseline_years": 1, "grid_cells": 16, "storms_per_year": 10}


@pytest.mark.parametrize(("warming", "member"), [(0.15, 0), (0.35, 1), (0.7, 2)])
def test_planted_cyclones_are_found_and_placed(warming: float, member: int) -> None:
    w = generate({**PARAMS, "warming_k_per_decade": warming}, member)
    ds = w.data
    zeta = vorticity(ds["uas"].values.astype(float), ds["vas"].values.astype(float), ds["lon"].values,
                     ds["lat"].values)
    found = track(detect(zeta))
    truth = [(d, x, y) for s in w.storms for d, x, y in zip(s.days, s.x, s.y, strict=True)]
    got = score(found, truth, n=16)
    assert got["planted"] > 100  # enough centres for the scores to mean something
    assert got["f1"] >= 0.9, got
    assert got["centre_error_cells"] < 2.0, got
    assert len({c.track for c in found}) >= 0.8 * len(w.storms)


def test_a_single_vortex_is_found_where_it_is() -> None:
    n = 16
    lon = lat = np.arange(n, dtype=float)
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    u = np.zeros((2, n, n))
    v = np.zeros((2, n, n))
    for day, (cx, cy) in enumerate([(6.3, 7.6), (8.1, 7.9)]):
        dx, dy = xx - cx, yy - cy
        r = np.hypot(dx, dy) + 1e-9
        speed = 20 * (r / 2) * np.exp(0.5 * (1 - (r / 2) ** 2))
        u[day], v[day] = -speed * dy / r, speed * dx / r
    found = track(detect(vorticity(u, v, lon, lat)))
    assert [(c.day, c.track) for c in found] == [(0, "T0001"), (1, "T0001")]
    assert abs(found[0].x - 6.3) < 0.5 and abs(found[0].y - 7.6) < 0.5
    feature = to_geojson(found, lon, lat, ["2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z"])["features"][0]
    assert feature["geometry"]["type"] == "LineString" and feature["properties"]["days"] == 2


def test_scores_of_known_cases() -> None:
    truth = [(0, 5.0, 5.0), (1, 6.0, 5.0), (1, 12.0, 12.0)]
    found = [Centre(0, 5.5, 5.0, 1e-4), Centre(1, 6.0, 6.0, 1e-4), Centre(2, 9.0, 9.0, 1e-4)]
    got = score(found, truth)
    assert got["matched"] == 2 and got["precision"] == round(2 / 3, 4) and got["recall"] == round(2 / 3, 4)
    assert got["centre_error_cells"] == 0.75
    assert score([], [])["f1"] == 1.0


def test_centres_become_a_station_table() -> None:
    from climate_extremes.stations import centres_table

    found = [Centre(0, 6.0, 7.0, 2e-4, "T0001"), Centre(1, 8.0, 7.5, 3e-4, "T0001")]
    grid = np.arange(16, dtype=float)
    table = centres_table(to_geojson(found, grid + 0.5, grid + 40.5, ["2030-01-01T00:00:00Z",
                                                                      "2030-01-02T00:00:00Z"]))
    lines = table.splitlines()
    assert lines[0] == "station,lon,lat,time,vorticity [s-1],track"
    assert lines[1:] == ["T0001-2030-01-01,6.5,47.5,2030-01-01T00:00:00Z,0.0002,1",
                         "T0001-2030-01-02,8.5,48.0,2030-01-02T00:00:00Z,0.0003,1"]
