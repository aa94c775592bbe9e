"""``twin token``: issue, list and revoke tokens (admins), scoped tokens for oneself (everyone), and the
rotation of the signing keys (admins)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from twinengine.auth.principal import Role
from twinengine.cli._common import DataDirOption, console, err_console, local_settings, state_of, table
from twinengine.errors import Problem, ValidationFailed, join_loc
from twinengine.timeutil import parse_duration

app = typer.Typer(help="Tokens: create (admins; scoped ones for yourself), list, revoke, rotate-keys.",
                  no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="Identity the token is for (created on first use; "
                                                         "admins)."),
    role: Role | None = typer.Option(None, "--role", help="developer, user, provider or admin (admins)."),
    expires: str | None = typer.Option(None, "--expires", help="e.g. 30d, 12h, never (default: 30d)."),
    note: str | None = typer.Option(None, "--note"),
    scope: list[str] = typer.Option([], "--scope", help="A scoped token for yourself, limited to this scope, e.g. "
                                    "twins:read (repeat for more; see docs/access.md)."),
    twin: list[str] = typer.Option([], "--twin", help="With --scope: limit the token to this twin (repeat)."),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Issue a signed token. With --scope, a token for yourself limited to those scopes (and --twin, and
    --expires), which never does more than you may. Otherwise (admins) a token for --name in --role: with
    --data-dir, signed locally with that engine's key (no server needed), else by the engine at --url."""
    out = state_of(ctx)
    if scope or twin:
        if not scope:
            raise ValidationFailed.one("--scope", "--twin limits a scoped token: name its scopes with --scope")
        if name is not None or role is not None or data_dir is not None:
            raise ValidationFailed.one("--scope", "a scoped token is for yourself, in your role: leave out --name, "
                                                  "--role and --data-dir")
        with out.client() as client:
            scoped = client.access.scoped_token(scope, twins=twin or None, expires_in=expires, note=note)
        _sooner_than_asked(scoped.expires_at, expires)
        out.emit(scoped, lambda: _show_scoped(scoped))
        return
    if name is None or role is None:
        raise ValidationFailed.one("--name" if name is None else "--role",
                                   "give --name and --role (admins), or --scope for a scoped token of your own")
    if data_dir is not None:
        issued = _create_locally(local_settings(data_dir), name, role, expires, note)
    else:
        with out.client() as client:
            issued = client.create_token(name, role.value, expires_in=expires, note=note)
    out.emit(issued, lambda: _show(issued))


_OPTIONS = {"name": "--name", "role": "--role", "expires_in": "--expires", "note": "--note"}  # TokenCreate's fields


def _create_locally(settings: Any, name: str, role: Role, expires: str | None, note: str | None) -> Any:
    from pydantic import ValidationError

    from twinengine.auth import audit
    from twinengine.auth.principal import SYSTEM
    from twinengine.auth.schemas import TokenCreate, TokenIssued
    from twinengine.auth.service import issue_token, refuse_reserved
    from twinengine.bootstrap import local_store

    try:
        request = TokenCreate(name=name, role=role, expires_in=expires, note=note)
    except ValidationError as exc:  # as the API answers it, located by the options given
        raise ValidationFailed([Problem(_OPTIONS.get(join_loc(e["loc"]), join_loc(e["loc"])), e["msg"])
                                for e in exc.errors()]) from None
    refuse_reserved(request.name, loc="--name")  # before the store is opened
    try:
        ttl = settings.token_ttl if expires is None else parse_duration(expires)
    except ValueError as exc:
        raise ValidationFailed.one("--expires", str(exc)) from None
    with local_store(settings) as store, store.db.session() as session:  # the store only: no engine loops
        signed = issue_token(session, store.issuer, principal=SYSTEM, name=request.name, role=role, ttl=ttl,
                             note=note)
        audit.record(session, actor="local-admin", role="admin", action="tokens-create",
                     target=f"identity {request.name}", outcome="success",
                     detail={"jti": signed.jti, "via": "cli --data-dir"})
    return TokenIssued(token=signed.token, jti=signed.jti, name=signed.name, role=signed.role,
                       expires_at=signed.expires_at)


def _sooner_than_asked(ends: datetime | None, asked: str | None) -> None:
    """Say so (on stderr) when the token ends well before the lifetime asked for: it never outlives the token it
    was made with, and one from a provider's sign-in lives minutes (docs/access.md, "Scoped tokens")."""
    try:
        wanted = parse_duration(asked) if asked else None
    except ValueError:
        return
    if ends is None or wanted is None or ends >= datetime.now(UTC) + wanted - timedelta(minutes=1):
        return
    err_console.print(f"note: this token ends at {ends.isoformat(timespec='seconds')}, not in {asked}: a token never "
                      "outlives the one it is made with (a sign-in at your provider lasts minutes). For lasting "
                      "automation, sign in as a service (client credentials: the SDK renews its token) or ask an "
                      "admin for an engine token.", highlight=False)


