"""Two units of work that create the same row at once: the second waits for the first and then finds the row
or replaces it, never a unique-key collision (which was a 500). The interleaving is forced: the first
holds its insert uncommitted until the second is seen waiting for it (PostgreSQL: an ungranted lock;
SQLite serialises writers, so there the second simply begins after the first)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from twinengine.auth.models import Identity
from twinengine.auth.service import ensure_identity
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.store import guard
from twinengine.workflows import udp
from twinengine.workflows.models import UserProcess

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores


@pytest.fixture
def settings(settings: Settings) -> Iterator[Settings]:
    """These tests hold a write transaction open and wait on purpose (the interleaving they force): the store's
    guard, which refuses exactly that, is off for them."""
    before = guard.mode()
    guard.install("off")
    yield settings.model_copy(update={"store_guard": "off"})
    guard.install(before)


def _second_waits_for_first(runtime: Runtime, first: Callable[[Session], Any], second: Callable[[Session], Any]
                            ) -> Any:
    """Run ``first`` in a unit of work left open until ``second``, in another, waits on it; then commit both
    and return what ``second`` returned (or raise what it raised)."""
    db = runtime.db
    outcome: dict[str, Any] = {}
    holder = db.open()
    first(holder)
    holder.flush()

    def run_second() -> None:
        try:
            with db.session() as session:
                outcome["value"] = second(session)
        except BaseException as error:  # re-raised below, in the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run_second)
    thread.start()
    if db.backend == "postgresql":
        deadline = time.monotonic() + 10
        with db.engine.connect() as watcher:
            while not watcher.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar():
                assert time.monotonic() < deadline, "the second unit of work never waited for the first"
                time.sleep(0.02)
    else:
        time.sleep(0.3)
    db.close(holder, commit=True)
    thread.join(timeout=30)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_two_first_uses_of_an_identity_both_find_it(settings: Settings) -> None:
    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        found = _second_waits_for_first(runtime, lambda s: ensure_identity(s, "newcomer", created_by="a"),
                                        lambda s: ensure_identity(s, "newcomer", created_by="b").created_by)
        assert found == "a"  # the first one's row, found by the second
        with runtime.db.session() as session:
            assert session.scalars(select(Identity.name).where(Identity.name == "newcomer")).all() == ["newcomer"]
    finally:
        runtime.close()


def test_two_puts_of_a_user_process_at_once_leave_the_later_one(settings: Settings) -> None:
    runtime = Runtime.from_settings(settings)
    runtime.start()
    graph = {"add": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": True}}
    try:
        _second_waits_for_first(
            runtime, lambda s: udp.store(s, "uma", "twice", {"process_graph": graph, "summary": "first"}),
            lambda s: udp.store(s, "uma", "twice", {"process_graph": graph, "summary": "second"}))
        with runtime.db.session() as session:
            rows = session.scalars(select(UserProcess).where(UserProcess.id == "twice")).all()
            assert [(r.owner, r.process["summary"], r.process["id"]) for r in rows] == [("uma", "second", "twice")]
    finally:
        runtime.close()


def test_two_engines_starting_at_once_both_find_the_local_site(settings: Settings) -> None:
    """Two ``twin serve`` workers starting together on PostgreSQL both make the site ``local`` (an
    IntegrityError on its name, which stopped the second worker's start)."""
    from twinengine.compute.models import ComputeSite
    from twinengine.compute.sites import DEFAULT_SITE, ensure_default_site

    runtime = Runtime.from_settings(settings)
    runtime.start()
    try:
        with runtime.db.session() as session:
            session.execute(delete(ComputeSite).where(ComputeSite.name == DEFAULT_SITE))
        executor = runtime.workflows.executor
        created = _second_waits_for_first(runtime, lambda s: ensure_default_site(s, executor),
                                          lambda s: ensure_default_site(s, executor).created_at)
        with runtime.db.session() as session:
            rows = session.scalars(select(ComputeSite).where(ComputeSite.name == DEFAULT_SITE)).all()
            assert [(r.name, r.created_at) for r in rows] == [(DEFAULT_SITE, created)]
    finally:
        runtime.close()
