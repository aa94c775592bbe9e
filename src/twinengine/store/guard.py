"""Nothing that waits on the world while a write transaction is open: no network call, no sleep, no second unit
of work on the same thread.

A write transaction holds SQLite's one write lock (a unit of work that may write starts with ``BEGIN IMMEDIATE``:
``store.engine``) or, from its first write statement, PostgreSQL's row locks, until it ends. Whatever it waits on
meanwhile, every writer of the engine waits on too: a frozen remote peer held the lock for its whole timeout, and
a second unit of work opened inside the first waited on the lock its own thread held (on SQLite for the busy
timeout, 30 s, then "database is locked"). So the I/O comes first, outside any transaction, and what it found
is written in a short one; a sign-in, a probe's result, a delivery's outcome is a write of its own, never nested.

``install`` turns the guard on for the process (the test suite does; ``settings.store_guard`` for an engine).
Each ``Database`` made after it is watched: the guard follows write transactions per connection and thread, and
checks what waits on the world: connects, sends, receives and name lookups of internet sockets (what httpx,
requests, Dask's comm and the brokers' clients use underneath), ``time.sleep``, a second connection taken on the
thread, and the calls code declares with ``blocking``. A violation is recorded (``violations``), logged in mode
``log`` and raised as ``HeldAcrossIO`` in mode ``raise``. Off, the default, nothing is installed and nothing costs.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine, event

__all__ = ["GuardMode", "HeldAcrossIO", "Violation", "blocking", "holding", "install", "mode", "violations",
           "watch"]

log = logging.getLogger("twinengine.store")

GuardMode = Literal["off", "log", "raise"]
KEEP = 200  # violations kept for ``violations`` (the latest)


class HeldAcrossIO(RuntimeError):
    """Raised (mode ``raise``) when a thread with a write transaction open calls out to the network, sleeps, or
    opens a second unit of work: a bug in the caller, refused before the call is made."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One call the guard caught: what it was, on which thread, and where it was made."""

    what: str
    thread: str
    stack: str

    def __str__(self) -> str:
        return f"{self.what} on thread {self.thread} while a write transaction was open, at:\n{self.stack}"


