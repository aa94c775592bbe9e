"""The app's process for its workflow: the folded profile of the judged chunks, from ``load_stream``.

``load_stream("chunks")`` gives each chunk's kept cells summed per phase bin and their count as (record,
bin) arrays; summed over the chunks they are the folded profile, whose S/N the twin reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pulsar_rfi.pipeline import NBINS, profile_snr
from twinengine.app import app_process


@app_process(summary="S/N of the pulsar's folded profile over the judged chunks",
             parameters={"data": {"schema": {"type": "object", "subtype": "vector-cube"},
                                  "description": "The chunks stream (load_stream): profile_sum, profile_count"}},
             returns={"description": "State values: folded_snr, folded_chunks, folded_phase",
                      "schema": {"type": "object"}})
def folded_profile(data: Any) -> dict[str, Any]:
    """Sum the chunks' partial profiles and measure the on-pulse window's S/N (searched over 1 to 16 bins)."""
    if "profile_sum" not in data or data.sizes.get("record", 0) == 0:
        return {"folded_chunks": 0}
    total = np.asarray(data["profile_sum"].values, dtype=float).reshape(-1, NBINS).sum(axis=0)
    count = np.asarray(data["profile_count"].values, dtype=float).reshape(-1, NBINS).sum(axis=0)
    snr, (first, _width) = profile_snr(total, count)
    return {"folded_snr": snr, "folded_chunks": int(data.sizes["record"]), "folded_phase": first / NBINS}
