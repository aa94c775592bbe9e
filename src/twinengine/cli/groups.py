"""``twin group``: groups of identities (create, add, remove: admins; list, show: members too)."""

from __future__ import annotations

import typer

from twinengine.cli._common import console, state_of, table

app = typer.Typer(help="Groups of identities: create, add, remove (admins), list, show.", no_args_is_help=True)


@app.command("create")
def create(ctx: typer.Context, name: str = typer.Argument(..., help="Lower-case letters, digits, '.', '_', ':', '-'."),
           description: str | None = typer.Option(None, "--description")) -> None:
    """Create an empty group (admins). Twins can then be made for it (`twin create --group`) or granted to it."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.access.create_group(name, description=description)
    out.emit(row, lambda: console.print(f"created group {row.name}"))


@app.command("add")
def add(ctx: typer.Context, group: str = typer.Argument(...),
        identity: list[str] = typer.Argument(..., help="Identities to add; several at once.")) -> None:
    """Put identities in a group (admins): they reach its twins from their next request."""
    out = state_of(ctx)
    with out.client() as client:
        rows = [client.access.add_member(group, who) for who in identity]
    out.emit(rows, lambda: console.print(f"added {', '.join(r.identity for r in rows)} to group {group}"))


@app.command("remove")
def remove(ctx: typer.Context, group: str = typer.Argument(...), identity: str = typer.Argument(...)) -> None:
    """Take an identity out of a group (admins): its access through the group ends at once."""
    out = state_of(ctx)
    with out.client() as client:
        client.access.remove_member(group, identity)
    out.emit({"group": group, "removed": identity}, lambda: console.print(f"removed {identity} from group {group}"))


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Your groups (every group, for admins), with their number of members."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.access.groups()
    out.emit(rows, lambda: console.print(table("groups", ["name", "members", "description", "created (UTC)", "by"], [
        (g.name, g.members, g.description, g.created_at, g.created_by) for g in rows])))


@app.command("show")
def show(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """A group and its members, each with where the membership comes from (local, or an identity provider)."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.access.group(name)
    out.emit(row, lambda: console.print(table(f"group {row.name} ({row.members} members)",
                                              ["identity", "source", "since (UTC)"],
                                              [(m.identity, m.source, m.added_at) for m in row.memberships])))
