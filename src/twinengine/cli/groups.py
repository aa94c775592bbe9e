"""``twin group``: groups of identities (create, update, delete, add, remove: admins; list, show: members too)."""

from __future__ import annotations

import typer

from twinengine.cli._common import console, state_of, table

app = typer.Typer(help="Groups of identities: create, update, delete, add, remove (admins), list, show.",
                  no_args_is_help=True)


@app.command("create")
def create(ctx: typer.Context, name: str = typer.Argument(..., help="Lower-case letters, digits, '.', '_', ':', '-'."),
           description: str | None = typer.Option(None, "--description"),
           publish: bool = typer.Option(False, "--publish", help="Its members may publish the group's apps "
                                                                 "(`twin app publish --group`), whatever their role.")
           ) -> None:
    """Create an empty group (admins). Twins can then be made for it (`twin create --group`) or granted to it."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.access.create_group(name, description=description, publish=publish)
    out.emit(row, lambda: console.print(f"created group {row.name}"))


@app.command("update")
def update(ctx: typer.Context, name: str = typer.Argument(...),
           description: str | None = typer.Option(None, "--description"),
           publish: bool | None = typer.Option(None, "--publish/--no-publish", help="Give or take the right to "
                                                                                    "publish the group's apps.")
           ) -> None:
    """Change a group's description or its right to publish its apps (admins)."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.access.update_group(name, description=description, publish=publish)
    out.emit(row, lambda: console.print(f"group {row.name}: {'publishes' if row.publish else 'does not publish'} "
                                        "its apps"))


@app.command("delete")
def delete(ctx: typer.Context, name: str = typer.Argument(...),
           force: bool = typer.Option(False, "--force", help="Hand what it owns (twins, lake datasets, apps) to "
                                                             "you instead of refusing.")) -> None:
    """Delete a group (admins): refused while it owns anything, unless --force. Grants to it go, and its
    members lose what it gave them at once."""
    out = state_of(ctx)
    with out.client() as client:
        done = client.access.delete_group(name, force=force)
    handed = f"; handed to you: {', '.join(done.handed_on)}" if done.handed_on else ""
    out.emit(done, lambda: console.print(f"deleted group {done.name} ({len(done.members)} members){handed}",
                                         highlight=False))


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
    out.emit(rows, lambda: console.print(table("groups", ["name", "members", "publishes", "description",
                                                          "created (UTC)", "by"], [
        (g.name, g.members, "yes" if g.publish else "", g.description, g.created_at, g.created_by) for g in rows])))


@app.command("show")
def show(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """A group and its members, each with where the membership comes from (local, or an identity provider)."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.access.group(name)
    out.emit(row, lambda: console.print(table(f"group {row.name} ({row.members} members)",
                                              ["identity", "source", "since (UTC)"],
                                              [(m.identity, m.source, m.added_at) for m in row.memberships])))
