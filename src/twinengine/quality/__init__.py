"""Quality of what a twin knows: input quality checks on stream records (flags good / suspect / bad with
the failed checks), per-stream indicators (flag shares, lateness, completeness over time windows).

Uncertainty of values, ensembles, verification scores and model intervals are not here yet (see
docs/quality.md).
"""

from twinengine.quality.spec import Check, Flag, QualityPolicy

__all__ = ["Check", "Flag", "QualityPolicy"]
