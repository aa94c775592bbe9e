"""The app's process for its workflow: how flat the cleaned strain's spectrum is, from ``load_stream``.

``load_stream("cleaned")`` gives the whitened strain as a (record, h_sample) array; the windows the veto kept
should be white (a flat spectrum) if the whitening did its job and the veto took the glitches out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twinengine.app import app_process
from virgo_glitch.channels import SAMPLE_RATE
from virgo_glitch.detector import psd

BANDS = ((50.0, 250.0), (250.0, 450.0), (450.0, 650.0), (650.0, 850.0))  # Hz, inside the whitened band
_EDGE = SAMPLE_RATE // 8  # samples at each end of a window left out (the whitening's taper)


@app_process(summary="Flatness of the cleaned strain's spectrum over the windows the veto kept",
             parameters={"data": {"schema": {"type": "object", "subtype": "vector-cube"},
                                  "description": "The cleaned stream (load_stream): h (record, h_sample), vetoed"}},
             returns={"description": "State values: spectrum_windows, spectrum_flatness (largest over smallest "
                                     "band power; 1 is white)", "schema": {"type": "object"}})
def cleaned_spectrum(data: Any) -> dict:
    """Average the power spectral density of the kept windows' whitened strain and compare its bands."""
    if "h" not in data or data.sizes.get("record", 0) == 0:
        return {"spectrum_windows": 0}
    strain = np.asarray(data["h"].values, dtype=float)
    kept = strain[~np.asarray(data["vetoed"].values, dtype=bool)]
    if kept.size == 0:
        return {"spectrum_windows": 0}
    densities = [psd(window[_EDGE:-_EDGE])[1] for window in kept]
    freqs = psd(kept[0][_EDGE:-_EDGE])[0]
    mean = np.mean(densities, axis=0)
    power = [float(mean[(freqs >= lo) & (freqs < hi)].mean()) for lo, hi in BANDS]
    return {"spectrum_windows": len(kept), "spectrum_flatness": max(power) / min(power)}
