"""``twin lake endpoint``: storage endpoints (providers manage them), and the option parsing they share with
the other ``twin lake`` commands."""

from __future__ import annotations

import re
from typing import Any

import typer
from rich.markup import escape

from twinengine.cli._common import console, state_of, table
from twinengine.errors import ValidationFailed
from twinengine.lake.schemas import EndpointRead

__all__ = ["endpoint_app", "pairs", "parse_size"]

endpoint_app = typer.Typer(help="Storage endpoints (providers manage them).", no_args_is_help=True)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}


def parse_size(text: str, option: str) -> int:
    """``500M``, ``2GiB``, ``10G`` or plain bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValidationFailed.one(option, f"{text!r} is not a size (e.g. 500M, 10G, 2GiB)")
    unit = match.group(2).lower()
    base = 1024 if "i" in unit else 1000
    factor = base ** "bkmgtp".index(unit[0]) if unit and unit[0] != "b" else 1
    return int(float(match.group(1)) * factor)


def pairs(items: list[str], option: str, *, allow_empty: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        key, sep, value = item.partition("=")
        if not sep or not key or (not value and not allow_empty):
            raise ValidationFailed.one(f"{option}[{i}]", f"{item!r} is not key=value")
        out[key] = value if value else None
    return out


def _credential(access_key: str | None, secret_key: str | None, bearer: str | None) -> dict[str, str] | None:
    if bearer:
        return {"kind": "bearer", "token": bearer}
    if access_key or secret_key:
        if not (access_key and secret_key):
            raise ValidationFailed.one("--secret-key", "S3 credentials need both --access-key and --secret-key")
        return {"kind": "s3", "access_key": access_key, "secret_key": secret_key}
    return None


_ACCESS = typer.Option(None, "--access-key", envvar="TWIN_LAKE_ACCESS_KEY", help="S3 access key.")
_SECRET = typer.Option(None, "--secret-key", envvar="TWIN_LAKE_SECRET_KEY", show_envvar=True,
                       help="S3 secret key (prefer the env var: it stays out of shell history).")
_BEARER = typer.Option(None, "--bearer-token", envvar="TWIN_LAKE_BEARER_TOKEN", help="Bearer token of the storage.")


def _show_endpoint(e: EndpointRead) -> None:
    quota = f"{e.used_bytes} of {e.quota_bytes} bytes" if e.quota_bytes is not None else f"{e.used_bytes} bytes"
    switches = ", ".join(s for s, on in (("read", e.read), ("write", e.write), ("delete", e.delete)) if on) or "none"
    console.print(f"[bold]{e.name}[/bold] {e.protocol}://{escape(e.location)}  {quota} in {e.replicas} replicas; "
                  f"allows {switches}; credential {e.credential or 'none'}", highlight=False)
    if e.attributes:
        console.print("  " + ", ".join(f"{k}={v}" for k, v in sorted(e.attributes.items())), highlight=False)


@endpoint_app.command("add")
def endpoint_add(ctx: typer.Context, name: str = typer.Argument(...),
                 protocol: str = typer.Option(..., "--protocol", help="file, s3 (or a plugin's)."),
                 location: str = typer.Option(..., "--location", help="A folder, or a bucket with an optional "
                                              "prefix (bucket/prefix)."),
                 attr: list[str] = typer.Option([], "--attr", help="key=value (site, tier, type, ...)."),
                 option: list[str] = typer.Option([], "--option", help="key=value, e.g. endpoint_url=..."),
                 quota: str | None = typer.Option(None, "--quota", help="e.g. 500G."),
                 read: bool = typer.Option(True, "--read/--no-read"),
                 write: bool = typer.Option(True, "--write/--no-write"),
                 delete: bool = typer.Option(True, "--delete/--no-delete"),
                 access_key: str | None = _ACCESS, secret_key: str | None = _SECRET,
                 bearer_token: str | None = _BEARER) -> None:
    """Add a storage endpoint; its credential is stored encrypted and never shown again."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.lake.add_endpoint(name, protocol, location, attributes=pairs(attr, "--attr"),
                                       options=pairs(option, "--option"),
                                       quota_bytes=parse_size(quota, "--quota") if quota else None, read=read,
                                       write=write, delete=delete,
                                       credential=_credential(access_key, secret_key, bearer_token))
    out.emit(row, lambda: _show_endpoint(row))


@endpoint_app.command("list")
def endpoint_list(ctx: typer.Context) -> None:
    """Endpoints with their attributes and usage."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.lake.endpoints()
    out.emit(page, lambda: console.print(table(f"endpoints ({page.total})", [
        "name", "protocol", "location", "attributes", "used bytes", "quota", "replicas", "r/w/d", "credential"], [
        (e.name, e.protocol, e.location, ", ".join(f"{k}={v}" for k, v in sorted(e.attributes.items())),
         e.used_bytes, e.quota_bytes, e.replicas, "".join("x" if s else "-" for s in (e.read, e.write, e.delete)),
         e.credential) for e in page.items])))


@endpoint_app.command("show")
def endpoint_show(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    out = state_of(ctx)
    with out.client() as client:
        row = client.lake.endpoint(name)
    out.emit(row, lambda: _show_endpoint(row))


@endpoint_app.command("set")
def endpoint_set(ctx: typer.Context, name: str = typer.Argument(...),
                 attr: list[str] = typer.Option([], "--attr", help="key=value to set, key= to remove."),
                 quota: str | None = typer.Option(None, "--quota"),
                 clear_quota: bool = typer.Option(False, "--no-quota", help="Remove the quota."),
                 read: bool | None = typer.Option(None, "--read/--no-read"),
                 write: bool | None = typer.Option(None, "--write/--no-write"),
                 delete: bool | None = typer.Option(None, "--delete/--no-delete"),
                 access_key: str | None = _ACCESS, secret_key: str | None = _SECRET,
                 bearer_token: str | None = _BEARER,
                 clear_credential: bool = typer.Option(False, "--no-credential")) -> None:
    """Change attributes, quota, switches or the credential."""
    out = state_of(ctx)
    change: dict[str, Any] = {"attributes": pairs(attr, "--attr", allow_empty=True) or None,
                              "quota_bytes": parse_size(quota, "--quota") if quota else None,
                              "clear_quota": clear_quota or None, "read": read, "write": write, "delete": delete,
                              "credential": _credential(access_key, secret_key, bearer_token),
                              "clear_credential": clear_credential or None}
    with out.client() as client:
        row = client.lake.set_endpoint(name, **change)
    out.emit(row, lambda: _show_endpoint(row))


@endpoint_app.command("remove")
def endpoint_remove(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Remove an endpoint that holds no replicas."""
    out = state_of(ctx)
    with out.client() as client:
        client.lake.remove_endpoint(name)
    out.emit({"removed": name}, lambda: console.print(f"removed endpoint {name}"))
