"""``manifest.json``: what a backup holds, each part with its checksum. Written last: a folder without it is
not a backup (one that failed or is still being written)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["FORMAT", "MANIFEST", "FileEntry", "Manifest", "StreamEntry", "TableEntry"]

FORMAT: Literal[1] = 1
MANIFEST = "manifest.json"


class TableEntry(BaseModel):
    """One table of the store: its rows in ``store/<name>.msgpack``."""

    name: str
    columns: list[str]
    rows: int
    rows_sha256: str = Field(description="Checksum of the rows' values, independent of their order and of the "
                                         "backend (a restore recomputes it from the restored store)")
    file_sha256: str = Field(description="Checksum of the file's bytes")
    bytes: int


class FileEntry(BaseModel):
    """A file copied from one of the engine's folders (``root``: data, streams, collections, envs)."""

    root: str
    path: str
    bytes: int
    sha256: str


class StreamEntry(BaseModel):
    """A stream of the local log: its newest entry in the backup (at least every entry acknowledged before the
    store's snapshot)."""

    key: str
    last: int


class Manifest(BaseModel):
    format: Literal[1] = FORMAT
    engine: str = Field(description="The engine release that made it")
    schema_revision: str = Field(description="The store's migration revision at the snapshot")
    backend: Literal["sqlite", "postgresql"]
    started_at: datetime
    snapshot_at: datetime = Field(description="When the store's snapshot was taken: writes acknowledged before "
                                              "it are in the backup")
    finished_at: datetime
    tables: list[TableEntry]
    files: list[FileEntry]
    streams: list[StreamEntry] = Field(default_factory=list)
    left_out: list[str] = Field(default_factory=list, description="What the backup does not hold, and why")

    def write(self, folder: Path) -> None:
        tmp = folder / (MANIFEST + ".tmp")
        with tmp.open("w") as fh:
            fh.write(self.model_dump_json(indent=1))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(folder / MANIFEST)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        return cls.model_validate_json((folder / MANIFEST).read_text())

    def table(self, name: str) -> TableEntry | None:
        return next((t for t in self.tables if t.name == name), None)
