"""Ensembles and scenarios of a twin: members of a workflow that differ by perturbed parameters, forks or
parameter sets (``service``, ``run``), scenarios of forks and their comparison (``scenarios``, ``compare``),
the SDK's namespace (``client``) and the plot. They run workflows over twins, so they sit above both; the
numerics they share with the rest of quality (``quality.ensemble_stats``, ``quality.perturb``) stay below.
"""
