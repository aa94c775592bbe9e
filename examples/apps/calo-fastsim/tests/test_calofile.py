"""CaloChallenge files: HDF5 as the challenge writes it, ROOT with uproot, and the round trip bit for bit."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import uproot
from calo_fastsim.calofile import TREE, hdf5_to_root, read_hdf5, read_root, root_to_hdf5, write_hdf5
from calo_fastsim.simulator import Showers, simulate


def test_hdf5_to_root_to_hdf5_is_bit_exact(tmp_path: Path) -> None:
    sample = simulate(64, 4)
    first = write_hdf5(tmp_path / "showers.h5", sample)
    with h5py.File(first) as f:
        assert f["incident_energies"].shape == (64, 1) and f["showers"].shape == (64, 6480)
    back = root_to_hdf5(hdf5_to_root(first, tmp_path / "showers.root"), tmp_path / "again.h5")
    a, b = read_hdf5(first), read_hdf5(back)
    for name in ("incident_energies", "showers"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()  # every bit, zeros and denormals alike
    with uproot.open(tmp_path / "showers.root") as f:
        assert f[TREE].num_entries == 64 and set(f[TREE].keys()) == {"incident_energy", "showers"}


def test_a_root_file_of_another_size_is_refused(tmp_path: Path) -> None:
    with uproot.recreate(tmp_path / "bad.root") as f:
        f[TREE] = {"incident_energy": np.ones(3, dtype=np.float32), "showers": np.ones((3, 368), dtype=np.float32)}
    with pytest.raises(ValueError, match="6480"):
        read_root(tmp_path / "bad.root")
    with pytest.raises(ValueError, match="incident_energies"):
        Showers(incident_energies=np.ones(3), showers=np.ones((3, 6480)))
