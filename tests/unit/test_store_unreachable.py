"""``store_unreachable`` tells the store out of reach (503, wait) from its refusal of a write and from a bug
(both answered as before): real driver errors where they can be made here, PostgreSQL's states otherwise."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from helpers import free_port
from twinengine.store.outage import store_unreachable


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def test_a_server_that_does_not_answer_is_unreachable() -> None:
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(OperationalError) as refused:
        engine.connect()
    assert store_unreachable(refused.value)


def test_sqlites_own_operational_errors_are_not_an_outage() -> None:
    engine = create_engine("sqlite://")
    with engine.connect() as connection, pytest.raises(OperationalError) as missing:
        connection.execute(text("SELECT * FROM no_such_table"))
    assert isinstance(missing.value.orig, sqlite3.OperationalError)
    assert not store_unreachable(missing.value)


@pytest.mark.parametrize(("state", "outage"), [("08006", True), ("08001", True), ("57P01", True), ("57P03", True),
                                               ("23505", False), ("40P01", False), ("42P01", False)])
def test_postgresql_states(state: str, outage: bool) -> None:
    assert store_unreachable(DBAPIError("SELECT 1", {}, _Orig(state))) is outage


def test_a_dropped_connection_is_unreachable_whatever_its_state() -> None:
    dropped = OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed the connection"),
                               connection_invalidated=True)
    assert store_unreachable(dropped)
    assert not store_unreachable(IntegrityError("INSERT", {}, _Orig("23505")))
    assert not store_unreachable(ValueError("not a store error"))
