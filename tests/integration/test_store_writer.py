"""The store's one writer (SQLite): units of work from many threads share a transaction and one commit, a
refused unit fails alone and leaves nothing behind, no caller hears of its unit before the commit (a commit
that fails fails the whole group, none of it visible), and the thread ends with the store."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from twinengine.store.engine import Database
from twinengine.store.writer import THREAD_NAME, StoreWriter


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'writer.db'}")
    with database.session() as session:
        session.execute(text("CREATE TABLE rows (name TEXT PRIMARY KEY, n INTEGER NOT NULL)"))
    yield database
    database.dispose()


def names(db: Database) -> list[str]:
    with db.session(readonly=True) as session:
        return list(session.scalars(text("SELECT name FROM rows ORDER BY name")))


def insert(name: str, *, note: str | None = None) -> Any:
    def work(session: Session) -> str:
        session.execute(text("INSERT INTO rows (name, n) VALUES (:name, 1)"), {"name": name})
        if note is not None:
            session.info.setdefault("notes", []).append(note)
        return name
    return work


class Held:
    """A unit of work that keeps the writer busy until released, so that the units handed in meanwhile
    make one group."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, session: Session) -> str:
        self.started.set()
        assert self.release.wait(10)
        return "held"


def hold(writer: StoreWriter) -> tuple[Held, Future[str]]:
    held = Held()
    future = writer.submit(held)
    assert held.started.wait(10)
    return held, future


def test_units_from_many_threads_share_commits_and_each_gets_its_own_answer(db: Database) -> None:
    writer = db.writer
    assert writer is not None
    commits: list[int] = []
    event.listen(db.engine, "commit", lambda _connection: commits.append(1))
    with ThreadPoolExecutor(16) as pool:  # more callers than the writer has threads: it has one
        futures = list(pool.map(lambda i: writer.submit(insert(f"r{i:03d}")), range(200)))
        answers = [future.result(30) for future in futures]
    assert answers == [f"r{i:03d}" for i in range(200)]
    assert len(commits) <= 200
    held, first = hold(writer)
    grouped = [writer.submit(insert(f"g{i}")) for i in range(5)]
    assert writer.waiting == 5
    before = len(commits)
    held.release.set()
    assert [f.result(10) for f in [first, *grouped]] == ["held", "g0", "g1", "g2", "g3", "g4"]
    assert len(commits) - before == 2  # the held unit's group, then the five together
    assert names(db) == sorted([*answers, "g0", "g1", "g2", "g3", "g4"])


def test_a_refused_unit_fails_alone_and_leaves_nothing(db: Database) -> None:
    writer = db.writer
    assert writer is not None
    seen: list[list[str]] = []
    # a session's listeners hear of each savepoint's end too: they see the notes at the group's commit only
    event.listen(db.sessions, "after_commit", lambda session: seen.append(list(session.info.get("notes", []))))
    held, _ = hold(writer)

    def half_then_refused(session: Session) -> str:
        insert("half", note="half")(session)
        raise ValueError("refused after writing half")

    futures = [writer.submit(insert("a", note="a")), writer.submit(half_then_refused),
               writer.submit(insert("a")),  # a unique key the store refuses
               writer.submit(insert("b", note="b"))]
    held.release.set()
    assert futures[0].result(10) == "a" and futures[3].result(10) == "b"
    with pytest.raises(ValueError, match="half"):
        futures[1].result(10)
    with pytest.raises(Exception, match="UNIQUE"):
        futures[2].result(10)
    assert names(db) == ["a", "b"]
    assert [notes for notes in seen if notes] == [["a", "b"]]  # what the refused unit noted went with it


def test_no_unit_is_answered_before_its_commit_and_a_failed_commit_fails_the_group(db: Database) -> None:
    writer = db.writer
    assert writer is not None
    held, first = hold(writer)
    futures = [writer.submit(insert(f"x{i}")) for i in range(4)]
    done_at_commit: list[list[bool]] = []

    def fail_commit(session: Session) -> None:
        if session.in_nested_transaction():
            return
        done_at_commit.append([f.done() for f in futures])
        if len(done_at_commit) == 2:  # the second group: the four units
            raise OSError("disk full")

    event.listen(db.sessions, "before_commit", fail_commit)
    held.release.set()
    assert first.result(10) == "held"
    for future in futures:
        with pytest.raises(OSError, match="disk full"):
            future.result(10)
    assert done_at_commit == [[False] * 4, [False] * 4]
    assert names(db) == []
    event.remove(db.sessions, "before_commit", fail_commit)
    assert writer.submit(insert("after")).result(10) == "after"  # the writer goes on


def test_units_with_a_together_function_are_applied_by_one_call(db: Database) -> None:
    writer = db.writer
    assert writer is not None
    calls: list[list[str]] = []

    def together(session: Session, items: list[str]) -> Sequence[Any]:
        calls.append(list(items))
        if "boom" in items:
            raise RuntimeError("together failed")
        accepted = [item for item in items if item != "refused"]
        session.execute(text("INSERT INTO rows (name, n) VALUES (:name, 2)"), [{"name": i} for i in accepted])
        return [ValueError("refused") if item == "refused" else item for item in items]

    held, _ = hold(writer)
    futures = {item: writer.submit(insert(item), together=together, item=item) for item in ("t1", "refused", "t2")}
    held.release.set()
    assert futures["t1"].result(10) == "t1" and futures["t2"].result(10) == "t2"
    with pytest.raises(ValueError, match="refused"):
        futures["refused"].result(10)
    assert calls == [["t1", "refused", "t2"]]
    with db.session(readonly=True) as session:
        assert {name: n for name, n in session.execute(text("SELECT name, n FROM rows"))} == {"t1": 2, "t2": 2}

    held, _ = hold(writer)  # when the call raises, each unit runs its own work instead
    futures = {item: writer.submit(insert(item), together=together, item=item) for item in ("u1", "boom")}
    held.release.set()
    assert futures["u1"].result(10) == "u1" and futures["boom"].result(10) == "boom"
    with db.session(readonly=True) as session:
        assert session.execute(text("SELECT n FROM rows WHERE name = 'u1'")).scalar() == 1


def test_a_unit_cancelled_before_the_writer_takes_it_is_not_written(db: Database) -> None:
    writer = db.writer
    assert writer is not None
    held, _ = hold(writer)
    cancelled, kept = writer.submit(insert("cancelled")), writer.submit(insert("kept"))
    assert cancelled.cancel()
    held.release.set()
    assert kept.result(10) == "kept" and names(db) == ["kept"]


def test_the_writer_ends_with_the_store_after_the_units_handed_in(db: Database) -> None:
    writer = db.writer
    assert writer is not None
    held, _ = hold(writer)
    pending = writer.submit(insert("pending"))
    closing = threading.Thread(target=db.dispose)
    closing.start()
    held.release.set()
    closing.join(10)
    assert not closing.is_alive()
    assert pending.result(0) == "pending"
    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME]
    assert writer.submit(insert("again")).result(10) == "again"  # a store used again starts it again
    assert names(db) == ["again", "pending"]


def test_a_server_database_has_no_writer(tmp_path: Path) -> None:
    assert Database(f"sqlite:///{tmp_path / 'x.db'}").writer is not None
    assert Database("postgresql+psycopg://nobody@127.0.0.1:1/none").writer is None
