"""``twin site``, ``twin usage`` and ``twin quota``: compute sites (providers), what runs used, and quotas."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from twinengine.cli._common import console, state_of, table
from twinengine.csv_cells import safe_row
from twinengine.errors import ValidationFailed

if TYPE_CHECKING:
    from twinengine.compute.schemas import SiteRead, UsageSummary

__all__ = ["app", "quota_app", "usage"]

app = typer.Typer(help="Compute sites: register (providers), list, show, drain, remove.", no_args_is_help=True)
quota_app = typer.Typer(help="Compute quotas: core-hours per identity or group per site (admins set them).",
                        no_args_is_help=True)

_KINDS = ("local", "dask", "slurm", "engine")
_BY = ("identity", "group", "twin", "app", "site", "kind")


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationFailed.one(f"{option}[{i}]", f"{item!r} is not key=value")
        out[key] = value
    return out


def _size(text: str | None, option: str) -> int:
    if text is None:
        return 0
    from twinengine.cli.lake_endpoints import parse_size

    return parse_size(text, option)


def _instant(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    from twinengine.timeutil import parse_instant

    try:
        return parse_instant(text).isoformat()
    except ValueError:
        raise ValidationFailed.one(option, f"{text!r} is not an ISO 8601 time (e.g. 2026-11-01 or "
                                           "2026-11-01T12:00Z)") from None


def _show(site: SiteRead) -> None:
    colour = {"healthy": "green", "draining": "yellow", "down": "red"}[site.status.value]
    where = f" at {escape(site.address)}" if site.address else ""
    console.print(f"[bold]{site.name}[/bold] {site.kind.value}{where}  [{colour}]{site.status.value}[/{colour}]  "
                  f"{site.cores} cores, {site.memory_bytes / 2**30:.1f} GiB, {site.gpus} GPUs; credential "
                  f"{site.credential or 'none'}", highlight=False)
    if site.health_error:
        console.print(f"  {escape(site.health_error)}", highlight=False)
    if site.environments:
        console.print("  environments: " + ", ".join(site.environments), highlight=False)
    if site.endpoints:
        console.print("  near lake endpoints: " + ", ".join(site.endpoints), highlight=False)


@app.command("add")
def site_add(ctx: typer.Context, name: str = typer.Argument(...),
             kind: str = typer.Option(..., "--kind", help="local, dask, slurm or engine."),
             address: str | None = typer.Option(None, "--address", help="dask: tcp://host:port; engine: its URL."),
             cores: int = typer.Option(..., "--cores", help="Cores the site offers."),
             memory: str | None = typer.Option(None, "--memory", help="Memory it offers, e.g. 256G."),
             gpus: int = typer.Option(0, "--gpus"),
             environment: list[str] = typer.Option([], "--environment", help="An environment or image it runs."),
             endpoint: list[str] = typer.Option([], "--endpoint", help="A lake endpoint near it."),
             option: list[str] = typer.Option([], "--option", help="key=value, e.g. partition=batch."),
             bearer_token: str | None = typer.Option(None, "--bearer-token", envvar="TWIN_SITE_BEARER_TOKEN",
                                                     help="Its credential (prefer the env var)."),
             ) -> None:
    """Register a compute site; its credential is stored encrypted and never shown again."""
    if kind not in _KINDS:
        raise ValidationFailed.one("--kind", f"{kind!r} is not one of {', '.join(_KINDS)}")
    out = state_of(ctx)
    with out.client() as client:
        site = client.compute.add_site(name, kind, address=address, cores=cores,
                                       memory_bytes=_size(memory, "--memory"), gpus=gpus,
                                       environments=environment, endpoints=endpoint,
                                       options=_pairs(option, "--option"),
                                       credential={"kind": "bearer", "token": bearer_token} if bearer_token else None)
    out.emit(site, lambda: _show(site))


@app.command("list")
def site_list(ctx: typer.Context) -> None:
    """Compute sites with capacity and status."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.compute.sites()
    out.emit(page, lambda: console.print(table(f"compute sites ({page.total})", [
        "name", "kind", "address", "status", "cores", "memory GiB", "GPUs", "endpoints", "heartbeat (UTC)"], [
        (s.name, s.kind.value, s.address, s.status.value, s.cores, round(s.memory_bytes / 2**30, 1), s.gpus,
         ", ".join(s.endpoints), s.heartbeat_at) for s in page.items])))


@app.command("show")
def site_show(ctx: typer.Context, name: str = typer.Argument(...),
              check: bool = typer.Option(False, "--check", help="Probe it now (providers).")) -> None:
    """One compute site."""
    out = state_of(ctx)
    with out.client() as client:
        site = client.compute.heartbeat(name) if check else client.compute.site(name)
    out.emit(site, lambda: _show(site))


@app.command("drain")
def site_drain(ctx: typer.Context, name: str = typer.Argument(...),
               undo: bool = typer.Option(False, "--undo", help="Open it for new runs again.")) -> None:
    """Let a site finish what it runs and take nothing new (providers)."""
    out = state_of(ctx)
    with out.client() as client:
        site = client.compute.drain_site(name, undo=undo)
    out.emit(site, lambda: _show(site))


