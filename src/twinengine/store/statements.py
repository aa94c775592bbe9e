"""One cache of compiled SQL per process, shared by the engines of each kind of store.

SQLAlchemy compiles a statement once per engine: its cache is the engine's own and is keyed by the engine's
dialect object. A process that opens several engines (an embedded engine opened again, a notebook, the test
suite's thousands) compiled every statement anew for each: about a quarter of the CPU of a new SQLite engine's
start, first request and stop (0.40 -> 0.29 s on a 2-core machine; ``tests/integration/test_store_statements.py``
checks that a second engine finds what the first compiled).
Here every engine uses one process-wide cache, and two dialects compare equal when what the compiled SQL and
its result types depend on is the same: the dialect's class (store and driver), its parameter style, the
server's version and default schema once it has connected, and the options ``make_engine`` sets. A dialect
that has not yet connected equals only itself, so nothing is shared before the server's version is known.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.util import LRUCache

__all__ = ["CACHE_SIZE", "share_compiled_statements", "shared_cache"]

# SQLAlchemy's default is 500 per engine. One engine's distinct statements (about a thousand) fit; a process
# of many engines, such as a test worker, may outgrow it.
# Past its size by a tenth, the cache drops its least used entries: small batches of garbage, not a third of it.
CACHE_SIZE = 2000
_CACHE: LRUCache[Any, Any] = LRUCache(CACHE_SIZE, threshold=0.1)
_SHARING: dict[type[Dialect], type[Dialect]] = {}


def _signature(dialect: Dialect) -> tuple[Any, ...]:
    return (type(dialect).__mro__[1], dialect.paramstyle, dialect.positional, dialect.server_version_info,
            dialect.default_schema_name, dialect.label_length, dialect.max_identifier_length,
            dialect.use_insertmanyvalues, dialect.insertmanyvalues_page_size, dialect.supports_native_boolean)


def _sharing(cls: type[Dialect]) -> type[Dialect]:
    """``cls`` with an equality that lets engines of the same kind of store find each other's statements."""
    found = _SHARING.get(cls)
    if found is not None:
        return found

    def __eq__(self: Dialect, other: object) -> bool:
        return self is other or (type(other) is type(self) and self.server_version_info is not None
                                 and _signature(self) == _signature(other))

    def __hash__(self: Dialect) -> int:
        return hash(_signature(self))

    # The class must say itself that SQLAlchemy may cache its statements (it reads the class's own dict).
    found = _SHARING[cls] = type(cls.__name__, (cls,), {
        "__eq__": __eq__, "__hash__": __hash__, "supports_statement_cache": True,
        "__doc__": f"{cls.__name__} whose engines share compiled statements (twinengine.store.statements)."})
    return found


def share_compiled_statements(engine: Engine) -> Engine:
    """Make ``engine`` compile into (and read from) the process's shared cache; call before its first use."""
    dialect = engine.dialect
    if not type(dialect).__dict__.get("supports_statement_cache", False) or type(dialect) in _SHARING.values():
        return engine  # a dialect that does not cache statements, or one already sharing
    dialect.__class__ = _sharing(type(dialect))
    engine.update_execution_options(compiled_cache=_CACHE)
    return engine


def shared_cache() -> LRUCache[Any, Any]:
    """The process's cache (its size is what the tests look at)."""
    return _CACHE
