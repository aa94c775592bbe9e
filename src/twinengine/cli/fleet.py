"""Fleet commands: ``twin list`` with filters (the page through ``/fleet/twins``), ``twin update`` (tags and
location), and ``twin fleet aggregate PROPERTY``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from twinengine.cli._common import console, state_of, table

__all__ = ["app", "list_filtered", "location_of", "update"]

app = typer.Typer(help="Fleets of twins: aggregates of a state property over many twins.", no_args_is_help=True)

STATE_HELP = "Condition on a state value, e.g. 'level>2.5', 'alert=true', 'level>@desired.alert_threshold'; repeat."
STATS = ("count", "mean", "min", "max")


def bbox_of(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise typer.BadParameter("give minx,miny,maxx,maxy", param_hint="--bbox")
    return values


def location_of(point: str | None, location_file: Path | None) -> dict[str, Any] | None:
    """``--point LON,LAT`` or ``--location FILE.geojson`` (a geometry or a Feature's geometry)."""
    if point is not None:
        try:
            lon, lat = (float(v) for v in point.split(","))
        except ValueError:
            raise typer.BadParameter("give LON,LAT", param_hint="--point") from None
        return {"type": "Point", "coordinates": [lon, lat]}
    if location_file is not None:
        doc = json.loads(location_file.read_text())
        return dict(doc.get("geometry", doc)) if isinstance(doc, dict) else None
    return None


def list_filtered(ctx: typer.Context, *, app_ref: str | None, tags: list[str], bbox: str | None, state: list[str],
                  parameters: list[str], limit: int, cursor: str | None, stale: list[str] | None = None) -> None:
    """One filtered page (``twin list`` with any fleet filter)."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.list_fleet(app=app_ref, tags=tags, bbox=bbox_of(bbox), state=state, parameters=parameters,
                                 stale=stale or (), limit=limit, cursor=cursor)

    def render() -> None:
        console.print(table(f"twins ({len(page.items)}{', more: --cursor ' + page.cursor if page.cursor else ''})",
                            ["name", "app", "owner", "tags", "location", "revision"],
                            [(t.name, t.app, t.owner, ", ".join(t.tags),
                              t.location["type"] if t.location else None, t.head_revision) for t in page.items]))

    out.emit(page, render)


def update(
    ctx: typer.Context,
    twin: str = typer.Argument(..., help="Twin name or id."),
    tag: list[str] = typer.Option(None, "--tag", help="Tag; repeat. Replaces the twin's tags."),
    no_tags: bool = typer.Option(False, "--no-tags", help="Remove every tag."),
    point: str | None = typer.Option(None, "--point", help="Location as LON,LAT (WGS 84)."),
    location: Path | None = typer.Option(None, "--location", exists=True, dir_okay=False,
                                         help="Location from a GeoJSON file (Point, Polygon, MultiPolygon)."),
    no_location: bool = typer.Option(False, "--no-location", help="Remove the location."),
) -> None:
    """Set a twin's tags and/or location (owner or admin)."""
    out = state_of(ctx)
    tags = [] if no_tags else (tag or None)
    where: Any = "clear" if no_location else location_of(point, location)
    if tags is None and where is None:
        raise typer.BadParameter("nothing to change: give --tag, --point, --location or --no-*")
    with out.client() as client:
        row = client.update_twin(twin, tags=tags, location=where)
    out.emit(row, lambda: console.print(f"{row.name}: tags {', '.join(row.tags) or '-'}; location "
                                        f"{json.dumps(row.location) if row.location else '-'}", highlight=False))


@app.command("aggregate")
def aggregate(
    ctx: typer.Context,
    prop: str = typer.Argument(..., metavar="PROPERTY", help="A numeric state property, e.g. level."),
    stat: list[str] = typer.Option(None, "--stat", help=f"Columns to show: {', '.join(STATS)}, or a quantile "
                                   "such as p50 or p90; repeat (default: count, mean, min, max)."),
    by: str | None = typer.Option(None, "--by", help="Group by app, tag or parameter:NAME."),
    at: datetime | None = typer.Option(None, "--at", help="As of this time (ISO 8601, UTC without a zone)."),
    desired: bool = typer.Option(False, "--desired", help="Aggregate the desired values, not the reported."),
    app_ref: str | None = typer.Option(None, "--app", help="Only twins of APP or APP@VERSION."),
    tag: list[str] = typer.Option([], "--tag", help="Only twins with this tag; repeat: all of them."),
    bbox: str | None = typer.Option(None, "--bbox", help="Only twins whose location meets minx,miny,maxx,maxy."),
    state: list[str] = typer.Option([], "--state", help=STATE_HELP),
    parameter: list[str] = typer.Option([], "--parameter", help="Condition on a parameter, e.g. station=RR-01."),
) -> None:
    """Statistics of a state property over the twins that match, per group: one request, one query."""
    out = state_of(ctx)
    stats = list(stat or STATS)
    quantiles: list[float] = []
    for s in stats:
        if s in STATS:
            continue
        try:
            quantiles.append(float(s.removeprefix("p")) / 100)
        except ValueError:
            raise typer.BadParameter(f"{s!r}: use {', '.join(STATS)} or pNN", param_hint="--stat") from None
    with out.client() as client:
        result = client.fleet_aggregate(prop, by=by, quantiles=quantiles, at=at,
                                        kind="desired" if desired else "reported", app=app_ref, tags=tag,
                                        bbox=bbox_of(bbox), state=state, parameters=parameter)

    def cell(group: Any, s: str) -> Any:
        if s in STATS:
            value = getattr(group, s)
            return round(value, 4) if isinstance(value, float) else value
        value = group.quantiles.get(f"{float(s.removeprefix('p')) / 100:g}")
        return None if value is None else round(value, 4)

    when = f" at {result.at.isoformat()}" if result.at else ""
    out.emit(result, lambda: console.print(table(
        f"{result.kind} {prop}{when}" + (f" by {by}" if by else ""), [by or "fleet", *stats],
        [(g.key if by else "all", *(cell(g, s) for s in stats)) for g in result.groups])))
