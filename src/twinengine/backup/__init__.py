"""Backups of an engine, taken while it serves, and their restore on another host.

A backup is a folder: the store's rows, dumped table by table inside one read-only transaction (so they are one
instant of the store, whatever is written meanwhile), then the files of the data dir (lake files, stream
segments, app archives, keys, the model registry), copied after that instant, and last ``manifest.json``,
which names every part with its checksum. Restoring checks every checksum before it writes anything, loads the
rows into an empty store (SQLite or PostgreSQL, either way round), checks the loaded rows against the
checksums again and brings the schema to this engine's head. ``twin admin backup`` / ``twin admin restore``.
"""

from twinengine.backup.manifest import Manifest
from twinengine.backup.service import BackupReport, RestoreReport, backup, restore, verify

__all__ = ["BackupReport", "Manifest", "RestoreReport", "backup", "restore", "verify"]
