"""Import from an external STAC API (the DestinE HDA is one): the collection becomes a container, each item a
dataset with its footprint and time, each asset a file fetched with the source's own token, checksummed while
it streams and checked against the asset's ``file:checksum`` / ``file:size`` when the source declares them.
Re-running is idempotent: files already available on the endpoint are not fetched again."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx2 as httpx
from sqlalchemy import select

from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.errors import InvalidInput, StorageUnavailable, ValidationFailed
from twinengine.lake.context import Lake
from twinengine.lake.dids import add_did, attach, parse_did
from twinengine.lake.endpoints import get_endpoint
from twinengine.lake.models import Did, Replica
from twinengine.lake.schemas import DidType, ImportResult, ImportStac, ReplicaState
from twinengine.lake.storage import CHUNK
from twinengine.lake.uploads import Expected, upload
from twinengine.store.engine import Database
from twinengine.timeutil import parse_instant

__all__ = ["import_stac"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/]+")


def _clean(text: str, *, scope: bool = False) -> str:
    cleaned = _UNSAFE.sub("-", text.replace("/", "-") if scope else text).strip("-./") or "x"
    return cleaned[:64] if scope else cleaned[:255]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def _expected(asset: dict[str, Any]) -> Expected:
    checksum = asset.get("file:checksum")
    sha = checksum if isinstance(checksum, str) and checksum.startswith("1220") else None
    size = asset.get("file:size")
    return Expected.parse(sha, None, int(size) if isinstance(size, int) else None)


def _time(value: Any) -> Any:
    return parse_instant(value) if isinstance(value, str) else None


def _present(db: Database, did: str, endpoint_id: int) -> bool:
    scope, name = parse_did(did)
    with db.session(readonly=True) as session:
        return session.scalar(select(Replica.id).join(Did, Did.id == Replica.did_id).where(
            Did.scope == scope, Did.name == name, Replica.endpoint_id == endpoint_id,
            Replica.state == ReplicaState.AVAILABLE)) is not None


def _allowed(url: str, hosts: tuple[str, ...]) -> str | None:
    """Why the engine will not read ``url`` (None: it may): only http(s) on a host an admin listed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs are read"
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        return "the URL names no host"
    if not any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in hosts):
        return (f"host {host!r} is not in lake_import_hosts (TWIN_LAKE_IMPORT_HOSTS)" if hosts
                else "STAC imports are off: an admin lists the hosts they may read in lake_import_hosts "
                     "(TWIN_LAKE_IMPORT_HOSTS)")
    return None


class _Refused(Exception):
    """A request the import would make to a place it may not read (a link or redirect elsewhere)."""


def _stac_io(headers: dict[str, str], hosts: tuple[str, ...]) -> Any:
    """pystac-client's HTTP reader, checking every request it makes (pages, links) and every redirect."""
    from pystac_client.stac_api_io import StacApiIO

    def check_request(request: Any) -> Any:
        why = _allowed(request.url, hosts)
        if why is not None:
            raise _Refused(f"the STAC API links to {urlsplit(request.url).hostname or request.url!r}: {why}")
        return request

    def check_redirect(response: Any, *args: Any, **kwargs: Any) -> Any:
        if response.is_redirect:
            target = urljoin(response.url, response.headers.get("location", ""))
            why = _allowed(target, hosts)
            if why is not None:
                raise _Refused(f"the STAC API redirects to {urlsplit(target).hostname or target!r}: {why}")
        return response

    io = StacApiIO(headers=headers, request_modifier=check_request, timeout=60.0, max_retries=1)
    io.session.hooks["response"].append(check_redirect)
    return io


def _read_failure(url: str, exc: Exception) -> InvalidInput:
    """Say what failed without repeating what the remote answered (its body is nobody's business here)."""
    import json

    import requests
    from pystac import STACError, STACTypeError
    from pystac_client.errors import ClientTypeError
    from pystac_client.exceptions import APIError

    if isinstance(exc, APIError) and getattr(exc, "status_code", None) is None and exc.__context__ is not None:
        exc = exc.__context__ if isinstance(exc.__context__, Exception) else exc  # the failure it wraps
    if isinstance(exc, _Refused):
        why = str(exc)
    elif isinstance(exc, APIError):
        code = getattr(exc, "status_code", None)
        why = f"it answered HTTP {code}" if code else "it answered with an error"
        if code in (401, 403):
            why += " (check the token)"
    elif isinstance(exc, json.JSONDecodeError | requests.exceptions.JSONDecodeError):
        why = "its answer is not JSON"
    elif isinstance(exc, ClientTypeError | STACTypeError | STACError | KeyError | TypeError | ValueError):
        why = "its answer is not a STAC catalog, collection or item"
    elif isinstance(exc, requests.exceptions.RequestException):
        why = f"it cannot be reached ({type(exc).__name__})"
    else:
        why = f"it cannot be read ({type(exc).__name__})"
    return InvalidInput(f"url: the STAC API at {url}: {why}", details=[{"loc": "url", "msg": why}])


