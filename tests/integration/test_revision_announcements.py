"""State revisions are announced once their transaction commits: not when a savepoint inside it ends (SQLAlchemy
fires its commit and rollback events for a SAVEPOINT too), and a savepoint rolled back keeps what the
transaction noted before it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.twins.log_writes import REVISIONS_KEY


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    found = Runtime.from_settings(Settings(data_dir=tmp_path / "data", warm_routes=False))
    found.start()
    yield found
    found.close()


def _announced(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    said: list[str] = []
    monkeypatch.setattr(runtime.notifier, "notify", said.append)
    return said


def test_a_revision_noted_in_a_savepoint_is_announced_after_the_commit(runtime: Runtime,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    said = _announced(runtime, monkeypatch)
    with runtime.db.session() as session:
        with session.begin_nested():
            session.info.setdefault(REVISIONS_KEY, []).append(("twin-a", 1))
        assert said == []  # the savepoint ended; nothing is committed yet
    assert said == ["state:twin-a"]


def test_a_savepoint_rolled_back_keeps_what_was_noted_before_it(runtime: Runtime,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    said = _announced(runtime, monkeypatch)
    with runtime.db.session() as session:
        session.info.setdefault(REVISIONS_KEY, []).append(("twin-b", 4))
        with pytest.raises(ValueError), session.begin_nested():
            raise ValueError("refused")
    assert said == ["state:twin-b"]


def test_a_rolled_back_transaction_announces_nothing(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    said = _announced(runtime, monkeypatch)

    def refused() -> None:
        with runtime.db.session() as session:
            session.info.setdefault(REVISIONS_KEY, []).append(("twin-c", 2))
            raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        refused()
    assert said == []
