"""The app's processes for its workflows: the flow-proposal chain and the reference chain.

The flow's proposals come from the engine's ``predict`` process (the twin's champion); these processes only
need numpy. Each chain is seeded, so the statistics and the saved configurations of one run match.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lattice_phi4.action import observables
from lattice_phi4.chain import chain_summary
from lattice_phi4.reference import metropolis, reference_summary
from twinengine.app import app_process

_PROPOSALS = {"schema": {"type": "object"},
              "description": "The flow's proposals: {phi: (n, L, L), log_q: (n,), action: (n,)} (predict's output)"}
_PARAMETERS = {"schema": {"type": "object"}, "description": "The twin's parameters (L, m2, lam)"}


def _chain(proposals: dict[str, Any], seed: int) -> tuple[dict[str, float], np.ndarray[Any, Any]]:
    phi = np.asarray(proposals["phi"], dtype=float)
    if phi.ndim != 3 or phi.shape[1] != phi.shape[2]:
        raise ValueError(f"proposals.phi must have shape (n, L, L), not {phi.shape}")
    return chain_summary(phi, np.asarray(proposals["log_q"]), np.asarray(proposals["action"]), seed=seed)


def _size(parameters: dict[str, Any]) -> tuple[int, float, float]:
    return int(parameters.get("L", 8)), float(parameters.get("m2", -4.0)), float(parameters.get("lam", 8.0))



@app_process(summary="Independence Metropolis with the flow's proposals: acceptance, ESS, <phi^2>, chi_2",
             parameters={"proposals": _PROPOSALS},
             returns={"description": "State values: acceptance_rate, ess_per_sample, phi2, phi2_err, chi2, "
                                     "chi2_err, tau_int", "schema": {"type": "object"}})
def flow_chain(proposals: dict, seed: int = 0) -> dict:
    """Run the chain over the proposals and return its statistics, named as the twin's state properties."""
    summary, _configs = _chain(proposals, seed)
    return {"acceptance_rate": summary["acceptance_rate"], "ess_per_sample": summary["ess_per_sample"],
            "phi2": summary["phi2"], "phi2_err": summary["phi2_err"], "chi2": summary["chi2"],
            "chi2_err": summary["chi2_err"], "tau_int": max(summary["phi2_tau"], summary["chi2_tau"]),
            "flow_samples": int(summary["samples"])}


@app_process(summary="The configurations the flow-proposal chain holds, step by step (n, L, L)",
             parameters={"proposals": _PROPOSALS},
             returns={"description": "Configurations (n, L, L)", "schema": {"type": "array"}})
def flow_configurations(proposals: dict, seed: int = 0) -> list:
    """The same chain as ``flow_chain`` with the same seed: its configurations, to keep as a result."""
    return _chain(proposals, seed)[1].tolist()


@app_process(summary="Reference chain: local Metropolis, <phi^2> and chi_2 with autocorrelation-corrected errors",
             parameters={"parameters": _PARAMETERS},
             returns={"description": "State values: ref_phi2, ref_phi2_err, ref_chi2, ref_chi2_err, ref_tau_int",
                      "schema": {"type": "object"}})
def reference_chain(parameters: dict, sweeps: int = 4000, chains: int = 16, seed: int = 0) -> dict:
    """Checkerboard Metropolis on ``chains`` independent chains of ``sweeps`` measured sweeps each."""
    size, m2, lam = _size(parameters)
    summary = reference_summary(size, m2, lam, sweeps=int(sweeps), chains=int(chains), seed=int(seed))
    return {"ref_phi2": summary["phi2"], "ref_phi2_err": summary["phi2_err"], "ref_chi2": summary["chi2"],
            "ref_chi2_err": summary["chi2_err"], "ref_tau_int": max(summary["phi2_tau"], summary["chi2_tau"]),
            "ref_samples": int(summary["samples"])}


@app_process(summary="Magnetisation M of every configuration of the reference chain (chains x sweeps)",
             parameters={"parameters": _PARAMETERS},
             returns={"description": "M per configuration", "schema": {"type": "array"}})
def reference_magnetisation(parameters: dict, sweeps: int = 4000, chains: int = 16, seed: int = 0) -> list:
    """The same chain as ``reference_chain`` with the same arguments: its magnetisations, to keep as a result."""
    size, m2, lam = _size(parameters)
    configs, _rate = metropolis(size, m2, lam, sweeps=int(sweeps), chains=int(chains), seed=int(seed))
    return observables(configs)["magnetisation"].ravel().tolist()
