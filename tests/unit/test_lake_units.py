"""Pure parts of the lake: the endpoint-expression grammar, checksums, the credential keyring, STAC search
parameters, byte ranges and sizes."""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import pytest

from twinengine.api.routes.lake import _byte_range
from twinengine.cli.lake import parse_size
from twinengine.errors import InvalidInput, ValidationFailed
from twinengine.lake.checksums import Hasher, multihash_sha256, normalize_adler32, normalize_sha256
from twinengine.lake.expression import ExpressionError, parse, select_endpoints
from twinengine.lake.keyring import Keyring
from twinengine.lake.stac.search import from_get, from_post, make_token
from twinengine.lake.storage.local import LocalStorage

ENDPOINTS = {
    "A1": {"site": "A", "tier": "1", "type": "disk", "freespace": "500"},
    "A2": {"site": "A", "tier": "2", "type": "tape"},
    "B1": {"site": "B", "tier": "1", "type": "disk", "freespace": "50"},
    "C1": {"site": "C", "tier": "1", "type": "tape", "EUROPE": "true"},
}


@pytest.mark.parametrize(("text", "expected"), [
    ("site=A", {"A1", "A2"}),
    ("tier=1&type=disk", {"A1", "B1"}),
    ("site=A|tier=1&type=disk", {"A1", "B1"}),  # left to right: (site=A | tier=1) & type=disk
    ("site=A|(tier=1&type=disk)", {"A1", "A2", "B1"}),
    ("*\\site=A", {"B1", "C1"}),
    ("tier=1\\C1", {"A1", "B1"}),
    ("freespace>100", {"A1"}),
    ("freespace<=50", {"B1"}),
    ("type!=tape", {"A1", "B1"}),
    ("B1|C1", {"B1", "C1"}),
    ("EUROPE|A2", {"A2", "C1"}),
    (" ( site = A ) & tier<2 ", {"A1"}),
])
def test_expressions_select_endpoints(text: str, expected: set[str]) -> None:
    assert select_endpoints(text.replace(" = ", "="), ENDPOINTS) == expected


@pytest.mark.parametrize(("text", "position", "message"), [
    ("site=A|", 7, "expected an endpoint name"),
    ("(site=A", 7, "missing ')'"),
    ("site=A)", 6, "unbalanced ')'"),
    ("tier<high", 5, "compares numbers"),
    ("site=", 5, "expected a value"),
    ("site=A B1", 7, "expected an operator"),
    ("nowhere", 0, "no endpoint named 'nowhere'"),
    ("site=Z", 0, "selects no endpoint"),
    ("", 0, "empty"),
    ("site=A&&tier=1", 7, "expected an endpoint name"),
])
def test_bad_expressions_point_at_the_position(text: str, position: int, message: str) -> None:
    with pytest.raises(ExpressionError) as err:
        select_endpoints(text, ENDPOINTS)
    assert err.value.position == position and message in err.value.message


def test_parse_is_structural() -> None:
    assert parse("a=b").__class__.__name__ == "Condition"
    assert parse("(x)|y").__class__.__name__ == "Binary"


def test_checksums_in_one_pass_match_the_libraries() -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    hasher = Hasher()
    for start in range(0, len(data), 65536):
        hasher.update(data[start:start + 65536])
    result = hasher.result()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.adler32 == f"{zlib.adler32(data):08x}" and result.bytes == len(data)
    assert Hasher().result().adler32 == "00000001"  # Rucio's adler32 of nothing
    assert result.multihash == "1220" + result.sha256 == multihash_sha256(result.sha256)


def test_checksum_normalisation() -> None:
    assert normalize_adler32("ABC") == "00000abc"
    assert normalize_sha256("1220" + "a" * 64) == "a" * 64
    for bad in ("xyz", "123456789"):
        with pytest.raises(ValueError, match="adler32"):
            normalize_adler32(bad)
    with pytest.raises(ValueError, match="sha256"):
        normalize_sha256("abc")


def test_keyring_encrypts_and_keeps_its_key_private(tmp_path: Path) -> None:
    ring = Keyring.load_or_create(tmp_path / "keys")
    sealed = ring.seal({"secret_key": "hunter2"})
    assert "hunter2" not in sealed and ring.open(sealed) == {"secret_key": "hunter2"}
    assert (tmp_path / "keys" / "lake-credentials.fernet").stat().st_mode & 0o777 == 0o600
    assert Keyring.load_or_create(tmp_path / "keys").open(sealed) == {"secret_key": "hunter2"}  # same key again
    with pytest.raises(ValueError, match="cannot be decrypted"):
        Keyring.load_or_create(tmp_path / "other").open(sealed)


def test_search_parameters() -> None:
    search = from_get({"collections": "a,b", "bbox": "7,46,8,47", "datetime": "2026-03-01T00:00:00Z/..",
                       "limit": "1000000", "sortby": "-properties.datetime,+id", "filter": "quality > 3",
                       "token": make_token(20)})
    assert search.collections == ["a", "b"] and search.bbox == [7.0, 46.0, 8.0, 47.0]
    assert search.start is not None and search.end is None and search.limit == 10_000 and search.offset == 20
    assert search.sortby == [("properties.datetime", True), ("id", False)]
    assert from_get({"bbox": "7,46,0,8,47,100"}).bbox == [7.0, 46.0, 8.0, 47.0]  # 3D boxes drop the heights
    posted = from_post({"sortby": [{"field": "id", "direction": "desc"}], "ids": ["x"],
                        "filter": {"op": "=", "args": [{"property": "id"}, "x"]}, "filter-lang": "cql2-json"})
    assert posted.sortby == [("id", True)] and posted.ids == ["x"]
    assert posted.filter.matches({"id": "x", "properties": {}, "type": "Feature", "geometry": None})


