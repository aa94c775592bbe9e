"""Endpoint credentials encrypted at rest (Fernet), with a key created once in ``<data_dir>/keys`` (0600).

Plain credentials exist only in memory while a backend is built; they never reach logs or responses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["Keyring"]

KEY_FILE = "lake-credentials.fernet"


class Keyring:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> Keyring:
        """The key at ``keys_dir/lake-credentials.fernet``; created atomically (mode 0600) if missing."""
        path = keys_dir / KEY_FILE
        if not path.exists():
            keys_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp-{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # another process may have won the race: then theirs is the key
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return cls(path.read_bytes().strip())

    def seal(self, secret: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(secret, sort_keys=True).encode()).decode()

    def open(self, token: str) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ValueError("the stored credential cannot be decrypted with this engine's key") from None
        return value
