"""A PostgreSQL database of a test's own, for tests that start engines or contenders of their own on it
(advisory locks are per database: no other test's engines contend)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from helpers import unavailable

POSTGRES_ADMIN_URL = os.environ.get("TWIN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def new_database(prefix: str) -> Iterator[str]:
    """A new database named ``<prefix>_<random>`` (libpq URL), dropped afterwards, connections and all."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable("postgresql", f"cannot connect to {POSTGRES_ADMIN_URL}: {exc}")
        raise
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rpartition("/")[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def own_database() -> Iterator[str]:
    """A new database (libpq URL), dropped after the test."""
    with new_database("twin_own") as url:
        yield url
