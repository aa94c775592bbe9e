"""Placing a run on a site, by a rule written down here and in docs/compute.md, with the reasons kept.

1. Candidates: every site, or only the one the run pins (``options.site``), less the ones it excludes
   (``options.exclude_sites``). A pinned site that cannot take the run is an error naming ``options.site``.
2. Out: sites that are down or draining; sites of kind ``engine`` for a run on a twin (``options.on_twin``:
   the twin's state and streams are here; another engine takes runs of graphs alone); sites whose
   environments do not list the run's app (a site that lists none runs any); sites with fewer GPUs than the
   run asks for (``options.gpus``); sites where the owner's quota is used up.
3. Of the rest, the lowest estimate wins: seconds to stage the run's lake inputs that are not on an
   endpoint near the site (bytes / the transfer rate the lake measured into that site's endpoints, or
   ``DEFAULT_RATE`` where it measured none, at most the endpoints' ``rate_limit``), plus the site's queue
   (``running_sites``: the core-seconds left in the runs placed there queued or running, each by what its
   graph took before, ``QUEUE_SECONDS`` where it never ran, less what it has run; an ensemble counting its
   members that have not ended), per core. Ties go to the engine's own site, then to the site with more
   cores, then by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from twinengine.compute.models import ComputeSite
from twinengine.compute.quotas import check_quota
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.errors import QuotaExceeded, ValidationFailed
from twinengine.lake.models import Attachment, Did, Endpoint, Replica, Transfer
from twinengine.lake.rates import rate_limit

__all__ = ["DEFAULT_RATE", "Placement", "collection_inputs", "place"]

DEFAULT_RATE = 100e6  # bytes per second assumed between endpoints the lake has not measured
QUEUE_SECONDS = 60.0  # the core-seconds a run whose graph never ran here is taken to need


@dataclass
class Placement:
    site: str
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "reasons": self.reasons, "scores": self.scores}


def collection_inputs(process: dict[str, Any], *parameter_sets: dict[str, Any]) -> list[str]:
    """The ``load_collection`` ids of a process graph (callbacks included); an id given by a parameter is
    read from each of ``parameter_sets`` (a run's parameters, an ensemble's members'), else its default."""
    found: list[str] = []
    defaults = {p.get("name"): p.get("default") for p in process.get("parameters") or [] if isinstance(p, dict)}
    stack: list[Any] = [process.get("process_graph", process)]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("process_id") == "load_collection":
                ident = (item.get("arguments") or {}).get("id")
                if isinstance(ident, dict) and isinstance(ident.get("from_parameter"), str):
                    name = ident["from_parameter"]
                    values = [ps.get(name, defaults.get(name)) for ps in parameter_sets] or [defaults.get(name)]
                    found.extend(v for v in values if isinstance(v, str))
                if isinstance(ident, str):
                    found.append(ident)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(set(found))


def _input_bytes(session: Session, collections: list[str]) -> tuple[int, dict[int, int]]:
    """Bytes of the lake datasets behind ``collections`` (``scope.name``), and how many of them each
    endpoint holds (available replicas)."""
    total, per_endpoint = 0, dict[int, int]()
    child = aliased(Did)
    for ident in collections:
        scope, _, name = ident.partition(".")
        dataset = session.scalar(select(Did.id).where(Did.scope == scope, Did.name == name.replace("~", "/")))
        if dataset is None:
            continue
        files = select(child.id, child.bytes).join(Attachment, Attachment.child_id == child.id).where(
            Attachment.parent_id == dataset)
        for file_id, size in session.execute(files):
            total += int(size or 0)
            for (endpoint_id,) in session.execute(select(Replica.endpoint_id).where(
                    Replica.did_id == file_id, Replica.state == "AVAILABLE")):
                per_endpoint[endpoint_id] = per_endpoint.get(endpoint_id, 0) + int(size or 0)
    return total, per_endpoint


def _rate_into(session: Session, endpoint_ids: list[int]) -> float:
    """Bytes per second the lake's finished transfers into these endpoints reached (DEFAULT_RATE if none),
    at most their ``rate_limit`` (the slowest's, when several set one)."""
    if not endpoint_ids:
        return DEFAULT_RATE
    rows = session.execute(select(Transfer.bytes_done, Transfer.created_at, Transfer.updated_at).where(
        Transfer.dest_endpoint_id.in_(endpoint_ids), Transfer.state == "DONE", Transfer.bytes_done > 0)
        .order_by(Transfer.updated_at.desc()).limit(100)).all()
    seconds = sum(max(0.001, (updated - created).total_seconds()) for _, created, updated in rows)
    measured = sum(int(b) for b, _, _ in rows) / seconds if rows else DEFAULT_RATE
    limit = rate_limit(*session.scalars(select(Endpoint).where(Endpoint.id.in_(endpoint_ids))))
    return min(measured, limit) if limit else measured  # a throttled link is never faster than its limit


def place(session: Session, *, owner: str, groups: frozenset[str] | list[str], options: dict[str, Any],
          process: dict[str, Any], app: str | None = None, running_sites: dict[str, float] | None = None,
          outcome: str = "the run is refused") -> Placement:
    """The site a run goes to, and why (see the module's docstring for the rule); ``outcome`` says what a
    quota's refusal does, in its message."""
    sites = {s.name: s for s in session.scalars(select(ComputeSite).order_by(ComputeSite.name))}
    pinned = options.get("site")
    excluded = set(options.get("exclude_sites") or [])
    for i, name in enumerate(sorted(excluded)):
        if name not in sites:
            raise ValidationFailed.one(f"options.exclude_sites[{i}]", f"no compute site named {name!r}")
    if pinned is not None and pinned not in sites:
        raise ValidationFailed.one("options.site", f"no compute site named {pinned!r}")
    if pinned is not None and pinned in excluded:
        raise ValidationFailed.one("options.site", f"{pinned} is pinned and excluded at once")
    names = [pinned] if pinned else [n for n in sites if n not in excluded]
    reasons = [f"pinned to {pinned}"] if pinned else ([f"excluded {', '.join(sorted(excluded))}"] if excluded else [])
    app_name = app.partition("@")[0] if app else None
    gpus = int(options.get("gpus") or 0)
    quota_refusal: QuotaExceeded | None = None
    fit: list[ComputeSite] = []
    for name in names:
        site = sites[name]
        why = None
        if site.status != "healthy":
            why = f"{name} is {site.status}"
        elif site.kind == "engine" and options.get("on_twin"):
            why = f"{name} is another engine: a run on a twin stays with the twin's state and streams"
        elif site.environments and app and app not in site.environments and app_name not in site.environments:
            why = f"{name} does not run {app}"
        elif site.gpus < gpus:
            why = f"{name} has {site.gpus} GPUs, the run asks for {gpus}"
        else:
            try:
                check_quota(session, identity=owner, groups=groups, site=name, outcome=outcome)
            except QuotaExceeded as exc:
                quota_refusal = quota_refusal or exc
                why = f"{name}: quota used up"
        if why is None:
            fit.append(site)
        else:
            reasons.append(why)
    if not fit:
        if quota_refusal is not None:
            raise quota_refusal
        raise ValidationFailed.one("options.site" if pinned else "options.exclude_sites",
                                   "no site can take the run: " + "; ".join(reasons))
    total, held = _input_bytes(session, collection_inputs(process))
    endpoint_ids: dict[str, int] = {str(n): int(i) for n, i in session.execute(select(Endpoint.name, Endpoint.id))}
    running = running_sites or {}
    scores: dict[str, float] = {}
    for site in fit:
        near = [endpoint_ids[e] for e in site.endpoints or [] if e in endpoint_ids]
        local_bytes = max((held.get(e, 0) for e in near), default=0)
        missing = max(0, total - local_bytes)
        staging = missing / _rate_into(session, near)
        queue = running.get(site.name, 0.0) / max(1, site.cores)
        scores[site.name] = round(staging + queue, 6)
        if total:
            reasons.append(f"{site.name}: {local_bytes} of {total} input bytes near it, {missing} to stage "
                           f"({staging:.3g} s), queue {queue:.3g} s")
        elif queue:
            reasons.append(f"{site.name}: {running.get(site.name, 0.0):.3g} core-seconds left in runs queued "
                           f"or running on {max(1, site.cores)} cores, queue {queue:.3g} s")
    chosen = min(fit, key=lambda s: (scores[s.name], s.name != DEFAULT_SITE, -s.cores, s.name))
    reasons.append(f"chose {chosen.name}: lowest estimate ({scores[chosen.name]:.3g} s) of "
                   f"{', '.join(sorted(scores))}")
    return Placement(site=chosen.name, reasons=reasons, scores=scores)

