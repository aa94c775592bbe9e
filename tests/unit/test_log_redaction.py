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


def test_uvicorn_access_and_websocket_lines_are_written_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    install_log_redaction()  # idempotent
    access, error = logging.getLogger("uvicorn.access"), logging.getLogger("uvicorn.error")
    assert sum(isinstance(f, RedactCredentials) for f in access.filters) == 1
    with caplog.at_level(logging.INFO):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/api/v1/me?token={JWT}", "1.1", 200)
        error.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", f"/ws?token={JWT}")
        logging.getLogger("twinengine.api").warning("request for /x?access_token=%s failed", JWT)
    text = caplog.text
    assert JWT not in text and text.count("[redacted]") == 3, text
