"""The store an engine needs before anything else: migrated, with its signing key and its first admin.

``twin serve`` prepares it before the rest of the engine is imported (so ``/health`` can answer early), the
runtime does it again on start (a no-op then), and admin commands on a data dir (``twin token create
--data-dir``) need only this: none of the engine's loops.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from twinengine.auth.issuer import BuiltinIssuer
from twinengine.auth.keys import load_or_create_signing_key
from twinengine.auth.service import bootstrap_admin
from twinengine.config import Settings
from twinengine.store import migrate
from twinengine.store.engine import Database

__all__ = ["LocalStore", "announce_admin_token", "issuer_for", "local_store", "prepare_store"]

_PG_BOOTSTRAP_LOCK = 0x74776164


def issuer_for(settings: Settings) -> BuiltinIssuer:
    """The engine's built-in token issuer, with the data dir's signing key (created on first use)."""
    return BuiltinIssuer(load_or_create_signing_key(settings.data_dir / "keys" / "issuer-es256.pem"),
                         settings.token_issuer)


def prepare_store(db: Database, issuer: BuiltinIssuer, settings: Settings) -> str | None:
    """Migrate the store, then create the first admin if there is none. Returns that admin's token (only on
    the very first start; engines starting together on PostgreSQL create one admin between them)."""
    migrate.upgrade(db)
    with db.session() as session:
        if db.backend == "postgresql":
            session.execute(text(f"SELECT pg_advisory_xact_lock({_PG_BOOTSTRAP_LOCK})"))
        if issuer.keyring is None:  # the generations of signing keys (auth/keyring.py)
            issuer.use_store(db, settings.data_dir / "keys", session)
        return bootstrap_admin(session, issuer, data_dir=settings.data_dir, ttl=settings.admin_token_ttl)


def announce_admin_token(token: str, data_dir: Path) -> None:
    print(
        "\ntwinengine: first start, created the identity 'admin'.\n"
        "  Its token is shown once, here, and kept nowhere; on this machine\n"
        f"  `twin token create --data-dir {shlex.quote(str(data_dir))} --name admin --role admin` issues another:\n\n"
        f"  {token}\n",
        file=sys.stderr,
        flush=True,
    )


@dataclass
class LocalStore:
    """An engine's store and issuer opened by an admin command on its machine."""

    settings: Settings
    db: Database
    issuer: BuiltinIssuer


@contextmanager
def local_store(settings: Settings) -> Iterator[LocalStore]:
    """Open (and prepare) the data dir's store for one admin command; safe beside a running engine."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    try:
        issuer = issuer_for(settings)
        prepare_store(db, issuer, settings)
        yield LocalStore(settings=settings, db=db, issuer=issuer)
    finally:
        db.dispose()
