"""The SDK's lake namespace: ``client.lake.upload(...)``, ``client.lake.add_rule(...)`` and friends."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import TypeAdapter

from twinengine.errors import ChecksumMismatch
from twinengine.lake.checksums import Hasher
from twinengine.lake.schemas import (
    DidPage,
    DidRead,
    EndpointPage,
    EndpointRead,
    ImportResult,
    ReplicaRead,
    RulePage,
    RuleRead,
    TransferRead,
    UploadResult,
    VerifyResult,
)

if TYPE_CHECKING:
    from twinengine.transport import Transport

__all__ = ["LakeClient"]

BASE = "/api/v1/lake"
CHUNK = 1024 * 1024


def _did(did: str) -> str:
    return quote(did, safe=":/")


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


class LakeClient:
    """Endpoints, identifiers, uploads/downloads, rules, transfers, verify and STAC import."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    # -- endpoints
    def add_endpoint(self, name: str, protocol: str, location: str, *, attributes: dict[str, str] | None = None,
                     options: dict[str, str] | None = None, quota_bytes: int | None = None, read: bool = True,
                     write: bool = True, delete: bool = True,
                     credential: dict[str, str] | None = None) -> EndpointRead:
        body = _clean({"name": name, "protocol": protocol, "location": location, "attributes": attributes or {},
                       "options": options or {}, "quota_bytes": quota_bytes, "read": read, "write": write,
                       "delete": delete, "credential": credential})
        return self._transport.send(EndpointRead, "POST", f"{BASE}/endpoints", body)

    def endpoints(self) -> EndpointPage:
        return self._transport.get(EndpointPage, f"{BASE}/endpoints")

    def endpoint(self, name: str) -> EndpointRead:
        return self._transport.get(EndpointRead, f"{BASE}/endpoints/{quote(name, safe='')}")

    def set_endpoint(self, name: str, **change: Any) -> EndpointRead:
        return self._transport.send(EndpointRead, "PATCH", f"{BASE}/endpoints/{quote(name, safe='')}", _clean(change))

    def remove_endpoint(self, name: str) -> None:
        self._transport.request("DELETE", f"{BASE}/endpoints/{quote(name, safe='')}")

    # -- identifiers
    def add_dataset(self, did: str, *, container: bool = False, meta: dict[str, Any] | None = None,
                    bbox: tuple[float, float, float, float] | None = None, geometry: dict[str, Any] | None = None,
                    start_time: str | None = None, end_time: str | None = None,
                    group: str | None = None, twin: str | None = None) -> DidRead:
        """Register a dataset (or container); with ``group``, the group's: its members read it; with ``twin`` (an
        id or name), the twin's: data derived from the twin, read by those who may read the twin, and its files
        with it (you must be allowed to operate the twin)."""
        body = _clean({"did": did, "type": "container" if container else "dataset", "meta": meta or {},
                       "bbox": list(bbox) if bbox else None, "geometry": geometry, "start_time": start_time,
                       "end_time": end_time, "group": group, "twin": twin})
        return self._transport.send(DidRead, "POST", f"{BASE}/dids", body)

    def attach(self, parent: str, children: list[str]) -> DidRead:
        return self._transport.send(DidRead, "POST", f"{BASE}/dids/{_did(parent)}/members", {"children": children})

    def get(self, did: str) -> DidRead:
        return self._transport.get(DidRead, f"{BASE}/dids/{_did(did)}")

    def remove(self, did: str) -> None:
        """Delete a DID with its rules and replicas (its creator or an admin)."""
        self._transport.request("DELETE", f"{BASE}/dids/{_did(did)}")

    def dids(self, *, scope: str | None = None, type: str | None = None, prefix: str | None = None,
             limit: int = 100, offset: int = 0) -> DidPage:
        return self._transport.get(DidPage, f"{BASE}/dids", scope=scope, type=type, prefix=prefix, limit=limit,
                                   offset=offset)

    # -- bytes
    def upload(self, path: Path | str, did: str, *, endpoint: str, dataset: str | None = None,
               sha256: str | None = None, adler32: str | None = None, media_type: str | None = None,
               progress: Callable[[int], None] | None = None, group: str | None = None) -> UploadResult:
        """Stream a local file up; the server computes the checksums (pass yours to have them enforced). A new
        file is ``group``'s (default: the group of ``dataset``, if a group's)."""
        source = Path(path)

        def body() -> Iterator[bytes]:
            with open(source, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    if progress:
                        progress(len(chunk))
                    yield chunk

        params = _clean({"did": did, "endpoint": endpoint, "dataset": dataset, "sha256": sha256,
                         "adler32": adler32, "media_type": media_type, "group": group})
        response = self._transport.request("POST", f"{BASE}/uploads", params=params, content=body(),
                                           headers={"Content-Type": "application/octet-stream",
                                                    "Content-Length": str(source.stat().st_size)})
        return UploadResult.model_validate(response.json())

    def download(self, did: str, dest: Path | str, *, endpoint: str | None = None, verify: bool = False,
                 progress: Callable[[int], None] | None = None) -> Path:
        """Download to ``dest`` (a temp name, then renamed); the sha-256 is always checked on arrival."""
        target = Path(dest)
        tmp = target.with_name(f".{target.name}.part")
        hasher = Hasher()
        params = _clean({"endpoint": endpoint, "verify": "true" if verify else None})
        with self._transport.stream("GET", f"{BASE}/dids/{_did(did)}/content", params=params) as response:
            if response.status_code >= 400:
                response.read()
                self._transport.raise_for(response)
            expected = response.headers.get("ETag", "").strip('"')
            with open(tmp, "wb") as fh:
                for chunk in response.iter_bytes(CHUNK):
                    hasher.update(chunk)
                    fh.write(chunk)
                    if progress:
                        progress(len(chunk))
        got = hasher.result().sha256
        if expected and got != expected:
            tmp.unlink(missing_ok=True)
            raise ChecksumMismatch(f"{did} arrived with sha256 {got}, the lake says {expected}")
        tmp.replace(target)
        return target

    def read_range(self, did: str, start: int, end: int) -> bytes:
        return self._transport.request("GET", f"{BASE}/dids/{_did(did)}/content",
                                       headers={"Range": f"bytes={start}-{end}"}).content

    # -- rules, transfers, replicas
    def add_rule(self, did: str, *, copies: int, endpoints: str, lifetime: str | None = None,
                 comment: str | None = None) -> RuleRead:
        return self._transport.send(RuleRead, "POST", f"{BASE}/rules", _clean({
            "did": did, "copies": copies, "endpoints": endpoints, "lifetime": lifetime, "comment": comment}))

    def rules(self, *, did: str | None = None, state: str | None = None) -> RulePage:
        return self._transport.get(RulePage, f"{BASE}/rules", did=did, state=state)

    def rule(self, rule_id: str) -> RuleRead:
        return self._transport.get(RuleRead, f"{BASE}/rules/{rule_id}")

    def remove_rule(self, rule_id: str) -> None:
        self._transport.request("DELETE", f"{BASE}/rules/{rule_id}")

    def suspend_rule(self, rule_id: str, suspended: bool = True) -> RuleRead:
        return self._transport.send(RuleRead, "POST", f"{BASE}/rules/{rule_id}/{'suspend' if suspended else 'resume'}",
                                    None)

    def transfers(self, *, rule_id: str | None = None, state: str | None = None,
                  limit: int = 100) -> list[TransferRead]:
        data = self._transport.request("GET", f"{BASE}/transfers",
                                       params=_clean({"rule_id": rule_id, "state": state, "limit": limit})).json()
        return TypeAdapter(list[TransferRead]).validate_python(data)

    def replicas(self, *, did: str | None = None, endpoint: str | None = None) -> list[ReplicaRead]:
        data = self._transport.request("GET", f"{BASE}/replicas",
                                       params=_clean({"did": did, "endpoint": endpoint})).json()
        return TypeAdapter(list[ReplicaRead]).validate_python(data)

    def verify_replica(self, replica_id: int) -> VerifyResult:
        return self._transport.send(VerifyResult, "POST", f"{BASE}/replicas/{replica_id}/verify", None)

    def verify(self, *, did: str | None = None, endpoint: str | None = None) -> VerifyResult:
        return self._transport.send(VerifyResult, "POST", f"{BASE}/verify", _clean({"did": did, "endpoint": endpoint}))

    def import_stac(self, url: str, collection: str, *, endpoint: str, scope: str | None = None,
                    bbox: tuple[float, float, float, float] | None = None, datetime: str | None = None,
                    limit: int = 100, token: str | None = None) -> ImportResult:
        body = _clean({"url": url, "collection": collection, "endpoint": endpoint, "scope": scope,
                       "bbox": list(bbox) if bbox else None, "datetime": datetime, "limit": limit, "token": token})
        return self._transport.send(ImportResult, "POST", f"{BASE}/imports/stac", body)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
