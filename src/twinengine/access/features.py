"""Polytope-style feature requests (as polytope-mars takes them) mapped onto the EDR extraction path.

Coordinates follow Polytope's order, ``[latitude, longitude]``. The body is either the feature itself or a
request with a ``feature`` member (MARS keys such as ``class`` or ``stream`` are accepted and ignored).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

import shapely
from pydantic import BaseModel, ConfigDict, Field, model_validator

from twinengine.access.query import LONGITUDE_LIMIT, Query, TimeFilter, ZFilter, parse_datetime, parse_distance
from twinengine.errors import InvalidParameterValue

__all__ = ["FeatureRequest", "to_query"]

LatLon = Annotated[list[float], Field(min_length=2, max_length=3, description="[latitude, longitude(, level)]")]


class Range(BaseModel):
    """An axis range: ``start``/``end`` as RFC 3339 times (time axes) or numbers (levels)."""

    model_config = ConfigDict(extra="forbid")
    start: str | float | None = None
    end: str | float | None = None


class Feature(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["timeseries", "verticalprofile", "boundingbox", "polygon", "trajectory", "circle"]
    points: list[LatLon] | None = Field(default=None, max_length=10_000)
    shape: list[LatLon] | list[list[LatLon]] | None = Field(default=None, max_length=10_000)
    center: list[LatLon] | LatLon | None = None
    radius: float | None = Field(default=None, gt=0)
    radius_units: str = Field(default="km", max_length=16, description="km, m, mi, nmi, or deg (Polytope's)")
    inflation: float | None = Field(default=None, ge=0, description="trajectory: half-width of the path (deg)")
    time_axis: str | None = Field(default=None, max_length=32)
    axes: str | list[str] | None = None
    range: Range | None = None
    levels: list[float] | None = Field(default=None, max_length=10_000)


class FeatureRequest(BaseModel):
    """The body of ``POST /edr/collections/{id}/features``."""

    model_config = ConfigDict(extra="allow")
    feature: Feature
    parameters: list[str] | None = Field(default=None, max_length=100)
    param: str | list[str] | None = Field(default=None, description="MARS style: 'a/b' or a list")
    datetime: str | None = Field(default=None, max_length=200)
    instance: str | None = Field(default=None, max_length=64)
    format: str = Field(default="covjson", max_length=32)

    @model_validator(mode="before")
    @classmethod
    def _bare_feature(cls, data: Any) -> Any:
        if isinstance(data, dict) and "feature" not in data and "type" in data:
            outer = {k: data[k] for k in ("parameters", "param", "datetime", "instance", "format") if k in data}
            return {**outer, "feature": {k: v for k, v in data.items() if k not in outer}}
        return data


def _xy(points: list[list[float]], field: str) -> list[tuple[float, float]]:
    out = []
    for i, p in enumerate(points):
        if not isinstance(p, list | tuple) or len(p) < 2:
            raise InvalidParameterValue(f"{field}[{i}]", "a point is [latitude, longitude]")
        lat, lon = float(p[0]), float(p[1])
        if not -90 <= lat <= 90:
            raise InvalidParameterValue(f"{field}[{i}]", f"latitude {lat:g} is outside -90..90 (Polytope order is "
                                                         "[latitude, longitude])")
        if not abs(lon) <= LONGITUDE_LIMIT:
            raise InvalidParameterValue(f"{field}[{i}]", f"longitude {lon:g} is outside "
                                                         f"-{LONGITUDE_LIMIT:g}..{LONGITUDE_LIMIT:g}")
        out.append((lon, lat))
    return out


def _polygon(ring: list[list[float]], field: str) -> shapely.Polygon:
    """A polygon from one ring of [lat, lon] points; shapely's refusal (too few points) names the field."""
    points = _xy(ring, field)
    try:
        return shapely.Polygon(points)
    except (ValueError, shapely.errors.GEOSException) as exc:
        raise InvalidParameterValue(field, f"not a polygon ring ({len(points)} points): {exc}") from None


