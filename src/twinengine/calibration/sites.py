"""A calibration placed on a compute site: checked when it is created, as a pinned workflow run is, and its
chunks of model runs sent to the site's Dask cluster (a ``dask`` site, or a ``slurm`` site's dask-jobqueue
workers) as ``remote.remote_simulate`` tasks.

A site lost under a calibration (its scheduler gone, or found down by its heartbeat) ends the calibration
with ``SiteLost`` naming the site; its runs so far are kept. It does not fall back to the engine's own
workers: the owner chose the site (for its cores, or to keep the engine's machine free), and runs moved
silently to another machine would surprise them more than an error they can act on.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from twinengine.compute.faults import SiteLost
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.errors import ValidationFailed

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from twinengine.auth.principal import Principal
    from twinengine.calibration.remote import RemoteApp
    from twinengine.workers.service import AppWorkers

__all__ = ["KINDS", "SiteChunks", "Sites", "check_site", "site_chunks"]

KINDS = ("local", "dask", "slurm")  # the site kinds a calibration's runs can go to


class Watch(Protocol):
    def check(self, site: str) -> None: ...


class Sites(Protocol):
    """The engine's executors per site (``compute.site_executors.SiteExecutors``), handed in at construction
    by the runtime, which owns them."""

    default: Any
    watch: Watch

    def get(self, site: str | None) -> Any: ...

    def forget(self, site: str) -> None: ...


def check_site(session: Session, *, principal: Principal, site: str | None, app: str) -> str | None:
    """The site a new calibration names, refused as a pinned workflow run is (unknown, down or draining,
    not running ``app``, the owner's quota used up), each problem naming ``site``; None: the engine's own."""
    if site is None:
        return None
    from sqlalchemy import select

    from twinengine.compute.models import ComputeSite
    from twinengine.compute.placement import place

    kind = session.scalar(select(ComputeSite.kind).where(ComputeSite.name == site))
    if kind is None:
        raise ValidationFailed.one("site", f"no compute site named {site!r}")
    if kind not in KINDS:
        raise ValidationFailed.one("site", f"{site} is a {kind} site; calibrations run on {', '.join(KINDS)} sites")
    try:
        place(session, owner=principal.name, groups=principal.groups, options={"site": site}, process={}, app=app)
    except ValidationFailed as exc:
        raise ValidationFailed.one("site", "; ".join(p.msg for p in exc.problems)) from None
    return site


def site_chunks(sites: Sites | None, site: str | None, app: AppWorkers, sha256: str,
                stopping: threading.Event) -> SiteChunks | None:
    """Where a calibration on ``site`` sends its chunks: a site's Dask cluster, or None for the engine's own
    workers (no site, ``local``, or a site whose executor is the engine's own)."""
    from twinengine.calibration.remote import RemoteApp

    if not site or site == DEFAULT_SITE:
        return None
    if sites is None:
        raise SiteLost(f"compute site {site}: this engine has no executors of compute sites")
    try:
        executor = sites.get(site)
        if executor is sites.default or getattr(type(executor), "client", None) is None:
            return None
        _ = executor.client  # connects on first use: a site that does not answer is said before any run
    except Exception as exc:  # removed since it was checked, its executor cannot be made, or it does not answer
        raise SiteLost(f"compute site {site} cannot take the calibration's runs: {exc}") from None
    return SiteChunks(sites, site, executor, RemoteApp.of(app, sha256), stopping)


class SiteChunks:
    """Runs a calibration's chunks on one site's Dask cluster, one task per chunk, through the site's
    executor (``workflows.executors.DistributedExecutor``: it waits, cancels and finds a lost scheduler as
    for a run), watching the site while it waits; ``stopping`` (the engine stops) cancels the chunk."""

    def __init__(self, sites: Sites, site: str, executor: Any, spec: RemoteApp, stopping: threading.Event) -> None:
        self.sites, self.site, self.executor, self.spec, self.stopping = sites, site, executor, spec, stopping

    def _lost(self, why: str) -> SiteLost:
        self.sites.forget(self.site)  # the next calibration there gets a fresh client once it answers again
        return SiteLost(f"compute site {self.site} was lost mid-calibration ({why}); its runs so far are kept")

    def _watch(self, _done: int, _total: int) -> None:
        """Called while a chunk computes; raising ends the wait (the executor cancels the chunk)."""
        if self.stopping.is_set():
            raise InterruptedError("the engine is stopping")
        try:
            self.sites.watch.check(self.site)  # a silent scheduler is found by its probe
        except SiteLost as exc:
            raise self._lost(str(exc)) from None

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        from dask.delayed import delayed

        from twinengine.calibration.remote import remote_simulate
        from twinengine.workflows.executors import ClusterLost

        task = delayed(remote_simulate, pure=False)(self.spec, payload)
        try:
            (answer,) = self.executor.compute(task, progress=self._watch)
        except ClusterLost as exc:
            raise self._lost(str(exc)) from None
        return dict(answer)
