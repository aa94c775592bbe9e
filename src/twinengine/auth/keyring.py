"""The built-in issuer's signing keys in generations, shared by every engine on one store, so they rotate.

The store holds each generation's key id (``kid``, the RFC 7638 thumbprint) and public key; the private
halves stay in the data dir (``keys/<kid>.pem``, mode 0600; generation 1 is the original
``keys/issuer-es256.pem``). The highest promoted generation is *current* and signs; the one after it is
*next*, published in the JWKS ahead of time so that verifiers elsewhere know it before it signs; older ones
are *retired*: they verify tokens that carry an expiry until it passes, and nothing else. A rotation
promotes next to current and makes a new next. Each engine reads the generations again every
``refresh`` seconds, and at once when a token names a key it has not seen (at most once a second), so a
rotation made by one engine is followed by the others within seconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from twinengine.auth.models import SigningKey
from twinengine.errors import Conflict
from twinengine.store.base import upsert, utcnow
from twinengine.store.engine import Database

__all__ = ["Generation", "Keyring", "kid_of"]

CURRENT, NEXT, RETIRED = "current", "next", "retired"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key, as_dict=True)
    return jwk


def kid_of(key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 thumbprint of the key's JWK: the same key has the same id on every engine."""
    jwk = public_jwk(key)
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def _pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write ``key`` at ``path`` (0600) atomically; an existing file (the same kid: the same key) stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_suffix(f".tmp-{os.getpid()}-{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


@dataclass(frozen=True)
class Generation:
    generation: int
    kid: str
    public: ec.EllipticCurvePublicKey
    created_at: datetime
    promoted_at: datetime | None
    state: str


class Keyring:
    """The generations of one store's signing keys, as this engine last read them."""

    def __init__(self, db: Database, key_dir: Path, root: ec.EllipticCurvePrivateKey, *,
                 refresh: float = 2.0) -> None:
        self.db = db
        self.key_dir = key_dir
        self.root = root
        self.root_kid = kid_of(root.public_key())
        self.refresh = refresh
        self._lock = threading.Lock()
        self._generations: dict[str, Generation] = {}
        self._read_at = 0.0
        self._missed_at = 0.0
        self._private: dict[str, ec.EllipticCurvePrivateKey] = {self.root_kid: root}

    # -- the store ------------------------------------------------------------------------------

    def prepare(self, session: Session) -> None:
        """Make sure the store has a current and a next generation (the first: this data dir's key)."""
        dialect = session.get_bind().dialect.name
        if session.scalar(select(SigningKey.generation).limit(1)) is None:
            session.execute(upsert(dialect, SigningKey).values(
                generation=1, kid=self.root_kid, public_pem=_pem(self.root.public_key()), created_at=utcnow(),
                promoted_at=utcnow()).on_conflict_do_nothing(index_elements=["generation"]))
        rows = list(session.scalars(select(SigningKey).order_by(SigningKey.generation)))
        current = max((r.generation for r in rows if r.promoted_at is not None), default=0)
        if not any(r.generation == current + 1 for r in rows):
            self._add(session, current + 1)
        session.flush()

    def _add(self, session: Session, generation: int) -> str:
        """A new key of ``generation`` (not promoted): its private half in the data dir, first."""
        key = ec.generate_private_key(ec.SECP256R1())
        kid = kid_of(key.public_key())
        _write_private(self.key_dir / f"{kid}.pem", key)
        dialect = session.get_bind().dialect.name
        session.execute(upsert(dialect, SigningKey).values(
            generation=generation, kid=kid, public_pem=_pem(key.public_key()), created_at=utcnow(),
            promoted_at=None).on_conflict_do_nothing(index_elements=["generation"]))
        return kid

    def rotate(self, session: Session) -> tuple[str, str]:
        """Promote next to current and make a new next; returns (current kid, next kid)."""
        self.prepare(session)
        rows = list(session.scalars(select(SigningKey).order_by(SigningKey.generation).with_for_update()))
        current = max(r.generation for r in rows if r.promoted_at is not None)
        following = next(r for r in rows if r.generation == current + 1)
        if self._private_key(following.kid) is None:
            raise Conflict(f"the next signing key {following.kid} has no private key in this engine's data dir "
                           f"({self.key_dir}); rotate from an engine that shares it")
        following.promoted_at = utcnow()
        try:
            with session.begin_nested():
                added = self._add(session, current + 2)
                session.flush()
        except IntegrityError:
            raise Conflict("another engine rotated the signing keys at the same moment; look again") from None
        if session.get(SigningKey, current + 2) is None or session.get_one(SigningKey, current + 2).kid != added:
            raise Conflict("another engine rotated the signing keys at the same moment; look again")
        session.flush()
        self._read_at = 0.0  # read again at the next use
        return following.kid, added

    def _read(self) -> None:
        with self.db.reading() as session:  # in the unit of work a token is signed in, if any (store.guard)
            rows = list(session.scalars(select(SigningKey).order_by(SigningKey.generation)))
            found: dict[str, Generation] = {}
            current = max((r.generation for r in rows if r.promoted_at is not None), default=0)
            for r in rows:
                public = serialization.load_pem_public_key(r.public_pem.encode())
                if not isinstance(public, ec.EllipticCurvePublicKey):
                    continue
                state = CURRENT if r.generation == current else NEXT if r.generation > current else RETIRED
                found[r.kid] = Generation(r.generation, r.kid, public, r.created_at, r.promoted_at, state)
        with self._lock:
            self._generations = found
            # None yet: the first start's transaction has not committed them; read again at the next use
            self._read_at = time.monotonic() if found else 0.0

    def generations(self, *, fresh: bool = False) -> dict[str, Generation]:
        if fresh or time.monotonic() - self._read_at > self.refresh:
            self._read()
        return self._generations

    # -- signing and verifying ------------------------------------------------------------------

    def _private_key(self, kid: str) -> ec.EllipticCurvePrivateKey | None:
        key = self._private.get(kid)
        if key is None:
            path = self.key_dir / f"{kid}.pem"
            if not path.exists():
                return None
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                return None
            key = self._private[kid] = loaded
        return key

    def signing_key(self) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """The current generation's key id and private key."""
        current = next((g for g in self.generations().values() if g.state == CURRENT), None)
        if current is None:
            return self.root_kid, self.root
        key = self._private_key(current.kid)
        if key is None:
            raise Conflict(f"the current signing key {current.kid} has no private key in {self.key_dir}")
        return current.kid, key

    def find(self, kid: str) -> Generation | None:
        """The generation with ``kid``: read again once if unknown (a rotation elsewhere), at most once a second."""
        found = self.generations().get(kid)
        if found is None and time.monotonic() - self._missed_at > 1.0:
            self._missed_at = time.monotonic()
            found = self.generations(fresh=True).get(kid)
        if found is None and kid == self.root_kid and not self._generations:
            # a store that lists no key yet (first start, or its table just made again): this data dir's own
            # key is the one ``signing_key`` signs with, so it is the one that verifies
            now = utcnow()
            found = Generation(1, self.root_kid, self.root.public_key(), now, now, CURRENT)
        return found

    def published(self) -> list[Generation]:
        """Current and next, as the JWKS publishes them."""
        return sorted((g for g in self.generations().values() if g.state in (CURRENT, NEXT)),
                      key=lambda g: g.generation)
