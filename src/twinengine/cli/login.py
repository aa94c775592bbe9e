"""``twin login``, ``twin whoami``, ``twin logout``: sign in to an engine through an OpenID provider it trusts,
keep the tokens for that profile and engine URL (``twinengine.credentials``), and let every other command use
them (``--profile``, or ``TWIN_PROFILE``, picks whose)."""

from __future__ import annotations

import time
import webbrowser
from datetime import UTC, datetime
from typing import Any

import typer

from twinengine.cli._common import Output, console, err_console
from twinengine.errors import AuthenticationRequired, InvalidInput

__all__ = ["login", "logout", "whoami"]


_PROFILE_HELP = "Keep (or use) the sign-in under this profile (default: the global --profile, else 'default')."


def _url(ctx: typer.Context, url: str | None) -> str:
    out: Output = ctx.obj
    return (url or out.url).rstrip("/")


def _profile(ctx: typer.Context, profile: str | None) -> str:
    from twinengine.credentials import check_profile

    out: Output = ctx.obj
    return check_profile(profile or out.profile)


def _expiry(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def login(ctx: typer.Context,
          provider: str | None = typer.Option(None, "--provider", help="Provider id (as the engine lists it); "
                                              "needed when it lists several."),
          url: str | None = typer.Option(None, "--url", help="Engine to sign in to (default: the global --url)."),
          browser: bool = typer.Option(False, "--browser", help="Sign in in this machine's browser (loopback "
                                       "redirect) even where the provider offers the device flow."),
          profile: str | None = typer.Option(None, "--profile", help=_PROFILE_HELP)) -> None:
    """Sign in through your institution: open the URL shown, enter the code, and come back (device flow)."""
    from twinengine import credentials
    from twinengine.client import Client

    engine = _url(ctx, url)
    kept_as = _profile(ctx, profile)

    def show(verification_uri: str, user_code: str, complete: str | None) -> None:
        console.print(f"To sign in, open {verification_uri} and enter the code [bold]{user_code}[/bold]",
                      highlight=False, soft_wrap=True)
        if complete:
            console.print(f"(or open {complete})", highlight=False, soft_wrap=True)

    def open_url(address: str) -> None:
        console.print(f"Opening {address} in your browser…", highlight=False, soft_wrap=True)
        webbrowser.open(address)

    with console.status("Waiting for the sign-in to be approved…"):
        saved = credentials.sign_in(engine, provider, show=show, open_url=open_url, browser=browser,
                                    profile=kept_as)
    with Client(engine, saved.bearer()) as client:
        me = client.me()  # the engine accepts it, and records the sign-in, before anything is kept
    credentials.save(saved)
    out: Output = ctx.obj
    if out.as_json:
        out.emit({"url": engine, "profile": kept_as, "identity": me.name, "role": me.role.value,
                  "provider": saved.provider, "expires_at": _expiry(saved.expires_at)})
        return
    console.print(f"Signed in to {engine} as [bold]{me.name}[/bold] ({me.role.value}) through {saved.provider}; "
                  f"kept as profile {kept_as} in {credentials.credentials_path()}", highlight=False, soft_wrap=True)


def whoami(ctx: typer.Context,
           url: str | None = typer.Option(None, "--url", help="Engine (default: the global --url)."),
           profile: str | None = typer.Option(None, "--profile", help=_PROFILE_HELP)) -> None:
    """Who the engine takes you for: identity, provider, groups, role, and when the sign-in expires."""
    from twinengine import credentials
    from twinengine.client import Client

    out: Output = ctx.obj
    engine = _url(ctx, url)
    kept_as = _profile(ctx, profile)
    if out.token is not None:
        bearer: str | None = out.token
        saved = None
    else:
        bearer = credentials.bearer(engine, kept_as)  # renewed first when it was due
        if bearer is None:
            named = "" if kept_as == credentials.DEFAULT_PROFILE else f" --profile {kept_as}"
            raise AuthenticationRequired(f"not signed in to {engine} as profile {kept_as}: run `twin login{named}` "
                                         "(or pass --token)")
        saved = credentials.load(engine, kept_as)
    with Client(engine, bearer) as client:
        me = client.me()
    facts: dict[str, Any] = {"url": engine, "profile": kept_as if saved else None, "identity": me.name,
                             "role": me.role.value,
                             "groups": list(me.groups), "issuer": me.issuer,
                             "provider": saved.provider if saved else None,
                             "expires_at": _expiry(saved.expires_at) if saved else None,
                             "scopes": saved.scope.split() if saved and saved.scope else [],
                             # what the engine lets this token do: a scoped token's limits (null: its whole role)
                             "token_scopes": me.scopes, "token_twins": me.twins,
                             "refreshable": bool(saved and saved.refresh_token)}
    if out.as_json:
        out.emit(facts)
        return
    for key, value in facts.items():
        if key in ("token_scopes", "token_twins") and value is None:
            value = "all of the role" if key == "token_scopes" else "any"
        shown = ", ".join(value) if isinstance(value, list) else value
        console.print(f"{key:>12}: {'' if shown is None else shown}", highlight=False, soft_wrap=True)
    if saved and saved.expires_at < time.time():
        err_console.print("the access token has expired; the next command renews it", highlight=False)


def logout(ctx: typer.Context,
           url: str | None = typer.Option(None, "--url", help="Engine (default: the global --url)."),
           profile: str | None = typer.Option(None, "--profile", help=_PROFILE_HELP)) -> None:
    """Forget the sign-in to this engine, and revoke its refresh token at the provider where it can."""
    from twinengine import credentials

    engine = _url(ctx, url)
    kept_as = _profile(ctx, profile)
    if credentials.forget(engine, kept_as) is None:
        raise InvalidInput(f"--url: not signed in to {engine} as profile {kept_as}")
    console.print(f"Signed out of {engine} (profile {kept_as})", highlight=False)
