"""Compute sites (providers manage them): add, list, show, drain, remove, and heartbeats that keep their
status. The engine's own executor is the site ``local``, made at start, so a user who never adds a site
sees nothing change."""

from __future__ import annotations

import os
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.compute.addresses import check_address
from twinengine.compute.models import ComputeSite
from twinengine.compute.probes import probe
from twinengine.compute.schemas import SiteCreate, SiteRead, SiteStatus
from twinengine.errors import Conflict, EndpointNotFound, SiteNotFound, ValidationFailed
from twinengine.lake.endpoints import get_endpoint
from twinengine.lake.keyring import Keyring
from twinengine.store.base import upsert, utcnow
from twinengine.store.engine import Database

__all__ = ["DEFAULT_SITE", "add_site", "drain_site", "ensure_default_site", "get_site", "heartbeat",
           "list_sites", "probe_site", "remove_site", "show_site", "site_read"]

DEFAULT_SITE = "local"
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,199}$")
_OPTION_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SECRET_WORDS = ("password", "secret", "token", "key")
_EXECUTOR_KINDS = {"local": "local", "distributed": "dask", "slurm": "slurm"}


def get_site(session: Session, name: str) -> ComputeSite:
    row = session.scalar(select(ComputeSite).where(ComputeSite.name == name))
    if row is None:
        raise SiteNotFound(f"no compute site named {name!r}")
    return row


def site_read(row: ComputeSite) -> SiteRead:
    return SiteRead(name=row.name, kind=row.kind, address=row.address, options=dict(row.options or {}),
                    cores=row.cores, memory_bytes=row.memory_bytes, gpus=row.gpus,
                    environments=list(row.environments or []), endpoints=list(row.endpoints or []),
                    status=SiteStatus(row.status), health_error=row.health_error, heartbeat_at=row.heartbeat_at,
                    credential=row.credential_kind, created_by=row.created_by, created_at=row.created_at)


def _check(spec: SiteCreate) -> None:
    """What a spec must be, before the site is asked anything."""
    check_address(spec.kind.value, spec.address)
    for key, value in spec.options.items():
        if not _OPTION_KEY.match(key):
            raise ValidationFailed.one(f"options.{key}", "keys are letters, digits, '_', '.' or '-' (at most 64)")
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise ValidationFailed.one(f"options.{key}", "options are shown to everyone; a secret goes in "
                                                         "credential, where it is stored encrypted")
        if len(value) > 1024:
            raise ValidationFailed.one(f"options.{key}", "at most 1024 characters")
    for i, env in enumerate(spec.environments):
        if not _ENVIRONMENT.match(env):
            raise ValidationFailed.one(f"environments[{i}]", f"{env!r} is not an environment or image name")


def _check_endpoints(session: Session, spec: SiteCreate) -> None:
    for i, endpoint in enumerate(spec.endpoints):
        try:
            get_endpoint(session, endpoint)
        except EndpointNotFound:
            raise ValidationFailed.one(f"endpoints[{i}]", f"no lake endpoint named {endpoint!r}") from None


def add_site(session: Session, keyring: Keyring, *, principal: Principal, spec: SiteCreate,
             check_now: bool = True) -> ComputeSite:
    """Register a site; its credential is sealed with the engine's key. ``check_now``: probe it at once, so
    its status is known from the start (a site that does not answer is registered as down). The probe runs
    before the unit of work's first statement: no transaction waits on the site (``store.guard``)."""
    require(principal, "compute.site.manage")
    _check(spec)
    problem = probe(spec.kind.value, spec.address, dict(spec.options),
                    spec.credential.secret() if spec.credential is not None else None) if check_now else None
    _check_endpoints(session, spec)
    if session.scalar(select(ComputeSite.id).where(ComputeSite.name == spec.name)) is not None:
        raise Conflict(f"a compute site named {spec.name!r} exists already")
    now = utcnow()
    row = ComputeSite(name=spec.name, kind=spec.kind.value, address=spec.address, options=dict(spec.options),
                      cores=spec.cores, memory_bytes=spec.memory_bytes, gpus=spec.gpus,
                      environments=list(spec.environments), endpoints=list(spec.endpoints), health="healthy",
                      draining=False, created_by=principal.name, created_at=now, updated_at=now)
    if spec.credential is not None:
        row.credential_kind = spec.credential.kind
        row.credential_cipher = keyring.seal(spec.credential.secret())
    session.add(row)
    if check_now:
        _keep_health(row, problem)
    session.flush()
    return row


