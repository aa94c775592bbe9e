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
from twinengine.errors import DidConflict, InvalidInput, Problem, ValidationFailed
from twinengine.lake import remote
from twinengine.lake.context import Lake
from twinengine.lake.dids import add_did, attach, check_meta, parse_did
from twinengine.lake.endpoints import get_endpoint
from twinengine.lake.models import Did, Replica
from twinengine.lake.removal import delete_did
from twinengine.lake.schemas import DidType, ImportResult, ImportStac, ReplicaState
from twinengine.lake.storage import CHUNK
from twinengine.lake.uploads import Expected, upload
from twinengine.store.engine import Database
from twinengine.timeutil import parse_instant

__all__ = ["import_stac"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-/]+")


def _clean(text: str, *, scope: bool = False) -> str:
    """A scope, or a name whose '/'-separated segments are never empty, '.' or '..'."""
    cleaned = _UNSAFE.sub("-", text.replace("/", "-").replace(".", "-") if scope else text).strip("-._/") or "x"
    if not scope:
        cleaned = "/".join(seg for seg in cleaned.split("/") if seg not in ("", ".", "..")) or "x"
    return cleaned[:64] if scope else cleaned[:255].rstrip("/.")


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


_UNREADABLE = ("it could not be read as a STAC API (unreachable, refused, an error answer or not STAC); check the "
               "URL, the collection and the token")


def _unreadable(url: str) -> ValidationFailed:
    """One answer for every failure to read: which of them happened would map the networks the engine sees."""
    return ValidationFailed.one("url", f"the STAC API at {url}: {_UNREADABLE}")


class _ItemFailed(Exception):
    """Raised when one item cannot be imported whole; what it says is safe to answer."""


def import_stac(db: Database, lake: Lake, *, principal: Principal, spec: ImportStac) -> ImportResult:
    """Import the collection's items, each whole or not at all; a 422 names the items that were not imported."""
    from pystac_client import Client as StacClient

    require(principal, "lake.import")
    hosts = lake.import_hosts
    token = spec.token.get_secret_value() if spec.token else None
    with db.session(readonly=True) as session:
        endpoint_id = get_endpoint(session, spec.endpoint).id
    try:
        http = remote.guarded_client(spec.url, hosts, token, allow=hosts)
    except remote.Refused as exc:
        raise ValidationFailed.one("url", str(exc)) from None
    except remote.FetchFailed:
        raise _unreadable(spec.url) from None
    with http:
        try:
            client = StacClient.open(spec.url, stac_io=remote.stac_io(http))
            collection = client.get_collection(spec.collection)
            if collection is None:
                raise InvalidInput(f"collection: the STAC API at {spec.url} has no collection {spec.collection!r}")
            search = client.search(collections=[spec.collection], bbox=list(spec.bbox) if spec.bbox else None,
                                   datetime=spec.datetime, max_items=spec.limit)
            items = [item.to_dict() for item in search.items()]
        except InvalidInput:
            raise
        except Exception:  # a refused link or redirect, an error status, unreachable, not JSON, not STAC
            raise _unreadable(spec.url) from None
        for item in items:  # every asset is checked before anything is written
            for key, asset in sorted((item.get("assets") or {}).items()):
                try:
                    remote.check_url(urljoin(spec.url, str(asset.get("href", ""))), hosts)
                except remote.Refused as exc:
                    raise ValidationFailed.one("url", f"asset {key[:100]!r} of item {str(item.get('id'))[:100]!r}: "
                                                      f"{exc}") from None
        scope = spec.scope or _clean(spec.collection, scope=True)
        container = f"{scope}:{_clean(spec.collection)}"
        container_meta = {"title": collection.title, "description": collection.description,
                          "license": collection.license, "keywords": collection.keywords or [],
                          "source": f"{spec.url.rstrip('/')}/collections/{spec.collection}"}
        check_meta(container_meta, loc="collection", tuning=lake.tuning)
        job = _Job(db, lake, principal, spec, http, scope, container, container_meta, endpoint_id)
        failed: list[str] = []
        for item in items:
            try:
                job.item(item)
            except _ItemFailed as exc:
                failed.append(f"item {str(item.get('id'))[:100]!r} not imported: {exc}")
    if failed:
        imported = len(items) - len(failed)
        raise ValidationFailed([Problem("url", why) for why in failed],
                               message=f"url: {imported} of {len(items)} items imported, {len(failed)} not "
                                       f"(each item is imported whole or not at all): " + "; ".join(failed[:5]))
    return ImportResult(collection=container, items=len(items), files_registered=job.registered,
                        files_present=job.present, bytes=job.bytes)


