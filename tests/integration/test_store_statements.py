"""Engines of one process share what SQLAlchemy compiled (``store.statements``): a statement compiled by one
engine is found by the next engine of the same kind of store, each still reads its own data with the right
types, and nothing is shared before a dialect knows its server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from twinengine.auth.models import Identity
from twinengine.store.engine import Database, make_engine
from twinengine.store.statements import shared_cache

pytestmark = pytest.mark.every_store


def _identity(name: str) -> Identity:
    return Identity(name=name, created_by="uma", created_at=datetime(2026, 3, 1, 12, tzinfo=UTC))


def _stores(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    """Two migrated stores of ``backend``: two SQLite files, or two PostgreSQL databases on one server."""
    from twinengine.store import migrate

    if backend == "sqlite":
        urls = [f"sqlite:///{tmp_path / name}.db" for name in ("first", "second")]
    else:
        urls = [request.getfixturevalue("postgres_database"), request.getfixturevalue("own_database")]
    for url in urls:
        db = Database(url)
        try:
            migrate.upgrade(db)
        finally:
            db.dispose()
    return urls


def _hits(db: Database) -> list[Any]:
    """The cache outcome of each statement ``db`` runs from now on (``dialect.CACHE_HIT`` and so on)."""
    seen: list[Any] = []

    @event.listens_for(db.engine, "after_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "identities" in statement:
            seen.append(context.cache_hit)

    return seen


def test_a_second_engine_finds_the_statements_the_first_compiled(backend: str, tmp_path: Path,
                                                                 request: pytest.FixtureRequest) -> None:
    first_url, second_url = _stores(backend, tmp_path, request)
    first, second = Database(first_url), Database(second_url)
    try:
        with first.session() as session:
            session.add(_identity("upper"))
        with second.session() as session:
            session.add(_identity("lower"))
        query = select(Identity).where(Identity.created_by == "uma").order_by(Identity.name)
        first_hits, second_hits = _hits(first), _hits(second)
        with first.session(readonly=True) as session:
            assert [t.name for t in session.scalars(query)] == ["upper"]
        with second.session(readonly=True) as session:  # a new engine: the same statement, already compiled
            found = list(session.scalars(query))
        assert [t.name for t in found] == ["lower"]  # its own data,
        assert found[0].created_at == datetime(2026, 3, 1, 12, tzinfo=UTC)  # read through its own types
        assert second_hits == [second.engine.dialect.CACHE_HIT], (first_hits, second_hits)
        assert first.engine.dialect == second.engine.dialect
    finally:
        first.dispose()
        second.dispose()


def test_a_dialect_that_has_not_connected_shares_nothing(tmp_path: Path) -> None:
    """Before its first connection a dialect does not know the server's version: it equals only itself."""
    unconnected = [make_engine(f"sqlite:///{tmp_path / name}.db") for name in ("a", "b")]
    try:
        a, b = (engine.dialect for engine in unconnected)
        assert a == a and a != b
        with unconnected[0].connect(), unconnected[1].connect():
            pass
        assert a == b and hash(a) == hash(b)
    finally:
        for engine in unconnected:
            engine.dispose()


def test_the_cache_is_one_per_process_and_bounded(tmp_path: Path) -> None:
    engines = [make_engine(f"sqlite:///{tmp_path / name}.db") for name in ("a", "b")]
    try:
        caches = {id(engine.get_execution_options()["compiled_cache"]) for engine in engines}
        assert caches == {id(shared_cache())}
        assert shared_cache().capacity >= 1000  # the engine's distinct statements fit
    finally:
        for engine in engines:
            engine.dispose()
