"""A cube answer drawn as a PNG (``f=png``): one parameter at one time step and level, north up, one pixel per
cell, colours on a scale fixed per variable (``legend``) so the frames of a time slider compare; missing values
and values below the variable's floor are transparent.

The portal's map lays the image over the grid's cell edges, which the answer's headers give, so the field
is drawn by the engine from the same read path as every EDR query (a million cells in one answer)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from twinengine.access.extract import Extraction
from twinengine.access.legend import Legend, legend_for
from twinengine.errors import InvalidParameterValue

__all__ = ["PNG", "RenderedField", "informative_time", "parse_scale", "render_png"]

PNG = "image/png"

# viridis at nine stops (matplotlib's colour map, CC0): perceptually even, readable by colour-blind people
_STOPS = np.array([[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129],
                   [92, 200, 99], [170, 220, 50], [253, 231, 37]], dtype=float)
_LUT = np.stack([np.interp(np.linspace(0, 8, 256), np.arange(9), _STOPS[:, c]) for c in range(3)],
                axis=1).round().astype(np.uint8)


@dataclass(frozen=True)
class RenderedField:
    png: bytes
    parameter: str
    bounds: tuple[float, float, float, float]  # west, south, east, north of the outer cell edges
    scale: tuple[float, float]
    time: str | None
    units: str | None
    floor: float | None = None
    scale_source: str = "data"

    def headers(self) -> dict[str, str]:
        out = {"X-Bounds": ",".join(f"{v:.10g}" for v in self.bounds),
               "X-Scale": ",".join(f"{v:.10g}" for v in self.scale), "X-Parameter": self.parameter,
               "X-Scale-Source": self.scale_source, "Cache-Control": "private, max-age=60"}
        if self.floor is not None:
            out["X-Floor"] = f"{self.floor:.10g}"
        if self.time:
            out["X-Datetime"] = self.time
        if self.units:
            out["X-Units"] = self.units
        return out


def parse_scale(text: str | None) -> tuple[float, float] | None:
    """``scale=lo,hi``: the values drawn as the first and last colour (default: the answer's range)."""
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidParameterValue("scale", f"{text!r}: give the colour scale as two numbers, lo,hi") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        raise InvalidParameterValue("scale", f"{text!r}: lo must be a number below hi")
    return lo, hi


def _edges(values: np.ndarray) -> tuple[float, float]:
    if values.size == 1:
        return float(values[0]) - 0.5, float(values[0]) + 0.5
    first, last = float(values[0]), float(values[-1])
    half = (last - first) / (values.size - 1) / 2
    return min(first - half, last + half), max(first - half, last + half)


def _isotime(value: Any) -> str:
    return str(np.datetime_as_string(np.asarray(value).astype("datetime64[s]"))) + "Z"


def informative_time(extraction: Extraction, *, floor: float | None) -> str | None:
    """The time step a map opens on: for a quantity with a floor (rain), the step with the most of it above the
    floor over the area drawn (its peak), so the map never opens on a dry hour; otherwise, and when every step
    is below the floor, the latest step holding any value. None when the answer has no time axis."""
    extraction.complete()
    coverage = extraction.coverages[0]
    names = list(coverage.axis_names)
    if "t" not in names or not coverage.axes["t"].size:
        return None
    data = np.moveaxis(next(iter(coverage.ranges.values())).astype(np.float64, copy=False), names.index("t"), 0)
    steps = data.reshape(data.shape[0], -1)
    times = coverage.axes["t"]
    if floor is not None:
        totals = np.where(np.isfinite(steps) & (steps >= floor), steps, 0.0).sum(axis=1)
        if totals.max() > 0:
            best = np.flatnonzero(totals == totals.max())[-1]  # ties: the latest
            return _isotime(times[best])
    holding = np.flatnonzero(np.isfinite(steps).any(axis=1))
    return _isotime(times[holding[-1] if holding.size else times.size - 1])


def render_png(extraction: Extraction, *, scale: tuple[float, float] | None,
               attrs: Mapping[str, Any] | None = None) -> RenderedField:
    """Draw the answer; it must hold one grid with one time step and level (an instant in ``datetime``).
    ``scale`` (asked for) wins over the variable's legend (``attrs``: its attributes, see ``legend``)."""
    if extraction.domain_type != "Grid" or len(extraction.coverages) != 1:
        raise InvalidParameterValue("f", "png draws a cube answer on a regular grid")
    extraction.complete()
    coverage = extraction.coverages[0]
    name = next(iter(coverage.ranges))
    data = coverage.ranges[name]
    names = list(coverage.axis_names)
    for axis, parameter in (("t", "datetime"), ("z", "z")):
        if axis in names and data.shape[names.index(axis)] != 1:
            raise InvalidParameterValue(parameter, f"png draws one {axis} step; this answer has "
                                                   f"{data.shape[names.index(axis)]}: give one {parameter} value")
    grid = np.moveaxis(data, [names.index("y"), names.index("x")], [-2, -1]).reshape(data.shape[names.index("y")],
                                                                                     data.shape[names.index("x")])
    xs, ys = coverage.axes["x"], coverage.axes["y"]
    grid = grid.astype(np.float32, copy=False)
    if xs.size > 1 and xs[0] > xs[-1]:
        grid = grid[:, ::-1]
    if ys.size < 2 or ys[0] < ys[-1]:
        grid = grid[::-1, :]  # image rows run north to south
    legend = legend_for(name, attrs or {}, grid)
    if scale is not None:
        legend = Legend(scale[0], scale[1], legend.floor, "request")
    finite = np.isfinite(grid)
    if legend.floor is not None:
        finite &= grid >= legend.floor  # rounding noise and traces are drawn as none, not as the lowest colour
    lo, hi = legend.lo, legend.hi
    index = np.clip((np.nan_to_num(grid, nan=lo) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    rgba = np.empty((*grid.shape, 4), dtype=np.uint8)
    rgba[..., :3] = _LUT[index]
    rgba[..., 3] = np.where(finite, 255, 0)
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG", compress_level=1)
    west, east = _edges(xs)
    south, north = _edges(ys)
    time = None
    if "t" in coverage.axes and coverage.axes["t"].size:
        time = _isotime(coverage.axes["t"][0])
    units = extraction.parameters[name].units if name in extraction.parameters else None
    return RenderedField(buffer.getvalue(), name, (west, south, east, north), (float(lo), float(hi)), time, units,
                         legend.floor, legend.source)
