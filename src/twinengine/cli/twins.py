"""Twin commands at the top level: ``twin create|list|show|delete|fork|grant|revoke|grants``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from twinengine.cli import fleet
from twinengine.cli._common import console, parse_assignments, state_of, table
from twinengine.errors import ValidationFailed
from twinengine.twins.schemas import TwinRead

_PARAM_HELP = "Parameter as key=value (JSON values, dotted keys nest); repeat for more."


def _owner(twin: TwinRead) -> str:
    """Who owns the twin as a listing shows it: a group as ``group:NAME`` (never mistaken for an identity)."""
    return f"group:{twin.owner_group}" if twin.owner_group else twin.owner


def _show(twin: TwinRead) -> None:
    made_by = f" (created by {twin.owner})" if twin.owner_group else ""
    console.print(f"[bold]{twin.name}[/bold] ({twin.id}) of {twin.app}, owner {_owner(twin)}{made_by}, your access "
                  f"{twin.access.value}", highlight=False)
    if twin.description:
        console.print(escape(twin.description))
    if twin.origin:
        console.print(f"forked from {twin.origin.twin_name} at revision {twin.origin.revision}", highlight=False)
    console.print(f"head revision {twin.head_revision}; created {twin.created_at.isoformat(timespec='seconds')}",
                  highlight=False)
    console.print(table("parameters", ["name", "value"], sorted(twin.parameters.items())))


def create(
    ctx: typer.Context,
    app: str = typer.Argument(..., help="APP@VERSION (or APP for the latest)."),
    name: str = typer.Option(..., "--name", help="Twin name (lower-case, digits, '-')."),
    param: list[str] = typer.Option([], "--param", "-p", help=_PARAM_HELP),
    params_file: Path | None = typer.Option(None, "--params-file", exists=True, dir_okay=False,
                                            help="Parameters from a YAML or JSON file holding one mapping (an "
                                                 "app's data/parameters.json); --param sets or overrides keys."),
    description: str | None = typer.Option(None, "--description"),
    tag: list[str] = typer.Option([], "--tag", help="Fleet tag; repeat."),
    point: str | None = typer.Option(None, "--point", help="Location as LON,LAT (WGS 84)."),
    location: Path | None = typer.Option(None, "--location", exists=True, dir_okay=False,
                                         help="Location from a GeoJSON file (Point, Polygon, MultiPolygon)."),
    group: str | None = typer.Option(None, "--group", help="A group you are in owns the twin: its members do."),
) -> None:
    """Create a twin of a published app; parameters are checked against the app's schema."""
    out = state_of(ctx)
    parameters = _merged(read_params_file(params_file) if params_file is not None else {},
                         parse_assignments(param, option="--param"))
    with out.client() as client:
        twin = client.create_twin(app, name, parameters, description=description, tags=tag,
                                  location=fleet.location_of(point, location), group=group)
    out.emit(twin, lambda: _show(twin))


def read_params_file(path: Path) -> dict[str, Any]:
    """A twin's parameters from a YAML or JSON file (JSON is YAML): one mapping, else an error naming
    ``--params-file`` and, for a syntax error, the line and column."""
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValidationFailed.one("--params-file", f"{path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValidationFailed.one("--params-file", f"{path} is not valid YAML or JSON{where}: "
                                                    f"{getattr(exc, 'problem', None) or exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise ValidationFailed.one("--params-file", f"{path} must hold one mapping of parameter names to values, "
                                                    f"not {type(loaded).__name__}")
    return loaded


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``, nested mappings key by key (``--param rating.a=20`` keeps ``rating.b``)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def list_(
    ctx: typer.Context,
    app: str | None = typer.Option(None, "--app", help="Only twins of APP or APP@VERSION."),
    limit: int = typer.Option(50, "--limit", min=1, max=500),
    tag: list[str] = typer.Option([], "--tag", help="Only twins with this tag; repeat: all of them."),
    bbox: str | None = typer.Option(None, "--bbox", help="Only twins whose location meets minx,miny,maxx,maxy."),
    state: list[str] = typer.Option([], "--state", help=fleet.STATE_HELP),
    parameter: list[str] = typer.Option([], "--parameter", help="Condition on a parameter, e.g. station=RR-01."),
    stale: list[str] = typer.Option([], "--stale", help="Only twins whose reported PROPERTY is stale now (older "
                                    "than its app's gap check allows), e.g. level; repeat: all of them."),
    cursor: str | None = typer.Option(None, "--cursor", help="Continue a filtered listing (from its last page)."),
) -> None:
    """Twins you own or were granted; with filters, one page by name (--cursor for the next)."""
    if tag or bbox or state or parameter or stale or cursor:
        fleet.list_filtered(ctx, app_ref=app, tags=tag, bbox=bbox, state=state, parameters=parameter, limit=limit,
                            cursor=cursor, stale=stale)
        return
    out = state_of(ctx)
    with out.client() as client:
        page = client.list_twins(app=app, limit=limit)
    out.emit(page, lambda: console.print(table(
        f"twins ({len(page.items)} of {page.total})", ["name", "id", "app", "owner", "access", "revision", "origin"],
        [(t.name, t.id, t.app, _owner(t), t.access.value, t.head_revision,
          f"{t.origin.twin_name}@{t.origin.revision}" if t.origin else None) for t in page.items])))


