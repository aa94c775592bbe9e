"""The posterior summary of a calibration: the best set, credible intervals and correlations of a sample."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from twinengine.calibration.evaluator import Run
from twinengine.calibration.space import Space

__all__ = ["LEVEL", "Summary", "summarise"]

Array = npt.NDArray[np.float64]
LEVEL = 0.9  # the central credible interval reported


@dataclass(frozen=True)
class Summary:
    """Best parameters and score; per parameter the posterior median and central ``level`` interval; the
    correlation matrix of the sample (rows and columns in ``names`` order) and each parameter's R-hat over
    the sampler's chains (about 1: they mixed). Without a sample: best only."""

    names: list[str]
    best: dict[str, float] = field(default_factory=dict)
    best_score: float | None = None
    median: dict[str, float] = field(default_factory=dict)
    interval: dict[str, tuple[float, float]] = field(default_factory=dict)
    level: float = LEVEL
    correlation: list[list[float]] | None = None
    sample_size: int = 0
    r_hat: dict[str, float] = field(default_factory=dict)  # per parameter, over the sampler's chains

    def to_dict(self) -> dict[str, object]:
        return {"names": self.names, "best": self.best, "best_score": self.best_score, "median": self.median,
                "interval": {k: list(v) for k, v in self.interval.items()}, "level": self.level,
                "correlation": self.correlation, "sample_size": self.sample_size, "r_hat": self.r_hat}


def summarise(space: Space, best: Run | None, samples: Array | None, level: float = LEVEL, *,
              r_hat: Array | None = None) -> Summary:
    names = space.names
    found = Summary(names=names, level=level)
    if best is not None:
        found = Summary(names=names, level=level, best=space.as_dict(np.array(best.params)),
                        best_score=best.score)
    if samples is None or len(samples) < 2:
        return found
    tail = (1 - level) / 2
    low, mid, high = np.quantile(samples, [tail, 0.5, 1 - tail], axis=0)
    if len(names) > 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.atleast_2d(np.asarray(np.corrcoef(samples, rowvar=False), dtype="float64"))
        correlation = [[float(v) if np.isfinite(v) else 0.0 for v in row] for row in corr]
    else:
        correlation = [[1.0]]
    return Summary(names=names, best=found.best, best_score=found.best_score, level=level,
                   median={n: float(v) for n, v in zip(names, mid, strict=True)},
                   interval={n: (float(a), float(b)) for n, a, b in zip(names, low, high, strict=True)},
                   correlation=correlation, sample_size=len(samples),
                   r_hat={} if r_hat is None else {n: float(v) for n, v in zip(names, r_hat, strict=True)})
