"""Federated compute: sites providers register (local, Dask, Slurm, another engine) with heartbeats, usage
accounting of every run, and compute quotas checked before a run is queued."""
