"""A body sent as pieces arrives whole, under a Content-Length that counts every piece."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient

from twinengine.api.responses import PiecesResponse


def _app() -> Starlette:
    def pieces(request: Request) -> PiecesResponse:
        body = b'[1.5,null,"x"]'
        return PiecesResponse([b'{"v":[', memoryview(body)[1:-1], b"", b"]", b"}"], media_type="application/json",
                              headers={"X-Kind": "pieces"})

    def empty(request: Request) -> PiecesResponse:
        return PiecesResponse([], media_type="application/json", status_code=200)

    return Starlette(routes=[Route("/pieces", pieces, methods=["GET", "HEAD"]), Route("/empty", empty)])


def test_pieces_are_sent_in_order_under_one_length() -> None:
    with TestClient(_app()) as client:
        response = client.get("/pieces")
        assert response.status_code == 200
        assert response.json() == {"v": [1.5, None, "x"]}
        assert response.headers["content-length"] == str(len(response.content))
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-kind"] == "pieces"
        head = client.head("/pieces")
        assert head.headers["content-length"] == str(len(response.content)) and head.content == b""
        empty = client.get("/empty")
        assert empty.status_code == 200 and empty.content == b"" and empty.headers["content-length"] == "0"
