"""The physical twin's stand-in: GFlash-parametrised electromagnetic showers in the dataset-2 geometry.

Per shower, ln T and ln alpha are drawn correlated (``gflash.longitudinal_means``); the shower's energy is
shared over the readout layers by the gamma profile's integral over each layer's depth, and its spots by the
spot profile's. Within a layer the spots fall in radial bins by the core/tail profile at the layer's tau and
evenly in alpha (normal incidence): each voxel's spot count is Poisson, the layer's spots share its energy
equally (so the deposit is exact and only sampling fluctuates it, as in GFlash), and the sensor sees that
deposit times the sampling fraction with a gamma fluctuation of variance c_s^2 E (so sigma_E/E = c_s/sqrt(E)),
read out above 15.15 keV as in the challenge.
Energy beyond the 45th layer or 41.85 mm leaks out. Everything is arrays over showers, so a few
thousand showers take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammainc

from calo_fastsim.geometry import ALPHA_BINS, LAYER_MM, LAYERS, R_EDGES_MM, SHAPE, VOXELS
from calo_fastsim.gflash import MEDIUM, Medium, longitudinal_means, radial_parameters, spot_count, spot_profile_factors

__all__ = ["E_MAX_MEV", "E_MIN_MEV", "THRESHOLD_MEV", "Showers", "draw_energies", "simulate"]

E_MIN_MEV, E_MAX_MEV = 1.0e3, 1.0e6
THRESHOLD_MEV = 0.01515  # the challenge's readout cut for datasets 2 and 3
CHUNK = 400


@dataclass(frozen=True)
class Showers:
    """A CaloChallenge sample: incident energies (N, 1) and voxel energies (N, 6480), MeV, float32."""

    incident_energies: np.ndarray
    showers: np.ndarray

    def __post_init__(self) -> None:
        if self.incident_energies.ndim != 2 or self.incident_energies.shape[1] != 1:
            raise ValueError(f"incident_energies must have shape (N, 1), not {self.incident_energies.shape}")
        if self.showers.shape != (len(self.incident_energies), VOXELS):
            raise ValueError(f"showers must have shape ({len(self.incident_energies)}, {VOXELS}), "
                             f"not {self.showers.shape}")

    def __len__(self) -> int:
        return len(self.showers)


def draw_energies(n: int, rng: np.random.Generator) -> np.ndarray:
    """Incident energies log-uniform between 1 GeV and 1 TeV, MeV."""
    return 10.0 ** rng.uniform(np.log10(E_MIN_MEV), np.log10(E_MAX_MEV), n)


def _layer_shares(alpha: np.ndarray, beta: np.ndarray, edges_x0: np.ndarray) -> np.ndarray:
    """Share of a gamma profile in each layer: differences of its CDF at the layer boundaries."""
    return np.diff(gammainc(alpha[:, None], beta[:, None] * edges_x0[None, :]), axis=1)


def _chunk(e_mev: np.ndarray, rng: np.random.Generator, medium: Medium) -> np.ndarray:
    m = len(e_mev)
    e_gev = e_mev / 1000.0
    par = longitudinal_means(np.log(e_mev / medium.ec_mev), medium)
    r1, r2 = rng.standard_normal((2, m))

    def draw(ln_t: np.ndarray, ln_a: np.ndarray, sig_t: np.ndarray, sig_a: np.ndarray,
             rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c1, c2 = np.sqrt((1 + rho) / 2), np.sqrt((1 - rho) / 2)
        return np.exp(ln_t + sig_t * (c1 * r1 + c2 * r2)), np.exp(ln_a + sig_a * (c1 * r1 - c2 * r2))

    t_max, alpha = draw(par["ln_t"], par["ln_a"], par["sig_t"], par["sig_a"], par["rho"])
    t_max, alpha = np.maximum(t_max, 1.0), np.maximum(alpha, 1.1)
    t_hom, a_hom = draw(par["ln_t_hom"], par["ln_a_hom"], par["sig_t_hom"], par["sig_a_hom"], par["rho_hom"])
    ft, fa = spot_profile_factors(medium)
    t_spot, a_spot = np.maximum(t_hom * ft, 0.5), np.maximum(a_hom * fa, 1.01)

    edges = np.arange(LAYERS + 1) * LAYER_MM / medium.x0_mm
    energy = e_mev[:, None] * _layer_shares(alpha, (alpha - 1) / t_max, edges)  # deposited per layer, MeV
    spots = spot_count(e_gev)[:, None] * _layer_shares(a_spot, (a_spot - 1) / t_spot, edges)

    tau = 0.5 * (edges[:-1] + edges[1:])[None, :] / t_max[:, None]
    r_core, r_tail, p = radial_parameters(tau, e_gev[:, None], medium)
    r2_edges = (R_EDGES_MM / medium.rm_mm)[None, None, :] ** 2
    cdf = (p[..., None] * r2_edges / (r2_edges + r_core[..., None] ** 2)
           + (1 - p[..., None]) * r2_edges / (r2_edges + r_tail[..., None] ** 2))
    radial = np.diff(cdf, axis=2)  # (m, layers, radial bins)

    mean_count = spots[:, :, None, None] * radial[:, :, None, :] / ALPHA_BINS * np.ones((1, 1, ALPHA_BINS, 1))
    counts = rng.poisson(mean_count)
    found = counts.sum(axis=(2, 3))
    per_spot = np.divide(energy, found, out=np.zeros_like(energy), where=found > 0)  # the layer's energy, shared
    deposit_gev = counts * per_spot[:, :, None, None] / 1000.0
    var = medium.resolution ** 2
    seen: np.ndarray = rng.gamma(deposit_gev / var, var) * 1000.0 * medium.sampling_fraction
    seen[seen < THRESHOLD_MEV] = 0.0
    return seen.reshape(m, -1)


def simulate(n: int, seed: int, *, energies_mev: np.ndarray | None = None, medium: Medium = MEDIUM) -> Showers:
    """``n`` showers (incident energies log-uniform 1 GeV-1 TeV unless given), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    e = draw_energies(n, rng) if energies_mev is None else np.broadcast_to(np.asarray(energies_mev, float), (n,))
    out = np.empty((n, VOXELS), dtype=np.float32)
    for start in range(0, n, CHUNK):
        out[start:start + CHUNK] = _chunk(np.asarray(e[start:start + CHUNK], float), rng, medium)
    return Showers(incident_energies=e.astype(np.float32)[:, None], showers=out)


def reshape(showers: np.ndarray) -> np.ndarray:
    """(N, 6480) -> (N, layer, alpha, radius)."""
    return showers.reshape(-1, *SHAPE)
