"""Stream records are Unicode text whichever way they come (HTTP JSON lines, MQTT payloads, records a function
publishes): bytes that are not UTF-8 or a lone surrogate were once stored, and every later read of the stream
failed to decode them."""

from __future__ import annotations

import pytest

from twinengine.catalog.manifest import Stream
from twinengine.errors import InvalidInput, ValidationFailed
from twinengine.streams.records import check_records, parse_json_lines

STREAM = Stream.model_validate({"fields": {"time": {"type": "timestamp"}, "station": {"type": "string"}}})
GOOD = b'{"time": "2026-03-01T00:00:00Z", "station": "RR-01"}\n'


@pytest.mark.parametrize(("body", "words"), [
    (GOOD + GOOD.replace(b"RR-01", b"RR\xc3\x28"), "line 2 is not valid UTF-8 text (byte 48"),
    (GOOD + b"\n" + GOOD.replace(b"RR-01", b"\\ud83d"), "line 3 holds an unpaired surrogate escape"),
    (GOOD.replace(b"RR-01", b"\xed\xa0\xbd"), "line 1 is not valid UTF-8 text"),
    (GOOD.replace(b'"station"', b'"\\udc00"'), "line 1 holds an unpaired surrogate escape"),
])
def test_json_lines_that_are_not_unicode_text_are_refused_naming_the_line(body: bytes, words: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_json_lines(STREAM, body)
    assert not isinstance(refused.value, ValidationFailed) and words in refused.value.message


def test_paired_surrogate_escapes_and_other_text_are_kept() -> None:
    table = parse_json_lines(STREAM, GOOD.replace(b"RR-01", b"\\ud83d\\ude00 \xc3\xa9"))
    assert table.column("station").to_pylist() == ["\U0001f600 é"]


def test_records_given_as_values_name_the_field_and_key() -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_records(STREAM, [{"time": "2026-03-01T00:00:00Z", "station": "RR\ud83d"},
                               {"time": "2026-03-01T00:00:00Z", "station": "ok", "\udc00x": 1}])
    problems = {p.loc: p.msg for p in refused.value.problems}
    assert "unpaired surrogate ('\\ud83d')" in problems["records[0].station"]
    assert "records[1].\\udc00x" in problems  # the key as an escape: the answer itself must be UTF-8
    ValidationFailed(refused.value.problems).to_dict()
    str(refused.value).encode()
