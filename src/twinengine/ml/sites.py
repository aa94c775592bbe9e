"""Training runs on compute sites: the worker a run trains in, on the engine's own machine or on a Dask or
Slurm site's worker (``workers.site``: the app's sandboxed worker started there, the engine answering its
questions over the site's Dask client), and what happens when that site is lost under the run.

A run is placed when it is requested (``api.routes.ml``: the engine's own site unless the requester pins a
site, excludes sites or asks for GPUs). On a site other than the engine's own,
its training worker is a ``SiteWorker``: the task is loaded and fitted there, its epochs, step metrics and
checkpoints come back here as they do from a local worker, its CPU and GPUs are read there. A site that dies
or stops answering mid-run is probed; when it is down the run is placed again without it (nor any site it
lost before), its lost attempt's usage recorded (status ``lost``), and it is queued again: the next attempt
resumes from the last checkpoint that reached the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from twinengine.ml.models import TrainingRun
from twinengine.workers.site import RemoteApp, SiteWorker

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from twinengine.ml.lifecycle import TwinApp
    from twinengine.ml.remote import TaskWorker

__all__ = ["TrainingSites", "move_lost_run", "training_worker"]


class TrainingSites(Protocol):
    """The compute sites training runs may train on, as the runtime hands them in."""

    def client(self, site: str) -> Any:
        """A Dask client of the site (its scheduler's, or its Slurm jobs')."""

    def check(self, site: str) -> None:
        """Called while a request waits on the site: raises once the site is down."""

    def lost(self, site: str) -> str | None:
        """Probe the site now (marking it down when it does not answer): why it is down, or None."""

    def place_again(self, session: Session, *, owner: str, app: str | None, options: dict[str, Any],
                    lost: set[str]) -> tuple[str | None, list[str]] | None:
        """Place a run again without the ``lost`` sites (by the rule runs are placed by): its site (None: the
        engine's own) and the reasons, or None when no other site can take it."""


@contextmanager
def training_worker(app: TwinApp, site: str | None, sites: TrainingSites | None, *, label: str,
                    memory_bytes: int | None) -> Iterator[TaskWorker]:
    """A worker of ``app`` for one training run (or one of its trials), started for it on ``site`` (None: the
    engine's own machine), stopped afterwards."""
    if not site or sites is None:
        with app.workers.dedicated(label=label, memory_bytes=memory_bytes) as local:
            yield local
        return
    spec = RemoteApp.of(app.workers, app.archive_sha256)
    remote = SiteWorker(sites.client(site), spec, label=f"{label} on site {site}", memory_bytes=memory_bytes,
                        site=site, check=lambda: sites.check(site))
    try:
        yield remote
    finally:
        remote.close()


def move_lost_run(session: Session, sites: TrainingSites, row: TrainingRun, *, lost_site: str, reason: str,
                  record_lost: Callable[[], None]) -> str | None:
    """After a run failed on ``lost_site``, found down (``reason``): place it again without that site (nor those
    it lost before), record its lost attempt (``record_lost``, before its site changes), and queue it again;
    returns the new site (``""``: the engine's own), or None when no other site can take it (the run's failure
    stands)."""
    from twinengine.twins.models import Twin

    placement = dict(row.placement or {})
    lost = [*placement.get("lost", []), lost_site]
    twin = session.get(Twin, row.twin_id)
    app = f"{twin.app_name}@{twin.app_version}" if twin is not None else None
    options: dict[str, Any] = {"site": lost_site, "on_twin": True}
    if placement.get("gpus"):
        options["gpus"] = placement["gpus"]
    placed = sites.place_again(session, owner=row.created_by, app=app, options=options, lost=set(lost))
    if placed is None:
        return None
    site, reasons = placed
    record_lost()
    placement["reasons"] = [*placement.get("reasons", []), f"site {lost_site} was lost mid-run: {reason}",
                            *(f"placed again: {r}" for r in reasons)]
    placement["lost"], placement["site"] = lost, site
    row.site, row.placement, row.status, row.error = site, placement, "queued", None
    return site or ""
