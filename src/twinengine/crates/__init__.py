"""Runs that travel: every run as a Provenance Run Crate (Workflow Run RO-Crate 0.5) and run again with a diff.

``crate_for_run`` packs a run of any kind; ``rerun`` runs one again (from the store or from a crate made
elsewhere) and ``diff_of`` answers how the rerun's outputs compare with the original's.
"""

from twinengine.crates.rerun import diff_of, rerun
from twinengine.crates.service import crate_for_run

__all__ = ["crate_for_run", "diff_of", "rerun"]
