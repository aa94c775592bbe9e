"""The compute chapter: a second site (a small Dask cluster started here), the forecast ensemble (of the
what-if fork) placed by the engine and then pinned to the cluster, the site and the reasons of each
placement; a third site, another engine (its own data dir and store, served on loopback) that lends this one
an identity, running a graph sent there whole; and what the demo's runs used, by site, identity and kind, as
``twin usage`` prints it."""

from __future__ import annotations

from typing import Any

from twinengine.demo.chapters.twins import ALERT_THRESHOLD_M
from twinengine.demo.chapters.workflows import COLLECTION
from twinengine.demo.context import DemoContext

__all__ = ["compute_sites"]

MEMBERS = 4
SITE = "cluster"
PARTNER = "partner"
PEAKS = {"process_graph": {
    "max": {"process_id": "max", "arguments": {"data": {"from_parameter": "levels"}}},
    "mean": {"process_id": "mean", "arguments": {"data": {"from_parameter": "levels"}}},
    "both": {"process_id": "array_create", "arguments": {"data": [{"from_node": "max"}, {"from_node": "mean"}]},
             "result": True}},
    "parameters": [{"name": "levels", "description": "gauge levels (m)", "schema": {"type": "array"}}]}


def compute_sites(ctx: DemoContext) -> None:
    from distributed import LocalCluster

    local_cluster: Any = LocalCluster  # untyped in distributed
    # threads in this process: a real scheduler and worker, started in a second, no extra processes
    with local_cluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        # on the what-if fork: the twin's own state and forecasts stay the story the other chapters tell
        admin, uma = ctx.client("admin"), ctx.client("uma")
        name = (ctx.facts.get("what_if") or {}).get("fork") or ctx.facts["twin_name"]
        admin.compute.add_site(SITE, "dask", address=str(cluster.scheduler_address), cores=2,
                               memory_bytes=2**30)
        try:
            ctx.say(f"sites: {', '.join(f'{s.name} ({s.kind}, {s.status})' for s in admin.compute.sites().items)}")
            placed = {}
            for label, options in (("placed by the engine", None), ("pinned", {"site": SITE})):
                run = uma.ensembles.run(name, "forecast", members=MEMBERS, seed=ctx.options.seed, sync=True,
                                        parameters={"collection": COLLECTION, "alert_level": ALERT_THRESHOLD_M},
                                        options=options)
                if run.status != "finished":
                    raise RuntimeError(f"the {label} ensemble ended as {run.status}: {run.error}")
                site, reasons = _placement(uma.workflows.provenance(run.id))
                records = {r.run_id: r.site for r in uma.compute.usage_records().items}
                ran = sorted({records.get(m.run_id, "?") for m in run.members})
                ctx.say(f"ensemble {run.id} ({label}): site {site}; members ran on {', '.join(ran)}")
                for reason in reasons:
                    ctx.say(f"  why: {reason}")
                placed[label] = {"run": run.id, "site": site, "reasons": reasons, "members_on": ran}
        finally:
            admin.compute.remove_site(SITE)
    partner = _partner_engine(ctx, admin, uma, ctx.facts["twin_name"])  # the twin's own reported levels
    by_site = admin.compute.usage(by="site")
    _table(ctx, "usage of the demo's runs by site", by_site.groups)
    _table(ctx, "by identity", admin.compute.usage(by="identity").groups)
    by_kind = admin.compute.usage(by="kind")
    _table(ctx, "by kind (functions on arrival: a record per minute they ran)", by_kind.groups)
    ctx.facts["compute"] = {"twin": name, "placements": placed, "partner": partner,
                            "usage_by_site": {g.key: {"runs": g.runs, "core_seconds": g.core_seconds}
                                              for g in by_site.groups},
                            "usage_by_kind": {g.key: g.runs for g in by_kind.groups}}
    pinned = placed["pinned"]
    ctx.summary.append(("compute sites", f"ensemble placed on {placed['placed by the engine']['site']}; "
                                         f"pinned one on {pinned['site']} ({', '.join(pinned['members_on'])}); "
                                         f"a graph sent whole to another engine ({PARTNER}); "
                                         f"{sum(g.runs for g in by_site.groups)} executions accounted"))