_mode: GuardMode = "off"
_lock = threading.Lock()
_writing: dict[int, int] = {}  # id of a DBAPI connection holding a write transaction -> thread using it
_found: list[Violation] = []
_watched: weakref.WeakSet[Engine] = weakref.WeakSet()
_reporting = threading.local()  # a violation's own report never counts as one
_patched = False
_INET = (socket.AF_INET, socket.AF_INET6)
_WRITE_WORDS = ("INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE", "LOCK")
_ROW_LOCKS = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+)?UPDATE\b|\bFOR\s+(?:KEY\s+)?SHARE\b", re.IGNORECASE)
_CTE_WRITES = re.compile(r"\b(?:INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.IGNORECASE)


def install(new_mode: GuardMode) -> None:
    """Set the process's guard to ``new_mode``; the first mode other than ``off`` puts its checks in place (they
    stay, and do nothing while the mode is ``off``). Engines are watched from their ``Database``'s start on."""
    global _mode, _patched
    with _lock:
        _mode = new_mode
        if new_mode == "off" or _patched:
            return
        _patched = True
    _patch_sockets()
    _patch_sleep()
    sys.addaudithook(_audit)


def mode() -> GuardMode:
    return _mode


def _on() -> bool:
    return _mode != "off"


def watch(engine: Engine, *, readonly_option: str) -> None:
    """Follow ``engine``'s write transactions (no-op while the guard is off). On SQLite a unit of work not opened
    with ``readonly_option`` holds the write lock from its BEGIN; on a server database a transaction holds row
    locks from its first write statement (or ``SELECT ... FOR UPDATE``)."""
    if _mode == "off" or engine in _watched:
        return
    _watched.add(engine)
    from_begin = engine.dialect.name == "sqlite"

    def check_begin(connection: Any) -> None:
        """Before the BEGIN (SQLite's would wait on the lock this thread holds): a second unit of work."""
        if _on() and _writing and _holds(threading.get_ident(), but=_key(connection)):
            _violate("a second unit of work (another connection of the store)")

    def mark_begin(connection: Any) -> None:
        if from_begin and not connection.get_execution_options().get(readonly_option, False):
            _hold(_key(connection))

    def on_execute(connection: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        key = _key(connection)
        owner = _writing.get(key)
        if owner is not None:
            if owner != threading.get_ident():  # the unit of work moved to another thread (a pool thread's commit)
                _hold(key)
            return
        if not from_begin and _is_write(statement) \
                and connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            _hold(key)

    def on_end(connection: Any) -> None:
        _release(_key(connection))

    def on_checkin(dbapi_connection: Any, _record: Any) -> None:
        _release(id(dbapi_connection))

    event.listen(engine, "begin", check_begin, insert=True)
    event.listen(engine, "begin", mark_begin)
    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_end)
    event.listen(engine, "rollback", on_end)
    event.listen(engine, "checkin", on_checkin)


def holding() -> bool:
    """Whether the calling thread has a write transaction open on a watched engine."""
    return bool(_writing) and _holds(threading.get_ident())


def blocking(what: str) -> None:
    """Declare that the caller is about to wait on ``what`` (a remote peer, a process): a violation when its
    thread holds a write transaction. For waits the socket checks cannot see (another thread's I/O)."""
    if _on() and holding():
        _violate(what)


def violations(*, clear: bool = False) -> list[Violation]:
    """The violations recorded (the latest ``KEEP``); ``clear`` forgets them."""
    with _lock:
        found = list(_found)
        if clear:
            _found.clear()
    return found


def _key(connection: Any) -> int:
    """The DBAPI connection's id (0 once the connection is gone: its check-in releases it)."""
    try:
        return id(connection.connection.dbapi_connection)
    except Exception:  # closed or invalidated
        return 0


def _hold(key: int) -> None:
    with _lock:
        _writing[key] = threading.get_ident()


def _release(key: int) -> None:
    if _writing:
        with _lock:
            _writing.pop(key, None)


def _holds(thread: int, *, but: int | None = None) -> bool:
    with _lock:
        return any(owner == thread and key != but for key, owner in _writing.items())


def _is_write(statement: str) -> bool:
    """A statement that takes row locks until the transaction ends: a write, or a read that locks rows."""
    head = statement.lstrip()[:8].upper()
    if head.startswith(_WRITE_WORDS):
        return True
    if head.startswith("SELECT"):
        return _ROW_LOCKS.search(statement) is not None
    return head.startswith("WITH") and (_ROW_LOCKS.search(statement) or _CTE_WRITES.search(statement)) is not None


def _violate(what: str) -> None:
    if getattr(_reporting, "active", False):
        return
    _reporting.active = True
    try:
        found = Violation(what, threading.current_thread().name, "".join(traceback.format_stack(limit=30)[:-2]))
        with _lock:
            _found.append(found)
            del _found[:-KEEP]
        log.error("%s", found)
    finally:
        _reporting.active = False
    if _mode == "raise":
        raise HeldAcrossIO(f"{what} while a write transaction is open on this thread: do the I/O outside the "
                           "transaction and write its outcome in a short one of its own")


def _audit(name: str, args: tuple[Any, ...]) -> None:
    """Name lookups, heard as audit events: they are made from C too (``_socket.getaddrinfo``), where no wrapper
    reaches. The hook stays for the process's life (Python has no way to remove one) and passes every other event."""
    if name == "socket.getaddrinfo" and _writing and _on() and holding():
        _violate(f"a name lookup of {args[0]!r}")


def _patch_sleep() -> None:
    """``time.sleep`` as the module's callers find it (code that bound it earlier keeps the original)."""
    original = time.sleep

    def sleep(seconds: Any) -> None:  # a float, or an int (time.sleep takes both)
        if seconds > 0 and _writing and _on() and holding():
            _violate(f"time.sleep({seconds})")
        original(seconds)

    sleep.__doc__ = original.__doc__
    time.sleep = sleep


_SOCKET_CALLS = ("connect", "connect_ex", "send", "sendall", "sendto", "sendmsg", "recv", "recv_into", "recvfrom",
                 "recvfrom_into", "recvmsg", "read", "write", "do_handshake")


def _patch_sockets() -> None:
    """Wrap the calls of internet sockets (plain and TLS) that wait on a peer."""
    for cls in (socket.socket, ssl.SSLSocket):
        for name in _SOCKET_CALLS:
            original = cls.__dict__.get(name) if cls is ssl.SSLSocket else getattr(cls, name, None)
            if original is not None:
                setattr(cls, name, _guarded(name, original))


def _guarded(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def call(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
        if _writing and _on() and self.family in _INET and holding():
            _violate(f"socket {name} ({_peer(self, args)})")
        return original(self, *args, **kwargs)

    call.__name__ = name
    call.__doc__ = original.__doc__
    return call


def _peer(sock: socket.socket, args: tuple[Any, ...]) -> str:
    try:
        return str(sock.getpeername())
    except OSError:
        return str(args[0]) if args else "not connected"
