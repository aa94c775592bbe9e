"""A served engine's log holds no credentials: a WebSocket producer's ``?token=`` (and any token a URL carries)
is redacted in uvicorn's request lines."""

from __future__ import annotations

from pathlib import Path
from urllib.request import Request, urlopen

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from helpers import admin_token, free_port, serve_engine
from twinengine.client import Client


def test_the_access_log_never_shows_a_token(tmp_path: Path) -> None:
    port = free_port()
    with serve_engine(tmp_path / "data", port, capture=True, TWIN_LOG_LEVEL="info") as process:
        with Client(f"http://127.0.0.1:{port}", admin_token(tmp_path / "data")) as admin:
            token = admin.create_token("uma", "user").token  # never printed by the server
        me = Request(f"http://127.0.0.1:{port}/api/v1/me?token={token}&access_token={token}",
                     headers={"Authorization": f"Bearer {token}"})
        with urlopen(me, timeout=30) as answer:
            assert answer.status == 200
        for url in (f"ws://127.0.0.1:{port}/api/v1/twins/none/streams/none/ws?token={token}",
                    f"ws://127.0.0.1:{port}/api/v1/twins/none/streams/none/ws"):
            try:  # the twin does not exist: the handshake is refused, and logged
                with connect(url, subprotocols=["bearer", token], open_timeout=20) as ws:  # type: ignore[list-item]
                    ws.recv(timeout=20)
            except (WebSocketException, OSError, TimeoutError):
                pass
        process.terminate()
        process.wait(timeout=60)
        assert process.stdout is not None
        printed = process.stdout.read().decode()
    assert "/api/v1/me?token=[redacted]&access_token=[redacted]" in printed, printed[-3000:]
    assert "ws?token=[redacted]" in printed, printed[-3000:]
    assert token not in printed
