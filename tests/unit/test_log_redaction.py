"""Credentials never reach the server's log: uvicorn's request lines carry the full URL, and a WebSocket
producer in a browser passes its token as ``?token=``."""

from __future__ import annotations

import logging

import pytest

from twinengine.api.log_redaction import RedactCredentials, install_log_redaction, redact

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1bWEifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(("line", "kept"), [
    (f"/api/v1/twins/reach/streams/gauges/ws?token={JWT}", "/api/v1/twins/reach/streams/gauges/ws?token=[redacted]"),
    (f"/x?last=5&access_token={JWT}&a=1", "/x?last=5&access_token=[redacted]&a=1"),
    (f"/x?ID_TOKEN={JWT}#frag", "/x?ID_TOKEN=[redacted]#frag"),
    (f"/ui/callback?state=abc&code={JWT}", "/ui/callback?state=abc&code=[redacted]"),
    (f"Authorization: Bearer {JWT}", "Authorization: Bearer [redacted]"),
    ("/api/v1/twins?limit=10&tokens=3", "/api/v1/twins?limit=10&tokens=3"),  # only the names that carry them
])
def test_credential_query_values_are_redacted(line: str, kept: str) -> None:
    assert redact(line) == kept


class _Kept(logging.Handler):
    """The lines a logger writes, formatted as a handler of its would write them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_uvicorn_access_and_websocket_lines_are_written_without_the_token(caplog: pytest.LogCaptureFixture,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    install_log_redaction()
    install_log_redaction()  # idempotent
    access, error = logging.getLogger("uvicorn.access"), logging.getLogger("uvicorn.error")
    assert sum(isinstance(f, RedactCredentials) for f in access.filters) == 1
    kept = _Kept()  # uvicorn's access logger writes through its own handler (a server stops it propagating)
    monkeypatch.setattr(access, "propagate", False)
    monkeypatch.setattr(access, "disabled", False)
    level = access.level
    access.setLevel(logging.INFO)  # setLevel, not the attribute: a logger caches what it found enabled before
    access.addHandler(kept)
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/api/v1/me?token={JWT}", "1.1", 200)
    finally:
        access.removeHandler(kept)
        access.setLevel(level)
    # uvicorn's WebSocket line, as its error logger's filter sees it (other tests of a process may have set
    # that logger's level or handlers; the filter is what decides)
    socket = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 0, '%s - "WebSocket %s" [accepted]',
                               ("127.0.0.1:5000", f"/ws?token={JWT}"), None)
    assert all(f.filter(socket) for f in error.filters)  # type: ignore[union-attr]
    kept.lines.append(socket.getMessage())
    with caplog.at_level(logging.INFO):  # the engine's own loggers propagate to the root's handlers
        logging.getLogger("twinengine.api").warning("request for /x?access_token=%s failed", JWT)
    engine_lines = [r.getMessage() for r in caplog.records if r.name == "twinengine.api"]
    text = "\n".join([*kept.lines, *engine_lines])
    assert len(engine_lines) == 1, text
    assert len(kept.lines) == 2, text
    assert JWT not in text and text.count("[redacted]") == 3, text
