"""Per-stream quality indicators over time windows: how many records of each flag, which checks failed,
how late records arrived (arrival minus event time) and how complete each window is (records received
over records expected from the declared cadence, per source).

Pure functions over arrays: the streams service reads the records, this module only counts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

__all__ = ["QualityReport", "QualityWindow", "TooManyWindows", "summarise"]

_US = 1_000_000


class TooManyWindows(ValueError):
    """The span asked for holds more windows than ``max_windows``."""


class QualityWindow(BaseModel):
    start: datetime
    end: datetime
    records: int
    good: int
    suspect: int
    bad: int
    shares: dict[str, float] = Field(description="Share of each flag among the window's records (0 when empty).")
    checks: dict[str, int] = Field(description="Records that failed each check.")
    expected: float | None = Field(description="Records the cadence promises (per source); null without one.")
    completeness: float | None = Field(description="records / expected, at most 1; null without a cadence.")
    complete: bool | None = Field(description="completeness reaches the declared minimum; null without one.")
    lateness_median_s: float | None
    lateness_p95_s: float | None
    lateness_max_s: float | None


class QualityReport(BaseModel):
    twin_id: str
    stream: str
    start: datetime = Field(description="Start of the first window (event time).")
    end: datetime
    window_s: float
    cadence_s: float | None = Field(description="Expected time between records of one source, if declared.")
    completeness_min: float | None
    sources: int = Field(description="Distinct sources (key values) seen; the expected count is per source.")
    checks: list[str] = Field(description="The stream's declared checks, by the name flags carry.")
    total: QualityWindow
    windows: list[QualityWindow]


def _window(start_us: int, end_us: int, flags: npt.NDArray[np.int8], reasons: list[str | None],
            lateness_s: npt.NDArray[np.float64], expected: float | None, minimum: float | None) -> QualityWindow:
    counts = np.bincount(flags.astype(np.int64), minlength=3)[:3] if flags.size else np.zeros(3, dtype=np.int64)
    n = int(flags.size)
    failed: dict[str, int] = {}
    for text in reasons:
        if text:
            for name in text.split(","):
                failed[name] = failed.get(name, 0) + 1
    completeness = None if expected is None else (min(n / expected, 1.0) if expected else 1.0)
    late = lateness_s[~np.isnan(lateness_s)] if lateness_s.size else lateness_s
    return QualityWindow(
        start=datetime.fromtimestamp(start_us / _US, UTC), end=datetime.fromtimestamp(end_us / _US, UTC),
        records=n, good=int(counts[0]), suspect=int(counts[1]), bad=int(counts[2]),
        shares={name: (float(c) / n if n else 0.0) for name, c in zip(("good", "suspect", "bad"), counts, strict=True)},
        checks=dict(sorted(failed.items())), expected=expected, completeness=completeness,
        complete=None if completeness is None or minimum is None else completeness >= minimum,
        lateness_median_s=float(np.median(late)) if late.size else None,
        lateness_p95_s=float(np.percentile(late, 95)) if late.size else None,
        lateness_max_s=float(late.max()) if late.size else None)


def summarise(*, twin_id: str, stream: str, times_us: npt.NDArray[np.int64], arrival_us: npt.NDArray[np.int64],
              flags: npt.NDArray[np.int8], reasons: list[str | None], sources: int, start: datetime | None,
              end: datetime | None, window: timedelta, cadence: timedelta | None, completeness_min: float | None,
              checks: list[str], max_windows: int = 10_000) -> QualityReport:
    """Windows of ``window`` from ``start`` (default: the first event time, floored to the window) to
    ``end`` (default: after the last event time). Without ``start``/``end`` the records expected are counted
    from the first record to one cadence step after the last, so partial first and last windows are not
    reported as incomplete."""
    step = int(window.total_seconds() * _US)
    if start is not None:
        first = int(start.timestamp() * _US)
    else:
        first = (int(times_us.min()) // step) * step if times_us.size else 0
    if end is not None:
        stop = int(end.timestamp() * _US)
    else:
        stop = ((int(times_us.max()) // step) + 1) * step if times_us.size else first
    stop = max(stop, first)
    if (stop - first) / step > max_windows:
        raise TooManyWindows(f"{(stop - first) // step} windows of {window} is more than {max_windows}; choose a "
                             "longer window or a shorter span")
    every = cadence.total_seconds() * _US if cadence else None
    # what the cadence promises: from ``start`` (or the first record) to ``end`` (or one step after the last)
    cover_lo = first if start is not None or not times_us.size else int(times_us.min())
    cover_hi = stop if end is not None or not times_us.size else int(times_us.max()) + int(every or 1)

    def expected(lower: int, upper: int) -> float | None:
        span = max(min(upper, cover_hi) - max(lower, cover_lo), 0)
        return span / every * max(sources, 1) if every else None

    import pandas as pd  # here: the engine's first answer imports this module, not pandas

    lateness = (arrival_us - times_us) / _US if times_us.size else np.zeros(0)
    frame = pd.DataFrame({"w": (times_us - first) // step if times_us.size else np.zeros(0, dtype=np.int64)})
    groups = frame.groupby("w").indices if times_us.size else {}
    windows = []
    for index, lower in enumerate(range(first, stop, step)):
        upper = min(lower + step, stop)
        rows = groups.get(index, np.zeros(0, dtype=np.int64))
        windows.append(_window(lower, upper, flags[rows], [reasons[i] for i in rows], lateness[rows],
                               expected(lower, upper), completeness_min))
    expected_total = expected(first, stop) if stop > first else None
    inside = (times_us >= first) & (times_us < stop) if times_us.size else np.zeros(0, dtype=bool)
    rows_in = np.flatnonzero(inside)
    total = _window(first, stop, flags[rows_in], [reasons[i] for i in rows_in], lateness[rows_in], expected_total,
                    completeness_min)
    return QualityReport(twin_id=twin_id, stream=stream, start=datetime.fromtimestamp(first / _US, UTC),
                         end=datetime.fromtimestamp(stop / _US, UTC), window_s=window.total_seconds(),
                         cadence_s=cadence.total_seconds() if cadence else None, completeness_min=completeness_min,
                         sources=sources, checks=checks, total=total, windows=windows)
