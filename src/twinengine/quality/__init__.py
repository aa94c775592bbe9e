"""Quality of what a twin knows: input quality checks on stream records (flags good / suspect / bad with
the failed checks), per-stream indicators (flag shares, lateness, completeness over time windows).

The numerics ensembles use: the members' statistics (``ensemble_stats``) and perturbations (``perturb``);
the ensembles themselves, scenarios and comparisons run workflows over twins, so they live above both in
``twinengine.ensembles``.
The uncertainty a value carries (``uncertainty``: std, quantiles, members) and how the state log keeps it.
"""

from twinengine.quality.spec import Check, Flag, QualityPolicy

__all__ = ["Check", "Flag", "QualityPolicy"]
