"""High-level features of showers, as the CaloChallenge 2022 results paper (arXiv:2410.21611) defines them.

Per shower: the deposited over the incident energy; per layer: its energy, its centre of energy and width in
the two transverse directions (x along alpha = 0, y at alpha = 90 degrees, each voxel at its bin's centre),
and its sparsity (the share of its voxels above the readout cut). A layer without energy has centre and
width 0, so features stay finite. Written from the paper's description; nothing of its code is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calo_fastsim.geometry import SHAPE, voxel_centres
from calo_fastsim.simulator import Showers

__all__ = ["Features", "features", "kernel_features"]


@dataclass(frozen=True)
class Features:
    """Each array has one row per shower; per-layer arrays have 45 columns."""

    e_inc: np.ndarray  # MeV
    e_ratio: np.ndarray  # E_tot / E_inc
    e_layer: np.ndarray  # MeV
    centre_x: np.ndarray  # mm
    centre_y: np.ndarray
    width_x: np.ndarray
    width_y: np.ndarray
    sparsity: np.ndarray  # share of voxels above the cut

    def classifier_inputs(self) -> np.ndarray:
        """What the high-level classifier sees: log E_inc, E_tot/E_inc, log layer energies, centres, widths,
        sparsity (logs tame energies that span six decades)."""
        return np.hstack([np.log10(self.e_inc)[:, None], self.e_ratio[:, None], np.log10(self.e_layer + 1e-8),
                          self.centre_x, self.centre_y, self.width_x, self.width_y, self.sparsity])


def features(sample: Showers) -> Features:
    """The high-level features of every shower of ``sample``."""
    v = sample.showers.astype(np.float64).reshape(-1, *SHAPE)
    x, y = voxel_centres()
    e_layer = v.sum(axis=(2, 3))
    safe = np.where(e_layer > 0, e_layer, 1.0)

    def moments(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = (v * pos).sum(axis=(2, 3)) / safe
        second = (v * pos ** 2).sum(axis=(2, 3)) / safe
        width = np.sqrt(np.maximum(second - first ** 2, 0))
        return np.where(e_layer > 0, first, 0.0), np.where(e_layer > 0, width, 0.0)

    cx, wx = moments(x)
    cy, wy = moments(y)
    e_inc = sample.incident_energies[:, 0].astype(np.float64)
    return Features(e_inc=e_inc, e_ratio=e_layer.sum(axis=1) / e_inc, e_layer=e_layer, centre_x=cx, centre_y=cy,
                    width_x=wx, width_y=wy, sparsity=(v > 0).mean(axis=(2, 3)))


def kernel_features(f: Features) -> np.ndarray:
    """What KPD and FPD compare: E_tot/E_inc, log10 of layer energies over E_inc (floored at 1e-6), centres and
    widths (1 + 5 x 45 columns). Shares of E_inc on a log scale, not MeV: over three decades of E_inc, and with
    deep layers mostly empty, raw energies put the quartic kernel's weight on a few showers and leave the
    estimate all noise."""
    return np.hstack([f.e_ratio[:, None], np.log10(f.e_layer / f.e_inc[:, None] + 1e-6), f.centre_x, f.centre_y,
                      f.width_x, f.width_y])
