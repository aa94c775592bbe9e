"""The store's one writer: units of work handed in from many threads, applied by one thread in groups.

On SQLite the whole database has one write lock. Writers that each take it with ``BEGIN IMMEDIATE`` are
ordered by SQLite's busy handler, which sleeps with a growing back-off (1, 2, 5 ... 100 ms) while the lock
is held, and each commits alone (one fsync per write). Handed to one thread instead, the units pending at
a time share one transaction and one durable commit; a caller's future completes only after that commit,
and a commit that fails fails every unit of its group, none of which is then visible.

A unit is its ``work`` (run in a savepoint of its own: one that raises is refused alone and leaves
nothing behind) and, optionally, a ``together`` function and its ``item``: consecutive units with equal
``together`` are applied by one call of it on all their items (the statements of a batch instead of
each unit's own), in a savepoint; should that call raise, each of them runs its ``work`` alone instead.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

__all__ = ["GROUP_MOST", "THREAD_NAME", "StoreWriter", "Together"]

log = logging.getLogger("twinengine.store")

T = TypeVar("T")
GROUP_MOST = 64  # units of work in one transaction: bounds how long the write lock is held at a time
THREAD_NAME = "twinengine-store-writer"

Together = Callable[[Session, list[Any]], Sequence[Any]]
"""Applies many units' items in the caller's transaction; returns one outcome per item, in order: what the
item's ``work`` would have returned, or the exception refusing it (a refused item has written nothing)."""


@dataclass(frozen=True, slots=True)
class _Unit(Generic[T]):
    work: Callable[[Session], T]
    future: Future[T]
    together: Together | None = None
    item: Any = None


class StoreWriter:
    """Runs every submitted unit on one thread, many units to a transaction.

    The thread starts on the first ``submit`` and ends on ``close`` once every unit handed in before is
    done; a ``submit`` after ``close`` starts it again."""

    def __init__(self, sessions: Callable[[], Session], *, most: int = GROUP_MOST,
                 name: str = THREAD_NAME) -> None:
        self._sessions = sessions
        self._most = most
        self._name = name
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: deque[_Unit[Any]] = deque()
        self._thread: threading.Thread | None = None
        self._closing = False

    def submit(self, work: Callable[[Session], T], *, together: Together | None = None,
               item: Any = None) -> Future[T]:
        """Hand ``work`` (and its ``item`` for ``together``) to the writer; its future holds what it
        returned once its group is committed, or what refused it (or what the group's commit raised).
        Cancelling the future before the writer takes it up leaves it unwritten."""
        unit: _Unit[T] = _Unit(work, Future(), together, item)
        with self._lock:
            self._pending.append(unit)
            if self._thread is None:
                self._closing = False
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._wake.notify()
        return unit.future

    @property
    def waiting(self) -> int:
        """Units handed in and not yet taken up by the writer."""
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Finish the units already handed in, then end the thread (waits for it)."""
        with self._lock:
            self._closing = True
            thread = self._thread
            self._wake.notify()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if not self._pending:  # closing, and nothing left
                    self._thread = None
                    return
                group = [self._pending.popleft() for _ in range(min(self._most, len(self._pending)))]
            self._apply([unit for unit in group if unit.future.set_running_or_notify_cancel()])

    def _apply(self, group: list[_Unit[Any]]) -> None:
        """One transaction for the group; the futures complete after its commit."""
        if not group:
            return
        outcomes: list[tuple[_Unit[Any], Any, BaseException | None]] = []
        session = self._sessions()
        try:
            session.connection()  # the transaction (on SQLite: BEGIN IMMEDIATE, the write lock) for the group
            for run in _runs(group):
                if run[0].together is None or not _applied_together(session, run, outcomes):
                    for unit in run:
                        _apply_alone(session, unit, outcomes)
            session.commit()
        except BaseException as error:  # the group's transaction failed: none of it is written
            _rollback(session)
            for unit in group:
                unit.future.set_exception(error)
            return
        finally:
            session.close()
        for unit, answer, refusal in outcomes:
            if refusal is None:
                unit.future.set_result(answer)
            else:
                unit.future.set_exception(refusal)


def _runs(group: list[_Unit[Any]]) -> list[list[_Unit[Any]]]:
    """Consecutive units with equal ``together`` (a unit without one is a run of its own)."""
    runs: list[list[_Unit[Any]]] = []
    for unit in group:
        if runs and unit.together is not None and runs[-1][0].together == unit.together:
            runs[-1].append(unit)
        else:
            runs.append([unit])
    return runs


def _applied_together(session: Session, run: list[_Unit[Any]],
                      outcomes: list[tuple[_Unit[Any], Any, BaseException | None]]) -> bool:
    """Apply ``run`` by one call of its ``together``; False (nothing of it written) when that raised."""
    together = run[0].together
    assert together is not None
    try:
        with _savepoint(session):
            answers = together(session, [unit.item for unit in run])
            if len(answers) != len(run):
                raise RuntimeError(f"{len(answers)} outcomes for {len(run)} units of work")
    except Exception:
        log.warning("%d writes applied together failed; each is applied alone", len(run), exc_info=True)
        return False
    for unit, answer in zip(run, answers, strict=True):
        outcomes.append((unit, None, answer) if isinstance(answer, Exception) else (unit, answer, None))
    return True


def _apply_alone(session: Session, unit: _Unit[Any],
                 outcomes: list[tuple[_Unit[Any], Any, BaseException | None]]) -> None:
    try:
        with _savepoint(session):
            answer = unit.work(session)
    except Exception as error:  # refused: this unit only
        outcomes.append((unit, None, error))
    else:
        outcomes.append((unit, answer, None))


@contextmanager
def _savepoint(session: Session) -> Iterator[None]:
    """A savepoint for one unit (or one run): rolled back, with what the unit noted in ``session.info`` for
    after the commit, when it raises. The session's commit and rollback listeners also hear of a savepoint's
    end, so ``session.info`` is set aside meanwhile: they see the group's notes at its commit only (a state
    revision is announced once it is durable, and a refused unit does not take the others' notes along)."""
    before = _copy(session.info)
    try:
        with session.begin_nested():
            yield
            noted = _copy(session.info)
            session.info.clear()  # released on leaving the block
    except BaseException:
        _restore(session.info, before)
        raise
    _restore(session.info, noted)


def _copy(info: dict[Any, Any]) -> dict[Any, Any]:
    """``session.info`` as it is now, its lists copied (what units append to for after the commit)."""
    return {key: list(value) if isinstance(value, list) else value for key, value in info.items()}


def _restore(info: dict[Any, Any], notes: dict[Any, Any]) -> None:
    info.clear()
    info.update(notes)


def _rollback(session: Session) -> None:
    try:
        session.rollback()
    except Exception:  # the connection is gone; closing the session releases it
        log.exception("rolling back a group of writes failed")