class _Job:
    """One import's state: items are imported one by one, files first, then the dataset with its members."""

    def __init__(self, db: Database, lake: Lake, principal: Principal, spec: ImportStac, http: httpx.Client,
                 scope: str, container: str, container_meta: dict[str, Any], endpoint_id: int) -> None:
        self.db, self.lake, self.principal, self.spec, self.http = db, lake, principal, spec, http
        self.scope, self.container, self.container_meta = scope, container, container_meta
        self.endpoint_id = endpoint_id
        self.registered = self.present = self.bytes = 0

    def item(self, item: dict[str, Any]) -> None:
        """Fetch every asset, then create the dataset with its files in one transaction; on failure remove the
        files this item added, so nothing of it stays behind."""
        db, lake, principal, spec = self.db, self.lake, self.principal, self.spec
        ident = _clean(str(item.get("id")))
        dataset = f"{self.scope}:{ident}"
        props = item.get("properties") or {}
        bbox = item.get("bbox") or []
        assets: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = []
        try:  # everything the item would store is checked before anything is fetched
            meta = {"properties": props, "source": str(item.get("id"))[:255]}
            check_meta(meta, loc="properties", tuning=lake.tuning)
            if item.get("geometry") is not None:
                check_meta(item["geometry"], loc="geometry", tuning=lake.tuning)
            start = _time(props.get("start_datetime") or props.get("datetime"))
            end = _time(props.get("end_datetime") or props.get("datetime"))
            for key, asset in sorted((item.get("assets") or {}).items()):
                href = urljoin(spec.url, str(asset.get("href", "")))
                asset_meta = {"asset": key, "roles": asset.get("roles", []), "title": asset.get("title"),
                              "source_href": href}
                check_meta(asset_meta, loc=f"assets.{key}", tuning=lake.tuning)
                assets.append((key, href, f"{dataset}/{_clean(_file_name(key, href))}", asset, asset_meta))
        except ValidationFailed as exc:
            raise _ItemFailed(exc.message) from None
        except (AttributeError, TypeError, ValueError):
            raise _ItemFailed("it is not a STAC item (its properties, times or assets)") from None
        created: list[str] = []
        counts = [0, 0, 0]
        try:
            for key, href, did, asset, asset_meta in assets:
                if _present(db, did, self.endpoint_id):
                    counts[1] += 1
                    continue
                existed = _exists(db, did)
                try:
                    outcome = upload(db, lake, principal=principal, did=did, endpoint=spec.endpoint,
                                     chunks=_fetch(self.http, href), size_hint=_size(asset),
                                     expected=_expected(asset), media_type=_text(asset.get("type")),
                                     meta=asset_meta)
                except remote.FetchFailed:
                    raise _ItemFailed(f"asset {key!r} could not be fetched") from None
                if not existed:
                    created.append(did)
                counts[0] += outcome.created
                counts[1] += not outcome.created
                counts[2] += outcome.checksums.bytes
            with db.session() as session:
                add_did(session, principal=principal, did=self.container, type=DidType.CONTAINER, exist_ok=True,
                        meta=self.container_meta, tuning=lake.tuning)
                add_did(session, principal=principal, did=dataset, type=DidType.DATASET, exist_ok=True, meta=meta,
                        geometry=item.get("geometry"), bbox=bbox if len(bbox) == 4 else None, start=start, end=end,
                        tuning=lake.tuning)
                if assets:
                    attach(session, principal=principal, parent=dataset, children=[a[2] for a in assets])
                attach(session, principal=principal, parent=self.container, children=[dataset])
        except BaseException as exc:
            for did in reversed(created):
                delete_did(db, lake, principal=principal, did=did, owner_check=False)
            if isinstance(exc, InvalidInput | DidConflict):  # a checksum, a name, a geometry: this item's fault
                raise _ItemFailed(exc.message) from None
            if isinstance(exc, ValueError | TypeError):
                raise _ItemFailed("its bbox or geometry is not valid") from None
            raise
        self.registered += counts[0]
        self.present += counts[1]
        self.bytes += counts[2]


def _exists(db: Database, did: str) -> bool:
    scope, name = parse_did(did)
    with db.session(readonly=True) as session:
        return session.scalar(select(Did.id).where(Did.scope == scope, Did.name == name)) is not None


def _size(asset: dict[str, Any]) -> int | None:
    size = asset.get("file:size")
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def _text(value: Any) -> str | None:
    return value[:128] if isinstance(value, str) else None


def _file_name(key: str, href: str) -> str:
    """The asset key, with the href's file suffix when the key has none (``data`` → ``data.nc``)."""
    if PurePosixPath(key).suffix:
        return key
    return key + PurePosixPath(urlsplit(href).path).suffix


def _fetch(http: httpx.Client, href: str) -> Iterator[bytes]:
    """The asset's bytes; every failure is one FetchFailed (the token is added by the client, for its origin)."""
    try:
        with http.stream("GET", href) as response:
            if response.status_code >= 400:
                raise remote.FetchFailed(f"HTTP {response.status_code}")
            yield from response.iter_bytes(CHUNK)
    except (httpx.HTTPError, OSError, remote.Refused) as exc:
        raise remote.FetchFailed(type(exc).__name__) from None
