"""A classical cyclone detector and tracker, and its score against the planted storms.

Detection: relative vorticity zeta = dv/dx - du/dy (s-1, centred differences on the sphere's metric) of the
daily near-surface wind; a centre is a local maximum over 5 x 5 cells above ``threshold``, away from the
grid's edge, refined to sub-cell precision by the vorticity-weighted centroid of its 3 x 3 neighbourhood.
Tracking: centres on consecutive days are linked nearest first within ``max_step`` cells; tracks shorter
than ``min_days`` are dropped (a one-day eddy is not a cyclone). Scoring: per day, detected and planted
centres are paired nearest first within ``match_radius`` cells; F1 over all pairs, and the mean distance of
the pairs in cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["Centre", "detect", "score", "to_geojson", "track", "vorticity"]

EARTH_RADIUS_M = 6_371_000.0
THRESHOLD = 1.0e-4  # s-1
EDGE = 1.5  # cells: centres nearer the edge than this are neither planted truth nor detected


@dataclass(frozen=True)
class Centre:
    day: int
    x: float  # grid cells (fractional), along lon
    y: float  # grid cells (fractional), along lat
    vorticity: float  # s-1
    track: str = ""


def vorticity(u: np.ndarray, v: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Relative vorticity (s-1) of (..., lat, lon) winds on a regular lon/lat grid."""
    dlon = math.radians(float(lon[1] - lon[0]))
    dlat = math.radians(float(lat[1] - lat[0]))
    dx = EARTH_RADIUS_M * np.cos(np.radians(lat))[:, None] * dlon
    dy = EARTH_RADIUS_M * dlat
    dv_dx = np.gradient(v, axis=-1) / dx
    du_dy = np.gradient(u, axis=-2) / dy
    return np.asarray(dv_dx - du_dy)


def _interior(x: float, y: float, n: int) -> bool:
    return EDGE <= x <= n - 1 - EDGE and EDGE <= y <= n - 1 - EDGE


def detect(zeta: np.ndarray, *, threshold: float = THRESHOLD) -> list[Centre]:
    """Centres of every day of a (time, lat, lon) vorticity array."""
    n_y, n_x = zeta.shape[-2:]
    peaks = (zeta == ndimage.maximum_filter(zeta, size=(1, 5, 5), mode="nearest")) & (zeta > threshold)
    out = []
    for day, j, i in zip(*np.nonzero(peaks), strict=True):
        j0, j1, i0, i1 = max(j - 1, 0), min(j + 2, n_y), max(i - 1, 0), min(i + 2, n_x)
        w = np.clip(zeta[day, j0:j1, i0:i1], 0.0, None)
        yy, xx = np.mgrid[j0:j1, i0:i1]
        x, y = float((w * xx).sum() / w.sum()), float((w * yy).sum() / w.sum())
        if _interior(x, y, min(n_x, n_y)):
            out.append(Centre(int(day), x, y, float(zeta[day, j, i])))
    return out


def track(centres: list[Centre], *, max_step: float = 4.0, min_days: int = 2) -> list[Centre]:
    """Link centres day to day (nearest first); returns the centres of tracks of ``min_days`` or more, each
    with its track's name (``T0001``...)."""
    by_day: dict[int, list[Centre]] = {}
    for c in centres:
        by_day.setdefault(c.day, []).append(c)
    open_tracks: list[list[Centre]] = []
    done: list[list[Centre]] = []
    for day in sorted(by_day):
        today = by_day[day]
        alive = [t for t in open_tracks if t[-1].day == day - 1]
        done += [t for t in open_tracks if t[-1].day != day - 1]
        pairs = sorted((math.hypot(c.x - t[-1].x, c.y - t[-1].y), ti, ci)
                       for ti, t in enumerate(alive) for ci, c in enumerate(today))
        used_t: set[int] = set()
        used_c: set[int] = set()
        for dist, ti, ci in pairs:
            if dist <= max_step and ti not in used_t and ci not in used_c:
                alive[ti].append(today[ci])
                used_t.add(ti)
                used_c.add(ci)
        open_tracks = alive + [[c] for ci, c in enumerate(today) if ci not in used_c]
    done += open_tracks
    kept = sorted((t for t in done if len(t) >= min_days), key=lambda t: (t[0].day, t[0].x))
    return [Centre(c.day, c.x, c.y, c.vorticity, f"T{k + 1:04d}") for k, t in enumerate(kept) for c in t]


def score(found: list[Centre], truth: list[tuple[int, float, float]], *, match_radius: float = 2.0,
          n: int | None = None) -> dict[str, Any]:
    """Precision, recall, F1 and the mean centre error (cells) of ``found`` against planted (day, x, y)
    centres; planted centres nearer the edge than the detector looks (with ``n``) are left out."""
    if n is not None:
        truth = [t for t in truth if _interior(t[1], t[2], n)]
    by_day: dict[int, list[tuple[float, float]]] = {}
    for day, x, y in truth:
        by_day.setdefault(day, []).append((x, y))
    errors: list[float] = []
    for day in sorted({c.day for c in found}):
        mine = [c for c in found if c.day == day]
        theirs = by_day.get(day, [])
        pairs = sorted((math.hypot(c.x - x, c.y - y), i, j) for i, c in enumerate(mine)
                       for j, (x, y) in enumerate(theirs))
        used_i: set[int] = set()
        used_j: set[int] = set()
        for dist, i, j in pairs:
            if dist <= match_radius and i not in used_i and j not in used_j:
                errors.append(dist)
                used_i.add(i)
                used_j.add(j)
    hits = len(errors)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"detected": len(found), "planted": len(truth), "matched": hits, "precision": round(precision, 4),
            "recall": round(recall, 4), "f1": round(f1, 4),
            "centre_error_cells": round(float(np.mean(errors)), 4) if errors else None}


def to_geojson(centres: list[Centre], lon: np.ndarray, lat: np.ndarray, times: list[str]) -> dict[str, Any]:
    """The tracks as a GeoJSON FeatureCollection: one LineString per track, one Point per daily centre."""
    def at(c: Centre) -> list[float]:
        return [round(float(np.interp(c.x, np.arange(len(lon)), lon)), 4),
                round(float(np.interp(c.y, np.arange(len(lat)), lat)), 4)]

    features: list[dict[str, Any]] = []
    names = sorted({c.track for c in centres})
    for name in names:
        points = [c for c in centres if c.track == name]
        features.append({"type": "Feature", "id": name, "geometry": {"type": "LineString",
                                                                     "coordinates": [at(c) for c in points]},
                         "properties": {"track": name, "start": times[points[0].day], "end": times[points[-1].day],
                                        "days": len(points),
                                        "max_vorticity": max(round(c.vorticity, 7) for c in points)}})
        features += [{"type": "Feature", "id": f"{name}-{times[c.day][:10]}",
                      "geometry": {"type": "Point", "coordinates": at(c)},
                      "properties": {"track": name, "time": times[c.day], "vorticity": round(c.vorticity, 7)}}
                     for c in points]
    return {"type": "FeatureCollection", "features": features}
