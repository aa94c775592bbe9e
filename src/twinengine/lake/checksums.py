"""Checksums computed while bytes flow: adler32 (Rucio's format, 8 hex digits) and sha256, in one pass.

Both hashlib and zlib release the GIL on large buffers, so a reader thread, the hashes and a writer overlap.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Checksums", "Hasher", "multihash_sha256", "normalize_adler32", "normalize_sha256"]

# Multihash prefix of sha2-256 (code 0x12, 32-byte digest), as STAC's file:checksum wants it.
_SHA256_MULTIHASH = "1220"


@dataclass(frozen=True)
class Checksums:
    """What a file is registered with: its size and both digests."""

    bytes: int
    adler32: str
    sha256: str

    @property
    def multihash(self) -> str:
        return multihash_sha256(self.sha256)


class Hasher:
    """Feed chunks with ``update``; ``result()`` gives size, adler32 and sha256 of everything fed.

    Large chunks are summed by adler32 on a helper thread while sha256 runs on the caller's, so the two
    digests cost about as much as sha256 alone on a machine with a spare core.
    """

    _PARALLEL_FROM = 256 * 1024

    def __init__(self, *, adler_fed_separately: bool = False,
                 release: Callable[[bytes | memoryview], None] | None = None) -> None:
        """With ``adler_fed_separately`` the caller feeds adler32 through ``update_adler`` (from the thread
        that writes the same chunks, which is the cheapest place on two cores) and ``update`` does sha256.
        ``release`` gets each chunk back once both digests are done with it (to recycle its buffer)."""
        self._release = release
        self._adler = 1
        self._sha = hashlib.sha256()
        self.bytes = 0
        self._separate = adler_fed_separately
        self._queue: queue.Queue[bytes | memoryview | None] | None = None
        self._thread: threading.Thread | None = None

    def update_adler(self, chunk: bytes | memoryview) -> None:
        self._adler = zlib.adler32(chunk, self._adler)

    def _adler_loop(self) -> None:
        assert self._queue is not None
        while (chunk := self._queue.get()) is not None:
            self._adler = zlib.adler32(chunk, self._adler)
            if self._release is not None:
                self._release(chunk)

    def update(self, chunk: bytes | memoryview) -> None:
        self._sha.update(chunk)
        self.bytes += len(chunk)
        if self._separate:  # the caller sums adler32 and recycles the chunk
            return
        if len(chunk) >= self._PARALLEL_FROM:
            if self._thread is None:
                self._queue = queue.Queue(maxsize=8)
                self._thread = threading.Thread(target=self._adler_loop, name="lake-adler32", daemon=True)
                self._thread.start()
            assert self._queue is not None
            self._queue.put(chunk)  # sha256 is done with it; the adler32 thread releases it
            return
        self._join()
        self._adler = zlib.adler32(chunk, self._adler)
        if self._release is not None:
            self._release(chunk)

    def _join(self) -> None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = self._queue = None

    def result(self) -> Checksums:
        self._join()
        return Checksums(self.bytes, f"{self._adler & 0xFFFFFFFF:08x}", self._sha.hexdigest())

    def __del__(self) -> None:
        if self._queue is not None:
            self._queue.put(None)


def multihash_sha256(sha256: str) -> str:
    return _SHA256_MULTIHASH + sha256


def normalize_adler32(value: str) -> str:
    """Rucio writes adler32 as 8 lowercase hex digits; accept fewer digits (leading zeros dropped)."""
    text = value.strip().lower()
    if not text or len(text) > 8 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{value!r} is not an adler32 checksum (up to 8 hex digits)")
    return text.zfill(8)


def normalize_sha256(value: str) -> str:
    """A sha256 as 64 hex digits; a multihash (``1220`` + digest) is accepted too."""
    text = value.strip().lower()
    if len(text) == 68 and text.startswith(_SHA256_MULTIHASH):
        text = text[4:]
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{value!r} is not a sha256 checksum (64 hex digits, or a 1220-prefixed multihash)")
    return text
