"""The lake's reader of other servers: one parse per URL, the allow-list, addresses checked and pinned, and the
token kept to its origin."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from twinengine.lake import remote


def _resolving(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    """DNS as a test wants it: ``answers`` maps names to addresses; every other name fails."""

    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host[:1].isdigit():  # an address (what the pinned connection asks for)
            return real(host, port, *args, **kwargs)
        if host not in answers:
            raise socket.gaierror(f"no such name {host}")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080\\@example.org/stac", "http://127.0.0.1:8080@example.org/stac", "http://u:p@example.org/",
    "http://example.org /stac", "http://example.org/\x00", "http://exämple.org/", "ftp://example.org/",
    "file:///etc/passwd", "http://example.org:0/", "http://example.org:65536/", "http:///stac", "//example.org/",
])
def test_urls_parsers_could_read_differently_are_refused(url: str) -> None:
    with pytest.raises(remote.Refused):
        remote.check_url(url, ("example.org",))


def test_the_allow_list_matches_names_wildcards_addresses_and_networks() -> None:
    hosts = ("example.org", "*.data.example.org", "10.1.0.0/16", "::1")
    assert remote.check_url("https://EXAMPLE.org./x", hosts) == ("https", "example.org", 443)
    assert remote.check_url("http://a.data.example.org:8080/", hosts) == ("http", "a.data.example.org", 8080)
    assert remote.check_url("http://10.1.2.3/", hosts)[1] == "10.1.2.3"
    assert remote.check_url("http://[::1]:9/", hosts)[1] == "::1"
    for url in ("http://data.example.org/", "http://example.org.evil.net/", "http://10.2.0.1/",
                "http://[::ffff:10.2.0.1]/"):
        with pytest.raises(remote.Refused, match="lake_import_hosts"):
            remote.check_url(url, hosts)


def test_a_listed_name_never_makes_a_private_address_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving(monkeypatch, {"example.org": ["93.184.215.14"], "rebound.example.org": ["93.184.215.14", "127.0.0.1"],
                             "inside.example.org": ["10.0.0.7"], "mapped.example.org": ["::ffff:127.0.0.1"]})
    hosts = ("*.example.org", "example.org")
    assert remote.resolve("example.org", 443, allow=hosts) == "93.184.215.14"
    for name in ("rebound.example.org", "inside.example.org", "mapped.example.org"):
        with pytest.raises(remote.Refused, match="private"):
            remote.resolve(name, 443, allow=hosts)
    assert remote.resolve("inside.example.org", 443, allow=(*hosts, "10.0.0.0/8")) == "10.0.0.7"
    with pytest.raises(remote.FetchFailed):
        remote.resolve("nowhere.example.org", 443, allow=hosts)


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[str, str | None, str | None]]]]:
    seen: list[tuple[str, str | None, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Host"), self.headers.get("Authorization")))
            if self.path == "/hop":
                self.send_response(302)
                self.send_header("Location", f"http://other.test:{self.server.server_address[1]}/there")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield str(server.server_address[1]), seen
    finally:
        server.shutdown()
        server.server_close()


def test_requests_go_to_the_checked_address_and_the_token_to_its_origin(
        monkeypatch: pytest.MonkeyPatch, recorder: tuple[str, list[tuple[str, str | None, str | None]]]) -> None:
    port, seen = recorder
    _resolving(monkeypatch, {"stac.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    hosts = ("stac.test", "other.test", "127.0.0.1")
    with remote.guarded_client(f"http://stac.test:{port}/", hosts, "SECRET", allow=hosts) as http:
        assert http.get(f"http://stac.test:{port}/a").text == "ok"
        assert http.get(f"http://stac.test:{port}/hop").text == "ok"  # redirected to another origin
        assert http.get(f"http://other.test:{port}/b", headers={"Authorization": "Bearer SECRET"}).text == "ok"
    assert seen == [("/a", f"stac.test:{port}", "Bearer SECRET"), ("/hop", f"stac.test:{port}", "Bearer SECRET"),
                    ("/there", f"other.test:{port}", None), ("/b", f"other.test:{port}", None)]


NOT_PUBLIC = ["127.0.0.1", "[::1]", "10.0.0.7", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254",
              "[fe80::1]", "[fc00::1]", "[fd12:3456::1]", "[::ffff:127.0.0.1]", "[::ffff:a00:7]", "[::127.0.0.1]",
              "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "[2002:a9fe:a9fe::]", "0.0.0.0", "[::]", "224.0.0.1",
              "255.255.255.255"]
SHORTHAND = ["2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "017700000001", "127.1", "0", "0x0"]


@pytest.mark.parametrize("host", NOT_PUBLIC)
def test_a_not_public_address_is_refused_when_only_the_urls_own_host_lists_it(host: str) -> None:
    """A webhook with no configured list checks its URL against its own host: that admits the host but never
    permits its address (only a setting's entries do)."""
    url = f"http://{host}:8080/hook"
    own = [host.strip("[]")]
    _scheme, checked, port = remote.check_url(url, own)
    with pytest.raises(remote.Refused, match=r"loopback|link-local"):
        remote.resolve(checked, port, allow=[])
    with pytest.raises(remote.Refused):
        remote.guarded_client(url, own, None, allow=[])


@pytest.mark.parametrize("host", SHORTHAND)
def test_ipv4_in_a_short_form_is_refused_whatever_the_list_says(host: str) -> None:
    """Resolvers read these as addresses (2130706433 is 127.0.0.1); a name check would read a name."""
    for hosts in ((host,), ("127.0.0.0/8",), ()):
        with pytest.raises(remote.Refused, match="short form"):
            remote.check_url(f"http://{host}:8080/stac", hosts)


def test_only_a_listed_network_opens_loopback_and_private_never_unspecified_or_link_local() -> None:
    assert remote.resolve("127.0.0.1", 80, allow=("127.0.0.0/8",)) == "127.0.0.1"
    assert remote.resolve("::ffff:10.1.2.3", 80, allow=("10.0.0.0/8",)) in ("::ffff:a01:203", "::ffff:10.1.2.3")
    assert remote.resolve("93.184.215.14", 80, allow=()) == "93.184.215.14"
    for host, allow in (("0.0.0.0", ("0.0.0.0/0",)), ("::", ("::/0",)), ("169.254.169.254", ("169.254.0.0/16",)),
                        ("10.1.2.3", ("127.0.0.0/8", "example.org"))):
        with pytest.raises(remote.Refused):
            remote.resolve(host, 80, allow=allow)


def test_one_policy_for_every_outbound_address() -> None:
    """Imports, webhooks and compute sites ask the same function; compute sites may be loopback or private."""
    from twinengine import outbound
    from twinengine.compute.addresses import check_address
    from twinengine.errors import ValidationFailed

    assert outbound.refusal(outbound.literal("127.0.0.1"), private=True) is None  # type: ignore[arg-type]
    assert check_address("dask", "tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    for address in ("tcp://169.254.169.254:8786", "tcp://[::ffff:169.254.169.254]:8786", "tcp://0.0.0.0:8786",
                    "tcp://[64:ff9b::a9fe:a9fe]:8786", "tcp://2852039166:8786", "tcp://0xa9.0xfe.0xa9.0xfe:8786"):
        with pytest.raises(ValidationFailed):
            check_address("dask", address)
