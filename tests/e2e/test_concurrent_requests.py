"""The same request from twelve clients at once, against ``twin serve`` on SQLite and PostgreSQL: a create is
made once and the others are conflicts, an idempotent request (a PUT, attaching a member) answers every
client alike, none is a 500, a replication rule is added once, two containers put into each other at once
never make a cycle, uploads finishing at once cannot pass an endpoint's quota together, the same DELETE
removes once (the others are 404), and a job's lifecycle requests at once each get an answer they could have
had alone. Most of these writes read before they insert; on PostgreSQL two requests doing so at once both
found nothing and the second insert broke a unique key (a 500 for DIDs, endpoints, uploads, attachments,
grants, tokens for a new name and openEO user processes)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import httpx2 as httpx
import pytest

from helpers import RIVER_REACH, admin_token, serve_settings
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.transport import tls_context

# ci_only: twelve clients against a real twin serve on PostgreSQL
# the store itself, its concurrency, or engines in several processes: both stores
pytestmark = [pytest.mark.every_store, pytest.mark.ci_only(backend="postgresql")]

CLIENTS = 12
HTTP: dict[str, Any] = {"timeout": 60, "verify": tls_context()}  # one TLS context: each new one reads every CA
GRAPH = {"process_graph": {"add": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": True}}}


def at_once(url: str, token: str, method: str, path: str, **request: Any) -> Counter[int]:
    """The statuses ``CLIENTS`` clients got for the same request, sent together (after a barrier, on
    connections opened before it)."""
    start = threading.Barrier(CLIENTS)

    def one(_: int) -> int:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, **HTTP) as http:
            http.get("/health")
            start.wait()
            return http.request(method, path, **request).status_code

    with ThreadPoolExecutor(CLIENTS) as pool:
        return Counter(pool.map(one, range(CLIENTS)))


def attach(url: str, token: str, pair: tuple[str, str, threading.Barrier]) -> int:
    """Put ``pair[1]`` into the container ``pair[0]`` as soon as the other client is ready too."""
    parent, child, together = pair
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, **HTTP) as http:
        http.get("/health")
        together.wait()
        return http.post(f"/api/v1/lake/dids/{parent}/members", json={"children": [child]}).status_code


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_same_request_from_many_clients_at_once(settings: Settings) -> None:
    with serve_settings(settings) as url:
        admin = admin_token(settings)
        with Client(url, admin) as sdk:
            sdk.publish_app(RIVER_REACH)
            sdk.create_twin("river-reach@0.1.0", "upper", {"station": "RR-01"})
            sdk.create_token("bob", "user")
        lake = settings.data_dir / "lake"
        once = {201: 1, 409: CLIENTS - 1}
        alike = {200: CLIENTS}
        checks: list[tuple[str, str, dict[str, Any], dict[int, int]]] = [
            ("POST", "/api/v1/lake/endpoints", {"json": {"name": "disk1", "protocol": "file",
                                                         "location": str(lake / "disk1")}}, once),
            ("POST", "/api/v1/lake/dids", {"json": {"did": "demo:readings", "type": "dataset"}}, once),
            ("POST", "/api/v1/lake/uploads", {"content": b"one file", "params": {"did": "demo:a.txt",
                                                                                 "endpoint": "disk1"}}, {}),
            ("POST", "/api/v1/lake/dids/demo:readings/members", {"json": {"children": ["demo:a.txt"]}}, alike),
            ("POST", "/api/v1/lake/rules", {"json": {"did": "demo:readings", "copies": 1, "endpoints": "disk1"}},
             once),  # a rule like it exists: DuplicateRule
            ("PUT", "/api/v1/twins/upper/grants/bob", {"json": {"permission": "read"}}, alike),
            ("PUT", "/api/v1/twins/upper/streams/gauges/binding", {"json": {"mqtt_topic": "reach/upper"}}, alike),
            ("PUT", "/openeo/1.2/process_graphs/twice", {"json": GRAPH}, alike),
            ("PUT", "/api/v1/twins/upper/models/runoff_correction/policy",
             {"json": {"every_seconds": 3600, "enabled": False}}, alike),
            ("POST", "/api/v1/tokens", {"json": {"name": "newcomer", "role": "user"}}, {201: CLIENTS}),
        ]
        seen = {f"{method} {path}": at_once(url, admin, method, path, **request)
                for method, path, request, _ in checks}
        for (method, path, _, expected), statuses in zip(checks, seen.values(), strict=True):
            assert all(status < 500 for status in statuses), (method, path, statuses)
            if expected:
                assert statuses == expected, (method, path, statuses)
        upload = seen["POST /api/v1/lake/uploads"]  # one stored it; the others found it (200) or saw it
        assert upload[201] == 1 and upload[201] + upload[200] + upload[409] == CLIENTS  # being written (409)
        # Two containers put into each other at once: one of the two is refused as a cycle (both were made
        # on PostgreSQL, each check blind to the other's uncommitted member).
        for i in range(5):
            first, second = f"demo:outer-{i}", f"demo:inner-{i}"
            with Client(url, admin) as sdk:
                sdk.lake.add_dataset(first, container=True)
                sdk.lake.add_dataset(second, container=True)
            together = threading.Barrier(2)
            pairs = [(first, second, together), (second, first, together)]
            with ThreadPoolExecutor(2) as pool:
                assert sorted(pool.map(partial(attach, url, admin), pairs)) == [200, 422], pairs
        # Two user-defined processes replaced at once, each to call the other: one is refused as recursive (both
        # were stored on PostgreSQL, each checked without the other).
        for i in range(5):
            pairs = [(f"ping{i}", f"pong{i}"), (f"pong{i}", f"ping{i}")]
            for name, _ in pairs:
                assert httpx.put(f"{url}/openeo/1.2/process_graphs/{name}", json=GRAPH,
                                 headers={"Authorization": f"Bearer {admin}"}).status_code == 200
            together = threading.Barrier(2)

            def put(pair: tuple[str, str], together: threading.Barrier = together) -> int:
                name, calls = pair
                graph = {"process_graph": {"call": {"process_id": calls, "arguments": {}, "result": True}}}
                with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, **HTTP) as http:
                    http.get("/health")
                    together.wait()
                    return http.put(f"/openeo/1.2/process_graphs/{name}", json=graph).status_code

            with ThreadPoolExecutor(2) as pool:
                assert sorted(pool.map(put, pairs)) == [200, 400], pairs
        # Eight uploads of 60 bytes at once into an endpoint with a quota of 100, with their size declared
        # and streamed without it: one is taken, the others are refused, and nothing of theirs stays.
        for round_, body in (("sized", lambda i: bytes([i]) * 60), ("streamed", lambda i: iter([bytes([i]) * 60]))):
            quota = f"quota-{round_}"
            with Client(url, admin) as sdk:
                sdk.lake.add_endpoint(quota, "file", str(lake / quota), quota_bytes=100)
            together = threading.Barrier(8)

            def upload(i: int, quota: str = quota, together: threading.Barrier = together,
                       body: Callable[[int], Any] = body) -> int:
                with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, **HTTP) as http:
                    http.get("/health")
                    together.wait()
                    return http.post("/api/v1/lake/uploads", params={"did": f"demo:{quota}-{i}", "endpoint": quota},
                                     content=body(i)).status_code

            with ThreadPoolExecutor(8) as pool:
                assert Counter(pool.map(upload, range(8))) == {201: 1, 507: 7}, round_
            with Client(url, admin) as sdk:
                assert sdk.lake.endpoint(quota).used_bytes == 60
            assert sum(1 for p in (lake / quota).rglob("*") if p.is_file()) == 1
        with Client(url, admin) as sdk:
            assert sdk.lake.get("demo:readings").children == ["demo:a.txt"]
            assert sdk.lake.rules(did="demo:readings").total == 1
            assert [g.identity for g in sdk.grants("upper")] == ["bob"]

            # The same DELETE from every client: one removes it, the others find nothing (on PostgreSQL all
            # found the row, the later DELETEs matched nothing, and every client was told 204).
            rule = sdk.lake.rules(did="demo:readings").items[0].id
            sdk.lake.add_endpoint("spare", "file", str(lake / "spare"))
            sdk.create_twin("river-reach@0.1.0", "doomed", {"station": "RR-01"})
        deletes = ["/api/v1/twins/upper/grants/bob", "/api/v1/twins/upper/streams/gauges/binding",
                   f"/api/v1/lake/rules/{rule}", "/openeo/1.2/process_graphs/twice", "/api/v1/lake/endpoints/spare",
                   "/api/v1/twins/doomed"]
        for path in deletes:
            assert at_once(url, admin, "DELETE", path) == {204: 1, 404: CLIENTS - 1}, path

        # One openEO batch job started, cancelled, changed and deleted by twelve clients at once: each answer is
        # one it could have had alone (a start and a delete had locked the job and its nodes in opposite
        # orders, and PostgreSQL ended one as a deadlock; a change of a job deleted meanwhile matched no row),
        # and the job is deleted at most once.
        headers = {"Authorization": f"Bearer {admin}"}
        requests = [("POST", "/results", None), ("DELETE", "/results", None), ("DELETE", "", None),
                    ("PATCH", "", {"title": "renamed"})]
        for _ in range(3):
            job = httpx.post(f"{url}/openeo/1.2/jobs", json={"process": GRAPH}, headers=headers)
            assert job.status_code == 201, job.text
            path = f"/openeo/1.2/jobs/{job.headers['OpenEO-Identifier']}"
            together = threading.Barrier(CLIENTS)

            def lifecycle(i: int, path: str = path, together: threading.Barrier = together) -> tuple[str, int]:
                method, tail, body = requests[i % len(requests)]
                with httpx.Client(base_url=url, headers=headers, **HTTP) as http:
                    http.get("/health")
                    together.wait()
                    return f"{method} {tail}", http.request(method, path + tail, json=body).status_code

            with ThreadPoolExecutor(CLIENTS) as pool:
                answers = Counter(pool.map(lifecycle, range(CLIENTS)))
            assert all(status < 500 for _, status in answers), answers
            assert answers[("DELETE ", 204)] <= 1, answers
