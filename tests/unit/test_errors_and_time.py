"""The error tree round-trips through the wire format; durations and instants parse as people type them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from twinengine import errors
from twinengine.timeutil import format_duration, parse_duration, parse_instant


def all_error_classes() -> list[type[errors.TwinEngineError]]:
    found, stack = [], [errors.TwinEngineError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def test_codes_are_unique_and_documented() -> None:
    classes = all_error_classes()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    for cls in classes:
        assert (cls.__doc__ and cls.__doc__.strip().startswith("Raised")) or cls is errors.TwinEngineError
        assert cls.__name__ in (errors.__doc__ or "")


@pytest.mark.parametrize("cls", [c for c in all_error_classes() if c is not errors.ValidationFailed])
def test_round_trip(cls: type[errors.TwinEngineError]) -> None:
    original = cls("something happened", details=[{"hint": 1}])
    again = errors.error_from_payload(cls.status, original.to_dict())
    assert type(again) is cls and again.message == "something happened" and again.details == [{"hint": 1}]


def test_validation_problems_survive_the_wire() -> None:
    original = errors.ValidationFailed([errors.Problem("parameters.area", "must be > 0")])
    again = errors.error_from_payload(422, original.to_dict())
    assert isinstance(again, errors.ValidationFailed)
    assert again.problems == [errors.Problem("parameters.area", "must be > 0")]


def test_unknown_codes_keep_status_and_code() -> None:
    err = errors.error_from_payload(418, {"code": "Teapot", "message": "short and stout"})
    assert err.status == 418 and err.code == "Teapot"
    assert errors.error_from_payload(502, "<html>bad gateway</html>").status == 502


@pytest.mark.parametrize(("text", "expected"), [
    ("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90)),
    ("2w", timedelta(weeks=2)), ("never", None),
])
def test_durations(text: str, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "-1d", "1x", "d30"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(timedelta(days=14)) == "2w"
    assert format_duration(timedelta(seconds=61)) == "61s"


def test_instants_default_to_utc() -> None:
    assert parse_instant("2026-03-01T06:00") == datetime(2026, 3, 1, 6, tzinfo=UTC)
    assert parse_instant("2026-03-01T07:00+01:00") == datetime(2026, 3, 1, 6, tzinfo=UTC)
    assert parse_instant("2026-03-01T06:00:00Z") == datetime(2026, 3, 1, 6, tzinfo=UTC)
