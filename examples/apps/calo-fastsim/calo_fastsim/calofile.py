"""CaloChallenge files: HDF5 (h5py; datasets ``incident_energies`` (N, 1) and ``showers`` (N, 6480), MeV) and
ROOT (uproot; a TTree ``showers`` with a scalar branch ``incident_energy`` and a fixed-size branch ``showers``
of 6480 values per entry). Values keep their dtype both ways, so HDF5 -> ROOT -> HDF5 is bit-exact.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from calo_fastsim.geometry import VOXELS
from calo_fastsim.simulator import Showers

__all__ = ["TREE", "hdf5_to_root", "read_hdf5", "read_root", "root_to_hdf5", "write_hdf5", "write_root"]

TREE = "showers"


def write_hdf5(path: str | Path, sample: Showers) -> Path:
    """The challenge's layout; no compression, so files stay readable by any h5py or HDF5 tool."""
    with h5py.File(path, "w") as f:
        f.create_dataset("incident_energies", data=sample.incident_energies)
        f.create_dataset("showers", data=sample.showers)
    return Path(path)


def read_hdf5(path: str | Path) -> Showers:
    with h5py.File(path, "r") as f:
        return Showers(incident_energies=f["incident_energies"][()], showers=f["showers"][()])


def write_root(path: str | Path, sample: Showers) -> Path:
    """One entry per shower; the voxels as a fixed-size array branch (no jagged arrays needed)."""
    import uproot

    with uproot.recreate(path) as f:
        f[TREE] = {"incident_energy": sample.incident_energies[:, 0], "showers": sample.showers}
    return Path(path)


def read_root(path: str | Path) -> Showers:
    import uproot

    with uproot.open(path) as f:
        arrays = f[TREE].arrays(["incident_energy", "showers"], library="np")
    showers = np.asarray(arrays["showers"])
    if showers.ndim != 2 or showers.shape[1] != VOXELS:
        raise ValueError(f"{path}: branch 'showers' must hold {VOXELS} values per entry, not {showers.shape[1:]}")
    return Showers(incident_energies=np.asarray(arrays["incident_energy"])[:, None], showers=showers)


def hdf5_to_root(source: str | Path, target: str | Path) -> Path:
    return write_root(target, read_hdf5(source))


def root_to_hdf5(source: str | Path, target: str | Path) -> Path:
    return write_hdf5(target, read_root(source))
