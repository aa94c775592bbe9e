"""The batched state write's body, and how the CLI maps a batch's item positions back to file lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from twinengine.cli.state_import import _items, _renamed
from twinengine.errors import PermissionDenied, Problem, ValidationFailed
from twinengine.twins.batch_schemas import StateBatch


def test_a_batch_needs_items_and_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        StateBatch.model_validate({"items": []})
    assert caught.value.errors()[0]["loc"] == ("items",)
    with pytest.raises(ValidationError) as caught:
        StateBatch.model_validate({"items": [{"twin": "a", "properties": {}}]})
    assert caught.value.errors()[0]["loc"] == ("items", 0, "properties")
    body = StateBatch.model_validate({"items": [{"twin": "a", "reported": {"level": {"value": 1}}}]})
    assert body.items[0].reported["level"].value == 1 and body.items[0].desired == {}


def test_positions_in_a_batch_become_lines_of_the_file() -> None:
    lines = [3, 4, 9]
    failed = _renamed(ValidationFailed([Problem("items[2].reported.level.value", "expected number")]), lines)
    assert failed.details == [{"loc": "line 9.reported.level.value", "msg": "expected number"}]
    assert failed.message.startswith("line 9.reported.level.value")
    denied = _renamed(PermissionDenied("items[1].twin: no", details=[{"loc": "items[1].twin", "msg": "no"}]), lines)
    assert denied.message == "line 4.twin: no" and denied.details[0]["loc"] == "line 4.twin"


def test_a_bad_line_is_named_before_anything_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"twin": "a", "reported": {"level": {"value": 1}}}\n\n{"twin": "a", "reported": 5}\n')
    with pytest.raises(ValidationFailed) as caught:
        list(_items(path))
    assert caught.value.problems[0].loc == "line 3.reported"
