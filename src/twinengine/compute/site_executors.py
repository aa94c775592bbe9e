"""The executor of each site a run may be placed on: the engine's own for ``local``, a Dask client per
``dask`` site, a dask-jobqueue cluster per ``slurm`` site; made on first use and closed with the engine.

The workflows package hands in how executors are made (``factory``), so this package never imports it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from twinengine.compute.faults import SiteWatch
from twinengine.compute.metering import current_meter
from twinengine.compute.models import ComputeSite
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.errors import ValidationFailed
from twinengine.lake.keyring import Keyring

__all__ = ["SiteExecutors", "endpoints_near", "executor_for", "slurm_site_options"]

log = logging.getLogger("twinengine.compute")

# (executor name, address, options) -> an executor with compute/close
Factory = Callable[..., Any]


_PROBE_ONLY = ("slurm_conf",)  # options the site's probe reads, not dask-jobqueue


def slurm_site_options(options: dict[str, str]) -> dict[str, Any]:
    """dask-jobqueue's ``SLURMCluster`` keywords from a ``slurm`` site's options (text, as a provider gives
    them): ``partition`` is its ``queue``, a value that reads as JSON is that value (``cores=2``,
    ``job_extra_directives=["--exclusive"]``, ``scheduler_options={"dashboard_address": ":0"}``), the rest is
    text; ``slurm_conf`` is the probe's (sbatch reads the engine's ``SLURM_CONF``)."""
    import json

    found: dict[str, Any] = {}
    for key, text in options.items():
        if key in _PROBE_ONLY:
            continue
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        found["queue" if key == "partition" else key] = value
    return found


class SiteExecutors:
    """Executors per site, keyed by the site's kind and address (a changed site gets a new one)."""

    def __init__(self, db: Any, default: Any, factory: Factory, *, keyring: Keyring | None = None) -> None:
        self.db, self.default, self.factory = db, default, factory
        self._made: dict[tuple[str, str, str | None], Any] = {}
        self._lock = threading.Lock()
        self.watch = SiteWatch(db, keyring)  # notices sites lost under the work placed on them

    def forget(self, site: str) -> None:
        """Drop the executor of a site found down (closed aside: a client of a lost scheduler may take a
        while), so the site gets a fresh one once it answers again."""
        with self._lock:
            gone = [self._made.pop(k) for k in [k for k in self._made if k[0] == site]]
        for executor in gone:
            if executor is not self.default:
                threading.Thread(target=executor.close, name=f"close-{site}", daemon=True).start()

    def close_site(self, site: str) -> None:
        """Close the executor of a site removed from the engine, now, while its scheduler still answers: a
        client left open would try to reach it again once it is gone (and log an error about it)."""
        with self._lock:
            gone = [self._made.pop(k) for k in [k for k in self._made if k[0] == site]]
        for executor in gone:
            if executor is not self.default:
                executor.close()

    def get(self, site: str | None) -> Any:
        if not site or site == DEFAULT_SITE:
            return self.default
        with self.db.session(readonly=True) as session:
            row = session.scalar(select(ComputeSite).where(ComputeSite.name == site))
            if row is None:
                raise ValidationFailed.one("options.site", f"the run's site {site!r} no longer exists")
            kind, address, options = row.kind, row.address, dict(row.options or {})
            cipher = row.credential_cipher
        key = (site, kind, address)
        with self._lock:
            made = self._made.get(key)
            if made is None:
                if kind == "dask":
                    made = self.factory("distributed", address=address)
                elif kind == "slurm":
                    made = self.factory("slurm", options=slurm_site_options(options))
                elif kind == "local":
                    made = self.default
                elif kind == "engine":  # another engine: the whole run goes there (workflows.remote_runs)
                    keyring = self.watch.keyring
                    made = self.factory("engine", address=address,
                                        credential=keyring.open(cipher) if cipher and keyring else None)
                else:
                    raise ValidationFailed.one("options.site", f"site {site} is a {kind} site; runs are not sent "
                                                              "there yet")
                self._made[key] = made
        return made

    def close(self) -> None:
        with self._lock:
            made, self._made = [m for m in self._made.values() if m is not self.default], {}
        for executor in made:
            executor.close()


def executor_for(engine: Any, options: dict[str, Any]) -> Any:
    """The executor of the site a run was placed on (the engine's own when it has no site executors), and
    the site noted on the execution's meter so its usage record names it."""
    site = str(options.get("site") or DEFAULT_SITE)
    sites: SiteExecutors | None = engine.services.get("sites")
    executor = engine.executor
    if sites is not None:
        try:
            executor = sites.get(site)
        except Exception as exc:  # removed since, or its executor cannot be made here: the run still runs
            log.warning("site %s cannot take run work (%s); computing on %s", site, exc, DEFAULT_SITE)
            site = DEFAULT_SITE
    meter = current_meter()
    if meter is not None:
        meter.site = site
    return executor


def endpoints_near(engine: Any, site: str | None) -> tuple[str, ...]:
    """The lake endpoints its provider listed near ``site`` (where staging put a run's inputs), in their
    order: a run there reads its inputs from them first. None for a site that lists none, or no site."""
    if not site:
        return ()
    with engine.db.session(readonly=True) as session:
        names = session.scalar(select(ComputeSite.endpoints).where(ComputeSite.name == site))
    return tuple(str(n) for n in names or [])
