"""Engines in the data space for the tests: each served over real HTTP on its own loopback port (the port known
before it starts, so its did:web is too), with a lake endpoint, reachable by the other (``dataspace_peer_hosts``
lists 127.0.0.1); and a participant of the tests' own (``Peer``) that signs its messages with a key of its own and
serves its DID document and callbacks, to play the other side of the protocol."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from jwt.algorithms import ECAlgorithm

from helpers import copy_sqlite, free_port
from pg_fixtures import new_database
from streams_fixtures import eventually
from twinengine.api import create_app
from twinengine.auth.principal import SYSTEM, Role
from twinengine.auth.service import issue_token
from twinengine.config import Settings
from twinengine.dataspace.identity import did_of
from twinengine.demo.server import InProcessServer
from twinengine.lake.endpoints import add_endpoint
from twinengine.lake.schemas import EndpointCreate
from twinengine.runtime import Runtime
from twinengine.transport import tls_context

__all__ = ["BACKENDS", "CONTEXT", "Checked", "Participant", "Peer", "checked_messages", "engine_store", "msg",
           "served_engine", "two_engines", "wait_state"]

CONTEXT = ["https://w3id.org/dspace/2025/1/context.jsonld"]
# the stores a test of the state machines runs on (tests/conftest.py keeps only SQLite's unless marked every_store)
BACKENDS = [b for b in os.environ.get("TWIN_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


def msg(kind: str, **fields: Any) -> dict[str, Any]:
    """A protocol message of ``kind`` with the 2025-1 context."""
    return {"@context": CONTEXT, "@type": kind, **fields}


@contextmanager
def engine_store(backend: str) -> Iterator[str | None]:
    """The store of one engine of a test: None on SQLite (``served_engine`` copies the migrated file), else a
    PostgreSQL database of its own, dropped afterwards (two engines in one database would be one participant)."""
    if backend == "sqlite":
        yield None
        return
    with new_database("twin_ds") as url:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)


@dataclass
class Participant:
    """An engine of the tests in the data space: its URL, an admin token and its runtime."""

    url: str
    runtime: Runtime
    admin: str

    @property
    def did(self) -> str:
        return did_of(self.url)

    def token(self, name: str, role: str = "user") -> str:
        from datetime import timedelta

        with self.runtime.db.session() as session:
            return issue_token(session, self.runtime.issuer, principal=SYSTEM, name=name, role=Role(role),
                               ttl=timedelta(hours=2)).token

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=60, verify=tls_context(), **kwargs)

    def ok(self, method: str, path: str, token: str | None = None, expect: int = 200, **kwargs: Any) -> Any:
        response = self.api(method, path, token, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def upload(self, did: str, data: bytes, dataset: str) -> str:
        self.ok("POST", "/api/v1/lake/uploads", params={"did": did, "endpoint": "site", "dataset": dataset},
                content=data, expect=201)
        return hashlib.sha256(data).hexdigest()


@contextmanager
def served_engine(root: Path, template: Path, *, database_url: str | None = None,
                  **overrides: Any) -> Iterator[Participant]:
    """An engine on a copy of the migrated store (or on the PostgreSQL database ``database_url``), served on a
    loopback port of its own, with the file endpoint ``site`` under its data dir."""
    port = free_port()
    settings = Settings(data_dir=root / "data", warm_routes=False, dataspace_url=f"http://127.0.0.1:{port}",
                        dataspace_peer_hosts=["127.0.0.1"], database_url=database_url, **overrides)
    if database_url is None:
        copy_sqlite(template, settings.data_dir / "twin.db")
    runtime = Runtime.from_settings(settings)
    token = runtime.start()
    assert token is not None
    try:
        with runtime.db.session() as session:
            add_endpoint(session, runtime.lake, principal=SYSTEM, spec=EndpointCreate(
                name="site", protocol="file", location=str(settings.data_dir / "lake" / "site")))
        with InProcessServer(create_app(runtime=runtime), port=port) as server:
            yield Participant(url=server.url, runtime=runtime, admin=token)
    finally:
        runtime.close()


@contextmanager
def two_engines(tmp_path_factory: pytest.TempPathFactory, template: Path, backend: str,
                **overrides: Any) -> Iterator[tuple[Participant, Participant]]:
    """A provider (with the lake endpoint ``site`` its default) and a consumer, each on a store of its own on
    ``backend``, every message between them checked against the schemas (``checked_messages``) once they stop."""
    with engine_store(backend) as ours, engine_store(backend) as theirs, \
            served_engine(tmp_path_factory.mktemp("provider"), template, database_url=ours, lake_endpoint="site",
                          **overrides) as provider, \
            served_engine(tmp_path_factory.mktemp("consumer"), template, database_url=theirs,
                          **overrides) as consumer, \
            checked_messages() as checked:
        yield provider, consumer
    checked.verdict()


@dataclass
class Checked:
    """What ``checked_messages`` saw: how many messages and answers, and their problems."""

    seen: int = 0
    problems: list[str] = field(default_factory=list)

    def verdict(self) -> None:
        assert self.seen, "no message between the engines was checked"
        assert not self.problems, "messages or answers between the engines off their schema:\n" + \
            "\n".join(self.problems)


@contextmanager
def checked_messages() -> Iterator[Checked]:
    """Every message an engine of this process sends another participant, and every JSON answer it gets, checked
    against the specification's schemas while the block runs (the engines' own messages between each other are
    otherwise checked only by the receiver, and answers by no one)."""
    from twinengine.dataspace import peers
    from twinengine.dataspace.spec import SCHEMA_OF, problems

    checked = Checked()
    sent = peers.send

    def send(settings: Settings, url: str, message: dict[str, Any] | None, token: str,
             method: str = "POST") -> tuple[int, Any]:
        if message is not None:
            checked.seen += 1
            checked.problems.extend(f"{method} {url}: {p}" for p in problems(message))
        status, answer = sent(settings, url, message, token, method)
        if isinstance(answer, dict) and (answer.get("@type") in SCHEMA_OF or status >= 400):
            checked.seen += 1
            checked.problems.extend(f"answer {status} of {method} {url}: {p}" for p in problems(answer))
        return status, answer

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(peers, "send", send)
        yield checked


def wait_state(engine: Participant, kind: str, item: int, state: str, token: str | None = None) -> dict[str, Any]:
    """The negotiation or transfer ``item`` once it is in ``state`` (60 s at most)."""
    found: dict[str, Any] = {}

    def reached() -> bool:
        found.update(engine.ok("GET", f"/api/v1/dataspace/{kind}/{item}", token))
        return found if found["state"] == state and not found.get("pending") else False

    try:
        eventually(reached, interval=0.1)
    except AssertionError:
        raise AssertionError(f"{kind} {item} did not reach {state}: {found}") from None
    return found


@dataclass
class Peer:
    """A participant of the tests' own (a did:web on a loopback port): signs its messages with its own key,
    serves its DID document, and records every message sent to its callbacks (answering 200, or what ``answer``
    says for a path)."""

    port: int = field(default_factory=free_port)
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answer: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    problems: list[str] = field(default_factory=list)  # schema problems of what the engine sent
    pids: dict[str, str] = field(default_factory=dict)  # consumerPid -> the providerPid this peer gave it
    offer: dict[str, Any] = field(default_factory=lambda: {"@id": "urn:uuid:peer-offer", "@type": "Offer",
                                                            "permission": [{"action": "use"}]})
    pushed: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)  # consumerPid -> (name, bytes) pushed
    listed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # consumerPid -> the files listed

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def did(self) -> str:
        return did_of(self.url)

    @property
    def callback(self) -> str:
        return self.url + "/cb"

    def token(self, audience: str, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.did, "sub": self.did, "aud": audience, "iat": now, "exp": now + 60,
                "jti": str(uuid.uuid4()), **claims}
        return jwt.encode(body, self.key, algorithm="ES256", headers={"kid": "k1"})

    def app(self) -> FastAPI:
        app = FastAPI()
        jwk = {**ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True), "kid": "k1"}

        @app.get("/.well-known/did.json")
        def did() -> dict[str, Any]:
            return {"id": self.did, "verificationMethod": [{"id": f"{self.did}#k1", "type": "JsonWebKey2020",
                                                            "controller": self.did, "publicKeyJwk": jwk}]}

        @app.post("/cb/{path:path}")
        async def callback(path: str, request: Request) -> JSONResponse:
            self._record(path, json.loads(await request.body()), request)
            return JSONResponse({}, status_code=self.answer.get(path.rsplit("/", 1)[-1], 200))

        # as a provider: a version list, one dataset with one offer, and the protocol's provider endpoints
        @app.get("/.well-known/dspace-version")
        def versions() -> dict[str, Any]:
            return {"protocolVersions": [{"version": "2025-1", "path": "/dsp", "binding": "HTTPS",
                                          "serviceId": self.did}]}

        @app.get("/dsp/catalog/datasets/{dataset}")
        def dataset(dataset: str) -> dict[str, Any]:
            return {"@context": CONTEXT, "@id": dataset, "@type": "Dataset", "hasPolicy": [self.offer],
                    "distribution": [{"@type": "Distribution", "format": "HttpData-PULL",
                                      "accessService": {"@id": "urn:uuid:peer-service", "@type": "DataService",
                                                        "endpointURL": self.url + "/dsp"}}]}

        @app.post("/dsp/{kind}/request")
        async def initial(kind: str, request: Request) -> JSONResponse:
            body = self._record(f"{kind}/request", json.loads(await request.body()), request)
            pid = f"urn:uuid:{uuid.uuid4()}"
            with self.lock:
                self.pids[body.get("consumerPid", "")] = pid
            answer = {"@context": CONTEXT, "@type": "ContractNegotiation" if kind == "negotiations" else
                      "TransferProcess", "providerPid": pid, "consumerPid": body.get("consumerPid"),
                      "state": "REQUESTED"}
            return JSONResponse(answer, status_code=201)

        # as a consumer of HttpData-PUSH: its push address takes a listing, then each file (kept here)
        @app.post("/push/{pid}")
        async def push_listing(pid: str, request: Request) -> JSONResponse:
            body = json.loads(await request.body())
            with self.lock:
                self.listed.setdefault(pid, []).extend(body.get("files") or [])
            return JSONResponse({})

        @app.put("/push/{pid}/{name}")
        async def push_file(pid: str, name: str, request: Request) -> JSONResponse:
            data = await request.body()
            with self.lock:
                self.pushed.setdefault(pid, []).append((name, data))
            return JSONResponse({})

        @app.post("/dsp/{path:path}")
        async def provider_message(path: str, request: Request) -> JSONResponse:
            self._record(path, json.loads(await request.body()), request)
            return JSONResponse({}, status_code=self.answer.get(path.rsplit("/", 1)[-1], 200))

        return app

    def _record(self, path: str, body: Any, request: Request) -> Any:
        from twinengine.dataspace.spec import problems

        with self.lock:
            self.received.append((path, body))
            if not request.headers.get("authorization", "").startswith("Bearer "):
                self.problems.append(f"{path}: no bearer token")
            self.problems.extend(f"{path}: {p}" for p in problems(body))
        return body

    def messages(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for _path, body in self.received if body.get("@type") == kind]

    def send(self, engine: Participant, path: str, body: dict[str, Any] | None = None,
             method: str = "POST") -> httpx.Response:
        """Send ``body`` to ``path`` of the engine; every answer it gives is checked against its schema."""
        from twinengine.dataspace.spec import problems

        response = httpx.request(method, engine.url + path, json=body, timeout=30, verify=tls_context(),
                                 headers={"Authorization": f"Bearer {self.token(engine.did)}"})
        if response.content and response.headers.get("content-type", "").startswith("application/json"):
            answer = response.json()
            if isinstance(answer, dict) and answer.get("@type"):
                self.problems.extend(f"answer to {path}: {p}" for p in problems(answer))
        return response


@contextmanager
def served_peer() -> Iterator[Peer]:
    peer = Peer()
    app = peer.app()
    with InProcessServer(app, port=peer.port):
        yield peer
