"""Remembering, for a short while, that a token was found valid, so that most requests verify without a
database query or a thread hop.

A verdict is kept for ``interval`` seconds (and never past the token's own expiry). Within that time a
revocation made in another engine process sharing the store is not yet seen; revocations made through
this process are applied at once (``forget``). An interval of 0 looks every token up on every request.

A verification that read the store before a revocation committed must not cache its verdict after the
revocation forgot it: each forget moves a generation on, a verification takes the generation before it reads
(``generation``), and ``put`` keeps nothing reached in an older one.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import jwt

from twinengine.auth.issuer import split_bearer
from twinengine.auth.principal import Principal

__all__ = ["VerdictCache"]


class VerdictCache:
    """Principals of recently verified tokens, least recently used out first (``capacity`` tokens)."""

    def __init__(self, interval: float, *, capacity: int = 4096) -> None:
        self.interval = interval
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[Principal, float]] = OrderedDict()  # token -> (principal, until)
        self._lock = threading.Lock()
        self._generation = 0  # moved on by every forget: a verdict read before it is not kept

    def get(self, token: str) -> Principal | None:
        if self.interval <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            found = self._items.get(token)
            if found is None:
                return None
            if found[1] <= now:
                del self._items[token]
                return None
            self._items.move_to_end(token)
            return found[0]

    def generation(self) -> int:
        """Taken before a verification reads the store, and handed to ``put`` with its verdict."""
        with self._lock:
            return self._generation

    def put(self, token: str, principal: Principal, generation: int | None = None) -> None:
        """Remember a verdict just reached by a full verification (signature, expiry, database) that began in
        ``generation``: if anything was forgotten since, the verdict may predate it and is not kept."""
        if self.interval <= 0:
            return
        until = time.monotonic() + self.interval
        try:
            claims = jwt.decode(split_bearer(token)[1], options={"verify_signature": False})  # the caller verified it
        except jwt.InvalidTokenError:  # an opaque provider token: its provider checked its expiry
            claims = {}
        expiry = claims.get("exp")
        if expiry is not None:
            until = min(until, time.monotonic() + float(expiry) - time.time())
        with self._lock:
            if generation is not None and generation != self._generation:
                return
            self._items[token] = (principal, until)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def forget_identity(self, name: str) -> None:
        """Drop the verdicts for every token of identity ``name`` (disabled or deleted: it stops at once)."""
        with self._lock:
            self._generation += 1
            for token in [t for t, (p, _) in self._items.items() if p.name == name]:
                del self._items[token]

    def forget(self, token_id: str | None = None) -> None:
        """Drop the verdicts for one token id (all of them when None): its next use is looked up again."""
        with self._lock:
            self._generation += 1
            if token_id is None:
                self._items.clear()
                return
            for token in [t for t, (p, _) in self._items.items() if p.token_id == token_id]:
                del self._items[token]