@app.command("remove")
def site_remove(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Remove a compute site (providers)."""
    out = state_of(ctx)
    with out.client() as client:
        client.compute.remove_site(name)
    out.emit({"removed": name}, lambda: console.print(f"removed site {name}", highlight=False))


def _storage_table(summary: UsageSummary) -> Any:
    return table("lake storage", ["endpoint", "used bytes", "quota bytes", "used %"], [
        (s.endpoint, s.used_bytes, s.quota_bytes,
         round(100 * s.used_bytes / s.quota_bytes, 1) if s.quota_bytes else None) for s in summary.storage])


def _plot(summary: UsageSummary, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from twinengine.figures import save_figure

    groups = summary.groups[:30]
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.35 * max(1, len(groups))))
    ax.barh([g.key for g in groups][::-1], [g.core_hours for g in groups][::-1], color="tab:blue")
    ax.set_xlabel("core-hours")
    ax.set_ylabel(summary.by.value)
    period = f"{summary.since or 'start'} to {summary.until or 'now'}"
    return save_figure(fig, path, title=f"usage by {summary.by.value} ({period})")


def usage(ctx: typer.Context,
          by: str = typer.Option("identity", "--by", help="identity, group, twin, app, site or kind."),
          since: str | None = typer.Option(None, "--since", help="From (ISO 8601, UTC without a zone)."),
          until: str | None = typer.Option(None, "--until", help="Until (ISO 8601, exclusive)."),
          identity: str | None = typer.Option(None, "--identity", help="Admins: one identity's usage."),
          site: str | None = typer.Option(None, "--site", help="One site's usage."),
          fmt: str = typer.Option("table", "--format", help="table, csv (one row per execution) or apel."),
          as_csv: bool = typer.Option(False, "--csv", help="Same as --format csv."),
          plot: Path | None = typer.Option(None, "--plot", help="Write a bar chart of core-hours (PNG)."),
          ) -> None:
    """What runs used (core- and GPU-hours, memory, bytes) by identity, group, twin, app, site or kind."""
    if by not in _BY:
        raise ValidationFailed.one("--by", f"{by!r} is not one of {', '.join(_BY)}")
    fmt = "csv" if as_csv else fmt
    if fmt not in ("table", "csv", "apel"):
        raise ValidationFailed.one("--format", f"{fmt!r} is not table, csv or apel")
    window = {"since": _instant(since, "--since"), "until": _instant(until, "--until"), "identity": identity,
              "site": site}
    out = state_of(ctx)
    with out.client() as client:
        if fmt == "apel":
            sys.stdout.write(client.compute.usage_apel(**window))
            return
        if fmt == "csv":
            records = client.compute.usage_records(**window)
            buffer = io.StringIO()
            fields = list(type(records.items[0]).model_fields) if records.items else ["run_id"]
            writer = csv.DictWriter(buffer, fieldnames=fields)
            writer.writeheader()
            for record in records.items:
                row = record.model_dump(mode="json")
                row["groups"] = ";".join(row["groups"])
                writer.writerow(safe_row(row))  # names come from identities, groups and sites: data, not formulas
            sys.stdout.write(buffer.getvalue())
            return
        summary = client.compute.usage(by=by, **window)
    written = _plot(summary, plot) if plot is not None else None

    def render() -> None:
        console.print(table(f"usage by {by}", [by, "runs", "core-hours", "GPU-hours", "wall hours", "peak memory MiB",
                                               "read MB", "written MB", "transferred MB", "stored MB"], [
            (g.key, g.runs, round(g.core_hours, 4), round(g.gpu_hours, 4), round(g.wall_seconds / 3600, 4),
             round(g.peak_memory_bytes / 2**20, 1), round(g.bytes_read / 1e6, 3), round(g.bytes_written / 1e6, 3),
             round(g.bytes_transferred / 1e6, 3), round(g.bytes_stored / 1e6, 3))
            for g in summary.groups]))
        if summary.storage:
            console.print(_storage_table(summary))
        if written is not None:
            console.print(f"plot: {written}", highlight=False)

    out.emit(summary, render)


@quota_app.command("set")
def quota_set(ctx: typer.Context, subject: str = typer.Argument(..., help="An identity, or group:<name>."),
              core_hours: float = typer.Option(..., "--core-hours", help="Core-hours per period."),
              site: str = typer.Option("*", "--site", help="A site, or * for all."),
              period: str = typer.Option("month", "--period", help="day, week, month, year or total.")) -> None:
    """Set a compute quota (admins)."""
    out = state_of(ctx)
    with out.client() as client:
        quota = client.compute.set_quota(subject, core_hours, site=site, period=period)
    out.emit(quota, lambda: console.print(
        f"{quota.subject} on {quota.site}: {quota.core_hours:g} core-hours per {quota.period} "
        f"({quota.used_core_hours:.4g} used)", highlight=False))


@quota_app.command("list")
def quota_list(ctx: typer.Context) -> None:
    """Compute quotas with what is used of them (yours and your groups'; admins: all)."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.compute.quotas()
    out.emit(page, lambda: console.print(table(f"compute quotas ({page.total})", [
        "subject", "site", "period", "core-hours", "used", "used %", "since (UTC)"], [
        (q.subject, q.site, q.period, q.core_hours, round(q.used_core_hours, 4),
         round(100 * q.used_core_hours / q.core_hours, 1) if q.core_hours else None, q.period_start)
        for q in page.items])))


@quota_app.command("remove")
def quota_remove(ctx: typer.Context, subject: str = typer.Argument(...),
                 site: str = typer.Option("*", "--site")) -> None:
    """Remove a compute quota (admins)."""
    out = state_of(ctx)
    with out.client() as client:
        client.compute.remove_quota(subject, site=site)
    out.emit({"removed": subject, "site": site},
             lambda: console.print(f"removed the quota of {subject} on {site}", highlight=False))