def _show_scoped(issued: Any) -> None:
    expiry = issued.expires_at.isoformat(timespec="seconds") if issued.expires_at else "never"
    twins = ", ".join(issued.twins) if issued.twins else "any you may reach"
    err_console.print(f"scoped token for [bold]{issued.name}[/bold] (scopes {', '.join(issued.scopes)}; twins "
                      f"{twins}; expires {expiry}, id {issued.jti}):", highlight=False)
    print(issued.token)


def _show(issued: Any) -> None:
    """The description goes to stderr, the token alone to stdout, so ``TOKEN=$(twin token create ...)`` works."""
    expiry = issued.expires_at.isoformat(timespec="seconds") if issued.expires_at else "never"
    err_console.print(f"token for [bold]{issued.name}[/bold] (role {issued.role.value}, expires {expiry}, "
                      f"id {issued.jti}):", highlight=False)
    print(issued.token)


@app.command("list")
def list_(ctx: typer.Context, identity: str | None = typer.Option(None, "--identity", help="(Admins) one identity's."),
          mine: bool = typer.Option(False, "--mine", help="Only your own tokens, with their scopes (anyone).")) -> None:
    """Tokens this engine issued (admins), or your own with their scopes (--mine, anyone)."""
    out = state_of(ctx)
    with out.client() as client:
        if mine:
            own = client.access.my_tokens()
            out.emit(own, lambda: console.print(table(
                "your tokens", ["id", "role", "scopes", "twins", "issued (UTC)", "expires (UTC)", "revoked (UTC)",
                                "note"],
                [(t.jti, t.role.value, ", ".join(t.scopes) if t.scopes is not None else "all of the role",
                  ", ".join(t.twins) if t.twins else None, t.issued_at, t.expires_at, t.revoked_at, t.note)
                 for t in own])))
            return
        rows = client.list_tokens(identity)
    out.emit(rows, lambda: console.print(table(
        "tokens", ["id", "identity", "role", "scopes", "twins", "issued (UTC)", "expires (UTC)", "revoked (UTC)",
                   "note"],
        [(t.jti, t.identity, t.role.value, ", ".join(t.scopes) if t.scopes is not None else "all of the role",
          ", ".join(t.twins) if t.twins else None, t.issued_at, t.expires_at, t.revoked_at, t.note) for t in rows])))


@app.command("revoke")
def revoke(ctx: typer.Context, jti: str = typer.Argument(..., help="Token id (see `twin token list`).")) -> None:
    """Revoke a token: it stops working at once. Admins revoke any; everyone else their own."""
    out = state_of(ctx)
    with out.client() as client:
        if client.me().role is Role.ADMIN:
            row: Any = client.revoke_token(jti)
        else:
            row = client.access.revoke_my_token(jti)
    out.emit(row, lambda: console.print(f"revoked token {row.jti} of {row.identity}"))


@app.command("rotate-keys")
def rotate_keys(ctx: typer.Context) -> None:
    """Rotate the signing keys (admins): the next key becomes current and a new next is published. Tokens
    signed with the retired key work until they expire; those without an expiry stop now."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.access.rotate_keys()
    out.emit(rows, lambda: console.print(table("signing keys", ["generation", "kid", "state", "created (UTC)",
                                                                "promoted (UTC)"],
                                               [(k.generation, k.kid, k.state, k.created_at, k.promoted_at)
                                                for k in rows])))


identity_app = typer.Typer(help="Identities (admins): list, disable, enable, delete.", no_args_is_help=True)


@identity_app.command("list")
def identities(ctx: typer.Context) -> None:
    """Every identity with its id, whether it is disabled (and by whom: an admin, or ``provider:<id>`` for a
    hold its provider caused, which a new sign-in there lifts), and its valid tokens."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.identities()
    out.emit(rows, lambda: console.print(table(
        "identities", ["name", "id", "disabled", "valid tokens", "roles", "created (UTC)", "by"],
        [(r.name, r.id, (r.disabled_by or True) if r.disabled else False, r.valid_tokens, ", ".join(r.roles),
          r.created_at, r.created_by) for r in rows])))


@identity_app.command("disable")
def disable(ctx: typer.Context, name: str = typer.Argument(..., help="The identity.")) -> None:
    """Disable an identity: its tokens and portal sessions stop working at once (`enable` undoes it)."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.set_identity_disabled(name, True)
    out.emit(row, lambda: console.print(f"disabled identity {row.name}"))


@identity_app.command("enable")
def enable(ctx: typer.Context, name: str = typer.Argument(..., help="The identity.")) -> None:
    """Enable a disabled identity: its tokens that are neither revoked nor expired work again."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.set_identity_disabled(name, False)
    out.emit(row, lambda: console.print(f"enabled identity {row.name}"))


@identity_app.command("delete")
def delete(ctx: typer.Context, name: str = typer.Argument(..., help="The identity."),
           yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation.")) -> None:
    """Delete an identity with its tokens, sessions and grants. Its tokens never work again, even if the
    name is given to a new identity; one that owns twins is refused (delete them, or disable it)."""
    out = state_of(ctx)
    if not yes:
        typer.confirm(f"delete identity {name} and every token it has?", abort=True)
    with out.client() as client:
        row = client.delete_identity(name)
    out.emit(row, lambda: console.print(f"deleted identity {row.name} (id {row.id}) and its "
                                        f"{row.tokens_deleted} token(s)"))
