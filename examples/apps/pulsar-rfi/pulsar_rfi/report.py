"""The twin's output as a text file: every chunk with its class and score, then the dedispersed, folded
profile (one line a phase bin), as a pulsar search hands its candidates on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pulsar_rfi.pipeline import profile_snr

__all__ = ["write_report"]


def write_report(path: Path, chunks: Iterable[Mapping[str, Any]], *, tsamp: float, dm: float,
                 period: float) -> dict[str, float]:
    """Write the chunks (start, label, score, width, flagged, profile_sum, profile_count) and their folded
    profile to ``path``; returns the profile's S/N and on-pulse window."""
    rows = sorted(chunks, key=lambda c: int(c["start"]))
    total = np.sum([np.asarray(c["profile_sum"], dtype=float) for c in rows], axis=0)
    count = np.sum([np.asarray(c["profile_count"], dtype=float) for c in rows], axis=0)
    snr, (first, width) = profile_snr(total, count)
    level = total.sum() / max(count.sum(), 1.0)
    lines = [f"# pulsar-rfi chunks: DM {dm:g} pc cm^-3, period {period:g} s, {len(rows)} chunks",
             "# start_s  class  score_snr  width_ms  flagged"]
    lines += [f"{int(c['start']) * tsamp:10.3f}  {c['label']:<10}  {float(c['score']):7.2f}  "
              f"{int(c['width']) * tsamp * 1000:5.0f}  {float(c['flagged']):.3f}" for c in rows]
    lines += [f"# folded profile: S/N {snr:.2f}, on-pulse bins {first} to {first + width - 1} of {len(total)}",
              "# bin  phase  profile_snr_units"]
    lines += [f"{b:4d}  {b / len(total):.4f}  {(total[b] - level * count[b]) / np.sqrt(max(count[b], 1.0)):8.3f}"
              for b in range(len(total))]
    path.write_text("\n".join(lines) + "\n")
    return {"snr": snr, "first_bin": first, "width_bins": width}
