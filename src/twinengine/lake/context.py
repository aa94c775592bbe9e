"""What the lake's services share at run time: the credential keyring, the tunables, and one storage backend
object per endpoint (rebuilt when the endpoint changes)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from twinengine.lake.keyring import Keyring
from twinengine.lake.models import Endpoint
from twinengine.lake.storage import StorageBackend, backend_class

__all__ = ["Lake", "LakeTuning"]


@dataclass(frozen=True)
class LakeTuning:
    """Retry, grace and timeout knobs of the daemons (from settings; tests shorten them)."""

    transfer_attempts: int = 5
    transfer_backoff: timedelta = timedelta(seconds=10)
    tombstone_grace: timedelta = timedelta(minutes=10)
    stale_after: timedelta = timedelta(minutes=2)
    stuck_retry: timedelta = timedelta(minutes=5)
    heartbeat: timedelta = timedelta(seconds=10)
    #: Deepest nesting and largest JSON size of a DID's ``meta`` and ``geometry`` (lake_meta_max_*).
    meta_max_depth: int = 32
    meta_max_bytes: int = 64 * 1024


@dataclass
class Lake:
    keyring: Keyring
    tuning: LakeTuning = field(default_factory=LakeTuning)
    #: The engine's data dir: no `file` endpoint may live in it, except under its ``lake`` folder.
    data_dir: Path | None = None
    #: Folders `file` endpoints may live under (resolved); from_data_dir adds <data_dir>/lake.
    file_roots: tuple[Path, ...] = ()
    #: Hosts STAC imports may read from (lower case; ``*.example.org`` matches its subdomains); empty: none.
    import_hosts: tuple[str, ...] = ()
    _backends: dict[int, tuple[object, StorageBackend]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_data_dir(cls, data_dir: Path, tuning: LakeTuning | None = None, *,
                      file_roots: Sequence[Path] = (), import_hosts: Sequence[str] = ()) -> Lake:
        data_dir = data_dir.expanduser().resolve()
        return cls(Keyring.load_or_create(data_dir / "keys"), tuning or LakeTuning(), data_dir=data_dir,
                   file_roots=tuple(dict.fromkeys([*(p.expanduser().resolve() for p in file_roots),
                                                   data_dir / "lake"])),
                   import_hosts=tuple(h.lower() for h in import_hosts))

    def location_of(self, endpoint: Endpoint) -> str:
        """Where an endpoint's storage is. A `file` endpoint in the data dir's ``lake`` folder is recorded
        relative to the data dir (``stored_location``), so that a data dir moved or restored elsewhere keeps
        its lake; it is answered absolute, under the data dir of now."""
        if endpoint.protocol == "file" and self.data_dir is not None and not Path(endpoint.location).is_absolute():
            return str(self.data_dir / endpoint.location)
        return endpoint.location

    def stored_location(self, protocol: str, location: str) -> str:
        """What to record of a `file` location (checked absolute): relative to the data dir when it lies in
        the data dir's ``lake`` folder, else as given."""
        if protocol != "file" or self.data_dir is None or not Path(location).is_absolute():
            return location
        resolved, own = Path(location).resolve(), self.data_dir / "lake"
        return str(resolved.relative_to(self.data_dir)) if resolved == own or own in resolved.parents else location

    def backend(self, endpoint: Endpoint) -> StorageBackend:
        """The endpoint's storage with its own credential (decrypted here, kept only in memory)."""
        stamp = (endpoint.updated_at, endpoint.protocol, self.location_of(endpoint), endpoint.credential_cipher)
        with self._lock:
            cached = self._backends.get(endpoint.id)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        credential = self.keyring.open(endpoint.credential_cipher) if endpoint.credential_cipher else None
        backend = backend_class(endpoint.protocol)(self.location_of(endpoint), endpoint.options or {}, credential)
        with self._lock:
            self._backends[endpoint.id] = (stamp, backend)
        return backend
