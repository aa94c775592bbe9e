"""Geometry on the grid, vectorised: polygon and radius masks over cell centres, corridors, and paths
sampled at the grid's resolution. Distances are great-circle (haversine) on a sphere of Earth's mean radius."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

__all__ = ["EARTH_RADIUS_KM", "circle_bounds", "corridor_mask", "haversine_km", "polygon_mask", "radius_mask",
           "sample_path"]

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray | float, lat2: np.ndarray | float) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat = p2 - p1
    dlon = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def circle_bounds(lon: float, lat: float, radius_km: float) -> tuple[float, float, float, float]:
    """A lon/lat box that contains the circle (whole longitude range near the poles)."""
    dlat = np.degrees(radius_km / EARTH_RADIUS_KM)
    coslat = np.cos(np.radians(min(abs(lat) + dlat, 90.0)))
    dlon = 180.0 if coslat < 1e-6 else min(180.0, float(np.degrees(radius_km / (EARTH_RADIUS_KM * coslat))))
    return lon - dlon, max(-90.0, lat - dlat), lon + dlon, min(90.0, lat + dlat)


def polygon_mask(geometry: BaseGeometry, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(len(ys), len(xs)) booleans: which cell centres lie inside (or on the edge of) the polygon."""
    lon, lat = np.meshgrid(xs, ys)
    shapely.prepare(geometry)
    return np.asarray(shapely.intersects_xy(geometry, lon, lat))


def radius_mask(centres: np.ndarray, radius_km: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(len(ys), len(xs)) booleans: cell centres within ``radius_km`` of any of the (lon, lat) centres."""
    lon, lat = np.meshgrid(xs, ys)
    mask = np.zeros(lon.shape, dtype=bool)
    for cx, cy in centres:
        mask |= haversine_km(lon, lat, float(cx), float(cy)) <= radius_km
    return mask


def _local_xy(lon: np.ndarray, lat: np.ndarray, lat0: float) -> tuple[np.ndarray, np.ndarray]:
    """Equirectangular kilometres around latitude ``lat0``: good to a fraction of a percent over a few
    hundred km, which is what corridors span."""
    k = np.pi * EARTH_RADIUS_KM / 180.0
    return lon * k * np.cos(np.radians(lat0)), lat * k


def corridor_mask(path: np.ndarray, width_km: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(len(ys), len(xs)) booleans: cell centres within ``width_km / 2`` of the (lon, lat) path."""
    lat0 = float(np.mean(path[:, 1]))
    px, py = _local_xy(path[:, 0], path[:, 1], lat0)
    line = shapely.LineString(np.column_stack([px, py])) if len(path) > 1 else shapely.Point(px[0], py[0])
    area = line.buffer(width_km / 2.0)
    shapely.prepare(area)
    lon, lat = np.meshgrid(xs, ys)
    gx, gy = _local_xy(lon, lat, lat0)
    return np.asarray(shapely.intersects_xy(area, gx, gy))


def sample_path(coords: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step`` degrees along a polyline (vertices included), with each point's fractional
    position along the vertex list (so Z and M can be interpolated the same way)."""
    if len(coords) == 1:
        return coords[:, :2].copy(), np.zeros(1)
    points, where = [], []
    for i in range(len(coords) - 1):
        a, b = coords[i, :2], coords[i + 1, :2]
        n = max(1, int(np.ceil(float(np.hypot(*(b - a))) / step)))
        f = np.arange(n) / n
        points.append(a + (b - a) * f[:, None])
        where.append(i + f)
    points.append(coords[-1:, :2])
    where.append(np.array([len(coords) - 1.0]))
    return np.concatenate(points), np.concatenate(where)
