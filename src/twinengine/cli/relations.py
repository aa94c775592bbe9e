"""Relationship commands at the top level: ``twin link A TYPE B``, ``twin unlink``, ``twin links``, ``twin related``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import typer

from twinengine.cli._common import console, state_of, table
from twinengine.errors import ValidationFailed
from twinengine.timeutil import parse_instant
from twinengine.twins.relationship_schemas import LinkRead, RelatedPage
from twinengine.twins.schemas import TwinState

_AT_HELP = "ISO 8601 time (UTC without a zone); default now."
_DIRECTION_HELP = "out (to targets, e.g. downstream), in (to sources) or both."


def _instant(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise ValidationFailed.one(option, f"{text!r} is not an ISO 8601 time ({exc})") from None


def _direction(text: str) -> Any:
    if text not in ("out", "in", "both"):
        raise ValidationFailed.one("--direction", f"{text!r} is not out, in or both")
    return text


def _span(row: LinkRead) -> str:
    since = row.valid_from.strftime("%Y-%m-%d %H:%M:%S")
    return f"{since} → {row.valid_to.strftime('%Y-%m-%d %H:%M:%S')}" if row.valid_to else f"since {since}"


def link(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="Twin the link starts from (name or id)."),
    type: str = typer.Argument(..., metavar="TYPE", help="Relationship type its app declares, e.g. flows_into."),
    target: str = typer.Argument(..., help="Twin the link goes to (name or id)."),
    at: str | None = typer.Option(None, "--at", help=f"When the link began: {_AT_HELP}"),
) -> None:
    """Link two twins by a relationship type, checked against the source's app."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.link(source, type, target, at=_instant(at, "--at"))
    out.emit(row, lambda: console.print(f"{source} {type} {target} {_span(row)} (change {row.opened_revision} of "
                                        f"{type})", highlight=False))


def unlink(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="Twin the link starts from."),
    type: str = typer.Argument(..., metavar="TYPE"),
    target: str = typer.Argument(..., help="Twin the link goes to."),
    at: str | None = typer.Option(None, "--at", help=f"When the link ended: {_AT_HELP}"),
) -> None:
    """Close a link; it stays readable as of earlier times."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.unlink(source, type, target, at=_instant(at, "--at"))
    out.emit(row, lambda: console.print(f"{source} {type} {target} closed: {_span(row)}", highlight=False))


def links(
    ctx: typer.Context,
    twin: str = typer.Argument(..., help="Twin name or id."),
    type: str | None = typer.Option(None, "--type", help="Only this relationship type."),
    direction: str = typer.Option("out", "--direction", help=_DIRECTION_HELP),
    at: str | None = typer.Option(None, "--at", help=f"Links holding at this time: {_AT_HELP}"),
    history: bool = typer.Option(False, "--history", help="Every link the twin ever had, closed ones too."),
) -> None:
    """A twin's links now, as of a time, or all of them."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.links(twin, type=type, direction=_direction(direction), at=_instant(at, "--at"),
                            history=history)
    out.emit(page, lambda: console.print(table(
        f"links of {twin} ({direction})", ["type", "source", "target", "valid (UTC)", "by"],
        [(r.type, r.source_id, r.target_id, _span(r), r.opened_by) for r in page.items])))


def _values(state: TwinState | None) -> str:
    if state is None:
        return "-"
    return ", ".join(f"{p}={v.value}{' ' + v.unit if v.unit else ''}" for p, v in state.reported.items()) or "-"


def _show_related(twin: str, page: RelatedPage, with_state: bool) -> None:
    names = {page.twin_id: twin, **{t.id: t.name for t in page.items}}
    columns = ["name", "depth", "via", "app", "id"] + (["reported"] if with_state else [])
    rows = []
    for t in page.items:
        other = t.via.source_id if t.via.target_id == t.id else t.via.target_id
        arrow = f"{names.get(other, other)} {t.via.type} {t.name}" if t.via.target_id == t.id else \
            f"{t.name} {t.via.type} {names.get(other, other)}"
        rows.append([t.name, t.depth, arrow, t.app, t.id] + ([_values(t.state)] if with_state else []))
    when = f" as of {page.at.isoformat()}" if page.at else ""
    kind = page.type or "any type"
    console.print(table(f"related to {twin} ({kind}, {page.direction.value}, within {page.depth} hops{when})",
                        columns, rows))
    if page.truncated:
        console.print(f"(the first {len(page.items)}: raise --limit for more)", highlight=False)


def related(
    ctx: typer.Context,
    twin: str = typer.Argument(..., help="Twin to start from (name or id)."),
    type: str | None = typer.Option(None, "--type", help="Follow only this relationship type."),
    direction: str = typer.Option("out", "--direction", help=_DIRECTION_HELP),
    depth: int = typer.Option(1, "--depth", min=1, max=64, help="Hops to follow."),
    at: str | None = typer.Option(None, "--at", help=f"Read the graph (and state) as of this time: {_AT_HELP}"),
    state: bool = typer.Option(False, "--state", help="Show each twin's reported state."),
    limit: int = typer.Option(1000, "--limit", min=1, max=10_000),
) -> None:
    """Twins within some hops along links, e.g. what is downstream of a reach."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.related(twin, type=type, direction=_direction(direction), depth=depth,
                              at=_instant(at, "--at"), state=state, limit=limit)
    out.emit(page, lambda: _show_related(twin, page, state))


COMMANDS: dict[str, Callable[..., Any]] = {"link": link, "unlink": unlink, "links": links, "related": related}
