"""Hostile input at the lake's edge: metadata that once broke every read, URLs that once reached other hosts
than the one checked, tokens that once went to another origin, imports that stayed half-written and names no
HTTP client can reach. Each is now a 4xx naming the field, and nothing of it is stored."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from helpers import Engine, free_port
from twinengine.client import Client

DIDS = "/api/v1/lake/dids"
IMPORT = "/api/v1/lake/imports/stac"


def nested(depth: int) -> dict[str, Any]:
    """``depth`` levels of objects (the outermost counts as one)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


@dataclass
class Source:
    """A loopback web server: ``routes`` maps a path to (status, headers, body); it records what it was sent."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Authorization)
    url: str = ""

    def json(self, path: str, value: Any) -> None:
        self.routes[path] = (200, {"Content-Type": "application/json"}, json.dumps(value).encode())

    def redirect(self, path: str, location: str) -> None:
        self.routes[path] = (302, {"Location": location}, b"")

    def text(self, path: str, body: bytes, status: int = 200) -> None:
        self.routes[path] = (status, {"Content-Type": "text/plain"}, body)

    def tokens(self) -> set[str | None]:
        return {auth for _, _, auth in self.seen}


def _handler(source: Source) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            source.seen.append((self.command, self.path, self.headers.get("Authorization")))
            status, headers, body = source.routes.get(self.path.split("?")[0], (404, {}, b"SECRET-INTERNAL-404"))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def serve() -> Iterator[Callable[[], Source]]:
    servers: list[ThreadingHTTPServer] = []

    def start() -> Source:
        source = Source()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(source))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        source.url = f"http://127.0.0.1:{server.server_address[1]}"
        return source

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def stac_api(source: Source, items: list[dict[str, Any]], *, search: Source | None = None) -> None:
    """A minimal STAC API on ``source`` with collection ``c``; its search (and its items) on ``search``."""
    where = search or source
    source.json("/stac/", {
        "type": "Catalog", "id": "src", "stac_version": "1.0.0", "description": "a source",
        "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/collections",
                       "https://api.stacspec.org/v1.0.0/item-search"],
        "links": [{"rel": "self", "href": f"{source.url}/stac/"}, {"rel": "root", "href": f"{source.url}/stac/"},
                  {"rel": "data", "href": f"{source.url}/stac/collections"},
                  {"rel": "search", "href": f"{where.url}/stac/search", "method": "GET",
                   "type": "application/geo+json"},
                  {"rel": "search", "href": f"{where.url}/stac/search", "method": "POST",
                   "type": "application/geo+json"}]})
    source.json("/stac/collections/c", {
        "type": "Collection", "id": "c", "stac_version": "1.0.0", "description": "c", "license": "CC-BY-4.0",
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
        "links": [{"rel": "self", "href": f"{source.url}/stac/collections/c"}]})
    where.json("/stac/search", {"type": "FeatureCollection", "features": items, "links": []})


def item(ident: str, assets: dict[str, str], properties: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "Feature", "stac_version": "1.0.0", "id": ident, "collection": "c",
            "geometry": {"type": "Point", "coordinates": [7.0, 46.0]}, "bbox": [7.0, 46.0, 7.0, 46.0],
            "properties": {"datetime": "2026-03-01T00:00:00Z", **(properties or {})}, "links": [],
            "assets": {key: {"href": href, "type": "text/csv"} for key, href in assets.items()}}


@pytest.fixture
def provider(engine: Engine, tmp_path: Path) -> Client:
    client = engine.as_role("pat", "provider")
    client.lake.add_endpoint("alpha", "file", str(tmp_path / "alpha"))
    return client


def _as(engine: Engine, client: Client) -> dict[str, str]:
    return engine.headers(client._auth["Authorization"][7:])  # type: ignore[attr-defined,no-any-return]


def _names(engine: Engine) -> list[str]:
    page = engine.http.get(DIDS, headers=engine.headers(engine.admin_token))
    assert page.status_code == 200, page.text
    return sorted(d["did"] for d in page.json()["items"])


# -- 1. metadata that broke every read -------------------------------------------------------------------------

def test_deep_or_huge_metadata_is_refused_and_nothing_is_stored(engine: Engine) -> None:
    headers = engine.headers(engine.token("uma", "user"))
    for body, loc in (({"did": "u:deep", "type": "dataset", "meta": nested(256)}, "meta"),
                      ({"did": "u:wide", "type": "dataset", "meta": {"blob": "x" * 70_000}}, "meta"),
                      ({"did": "u:shape", "type": "dataset", "meta": {},
                        "geometry": {"type": "Point", "coordinates": [1, 2], "x": nested(100)}}, "geometry")):
        answer = engine.http.post(DIDS, json=body, headers=headers)
        assert answer.status_code == 422, answer.text
        assert [d["loc"] for d in answer.json()["details"]] == [loc]
        assert "lake_meta_max" in answer.text
    assert engine.http.get(DIDS, headers=headers).status_code == 200  # every caller can still list the lake
    assert engine.http.get(f"{DIDS}/u:deep", headers=headers).status_code == 404
    assert _names(engine) == []
    fine = engine.http.post(DIDS, json={"did": "u:fine", "type": "dataset", "meta": nested(32)}, headers=headers)
    assert fine.status_code == 201, fine.text
    assert engine.http.get(f"{DIDS}/u:fine", headers=headers).json()["meta"] == nested(32)


def test_a_stac_item_with_deep_properties_is_not_imported(engine: Engine, provider: Client,
                                                          serve: Callable[[], Source]) -> None:
    source = serve()
    stac_api(source, [item("deep", {"data": f"{source.url}/files/deep.csv"}, {"x": nested(300)}),
                      item("fine", {"data": f"{source.url}/files/fine.csv"})])
    source.text("/files/deep.csv", b"a,b\n1,2\n")
    source.text("/files/fine.csv", b"a,b\n3,4\n")
    engine.runtime.lake.import_hosts = ("127.0.0.1",)
    answer = engine.http.post(IMPORT, json={"url": f"{source.url}/stac/", "collection": "c", "endpoint": "alpha"},
                              headers=_as(engine, provider))
    assert answer.status_code == 422, answer.text
    problems = answer.json()["details"]
    assert [p["loc"] for p in problems] == ["url"] and "'deep'" in problems[0]["msg"]
    assert "lake_meta_max_depth" in problems[0]["msg"] and "1 of 2 items imported" in answer.json()["message"]
    assert _names(engine) == ["c:c", "c:fine", "c:fine/data.csv"]
    assert not any(path.startswith("/files/deep") for _, path, _ in source.seen)  # refused before fetching


# -- DID delete -------------------------------------------------------------------------------------------------

def test_a_did_is_deleted_with_its_rules_and_replicas_by_its_creator_or_an_admin(
        engine: Engine, provider: Client, tmp_path: Path) -> None:
    uma, ulf = engine.as_role("uma", "user"), engine.as_role("ulf", "user")
    uma.lake.add_dataset("u:set")
    sample = tmp_path / "f.bin"
    sample.write_bytes(b"bytes" * 1000)
    uma.lake.upload(sample, "u:set/f.bin", endpoint="alpha", dataset="u:set")
    uma.lake.add_rule("u:set", copies=1, endpoints="alpha")
    stored = [p for p in (tmp_path / "alpha").rglob("*") if p.is_file()]
    assert len(stored) == 1
    from twinengine.errors import DidNotFound, PermissionDenied

    with pytest.raises((PermissionDenied, DidNotFound)):
        ulf.lake.remove("u:set/f.bin")
    uma.lake.remove("u:set/f.bin")
    assert not stored[0].exists()
    assert uma.lake.get("u:set").children == []
    uma.lake.remove("u:set")
    assert uma.lake.rules().total == 0 and _names(engine) == []
    with pytest.raises(DidNotFound):
        uma.lake.remove("u:set")
    uma.lake.add_dataset("u:other")
    engine.sdk(engine.admin_token).lake.remove("u:other")  # admins may delete anyone's
    assert _names(engine) == []


def test_a_dataset_stored_with_deep_metadata_can_be_deleted(engine: Engine) -> None:
    """Rows stored before the limit existed: their owner (or an admin) removes them, and the lake reads again."""
    from twinengine.auth.principal import Principal, Role
    from twinengine.lake.context import LakeTuning
    from twinengine.lake.dids import add_did
    from twinengine.lake.schemas import DidType

    with engine.runtime.db.session() as session:
        add_did(session, principal=Principal(name="uma", role=Role.USER), did="u:old", type=DidType.DATASET,
                meta=nested(40), tuning=LakeTuning(meta_max_depth=100))
    engine.as_role("uma", "user").lake.remove("u:old")
    assert _names(engine) == []


# -- 2. SSRF past the allow-list, and answers that mapped the network ------------------------------------------

def test_a_url_whose_parsers_disagree_on_the_host_is_refused_before_connecting(
        engine: Engine, provider: Client, serve: Callable[[], Source]) -> None:
    source = serve()
    stac_api(source, [])
    port = source.url.rsplit(":", 1)[1]
    engine.runtime.lake.import_hosts = ("example.org",)  # TWIN_LAKE_IMPORT_HOSTS=example.org
    for url in (f"http://127.0.0.1:{port}\\@example.org/stac", f"http://127.0.0.1:{port}@example.org/stac",
                "http://user:pw@example.org/stac", f"http://example.org\\@127.0.0.1:{port}/stac",
                "http://example.org /stac", "http://example.org:99999/stac"):
        answer = engine.http.post(IMPORT, json={"url": url, "collection": "c", "endpoint": "alpha",
                                                "token": "SECRET"}, headers=_as(engine, provider))
        assert answer.status_code == 422, (url, answer.text)
        assert [d["loc"] for d in answer.json()["details"]] == ["url"]
    assert source.seen == []


def test_loopback_is_read_only_when_listed_as_an_address(engine: Engine, provider: Client,
                                                         serve: Callable[[], Source]) -> None:
    source = serve()
    stac_api(source, [])
    port = source.url.rsplit(":", 1)[1]
    for hosts in (("localhost",), ("*.localhost", "localhost")):
        engine.runtime.lake.import_hosts = hosts
        answer = engine.http.post(IMPORT, json={"url": f"http://localhost:{port}/stac/", "collection": "c",
                                                "endpoint": "alpha"}, headers=_as(engine, provider))
        assert answer.status_code == 422 and "loopback" in answer.text, answer.text
    assert source.seen == []
    engine.runtime.lake.import_hosts = ("127.0.0.0/8",)  # a network, listed explicitly
    answer = engine.http.post(IMPORT, json={"url": f"{source.url}/stac/", "collection": "c", "endpoint": "alpha"},
                              headers=_as(engine, provider))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(("hosts", "host"), [
    (("2130706433", "127.0.0.0/8"), "2130706433"),  # 127.0.0.1 as one decimal number
    (("0177.0.0.1", "127.0.0.0/8"), "0177.0.0.1"),  # octal
    (("0x7f.0.0.1", "127.0.0.0/8"), "0x7f.0.0.1"),  # hex
    (("127.1", "127.0.0.0/8"), "127.1"),  # fewer parts
    (("0.0.0.0/0", "::/0"), "0.0.0.0"),  # unspecified: the engine's own host, whatever the list says
    (("0.0.0.0/0", "::/0"), "[::]"),
    (("0.0.0.0/0", "::/0"), "169.254.169.254"),  # link-local: the cloud metadata service
    (("0.0.0.0/0", "::/0"), "[::ffff:169.254.169.254]"),  # the same, IPv4-mapped
    (("example.org", "*.example.org"), "[::1]"),
    (("example.org", "*.example.org"), "10.0.0.1"),
    (("example.org", "*.example.org"), "[fc00::1]"),
    (("example.org", "*.example.org"), "[::ffff:127.0.0.1]"),
])
def test_an_address_the_list_does_not_name_explicitly_is_never_read(
        engine: Engine, provider: Client, serve: Callable[[], Source], hosts: tuple[str, ...], host: str) -> None:
    """Resolvers read short IPv4 forms as addresses and 0.0.0.0 reaches the engine's own host: each is refused
    with a 422 naming ``url`` before anything is sent, and the token goes nowhere."""
    source = serve()
    stac_api(source, [])
    port = source.url.rsplit(":", 1)[1]
    engine.runtime.lake.import_hosts = hosts
    answer = engine.http.post(IMPORT, json={"url": f"http://{host}:{port}/stac/", "collection": "c",
                                            "endpoint": "alpha", "token": "SECRET"}, headers=_as(engine, provider))
    assert answer.status_code == 422, answer.text
    assert [d["loc"] for d in answer.json()["details"]] == ["url"]
    assert source.seen == []


def test_every_failure_to_read_gets_one_answer(engine: Engine, provider: Client,
                                               serve: Callable[[], Source]) -> None:
    """Not found, not JSON, not STAC, a redirect elsewhere and a closed port read alike: no port scanner."""
    source = serve()
    source.text("/text/", b"SECRET-INTERNAL-PAGE")
    source.json("/json/", {"secret": "SECRET-INTERNAL-JSON"})
    source.redirect("/away/", "http://203.0.113.9/stac/")
    engine.runtime.lake.import_hosts = ("127.0.0.1",)
    closed = f"http://127.0.0.1:{free_port()}"
    answers = set()
    for url in (f"{source.url}/missing/", f"{source.url}/text/", f"{source.url}/json/", f"{source.url}/away/",
                f"{closed}/stac/"):
        answer = engine.http.post(IMPORT, json={"url": url, "collection": "c", "endpoint": "alpha"},
                                  headers=_as(engine, provider))
        assert answer.status_code == 422 and "SECRET" not in answer.text, answer.text
        body = answer.json()
        answers.add(json.dumps(body).replace(url, "URL"))
    assert len(answers) == 1, answers


# -- 3. the token stays with its origin ------------------------------------------------------------------------

def test_the_token_goes_only_to_the_origin_the_user_named(engine: Engine, provider: Client,
                                                         serve: Callable[[], Source]) -> None:
    named, other = serve(), serve()
    stac_api(named, [item("i1", {"here": f"{named.url}/files/here.csv", "there": f"{other.url}/files/x.csv",
                                 "hop": f"{named.url}/hop"})], search=other)
    named.text("/files/here.csv", b"a\n1\n")
    named.redirect("/hop", f"{other.url}/files/y.csv")
    other.text("/files/x.csv", b"a\n2\n")
    other.text("/files/y.csv", b"a\n3\n")
    engine.runtime.lake.import_hosts = ("127.0.0.1",)
    answer = engine.http.post(IMPORT, json={"url": f"{named.url}/stac/", "collection": "c", "endpoint": "alpha",
                                            "token": "SECRET"}, headers=_as(engine, provider))
    assert answer.status_code == 200, answer.text
    assert answer.json()["files_registered"] == 3
    assert {path for _, path, _ in other.seen} >= {"/stac/search", "/files/x.csv", "/files/y.csv"}
    assert other.tokens() == {None}  # the search link, an asset and a redirect elsewhere: never the token
    assert named.tokens() == {"Bearer SECRET"}


# -- 4. a bad asset: a 4xx naming url, and the item is all or nothing -------------------------------------------

def test_an_item_with_a_refused_asset_is_not_imported_at_all(engine: Engine, provider: Client,
                                                             serve: Callable[[], Source]) -> None:
    source = serve()
    stac_api(source, [item("good", {"data": f"{source.url}/files/good.csv"}),
                      item("bad", {"a-first": f"{source.url}/files/first.csv", "b-local": f"{source.url}/passwd",
                                   "c-engine": f"{source.url}/engine"})])
    source.text("/files/good.csv", b"a\n1\n")
    source.text("/files/first.csv", b"a\n2\n")
    source.redirect("/passwd", "file:///etc/passwd")
    source.redirect("/engine", f"http://localhost:{free_port()}/api/v1/tokens")
    engine.runtime.lake.import_hosts = ("127.0.0.1",)
    answer = engine.http.post(IMPORT, json={"url": f"{source.url}/stac/", "collection": "c", "endpoint": "alpha"},
                              headers=_as(engine, provider))
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert [p["loc"] for p in body["details"]] == ["url"] and "'bad'" in body["details"][0]["msg"]
    assert "1 of 2 items imported" in body["message"] and "root:" not in answer.text
    assert _names(engine) == ["c:c", "c:good", "c:good/data.csv"]  # nothing of 'bad', not even its first file
    again = engine.http.post(IMPORT, json={"url": f"{source.url}/stac/", "collection": "c", "endpoint": "alpha"},
                             headers=_as(engine, provider))
    assert again.status_code == 422 and _names(engine) == ["c:c", "c:good", "c:good/data.csv"]


# -- 5. names an HTTP client cannot carry ----------------------------------------------------------------------

def test_names_with_dot_or_empty_segments_are_refused(engine: Engine, provider: Client) -> None:
    headers = _as(engine, provider)
    for did in ("inp:a/./b", "inp:a/../b", "inp:a//b", "inp:a/", "inp:a/.", "inp:a/b/.."):
        answer = engine.http.post("/api/v1/lake/uploads", params={"did": did, "endpoint": "alpha"},
                                  content=b"bytes", headers=headers)
        assert answer.status_code == 422, (did, answer.text)
        assert any(d["loc"].endswith("did") for d in answer.json()["details"]), answer.text
        answer = engine.http.post(DIDS, json={"did": did, "type": "dataset"}, headers=headers)
        assert answer.status_code == 422 and "did" in answer.text, (did, answer.text)
    assert _names(engine) == []
    ok = engine.http.post("/api/v1/lake/uploads", params={"did": "inp:a/.hidden/b..c", "endpoint": "alpha"},
                          content=b"bytes", headers=headers)
    assert ok.status_code == 201, ok.text
    assert engine.http.get(f"{DIDS}/inp:a/.hidden/b..c", headers=headers).status_code == 200
