"""CoverageJSON (OGC Community Standard 21-069r2) from an ``Extraction``, serialised without per-value loops.

Range values stay numpy arrays until orjson writes them (NaN becomes ``null``), so a two-million-value
grid costs one pass in C. Referencing: CRS84 for x/y, the Gregorian calendar for t, a vertical CRS for z.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from twinengine.access.extract import Coverage, Extraction, ParameterInfo

__all__ = ["MEDIA_TYPE", "dumps", "to_covjson"]

MEDIA_TYPE = "application/vnd.cov+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def _times(values: np.ndarray) -> list[str]:
    text = np.datetime_as_string(values.astype("datetime64[s]"), unit="s")
    return [f"{t}Z" for t in text.tolist()]


def _numbers(values: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(values)  # also lays out transposed views for the flat reshape
    return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64)


def _parameter(info: ParameterInfo) -> dict[str, Any]:
    label = info.long_name or (info.standard_name or info.name).replace("_", " ")
    out: dict[str, Any] = {
        "type": "Parameter",
        "description": {"en": label},
        "observedProperty": {"id": info.standard_name or info.name, "label": {"en": label}},
    }
    if info.units:
        out["unit"] = {"label": {"en": info.units}, "symbol": info.units}
    return out


def _referencing(coverage: Coverage, z_units: str | None) -> list[dict[str, Any]]:
    names = set(coverage.axes) | set(coverage.composite or {})
    refs: list[dict[str, Any]] = [{"coordinates": ["x", "y"], "system": {"type": "GeographicCRS", "id": CRS84}}]
    if "z" in names:
        axis: dict[str, Any] = {"name": {"en": "level"}}
        if z_units:
            axis["unit"] = {"symbol": z_units}
        refs.append({"coordinates": ["z"], "system": {"type": "VerticalCRS", "cs": {"csAxes": [axis]}}})
    if "t" in names:
        refs.append({"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": "Gregorian"}})
    return refs


def _domain(coverage: Coverage) -> tuple[str, dict[str, Any]]:
    axes: dict[str, Any] = {}
    domain_type = coverage.domain_type
    for name in ("x", "y", "z"):
        if name in coverage.axes:
            axes[name] = {"values": _numbers(coverage.axes[name])}
    if "t" in coverage.axes:
        axes["t"] = {"values": _times(coverage.axes["t"])}
    if coverage.composite is not None:
        columns = dict(coverage.composite)
        if "t" in columns and np.isnat(columns["t"]).all():
            columns.pop("t")
            domain_type = "MultiPoint"
        lists = [_times(v) if k == "t" else _numbers(v).tolist() for k, v in columns.items()]
        axes["composite"] = {"dataType": "tuple", "coordinates": list(columns),
                             "values": [list(row) for row in zip(*lists, strict=True)]}
    return domain_type, {"type": "Domain", "domainType": domain_type, "axes": axes}


def _ranges(coverage: Coverage) -> dict[str, Any]:
    out = {}
    names = list(coverage.axis_names)
    # Grids go out x before y: any reader honours axisNames, and Polytope's covjsonkit assumes this order.
    swap = names[-2:] == ["y", "x"]
    if swap:
        names[-2:] = ["x", "y"]
    for name, values in coverage.ranges.items():
        arr = _numbers(np.swapaxes(values, -1, -2) if swap else values)
        body: dict[str, Any] = {"type": "NdArray", "dataType": "float", "values": arr.reshape(-1)}
        if names:
            body["axisNames"] = names
            body["shape"] = list(arr.shape)
        out[name] = body
    return out


def to_covjson(extraction: Extraction, *, z_units: str | None = None) -> dict[str, Any]:
    """A Coverage, or a CoverageCollection when the extraction has several coverages (or asks for one)."""
    parameters = {name: _parameter(info) for name, info in extraction.parameters.items()}
    coverages = []
    for coverage in extraction.coverages:
        domain_type, domain = _domain(coverage)
        coverages.append((domain_type, domain, _ranges(coverage), _referencing(coverage, z_units)))
    if not extraction.collection and len(coverages) == 1:
        domain_type, domain, ranges, refs = coverages[0]
        domain["referencing"] = refs
        return {"type": "Coverage", "domain": domain, "parameters": parameters, "ranges": ranges}
    return {
        "type": "CoverageCollection",
        "domainType": coverages[0][0],
        "parameters": parameters,
        "referencing": coverages[0][3],
        "coverages": [{"type": "Coverage", "domain": domain, "ranges": ranges}
                      for _, domain, ranges, _ in coverages],
    }


def dumps(document: dict[str, Any]) -> bytes:
    """JSON bytes; numpy arrays are written by orjson in C (NaN and inf as null)."""
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