def show(ctx: typer.Context, twin: str = typer.Argument(..., help="Twin name or id.")) -> None:
    """One twin: app, owner, parameters, origin."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.get_twin(twin)
    out.emit(row, lambda: _show(row))


def delete(ctx: typer.Context, twin: str = typer.Argument(..., help="Twin name or id."),
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Delete a twin and its whole state history (owner or admin)."""
    out = state_of(ctx)
    if not yes and not typer.confirm(f"delete twin {twin} and its whole state history?"):
        raise typer.Exit(1)
    with out.client() as client:
        client.delete_twin(twin)
    out.emit({"deleted": twin}, lambda: console.print(f"deleted {twin}"))


def fork(
    ctx: typer.Context,
    twin: str = typer.Argument(..., help="Twin to fork (name or id)."),
    name: str = typer.Option(..., "--name", help="Name of the scenario twin."),
    at: int | None = typer.Option(None, "--at", help="Revision to fork from (default: head).", min=0),
    param: list[str] = typer.Option([], "--param", "-p", help="Parameter overrides, key=value."),
    description: str | None = typer.Option(None, "--description"),
) -> None:
    """Fork a what-if scenario: a new twin starting from the state at a revision; the origin is untouched."""
    out = state_of(ctx)
    overrides = parse_assignments(param, option="--param") or None
    with out.client() as client:
        row = client.fork_twin(twin, name, at_revision=at, parameters=overrides, description=description)
    out.emit(row, lambda: _show(row))


_PERMISSIONS = ("read", "operate")


def grant(
    ctx: typer.Context,
    twin: str = typer.Argument(..., help="Twin name or id."),
    identity: str | None = typer.Argument(None, help="Who gets access (with --group: read or operate)."),
    permission: str | None = typer.Option(None, "--permission", help="read (default) or operate."),
    group: str | None = typer.Option(None, "--group", help="Grant a group: every member, while a member."),
) -> None:
    """Let another identity, or every member of a group, read or operate your twin."""
    out = state_of(ctx)
    if group is not None:
        if identity is not None and identity not in _PERMISSIONS:
            raise ValidationFailed.one("IDENTITY", "give an identity or --group, not both (with --group: read or "
                                                   "operate)")
        level = permission or identity or "read"
        if level not in _PERMISSIONS:
            raise ValidationFailed.one("--permission", f"{level!r} is neither read nor operate")
        with out.client() as client:
            row = client.access.grant_group(twin, group, level)  # type: ignore[arg-type]
        out.emit(row, lambda: console.print(f"members of group {row.group} may now {row.permission.value} {twin}"))
        return
    if identity is None:
        raise ValidationFailed.one("IDENTITY", "name who gets access, or --group GROUP")
    with out.client() as client:
        granted = client.grant(twin, identity, permission or "read")  # type: ignore[arg-type]
    out.emit(granted, lambda: console.print(f"{granted.identity} may now {granted.permission.value} {twin}"))


def revoke(ctx: typer.Context, twin: str = typer.Argument(...), identity: str | None = typer.Argument(None),
           group: str | None = typer.Option(None, "--group", help="Take back a group's grant.")) -> None:
    """Take back a grant (of an identity, or of a group with --group)."""
    out = state_of(ctx)
    if (identity is None) == (group is None):
        raise ValidationFailed.one("IDENTITY", "name an identity or --group GROUP (one of them)")
    with out.client() as client:
        if group is not None:
            client.access.revoke_group(twin, group)
        else:
            client.revoke_grant(twin, identity or "")
    who = f"group {group}" if group is not None else identity
    out.emit({"twin": twin, "revoked": who}, lambda: console.print(f"{who} no longer has access to {twin}"))


def grants(ctx: typer.Context, twin: str = typer.Argument(...)) -> None:
    """Who else may read or operate a twin: identities, and groups (as group:NAME)."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.grants(twin)
        groups = client.access.group_grants(twin)
    out.emit([*rows, *groups], lambda: console.print(table(
        f"grants on {twin}", ["identity or group", "permission", "by", "at (UTC)"],
        [*((g.identity, g.permission.value, g.granted_by, g.granted_at) for g in rows),
         *((f"group:{g.group}", g.permission.value, g.granted_by, g.granted_at) for g in groups)])))


COMMANDS: dict[str, Callable[..., Any]] = {
    "create": create, "list": list_, "show": show, "delete": delete, "fork": fork,
    "grant": grant, "revoke": revoke, "grants": grants, "update": fleet.update,
}
