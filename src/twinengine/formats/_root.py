"""ROOT files (CERN's format for event data) through uproot: registered in the lake, read by app code.

A ROOT file is not a geospatial collection: ``open_dataset`` gives one tree's flat numeric branches along an
``entry`` dimension (the first tree, or ``tree=``), for app code; ``collection`` is False, so EDR and openEO
do not list it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import xarray as xr

from twinengine.errors import UnreadableFile
from twinengine.formats._base import FormatBackend

__all__ = ["ROOTFormat", "read_tree"]

_TREES = ("TTree", "TNtuple", "TNtupleD", "ROOT::RNTuple", "ROOT::Experimental::RNTuple")


def read_tree(path: Path | str, tree: str | None = None) -> xr.Dataset:
    """One TTree's (or RNTuple's) flat numeric branches as a dataset along ``entry``; jagged branches are listed in
    ``attrs["skipped_branches"]`` (read them with uproot and awkward)."""
    import uproot

    with uproot.open(path) as file:
        trees = [str(k).split(";")[0] for k, cls in file.classnames().items() if cls in _TREES]
        if not trees:
            raise UnreadableFile("holds no TTree or RNTuple")
        name = tree or trees[0]
        if name not in trees:
            raise UnreadableFile(f"has no tree {name!r} (trees: {', '.join(trees)})")
        handle = file[name]
        data: dict[str, tuple[str, np.ndarray]] = {}
        skipped = []
        for branch in handle.keys():  # noqa: SIM118 (a TTree iterates its branches' objects, not names)
            try:
                values = handle[branch].array(library="np")
            except Exception:
                skipped.append(branch)
                continue
            if values.dtype == object or values.ndim != 1:
                skipped.append(branch)
                continue
            data[str(branch)] = ("entry", values)
        ds = xr.Dataset(data, attrs={"root_tree": name, "root_trees": ", ".join(trees)})
        if skipped:
            ds.attrs["skipped_branches"] = ", ".join(skipped)
        return ds


class ROOTFormat(FormatBackend):
    name: ClassVar[str] = "root"
    description: ClassVar[str] = "a ROOT file"
    suffixes: ClassVar[tuple[str, ...]] = (".root",)
    media_type: ClassVar[str] = "application/x-root"
    requires: ClassVar[tuple[str, ...]] = ("uproot",)
    install: ClassVar[str] = "pip install 'twinengine[formats]', or uproot"
    collection: ClassVar[bool] = False

    def open_dataset(self, path: Path) -> xr.Dataset:
        return read_tree(path)