@pytest.mark.parametrize(("params", "field"), [
    ({"bbox": "1,2,3"}, "bbox"), ({"bbox": "0,10,1,5"}, "bbox"), ({"datetime": "2026-03-01"}, "datetime"),
    ({"datetime": "../.."}, "datetime"), ({"datetime": "2026-03-02T00:00:00Z/2026-03-01T00:00:00Z"}, "datetime"),
    ({"datetime": "1985-04-12T23:20:50.52"}, "datetime"), ({"limit": "0"}, "limit"), ({"token": "%%"}, "token"),
    ({"filter": "a >>> 1"}, "filter"), ({"filter-lang": "sql"}, "filter-lang"),
    ({"bbox": "0,0,1,1", "intersects": '{"type": "Point", "coordinates": [0, 0]}'}, "intersects"),
    ({"intersects": '{"type": "Point", "coordinates": [NaN, 1]}'}, "intersects"),  # matched nothing, silently
    ({"intersects": '{"type": "Polygon", "coordinates": []}'}, "intersects"),
    ({"intersects": "[" * 100_000 + "]" * 100_000}, "intersects"),  # deeper than the parser goes
    # the CQL2 parser's stack overflows (the process dies) near 2,000 parentheses, and chained NOTs or
    # arithmetic operators take it seconds to minutes: refused before it sees them
    ({"filter": "(" * 101 + "a = 1" + ")" * 101}, "filter"),
    ({"filter": "NOT " * 21 + "a = 1"}, "filter"),
    ({"filter": "a + " * 101 + "1 > 2"}, "filter"),
])
def test_bad_search_parameters(params: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        from_get(params)
    assert err.value.status == 400 and err.value.details[0]["loc"] == field


def test_cql2_limits_leave_real_filters_and_quoted_text_alone() -> None:
    deep = "(" * 100 + "a = 1" + ")" * 100
    quoted = "title = '" + "NOT (" * 50 + "' AND \"name-with+signs\" = 'x - y'"
    for text in (deep, "NOT " * 20 + "a = 1", "a + " * 100 + "1 > 2", quoted):
        assert from_get({"filter": text}).filter is not None


def test_unknown_cql2_operators_are_refused_by_name() -> None:
    nested = {"op": "and", "args": [{"op": "=", "args": [{"property": "id"}, "x"]},
                                    {"op": "frobnicate", "args": [{"property": "quality"}, 1]}]}
    for body in ({"filter": nested}, {"filter": nested["args"][1], "filter-lang": "cql2-json"}):
        with pytest.raises(InvalidInput) as err:
            from_post(body)
        assert err.value.status == 400 and err.value.details[0]["loc"] == "filter"
        assert "unknown operator 'frobnicate'" in err.value.details[0]["msg"]
    with pytest.raises(InvalidInput, match="unknown operator 'frobnicate'"):
        from_get({"filter": "frobnicate(quality, 1)"})
    known = ("a IS NULL AND b BETWEEN 1 AND 2 AND CASEI(c) = 'x' AND d IN (1, 2) AND e + 1 > 2 "
             "AND T_AFTER(datetime, TIMESTAMP('2020-01-01T00:00:00Z')) AND S_INTERSECTS(geometry, POINT(1 2))")
    assert from_get({"filter": known}).filter is not None
    assert from_post({"filter": {"op": "isNull", "args": [{"property": "a"}]}}).filter is not None


def test_byte_ranges() -> None:
    assert _byte_range(None, 100) is None
    assert _byte_range("bytes=0-9", 100) == (0, 9)
    assert _byte_range("bytes=90-", 100) == (90, 99)
    assert _byte_range("bytes=-10", 100) == (90, 99)
    assert _byte_range("bytes=95-200", 100) == (95, 99)
    assert _byte_range("bytes=100-", 100) == (-1, -1)
    with pytest.raises(InvalidInput, match="Range"):
        _byte_range("bytes=1-2,5-6", 100)


def test_sizes() -> None:
    assert parse_size("500M", "--quota") == 500_000_000
    assert parse_size("2GiB", "--quota") == 2 * 1024**3
    assert parse_size("123", "--quota") == 123
    with pytest.raises(ValidationFailed, match="--quota"):
        parse_size("lots", "--quota")


def test_local_storage_is_atomic_and_contained(tmp_path: Path) -> None:
    store = LocalStorage(str(tmp_path), {}, None)
    with store.writer("s/aa/bb/f.bin") as writer:
        writer.write(b"half")
        assert store.size("s/aa/bb/f.bin") is None  # not visible before commit
        writer.commit()
    assert store.size("s/aa/bb/f.bin") == 4 and b"".join(store.read("s/aa/bb/f.bin", offset=1, length=2)) == b"al"
    def dies() -> None:
        with store.writer("s/aa/bb/g.bin") as writer:
            writer.write(b"data")
            raise RuntimeError("the writer dies")

    with pytest.raises(RuntimeError):
        dies()
    assert store.size("s/aa/bb/g.bin") is None and not list((tmp_path / ".incoming").iterdir())
    with pytest.raises(InvalidInput, match="leaves"):
        store.size("../outside")