def import_stac(db: Database, lake: Lake, *, principal: Principal, spec: ImportStac) -> ImportResult:
    from pystac_client import Client as StacClient

    require(principal, "lake.import")
    why = _allowed(spec.url, lake.import_hosts)
    if why is not None:
        raise ValidationFailed.one("url", why)
    with db.session(readonly=True) as session:
        endpoint_id = get_endpoint(session, spec.endpoint).id
    token = spec.token.get_secret_value() if spec.token else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        client = StacClient.open(spec.url, headers=headers, stac_io=_stac_io(headers, lake.import_hosts))
        collection = client.get_collection(spec.collection)
        if collection is None:
            raise InvalidInput(f"collection: the STAC API at {spec.url} has no collection {spec.collection!r}")
        search = client.search(collections=[spec.collection], bbox=list(spec.bbox) if spec.bbox else None,
                               datetime=spec.datetime, max_items=spec.limit)
        items = [item.to_dict() for item in search.items()]
    except InvalidInput:
        raise
    except Exception as exc:  # a refused link, an error status, unreachable, not JSON, not STAC
        raise _read_failure(spec.url, exc) from None
    for item in items:  # every asset is checked before anything is written
        for key, asset in sorted((item.get("assets") or {}).items()):
            why = _allowed(urljoin(spec.url, str(asset.get("href", ""))), lake.import_hosts)
            if why is not None:
                raise ValidationFailed.one("url", f"asset {key!r} of item {item.get('id')!r}: {why}")
    scope = spec.scope or _clean(spec.collection, scope=True)
    container = f"{scope}:{_clean(spec.collection)}"
    with db.session() as session:
        add_did(session, principal=principal, did=container, type=DidType.CONTAINER, exist_ok=True,
                meta={"title": collection.title, "description": collection.description,
                      "license": collection.license, "keywords": collection.keywords or [],
                      "source": f"{spec.url.rstrip('/')}/collections/{spec.collection}"})
    api_origin = _origin(spec.url)
    registered = present = total_bytes = 0
    def check_hop(request: httpx.Request) -> None:  # every request, redirects included
        why = _allowed(str(request.url), lake.import_hosts)
        if why is not None:
            raise StorageUnavailable(f"fetching an asset from {request.url.host!r}: {why}")

    with httpx.Client(timeout=60.0, follow_redirects=True, event_hooks={"request": [check_hop]}) as http:
        for item in items:
            dataset = f"{scope}:{_clean(item['id'])}"
            props = item.get("properties") or {}
            bbox = item.get("bbox") or []
            with db.session() as session:
                add_did(session, principal=principal, did=dataset, type=DidType.DATASET, exist_ok=True,
                        meta={"properties": props, "source": item.get("id")}, geometry=item.get("geometry"),
                        bbox=bbox if len(bbox) == 4 else None,
                        start=_time(props.get("start_datetime") or props.get("datetime")),
                        end=_time(props.get("end_datetime") or props.get("datetime")))
                attach(session, principal=principal, parent=container, children=[dataset])
            for key, asset in sorted((item.get("assets") or {}).items()):
                href = urljoin(spec.url, asset["href"])
                did = f"{scope}:{_clean(item['id'])}/{_clean(_file_name(key, href))}"
                if _present(db, did, endpoint_id):
                    present += 1
                else:
                    send = headers if _origin(href) == api_origin else {}  # the token never leaves its origin
                    outcome = upload(db, lake, principal=principal, did=did, endpoint=spec.endpoint,
                                     chunks=_fetch(http, href, send), size_hint=asset.get("file:size"),
                                     expected=_expected(asset), media_type=asset.get("type"),
                                     meta={"asset": key, "roles": asset.get("roles", []), "title": asset.get("title"),
                                           "source_href": href})
                    registered += outcome.created
                    present += not outcome.created
                    total_bytes += outcome.checksums.bytes
                with db.session() as session:
                    attach(session, principal=principal, parent=dataset, children=[did])
    return ImportResult(collection=container, items=len(items), files_registered=registered, files_present=present,
                        bytes=total_bytes)


def _file_name(key: str, href: str) -> str:
    """The asset key, with the href's file suffix when the key has none (``data`` → ``data.nc``)."""
    if PurePosixPath(key).suffix:
        return key
    return key + PurePosixPath(urlsplit(href).path).suffix


def _fetch(http: httpx.Client, href: str, headers: dict[str, str]) -> Iterator[bytes]:
    try:
        with http.stream("GET", href, headers=headers) as response:
            if response.status_code >= 400:
                raise StorageUnavailable(f"fetching {href}: HTTP {response.status_code}")
            yield from response.iter_bytes(CHUNK)
    except httpx.TransportError as exc:
        raise StorageUnavailable(f"fetching {href}: {exc}") from None
