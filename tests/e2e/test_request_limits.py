"""A real ``twin serve`` bounds every request at its edge, before it parses it: an oversized request line is
414, an oversized header section 431, a body over its route's limit 413 (by Content-Length before a byte of
it is read, by counting a chunked one), a head or body that drips in is 408, and each of them closes the
connection, so the engine reads no more of it. Larger allowances (a lake upload here) stay for a verified
caller; an anonymous one gets 401 before the engine reads past the default limit.

Raw sockets, since a client library refuses to send most of these. How long each takes is for
``bench/request_limits.py``: here the proof of "at once" is that the client could not send what it meant to.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from helpers import admin_token, free_port, serve_engine
from streams_fixtures import require_nats
from twinengine.client import Client
from twinengine.config import Settings

MB = 1_000_000
PIECE = b"A" * (1 << 20)
LINE = b"GET /edr/collections/river-reach-rain/position?coords="
POST = b"POST /api/v1/twins HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
LIMITS = {"TWIN_REQUEST_HEAD_TIMEOUT": "1s", "TWIN_REQUEST_BODY_RATE_WINDOW": "1s", "TWIN_WARM_ROUTES": "false"}


@dataclass
class Served:
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("edge") / "data"
    port = free_port()
    with serve_engine(data_dir, port, **LIMITS):
        yield Served(port, data_dir)


def push(sock: socket.socket, head: bytes, total: int, *, chunked: bool = False) -> int:
    """Send ``head`` and up to ``total`` bytes after it (as chunks when ``chunked``) until the engine stops
    taking them; the bytes of ``total`` the kernel accepted."""
    sent = 0
    try:
        sock.sendall(head)
        while sent < total:
            piece = PIECE[:total - sent]
            if chunked:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            else:
                sent += sock.send(piece)
    except OSError:  # the engine answered and closed
        pass
    return sent


def answer(sock: socket.socket) -> tuple[int | None, bytes, bool]:
    """The status the engine answered with (None for none), its body, and whether it then closed."""
    data = b""
    closed = False
    try:
        while True:
            piece = sock.recv(65536)
            if not piece:
                closed = True
                break
            data += piece
    except ConnectionResetError:
        closed = True
    except TimeoutError:
        pass
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else None
    return status, body, closed


def test_an_oversized_request_line_is_414_before_it_ends(served: Served) -> None:
    with served.connect() as sock:
        sent = push(sock, LINE, 100 * MB)
        status, body, closed = answer(sock)
    assert (status, closed) == (414, True) and b"URITooLong" in body
    assert sent < 100 * MB  # the engine closed long before the line ended
    assert Client(served.url).health()["status"] == "ok"


def test_oversized_headers_are_431(served: Served) -> None:
    with served.connect() as sock:
        sent = push(sock, b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: ", 100 * MB)
        big = answer(sock)
    assert big[0] == 431 and big[2] and sent < 100 * MB
    with served.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(101))
                     + b"\r\n")
        many = answer(sock)
    assert many[0] == 431 and many[2] and b"header lines" in many[1]


def test_a_request_within_the_limits_passes(served: Served) -> None:
    headers = {f"x-{i}": "a" for i in range(90)}
    response = httpx.get(f"{served.url}/health", params={"q": "a" * 60_000}, headers=headers, timeout=60)
    assert response.status_code == 200


def test_a_declared_body_over_the_limit_is_413_before_a_byte_of_it(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(POST + b"Content-Length: %d\r\n\r\n" % (100 * MB))  # the head alone: no body is sent
        status, body, closed = answer(sock)
    assert (status, closed) == (413, True) and b"PayloadTooLarge" in body


def test_a_chunked_body_over_the_limit_is_413_before_it_ends(served: Served) -> None:
    with served.connect() as sock:
        sent = push(sock, POST + b"Transfer-Encoding: chunked\r\n\r\n", 100 * MB, chunked=True)
        status, _, closed = answer(sock)
    assert (status, closed) == (413, True) and sent < 100 * MB


def test_oversized_trailers_are_431(served: Served) -> None:
    with served.connect() as sock:
        sent = push(sock, POST + b"Transfer-Encoding: chunked\r\n\r\n1\r\n[\r\n0\r\nX-Trailer: ", 100 * MB)
        status, _, closed = answer(sock)
    assert (status, closed) == (431, True) and sent < 100 * MB


def test_a_slow_head_is_408_and_closed(served: Served) -> None:
    lines = 0
    with served.connect() as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\n")
            while lines < 600:  # one header line every 0.1 s, for a minute unless the engine ends it
                time.sleep(0.1)
                sock.sendall(b"X-Drip-%d: a\r\n" % lines)
                lines += 1
        except OSError:
            pass
        status, _, closed = answer(sock)
    assert (status, closed) == (408, True) and lines < 600


def test_a_slow_body_is_408_and_closed(served: Served) -> None:
    sent = 0
    with served.connect() as sock:
        try:
            sock.sendall(POST + b"Content-Length: 600\r\n\r\n")
            while sent < 600:  # a byte every 0.1 s, far below the minimum rate
                time.sleep(0.1)
                sent += sock.send(b"[")
        except OSError:
            pass
        status, _, closed = answer(sock)
    assert (status, closed) == (408, True) and sent < 600


def test_a_connection_that_sends_nothing_is_closed(served: Served) -> None:
    with served.connect() as sock:
        assert answer(sock) == (None, b"", True)


def test_a_kept_alive_connection_refuses_its_next_request_alike(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        length = int(next(line.split(b":")[1] for line in first.split(b"\r\n") if line.lower().startswith(
            b"content-length")))
        rest = len(first.partition(b"\r\n\r\n")[2])
        while rest < length:
            rest += len(sock.recv(65536))
        sent = push(sock, LINE, 100 * MB)
        status, _, closed = answer(sock)
    assert (status, closed) == (414, True) and sent < 100 * MB


def test_uploads_above_the_default_are_for_verified_callers(served: Served) -> None:
    settings = Settings(data_dir=served.data_dir)
    token = admin_token(settings)
    size = 3 << 20  # over the default limit (2 MiB), within the allowances of lake uploads and state batches
    assert size > settings.max_request_bytes
    with httpx.Client(base_url=served.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
        added = http.post("/api/v1/lake/endpoints", json={"name": "edge", "protocol": "file",
                                                          "location": str(served.data_dir / "lake" / "edge")})
        assert added.status_code == 201, added.text
        stored = http.post("/api/v1/lake/uploads", params={"did": "admin:three-mib", "endpoint": "edge"},
                           content=iter([b"x" * size]))  # chunked
    assert stored.status_code == 201 and stored.json()["file"]["bytes"] == size, stored.text
    with served.connect() as sock:  # anonymous: refused before a byte of the body is read
        sock.sendall(b"POST /api/v1/state/batch HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % size)
        status, body, closed = answer(sock)
    assert (status, closed) == (401, True) and b"AuthenticationRequired" in body
    forged = httpx.post(f"{served.url}/api/v1/state/batch", headers={"Authorization": "Bearer forged"},
                        content=iter([b"x" * size]), timeout=60)  # not JSON: parsed, it would be a 400
    assert forged.status_code == 401, forged.text


def test_an_answer_before_the_body_closes_the_connection(served: Served) -> None:
    """A lake upload refused for its query is answered before its body is read: the rest is never read."""
    token = admin_token(Settings(data_dir=served.data_dir))
    with served.connect() as sock:
        sent = push(sock, b"POST /api/v1/lake/uploads?did=not-a-did&endpoint=edge HTTP/1.1\r\nHost: test\r\n"
                    b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n" % (token.encode(), 100 * MB),
                    100 * MB)
        status, body, closed = answer(sock)
    assert (status, closed) == (422, True) and b"query.did" in body
    assert sent < 100 * MB


@pytest.mark.ci_only  # two engine processes on the NATS stream log
def test_every_process_of_twin_serve_processes_bounds_requests(tmp_path: Path) -> None:
    nats = require_nats()
    port = free_port()
    served = Served(port, tmp_path / "data")
    with serve_engine(served.data_dir, port, args=["--processes", "2"], TWIN_STREAM_BACKEND="nats",
                      TWIN_NATS_URL=nats, **LIMITS):
        for _ in range(4):  # the kernel spreads connections over the processes
            with served.connect() as sock:
                sent = push(sock, LINE, 100 * MB)
                status, _, closed = answer(sock)
            assert (status, closed) == (414, True) and sent < 100 * MB
        with served.connect() as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\n")
            assert answer(sock)[0] == 408
