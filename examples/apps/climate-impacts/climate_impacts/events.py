"""Drought events in space and time, and their characteristics (extent, duration, intensity, frequency).

A month's drought area is the cells with SPI at most ``threshold`` (-1); its 4-connected clusters of at least
``min_cells`` cells are kept (a scattered dry cell is weather, not a drought), and clusters of consecutive
months that share a cell belong to one event (Andreadis et al. 2005: clusters in space, then linked in time).
Natural dry spells brush against a large drought at its edges, in space and in time; the characteristics
are therefore read from its core:

- **duration**: from the first to the last month in which the event covers at least ``CORE`` (0.6) of the
  largest area it holds for two months running (a single month in which chance dry cells crowd in does not
  set the scale);
- **extent**: the share of the grid's cells that are dry in at least three quarters of those months (a cell
  that chance dry months attached now and then does not count);
- **intensity**: the mean SPI over the dry cell-months of those cells in those months; **severity**: the sum
  of the deficits below the threshold over every cell-month of the event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["CORE", "PERSISTENT", "Event", "find_events", "match_planted"]

PERSISTENT = 0.75  # a cell belongs to the extent when dry in at least this share of the core months
CORE = 0.6  # a core month holds at least this share of the event's sustained area


@dataclass(frozen=True)
class Event:
    """A drought event: its core months ``[start, start + duration)`` of the monthly axis it was found on."""

    start: int
    duration: int
    extent: float
    peak_extent: float
    intensity: float
    severity: float
    cells: int   # distinct cells it touched
    months: int  # from its first to its last month, edges included

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _labels(dry: np.ndarray, min_cells: int) -> tuple[np.ndarray, int]:
    """Per month, clusters of dry cells large enough; labels unique over the whole array (0: none)."""
    out = np.zeros(dry.shape, dtype=np.int64)
    count = 0
    for t in range(dry.shape[0]):
        lab, n = ndimage.label(dry[t])
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())
        keep = np.flatnonzero(sizes >= min_cells)
        keep = keep[keep > 0]
        for k in keep:
            count += 1
            out[t][lab == k] = count
    return out, count


def _sustained(area: np.ndarray) -> float:
    """The largest area an event holds for two months running (its area alone when it lasts a month): one
    month in which chance dry cells join it in a crowd does not set its scale."""
    if len(area) < 2:
        return float(area.max())
    return float(np.minimum(area[:-1], area[1:]).max())


def find_events(index: np.ndarray, *, threshold: float = -1.0, min_cells: int | None = None) -> tuple[
        list[Event], np.ndarray]:
    """Events of a (month, lat, lon) index; also the event number of every cell-month (-1: none)."""
    n_cells = index.shape[1] * index.shape[2]
    min_cells = min_cells or max(4, round(0.04 * n_cells))
    dry = np.isfinite(index) & (index <= threshold)
    labels, count = _labels(dry, min_cells)
    parent = list(range(count + 1))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for t in range(1, labels.shape[0]):
        shared = (labels[t] > 0) & (labels[t - 1] > 0)
        for a, b in set(zip(labels[t][shared].tolist(), labels[t - 1][shared].tolist(), strict=True)):
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(a) for a in range(count + 1)])
    event_of = np.where(labels > 0, roots[labels], 0)
    ids = sorted(set(np.unique(event_of).tolist()) - {0})
    events, number = [], np.full(index.shape, -1, dtype=np.int64)
    for i, ident in enumerate(ids):
        mask = event_of == ident
        number[mask] = i
        months = np.flatnonzero(mask.any(axis=(1, 2)))
        area = mask.sum(axis=(1, 2))
        # over the event's own months: a one-month event's zeros either side would make its scale 0
        core = np.flatnonzero(area >= CORE * _sustained(area[months[0]:months[-1] + 1]))
        span = slice(int(core[0]), int(core[-1]) + 1)
        persistent = mask[span].mean(axis=0) >= PERSISTENT
        core_cells = mask[span] & persistent[None]
        values = index[span][core_cells] if core_cells.any() else index[mask]
        events.append(Event(start=int(core[0]), duration=int(core[-1] - core[0] + 1),
                            extent=float(persistent.sum() / n_cells), peak_extent=float(area.max() / n_cells),
                            intensity=float(values.mean()), severity=float(np.sum(threshold - index[mask])),
                            cells=int(mask.any(axis=0).sum()), months=int(months[-1] - months[0] + 1)))
    return events, number


def match_planted(events: list[Event], number: np.ndarray, planted: list[Any]) -> list[dict[str, Any]]:
    """For each planted drought, the event covering most of its cell-months, and the differences in duration
    (months), extent (share of the grid) and intensity (SPI) from the planted truth."""
    out = []
    for drought in planted:
        block = number[drought.start:drought.start + drought.duration, drought.y0:drought.y1,
                       drought.x0:drought.x1]
        found = block[block >= 0]
        row: dict[str, Any] = {"drought": drought.ident, "first_month": drought.first_month,
                               "planted": {"duration": drought.duration, "extent": round(drought.extent, 4),
                                           "intensity": round(drought.intensity, 4)}}
        if found.size == 0:
            out.append(row | {"found": False, "covered": 0.0})
            continue
        best = int(np.bincount(found).argmax())
        event = events[best]
        row |= {"found": True, "covered": float(np.mean(block == best)),
                "event": {"duration": event.duration, "extent": round(event.extent, 4),
                          "intensity": round(event.intensity, 4)},
                "duration_error": event.duration - drought.duration,
                "extent_error": round(event.extent - drought.extent, 4),
                "intensity_error": round(event.intensity - drought.intensity, 4)}
        out.append(row)
    return out