def _need(value: Any, field: str) -> Any:
    if not value:
        raise InvalidParameterValue(field, "required for this feature type")
    return value


def _time(request: FeatureRequest) -> TimeFilter | None:
    rng = request.feature.range
    if request.feature.type == "timeseries" and rng is not None and (rng.start is not None or rng.end is not None):
        start = ".." if rng.start is None else str(rng.start)
        end = ".." if rng.end is None else str(rng.end)
        return parse_datetime(f"{start}/{end}")
    return parse_datetime(request.datetime)


def _levels(feature: Feature) -> ZFilter | None:
    if feature.levels:
        return ZFilter(levels=tuple(feature.levels), text="levels")
    if feature.type == "verticalprofile" and feature.range is not None:
        try:
            lo, hi = float(feature.range.start or 0), float(feature.range.end or 0)
        except (TypeError, ValueError):
            raise InvalidParameterValue("feature.range", "a vertical profile's range is numeric levels") from None
        return ZFilter(lo=min(lo, hi), hi=max(lo, hi), text="range")
    return None


def to_query(request: FeatureRequest) -> tuple[Query, str]:
    """The EDR query a feature request stands for, and the output format it asked for."""
    feature = request.feature
    names = request.parameters
    if names is None and request.param is not None:
        names = request.param.split("/") if isinstance(request.param, str) else list(request.param)
    common = Query(kind="", parameters=names, datetime=_time(request), z=_levels(feature), instance=request.instance)
    kind = feature.type
    if kind in ("timeseries", "verticalprofile"):
        points = _xy(_need(feature.points, "feature.points"), "feature.points")
        geometry = shapely.Point(points[0]) if len(points) == 1 else shapely.MultiPoint(points)
        query = replace(common, kind="position", geometry=geometry)
    elif kind == "boundingbox":
        corners = _xy(_need(feature.points, "feature.points"), "feature.points")
        if len(corners) != 2:
            raise InvalidParameterValue("feature.points", "a bounding box has two corners [[lat, lon], [lat, lon]]")
        (x0, y0), (x1, y1) = corners
        query = replace(common, kind="cube", bbox=(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    elif kind == "polygon":
        shape = _need(feature.shape, "feature.shape")
        rings = shape if shape and isinstance(shape[0], list) and shape[0] and isinstance(shape[0][0], list) \
            else [shape]  # [[]] is one empty ring, refused by _polygon naming the field
        polygons = [_polygon(r, f"feature.shape[{i}]" if len(rings) > 1 else "feature.shape")
                    for i, r in enumerate(rings)]
        geometry = polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)
        if not geometry.is_valid:
            raise InvalidParameterValue("feature.shape", f"not a valid polygon: {shapely.is_valid_reason(geometry)}")
        query = replace(common, kind="area", geometry=geometry)
    elif kind == "circle":
        centre = _need(feature.center, "feature.center")
        centres = centre if centre and isinstance(centre[0], list) else [centre]
        points = _xy(centres, "feature.center")
        radius = _need(feature.radius, "feature.radius")
        km = radius * 111.195 if feature.radius_units == "deg" else parse_distance(
            radius, feature.radius_units, field="feature.radius", units_field="feature.radius_units")
        geometry = shapely.Point(points[0]) if len(points) == 1 else shapely.MultiPoint(points)
        query = replace(common, kind="radius", geometry=geometry, within_km=km)
    else:  # trajectory
        points = _xy(_need(feature.points, "feature.points"), "feature.points")
        line = shapely.LineString(points) if len(points) > 1 else shapely.LineString([points[0], points[0]])
        if feature.inflation:
            query = replace(common, kind="corridor", geometry=line, width_km=2 * feature.inflation * 111.195)
        else:
            query = replace(common, kind="trajectory", geometry=line)
    fmt = {"covjson": "coveragejson", "coveragejson": "coveragejson", "geojson": "geojson",
           "netcdf": "netcdf"}.get(request.format.lower())
    if fmt is None:
        raise InvalidParameterValue("format", f"{request.format!r}: use covjson, geojson or netcdf")
    return query, fmt