def _partner_engine(ctx: DemoContext, admin: Any, uma: Any, twin: str) -> dict[str, Any]:
    """Another engine, on a data dir of its own beside the demo's, served on loopback, lends this one the
    identity ``partner``; registered as the site ``partner`` (kind engine), it runs a graph sent there whole
    (the highest and the mean of the twin's last reported levels), whose result comes back here checked against
    its checksum, and whose usage is the other engine's record of it."""
    from datetime import timedelta

    from twinengine.api import create_app
    from twinengine.auth.principal import SYSTEM, Role
    from twinengine.auth.service import issue_token
    from twinengine.config import Settings
    from twinengine.demo.server import InProcessServer
    from twinengine.runtime import Runtime

    reported = uma.history(twin, "level", order="desc", limit=24).items
    levels = [float(v.value) for v in reported if isinstance(v.value, int | float)]
    other = Runtime.from_settings(Settings(data_dir=ctx.runtime.data_dir / "partner-engine", warm_routes=False))
    try:
        other.start()
        with other.db.session() as session:
            lent = issue_token(session, other.issuer, principal=SYSTEM, name=PARTNER, role=Role.USER,
                               ttl=timedelta(days=1), note="lent to the demo's engine").token
        with InProcessServer(create_app(runtime=other)) as server:
            admin.compute.add_site(PARTNER, "engine", address=server.url, cores=2, memory_bytes=2**30,
                                   credential={"kind": "bearer", "token": lent})
            try:
                run = uma.workflows.submit(PEAKS, {"levels": levels}, sync=True, options={"site": PARTNER})
                if run.status != "finished":
                    raise RuntimeError(f"the run on the partner engine ended as {run.status}: {run.error}")
                there = _activity(uma.workflows.provenance(run.id)).get("twin:remote_run", "")
                record = {r.run_id: r for r in uma.compute.usage_records().items}[run.id]
            finally:
                admin.compute.remove_site(PARTNER)
    finally:
        other.close()
    highest, mean = run.value
    ctx.say(f"site {PARTNER}: another engine (its own data and store) lent this one an identity; run {run.id} "
            f"went there whole, as {there}")
    ctx.say(f"  the last {len(levels)} reported levels of {twin}: highest {highest:.3f} m, mean {mean:.3f} m, "
            f"computed there, the result copied here and checked against its checksum")
    ctx.say(f"  usage: {record.core_seconds:.3f} core-s charged to uma on site {PARTNER} ({record.source})")
    return {"run": run.id, "there": there, "value": [highest, mean], "levels": levels,
            "source": record.source, "site": record.site}


def _activity(provenance: dict[str, Any]) -> dict[str, Any]:
    """The run's activity in its PROV document: the one that names its site (``twin:site``)."""
    for activity in (provenance.get("activity") or {}).values():
        if isinstance(activity, dict) and "twin:site" in activity:
            return activity
    return {}


def _placement(provenance: dict[str, Any]) -> tuple[str, list[str]]:
    """The run's site and placement reasons from its PROV document (``twin:site``, ``twin:placement``)."""
    activity = _activity(provenance)
    if not activity:
        return "local", []
    reasons = str(activity.get("twin:placement") or "").splitlines()
    return str(activity["twin:site"]), [r for r in reasons if r]


def _table(ctx: DemoContext, title: str, groups: list[Any]) -> None:
    ctx.say(f"{title}:")
    ctx.say(f"  {'key':<12} {'runs':>5} {'core-s':>9} {'wall-s':>9} {'peak MB':>9}")
    for g in groups:
        ctx.say(f"  {g.key:<12} {g.runs:>5} {g.core_seconds:>9.2f} {g.wall_seconds:>9.2f} "
                f"{g.peak_memory_bytes / 1e6:>9.0f}")
