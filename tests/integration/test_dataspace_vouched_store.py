"""What the shared identity provider vouched for, kept in the store: two messages of one participant that arrive
at once both write it (one statement, not a read and then an insert that collides on PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from helpers import Engine
from twinengine.dataspace import vouching
from twinengine.dataspace.models import VouchedClaims

pytestmark = pytest.mark.every_store

DID = "did:web:hydro.example"


def test_two_messages_at_once_both_record_what_was_vouched(engine: Engine) -> None:
    db, now = engine.runtime.db, datetime.now(UTC)
    first = vouching.Vouched("https://aai.example.org", "hydro-engine", "Hydro Institute", frozenset({"vo"}))
    second = vouching.Vouched("https://aai.example.org", "hydro-engine", "Hydro Lab", frozenset())
    errors: list[BaseException] = []

    def later() -> None:
        try:
            with db.session() as session:
                vouching.record(session, DID, second, now=now + timedelta(seconds=1), max_age=timedelta(days=1))
        except BaseException as exc:  # told to the test below
            errors.append(exc)

    with db.session() as session:  # the first message's unit of work, not yet committed when the second writes
        vouching.record(session, DID, first, now=now, max_age=timedelta(days=1))
        session.flush()
        other = threading.Thread(target=later)
        other.start()
        other.join(0.5)  # it waits for this unit of work (the row or the store's write lock is held)
    other.join(30)
    assert not errors, errors
    with db.session(readonly=True) as session:
        row = session.get(VouchedClaims, DID)
        assert row is not None and row.organisation == "Hydro Lab" and row.groups == []
        assert row.good_until == now + timedelta(seconds=1) + timedelta(days=1)
