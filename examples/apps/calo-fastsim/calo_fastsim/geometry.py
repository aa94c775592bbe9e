"""The CaloChallenge 2022 dataset-2 geometry: 45 readout layers x 16 alpha bins x 9 radial bins = 6,480 voxels.

Each readout layer is two physical layers of 1.4 mm tungsten and 0.3 mm silicon (3.4 mm); the nine radial bins
are 4.65 mm wide (half a Moliere radius of tungsten), out to 41.85 mm (the challenge's binning file). A shower
is stored flat, layer-major, then alpha, then radius, as the challenge's files are, so
``shower.reshape(45, 16, 9)`` is (layer, alpha, radius).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ALPHA_BINS", "LAYERS", "LAYER_MM", "R_BINS", "R_EDGES_MM", "SHAPE", "VOXELS", "voxel_centres"]

LAYERS = 45
ALPHA_BINS = 16
R_BINS = 9
SHAPE = (LAYERS, ALPHA_BINS, R_BINS)
VOXELS = LAYERS * ALPHA_BINS * R_BINS  # 6480
TUNGSTEN_MM = 1.4
SILICON_MM = 0.3
LAYER_MM = 2 * (TUNGSTEN_MM + SILICON_MM)  # a readout layer: two absorber/sensor pairs
R_EDGES_MM = 4.65 * np.arange(R_BINS + 1)


def voxel_centres() -> tuple[np.ndarray, np.ndarray]:
    """x and y (mm) of each (alpha, radius) bin's centre, shape (16, 9): where a layer's energy is weighed
    for its centre of energy and width (the bin's mid-angle and mid-radius, as the challenge's evaluation does)."""
    r_mid = 0.5 * (R_EDGES_MM[:-1] + R_EDGES_MM[1:])
    alpha_mid = (np.arange(ALPHA_BINS) + 0.5) * 2 * np.pi / ALPHA_BINS
    return np.cos(alpha_mid)[:, None] * r_mid[None, :], np.sin(alpha_mid)[:, None] * r_mid[None, :]
