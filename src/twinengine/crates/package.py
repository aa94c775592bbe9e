"""A run's record packed as a crate: a zip of ``ro-crate-metadata.json``, a README, the procedure (the process
graph or the kind's request, canonical JSON, so its SHA-256 is the run's graph checksum), the record a rerun reads
(``twinengine-run.json``) and the outputs the crate carries under ``outputs/``. The same run gives the same bytes
(entries in one order, stamped with the run's end). Reading one back checks what it says against what it holds."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

from twinengine.crates.jsonld import metadata, readme
from twinengine.crates.record import RunRecord, from_dict
from twinengine.errors import InvalidInput

__all__ = ["MAX_CRATE_BYTES", "CrateContents", "pack", "unpack"]

MAX_CRATE_BYTES = 1 << 30  # a crate read back is refused past this (compressed or not)
METADATA, RECORD = "ro-crate-metadata.json", "twinengine-run.json"


def _stamp(record: RunRecord) -> tuple[int, int, int, int, int, int]:
    moment = record.ended or record.created or datetime(1980, 1, 1, tzinfo=UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = max(moment.astimezone(UTC), datetime(1980, 1, 1, tzinfo=UTC))
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def pack(record: RunRecord, *, license_id: str | None = None) -> bytes:
    """The crate's zip, in memory (outputs over the carry limit are named, not carried)."""
    procedure = json.dumps(record.procedure, sort_keys=True, separators=(",", ":")).encode()
    carried = {o.name: f"outputs/{o.name}" for o in record.outputs if o.carried}
    text = readme(record, record.outputs).encode()
    kept = json.dumps(record.to_dict(), indent=1, sort_keys=True, default=str).encode()
    document = metadata(record, procedure_size=len(procedure), readme_size=len(text), record_size=len(kept),
                        license_id=license_id, carried=carried)
    entries: list[tuple[str, bytes]] = [
        (METADATA, json.dumps(document, indent=1, ensure_ascii=False).encode()), ("README.md", text),
        (record.procedure_name, procedure), (RECORD, kept)]
    for output in record.outputs:
        if output.carried:
            content = output.read()
            if content is None:
                continue
            entries.append((carried[output.name], content))
    buffer = io.BytesIO()
    stamp = _stamp(record)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
    return buffer.getvalue()


class CrateContents:
    """A crate read back: its record, its metadata and the bytes of what it carries, each checked."""

    def __init__(self, record: RunRecord, document: dict[str, Any], files: dict[str, bytes]) -> None:
        self.record, self.document, self.files = record, document, files

    def output(self, name: str) -> bytes | None:
        return self.files.get(f"outputs/{name}")


def unpack(data: bytes) -> CrateContents:
    """Read a crate made by ``pack`` (here or on another engine). A file that is no zip, misses its record or
    metadata, or carries an output or a procedure whose SHA-256 is not the one it names, is refused naming it."""
    if len(data) > MAX_CRATE_BYTES:
        raise InvalidInput(f"crate: {len(data)} bytes is more than the {MAX_CRATE_BYTES} a crate may have")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidInput("crate: not a zip file (a crate is what `twin runs crate RUN` writes)") from None
    with archive:
        names = set(archive.namelist())
        for needed in (METADATA, RECORD):
            if needed not in names:
                raise InvalidInput(f"crate: it holds no {needed}; it was not made by a twinengine")
        if sum(i.file_size for i in archive.infolist()) > MAX_CRATE_BYTES:
            raise InvalidInput(f"crate: it unpacks to more than {MAX_CRATE_BYTES} bytes")
        files = {name: archive.read(name) for name in names if not name.endswith("/")}
    try:
        document = json.loads(files[METADATA])
        record = from_dict(json.loads(files[RECORD]))
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"crate: {RECORD} or {METADATA} does not parse: {exc}") from None
    procedure = files.get(record.procedure_name)
    if procedure is None or hashlib.sha256(procedure).hexdigest() != record.procedure_sha256:
        raise InvalidInput(f"crate: {record.procedure_name} is missing or does not match its SHA-256")
    record.procedure = json.loads(procedure)
    for output in record.outputs:
        content = files.get(f"outputs/{output.name}")
        if content is not None and hashlib.sha256(content).hexdigest() != output.sha256:
            raise InvalidInput(f"crate: outputs/{output.name} does not match its SHA-256")
        output.content = content
    return CrateContents(record, document, files)
