"""GFlash's parametrisation of electromagnetic showers in a sampling calorimeter (Grindhammer and Peters,
hep-ex/0001020), with the effective-medium quantities of the tungsten/silicon stack of ``geometry``.

The longitudinal profile is a gamma distribution in depth t (X0) with maximum T = (alpha - 1)/beta; ln T and
ln alpha are drawn per shower from a correlated normal whose means, spreads and correlation depend on
ln y = ln(E / E_c). The radial profile is a core and a tail, f(r) = p 2 r R_C^2/(r^2 + R_C^2)^2 +
(1 - p) 2 r R_T^2/(r^2 + R_T^2)^2 in Moliere radii, whose R_C, R_T and p depend on tau = t / T. Energy is
carried by spots whose number sets the sampling fluctuations. All numbers are the paper's fits; the sampling
resolution is this calorimeter's assumed stochastic term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calo_fastsim.geometry import SILICON_MM, TUNGSTEN_MM

__all__ = ["MEDIUM", "Medium", "longitudinal_means", "radial_parameters", "spot_count", "spot_profile_factors"]

E_S_MEV = 21.2  # scale energy of multiple scattering


@dataclass(frozen=True)
class Material:
    z: float
    a: float
    density: float  # g/cm^3
    x0_mm: float

    @property
    def critical_mev(self) -> float:
        """E_c from the radiation length in g/cm^2 (the fit GFlash uses)."""
        return float(2.66 * (self.x0_mm / 10 * self.density * self.z / self.a) ** 1.1)


TUNGSTEN = Material(z=74.0, a=183.84, density=19.3, x0_mm=3.504)
SILICON = Material(z=14.0, a=28.086, density=2.33, x0_mm=93.7)
MIP_DEDX = {"W": 1.145 * 19.3, "Si": 1.664 * 2.33}  # MeV/cm at minimum ionisation


@dataclass(frozen=True)
class Medium:
    """The absorber/sensor pair as one effective medium (mass-weighted, as GFlash's sampling model does)."""

    z: float
    x0_mm: float
    rm_mm: float
    ec_mev: float
    fs: float  # X0_eff / (d_absorber + d_sensor)
    ehat: float  # e/mip
    sampling_fraction: float  # visible share of the deposited energy: (mip share of the sensor) x e/mip
    resolution: float  # sampling term c_s of sigma_E/E = c_s/sqrt(E/GeV)


def _medium(absorber: Material, sensor: Material, d_abs: float, d_sen: float, resolution: float) -> Medium:
    m_abs, m_sen = d_abs * absorber.density, d_sen * sensor.density
    w_abs, w_sen = m_abs / (m_abs + m_sen), m_sen / (m_abs + m_sen)
    rho = (m_abs + m_sen) / (d_abs + d_sen)
    x0 = 1.0 / (w_abs * rho / (absorber.x0_mm * absorber.density) + w_sen * rho / (sensor.x0_mm * sensor.density))
    ec_over_x0 = w_abs * absorber.critical_mev / absorber.x0_mm + w_sen * sensor.critical_mev / sensor.x0_mm
    ehat = 1.0 / (1.0 + 0.007 * (absorber.z - sensor.z))
    mip_abs, mip_sen = MIP_DEDX["W"] * d_abs, MIP_DEDX["Si"] * d_sen
    return Medium(z=w_abs * absorber.z + w_sen * sensor.z, x0_mm=x0, rm_mm=E_S_MEV / ec_over_x0,
                  ec_mev=x0 * ec_over_x0, fs=x0 / (d_abs + d_sen), ehat=ehat,
                  sampling_fraction=ehat * mip_sen / (mip_abs + mip_sen), resolution=resolution)


MEDIUM = _medium(TUNGSTEN, SILICON, TUNGSTEN_MM, SILICON_MM, resolution=0.17)


def longitudinal_means(ln_y: np.ndarray, medium: Medium = MEDIUM) -> dict[str, np.ndarray]:
    """Means of ln T and ln alpha (homogeneous and sampling), their spreads and correlations, per ln y."""
    ln_t_hom = np.log(np.maximum(ln_y - 0.812, 0.1))
    ln_a_hom = np.log(np.maximum(0.81 + (0.458 + 2.26 / medium.z) * ln_y, 0.1))
    ln_t = np.log(np.maximum(np.exp(ln_t_hom) - 0.59 / medium.fs - 0.53 * (1 - medium.ehat), 0.1))
    ln_a = np.log(np.maximum(np.exp(ln_a_hom) - 0.444 / medium.fs, 0.1))
    return {"ln_t_hom": ln_t_hom, "ln_a_hom": ln_a_hom,
            "sig_t_hom": np.minimum(0.5, 1.0 / (-1.4 + 1.26 * ln_y)),
            "sig_a_hom": np.minimum(0.5, 1.0 / (-0.58 + 0.86 * ln_y)), "rho_hom": 0.705 - 0.023 * ln_y,
            "ln_t": ln_t, "ln_a": ln_a, "sig_t": np.minimum(0.5, 1.0 / (-2.5 + 1.25 * ln_y)),
            "sig_a": np.minimum(0.5, 1.0 / (-0.82 + 0.79 * ln_y)), "rho": 0.784 - 0.023 * ln_y}


def radial_parameters(tau: np.ndarray, e_gev: np.ndarray, medium: Medium = MEDIUM) -> tuple[np.ndarray, ...]:
    """(R_C, R_T, p) in Moliere radii at depth tau = t / T, sampling corrections included."""
    z, ln_e, fs, off = medium.z, np.log(e_gev), medium.fs, 1 - medium.ehat
    r_core = (0.0251 + 0.00319 * ln_e) + (0.1162 - 0.000381 * z) * tau
    r_tail = (0.659 - 0.00309 * z) * (np.exp(-2.59 * (tau - 0.645)) + np.exp((0.3585 + 0.0421 * ln_e) * (tau - 0.645)))
    p2, p3 = 0.401 + 0.00187 * z, 1.313 - 0.0686 * ln_e
    p = (2.632 - 0.00094 * z) * np.exp((p2 - tau) / p3 - np.exp((p2 - tau) / p3))
    r_core = r_core - 0.0203 * off + 0.0397 / fs * np.exp(-tau)
    r_tail = r_tail - 0.14 * off - 0.495 / fs * np.exp(-tau)
    p = p + off * (0.348 - 0.642 / fs * np.exp(-((tau - 1) ** 2)))
    return np.maximum(r_core, 1e-3), np.maximum(r_tail, 2e-3), np.clip(p, 0.0, 1.0)


def spot_count(e_gev: np.ndarray, medium: Medium = MEDIUM) -> np.ndarray:
    """Mean number of energy spots of a shower: the sampling calorimeter's 10.3/c_s E^0.959."""
    return 10.3 / medium.resolution * e_gev ** 0.959


def spot_profile_factors(medium: Medium = MEDIUM) -> tuple[float, float]:
    """Spots follow a gamma profile with T_spot = T_hom (0.698 + 0.00212 Z), alpha_spot = alpha_hom (0.639 +
    0.00334 Z)."""
    return 0.698 + 0.00212 * medium.z, 0.639 + 0.00334 * medium.z

