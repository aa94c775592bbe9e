"""Quality of what a twin knows: input quality checks on stream records (flags good / suspect / bad with
the failed checks), per-stream indicators (flag shares, lateness, completeness over time windows).

Ensembles of a workflow's members with their statistics (``ensembles``, ``ensemble_run``,
``ensemble_stats``, ``perturb``), scenarios of forks and their comparison (``scenarios``, ``compare``).
The uncertainty a value carries (``uncertainty``: std, quantiles, members) and how the state log keeps it.
"""

from twinengine.quality.spec import Check, Flag, QualityPolicy

__all__ = ["Check", "Flag", "QualityPolicy"]
