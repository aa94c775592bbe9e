"""Database engines and sessions for SQLite (embedded) and PostgreSQL (scale-out).

SQLite runs in WAL mode and every transaction starts with ``BEGIN IMMEDIATE``: writers queue on the
busy timeout instead of failing when a read transaction tries to upgrade, which keeps concurrent state
writes gap-free. PostgreSQL relies on row locks taken by the services (``UPDATE ... RETURNING``).

A PostgreSQL connection is checked only when it comes out of the pool after sitting idle (``PING_AFTER_IDLE_S``),
not on every checkout: under load a ping would be one round trip in each unit of work, while an idle
connection is the one a server restart or a firewall may have dropped. One that fails its ping is replaced
before the caller sees it; one that dies mid-use fails that unit of work (rolled back, nothing acknowledged)
and the pool drops every connection opened before it.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from twinengine.store import guard
from twinengine.store.statements import share_compiled_statements
from twinengine.store.writer import StoreWriter

__all__ = ["Database", "make_engine"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
PROBE_CONNECTIONS = 4  # the most /health checks at once (api/health.py's probe threads)
READONLY_OPTION = "twinengine_readonly"
PING_AFTER_IDLE_S = 10.0  # a pooled PostgreSQL connection idle longer than this is pinged before use
RECYCLE_S = 1800  # and none is used once older than this (server-side idle limits, load balancers)
_IDLE_SINCE = "twinengine_idle_since"


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """Create an engine with the settings each backend needs to be safe under concurrent writers; it shares
    compiled statements with the process's other engines of its kind (``store.statements``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            # A file's connections cost no server: never make a thread wait for one (SQLite's lock orders them).
            pool_size=pool_size, max_overflow=-1,
        )
        _configure_sqlite(engine)
        return share_compiled_statements(engine)
    engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_recycle=RECYCLE_S)
    ping_when_idle(engine, PING_AFTER_IDLE_S)
    return share_compiled_statements(engine)


def ping_when_idle(engine: Engine, after_s: float) -> None:
    """Ping a pooled connection on checkout only when it sat in the pool longer than ``after_s`` seconds;
    a dead one is replaced (the pool retries the checkout with a new connection)."""
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since <= after_s:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()  # the ping opened a transaction (the driver is not in autocommit)
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk before we acknowledge it
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Read-only units of work take no write lock, so readers never queue behind writers (WAL).
        readonly = connection.get_execution_options().get(READONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


class WriteInReadOnlyUnit(RuntimeError):
    """A unit of work opened ``readonly`` tried to write: a bug in the caller, refused before it runs."""


_WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE")


def _reader(engine: Engine) -> Engine:
    """The engine read-only units of work run on (the same pool). On a server database each statement runs
    in autocommit: under READ COMMITTED every statement of a transaction reads its own snapshot anyway, so a
    read loses nothing, and saves the BEGIN and COMMIT round trips (a twin's state read in process on
    PostgreSQL: 1.33 -> 1.14 ms). Writes there would no longer be atomic, so they are refused. On SQLite the
    transaction stays: WAL gives it one snapshot for all its statements, and ``BEGIN`` takes no lock."""
    reader = engine.execution_options(**{READONLY_OPTION: True})
    if engine.dialect.name == "sqlite":
        return reader
    reader = reader.execution_options(isolation_level="AUTOCOMMIT")

    @event.listens_for(reader, "before_cursor_execute")
    def _refuse_writes(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip()[:8].upper().startswith(_WRITES):
            raise WriteInReadOnlyUnit(f"a read-only unit of work tried to write: {statement[:80]}")

    return reader


class Database:
    """An engine plus its session factory; ``session()`` is the one unit of work services run in."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        guard.watch(self.engine, readonly_option=READONLY_OPTION)  # while the process's guard is on (store.guard)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(_reader(self.engine), expire_on_commit=False)
        self._probe_engine: Engine | None = None
        # SQLite has one write lock for the whole file: writes that would queue on it are better grouped by
        # one writer (store.writer). A server database locks rows, and its writers of different rows proceed
        # side by side: none there.
        self.writer = StoreWriter(self.sessions) if self.backend == "sqlite" else None
        self._open = _OpenUnits()
        for factory in (self.sessions, self._read_sessions):
            event.listen(factory, "after_begin", self._open.begun)
            event.listen(factory, "after_transaction_end", self._open.ended)

    def probe(self) -> None:
        """``SELECT 1``, raising if the store cannot answer. On a server database it runs on connections of
        its own (``PROBE_CONNECTIONS``): a liveness probe must not wait for the pool the requests have taken."""
        engine: Engine = self.engine.execution_options(**{READONLY_OPTION: True})  # no write lock to wait for
        if self.backend != "sqlite":  # a file's connections never wait (see make_engine)
            if self._probe_engine is None:
                self._probe_engine = create_engine(self.url, pool_size=1, max_overflow=PROBE_CONNECTIONS - 1,
                                                   pool_pre_ping=True, pool_timeout=5)
            engine = self._probe_engine
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """Commit on success, roll back on any error; services never commit themselves.

        ``readonly`` is a promise not to write; on SQLite it lets the transaction run beside writers.
        """
        session = self.open(readonly=readonly)
        try:
            yield session
        except BaseException:
            self.close(session, commit=False)
            raise
        self.close(session, commit=True)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session to read in: the unit of work open on this thread, if any, else a read-only one of its own.
        A read in a second unit of work would take a second connection while the first holds its locks (on a
        server database, two per thread can empty the pool: ``store.guard``); its pending changes are not
        flushed by these reads."""
        current = self._open.current()
        if current is None:
            with self.session(readonly=True) as session:
                yield session
            return
        with current.no_autoflush:
            yield current

    def open(self, *, readonly: bool = False) -> Session:
        """A unit of work for ``close`` to end. Opening does no I/O: the transaction starts with the first
        statement."""
        return (self._read_sessions if readonly else self.sessions)()

    @staticmethod
    def close(session: Session, *, commit: bool) -> None:
        """Commit (or roll back) and close a unit of work from ``open``; a failed commit rolls back."""
        try:
            if commit:
                session.commit()
            else:
                session.rollback()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        if self.writer is not None:
            self.writer.close()  # the writes handed in are committed first
        self.engine.dispose()
        if self._probe_engine is not None:
            self._probe_engine.dispose()


class _OpenUnits:
    """The units of work whose transaction is open, by the thread that began it (the innermost last). Held
    weakly: a unit of work dropped without being closed is still collected, and its connection returned."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_thread: dict[int, list[weakref.ref[Session]]] = {}

    def begun(self, session: Session, transaction: SessionTransaction, _connection: Any) -> None:
        if transaction.parent is not None:  # a savepoint in a unit of work already known
            return
        with self._lock:
            self._by_thread.setdefault(threading.get_ident(), []).append(weakref.ref(session))

    def ended(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None:  # a savepoint: the unit of work goes on
            return
        with self._lock:
            for thread, units in list(self._by_thread.items()):  # it may end on another thread than it began
                kept = [unit for unit in units if unit() is not session and unit() is not None]
                if len(kept) != len(units):
                    if kept:
                        units[:] = kept
                    else:
                        del self._by_thread[thread]

    def current(self) -> Session | None:
        with self._lock:
            units = self._by_thread.get(threading.get_ident())
            found = units[-1]() if units else None
        return found if found is not None and found.in_transaction() else None