def list_sites(session: Session, *, principal: Principal) -> list[ComputeSite]:
    require(principal, "compute.site.read")
    return list(session.scalars(select(ComputeSite).order_by(ComputeSite.name)))


def show_site(session: Session, *, principal: Principal, name: str) -> ComputeSite:
    require(principal, "compute.site.read")
    return get_site(session, name)


def drain_site(session: Session, *, principal: Principal, name: str, drain: bool = True) -> ComputeSite:
    """A draining site finishes what it runs and takes nothing new; ``drain=False`` opens it again."""
    require(principal, "compute.site.manage")
    row = get_site(session, name)
    row.draining, row.updated_at = drain, utcnow()
    session.flush()
    return row


def remove_site(session: Session, *, principal: Principal, name: str) -> None:
    require(principal, "compute.site.manage")
    row = get_site(session, name)
    if row.name == DEFAULT_SITE:
        raise Conflict(f"{DEFAULT_SITE} is the engine's own executor; drain it instead")
    session.delete(row)
    session.flush()


def heartbeat(db: Database, keyring: Keyring, name: str) -> ComputeSite | None:
    """Probe the site now and keep its health; the site as kept (None once removed). Three steps, so that no
    transaction is open while the site is asked: its address read, the probe, its answer written in a short
    transaction (kept only if the site still has the address probed). A frozen site holds no lock of the store."""
    with db.session(readonly=True) as session:
        row = session.scalar(select(ComputeSite).where(ComputeSite.name == name))
        if row is None:
            return None
        target = (row.kind, row.address, dict(row.options or {}))
        credential = keyring.open(row.credential_cipher) if row.credential_cipher else None
    problem = probe(*target, credential)
    with db.session() as session:
        row = session.scalar(select(ComputeSite).where(ComputeSite.name == name))
        if row is not None and (row.kind, row.address, dict(row.options or {})) == target:
            _keep_health(row, problem)  # a site moved meanwhile is probed where it is now at its next heartbeat
        return row


def _keep_health(row: ComputeSite, problem: str | None) -> None:
    row.health = "down" if problem else "healthy"
    row.health_error = problem
    row.heartbeat_at = utcnow()


def probe_site(db: Database, keyring: Keyring, *, principal: Principal, name: str) -> ComputeSite:
    """Probe a site now (providers), in ``heartbeat``'s units of work."""
    require(principal, "compute.site.manage")
    row = heartbeat(db, keyring, name)
    if row is None:
        raise SiteNotFound(f"no compute site named {name!r}")
    return row


def _memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return 0


def ensure_default_site(session: Session, executor: Any) -> ComputeSite:
    """The site ``local`` for the engine's start-up executor (made once; its kind follows the executor)."""
    row = session.scalar(select(ComputeSite).where(ComputeSite.name == DEFAULT_SITE))
    kind = _EXECUTOR_KINDS.get(getattr(executor, "name", "local"), "local")
    address = getattr(executor, "address", None) if kind == "dask" else None
    if row is None:  # two engine processes starting together both find none: the second's insert is a no-op
        now = utcnow()
        session.execute(upsert(session.get_bind().dialect.name, ComputeSite).values(
            name=DEFAULT_SITE, kind=kind, address=address, options={}, cores=os.cpu_count() or 1,
            memory_bytes=_memory_bytes(), gpus=0, environments=[], endpoints=[], health="healthy", draining=False,
            created_by="engine", heartbeat_at=now, created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["name"]))
        row = session.scalars(select(ComputeSite).where(ComputeSite.name == DEFAULT_SITE)
                              .execution_options(populate_existing=True)).one()
    if (row.kind, row.address) != (kind, address):
        row.kind, row.address, row.updated_at = kind, address, utcnow()
    return row
