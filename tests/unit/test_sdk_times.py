"""Every time the SDK takes (history, state, streams, fleet, verification, writes) may be ISO 8601 text, a
datetime, a date, a pandas Timestamp or a numpy datetime64, and goes out as the same UTC instant; anything
else is a ValidationFailed naming the argument, raised before any request."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx2 as httpx
import numpy as np
import pandas as pd
import pytest

from twinengine.client import Client
from twinengine.errors import ValidationFailed
from twinengine.timeutil import as_instant, iso_instant

WANT = "2026-11-21T00:00:00Z"
SAME = ["2026-11-21T00:00:00Z", "2026-11-21T01:00:00+01:00", "2026-11-21T00:00:00", datetime(2026, 11, 21),
        datetime(2026, 11, 21, 1, tzinfo=timezone(timedelta(hours=1))), date(2026, 11, 21),
        pd.Timestamp("2026-11-21"), pd.Timestamp("2026-11-20T19:00", tz="America/New_York"),
        np.datetime64("2026-11-21T00:00:00"), np.datetime64("2026-11-21T00:00:00.000000000")]


@pytest.mark.parametrize("value", SAME, ids=lambda v: f"{type(v).__name__}:{v}")
def test_every_form_is_the_same_instant(value: Any) -> None:
    assert iso_instant(value) == WANT and as_instant(value) == datetime(2026, 11, 21, tzinfo=UTC)


@pytest.mark.parametrize("value", [1_700_000_000, 1.5, "yesterday", pd.NaT, np.datetime64("NaT"), [2026]])
def test_what_is_not_a_time_names_the_argument(value: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        iso_instant(value, "since")
    assert caught.value.problems[0].loc == "since"


def _client(seen: list[httpx.Request]) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path.endswith("/history"):
            return httpx.Response(200, json={"twin_id": "t", "property": "level", "kind": "reported", "unit": None,
                                             "items": []})
        if path.endswith("/records"):
            return httpx.Response(200, json={"twin_id": "t", "stream": "s", "count": 0, "next_offset": 0,
                                             "end_offset": 0, "items": []})
        if path.endswith("/state") and request.method == "GET":
            return httpx.Response(200, json={"twin_id": "t", "revision": None, "at": WANT, "reported": {},
                                             "desired": {}, "delta": {}})
        return httpx.Response(404, json={"code": "NotFound", "message": "unused here"})

    http = httpx.Client(base_url="http://engine", transport=httpx.MockTransport(handler))
    return Client("http://engine", "token", http=http)


@pytest.mark.parametrize("value", [WANT, pd.Timestamp(WANT), np.datetime64("2026-11-21T00:00"),
                                   datetime(2026, 11, 21, tzinfo=UTC)], ids=lambda v: type(v).__name__)
def test_the_sdk_sends_any_form_as_iso_8601(value: Any) -> None:
    seen: list[httpx.Request] = []
    client = _client(seen)
    client.history("reach", "level", since=value, until=value)
    client.get_state("reach", at=value)
    client.streams.read("reach", "gauges", since=value)
    sent = [dict(r.url.params) for r in seen]
    assert sent[0]["since"] == WANT and sent[0]["until"] == WANT
    assert sent[1]["at"] == WANT and sent[2]["since"] == WANT


def test_a_wrong_time_is_refused_before_any_request() -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(ValidationFailed, match="since"):
        _client(seen).history("reach", "level", since=1_700_000_000)  # type: ignore[arg-type]
    assert seen == []
