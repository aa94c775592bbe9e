"""What a crate says of a run, in the engine's own words, whatever kind of run it was: the procedure it followed
(a process graph, a training, a calibration, assimilation cycles), the values it was given, the seeds it drew
from, its inputs and outputs with their checksums, the model versions it used, its steps, its person, site and
engine. Each kind of run fills one (``crates.sources``); ``crates.jsonld`` writes it as a Provenance Run Crate and
``crates.rerun`` runs it again from it, so a crate read back from its zip is enough to rerun it elsewhere."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Input", "ModelUse", "Output", "RunRecord", "Step", "from_dict"]


@dataclass
class Output:
    """A file the run made. ``content`` or ``path`` give its bytes where the crate carries it; a larger one is
    named with its size and checksum only (``carried`` False)."""

    name: str
    size: int
    sha256: str
    media_type: str = "application/octet-stream"
    description: str = ""
    carried: bool = True
    content: bytes | None = field(default=None, repr=False)
    path: Any = field(default=None, repr=False)  # a pathlib.Path in the engine's result store, never written out

    def read(self) -> bytes | None:
        if self.content is not None:
            return self.content
        if self.path is not None:
            return bytes(self.path.read_bytes())
        return None


@dataclass
class Input:
    """Something the run read, named so it can be found again: a collection (with its version token and, where
    it can be computed, the SHA-256 of its files), a stream's records by offsets or window (with the SHA-256 of
    the records, ``crates.stream_inputs``), a twin's state revision, a related twin's state. Never copied into the
    crate: it stays a reference with its checksum."""

    id: str
    kind: str  # collection, stream, state, related, records, observations
    name: str
    version: str | None = None
    sha256: str | None = None
    size: int | None = None
    description: str = ""
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelUse:
    """A model version the run used (``predict``), or the one it made (a training)."""

    registered: str
    version: str
    model: str
    sha256: str | None = None
    training_run: str | None = None
    gate: str | None = None
    role: str = "used"  # used, made


@dataclass
class Step:
    """One step of the procedure (a node of the graph, a cycle, a fit), its tool and what it took."""

    id: str
    tool: str  # the process or program it ran
    namespace: str | None = None
    version: str | None = None
    status: str = "finished"
    started: datetime | None = None
    ended: datetime | None = None
    arguments: dict[str, Any] = field(default_factory=dict)  # literal, {"from_node"}, {"from_parameter"}
    description: str = ""
    url: str | None = None


@dataclass
class RunRecord:
    """A run as its crate describes it (see the module docstring)."""

    id: str
    kind: str  # workflow, member, ensemble, remote, training, tuning, calibration, assimilation
    name: str
    description: str
    status: str  # finished, error, canceled, ...
    owner: str
    created: datetime | None
    started: datetime | None
    ended: datetime | None
    procedure: dict[str, Any]  # the process graph, or the kind's procedure as JSON
    procedure_name: str  # the file the crate keeps it in
    procedure_language: str  # openeo, twinengine-training, ...
    procedure_sha256: str
    engine_version: str
    app: str | None = None  # name@version
    app_sha256: str | None = None
    twin: str | None = None
    twin_id: str | None = None
    workflow: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)
    inputs: list[Input] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    models: list[ModelUse] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)  # runs it is made of (an ensemble's members)
    part_of: str | None = None  # the run it is part of (a member's ensemble)
    site: str = "local"
    executor: str | None = None
    usage: dict[str, float] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    remote: dict[str, Any] | None = None  # the other engine's run (a run sent whole to a site of kind engine)
    start: dict[str, Any] | None = None  # the twin's state it started from
    nondeterministic: str | None = None  # why the app says its results may differ from run to run
    rerun: dict[str, Any] = field(default_factory=dict)  # what running it again needs beyond the above
    rerun_of: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON (the crate's ``twinengine-run.json``): what a rerun reads back, no bytes."""
        data = asdict(self)
        for output in data["outputs"]:
            output.pop("content", None)
            output.pop("path", None)
        plain: dict[str, Any] = _plain(data)
        return plain


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def from_dict(data: dict[str, Any]) -> RunRecord:
    """A record read back from a crate's ``twinengine-run.json`` (outputs without their bytes)."""
    fields = dict(data)
    for key in ("created", "started", "ended"):
        fields[key] = _time(fields.get(key))
    fields["inputs"] = [Input(**i) for i in fields.get("inputs") or []]
    fields["outputs"] = [Output(**o) for o in fields.get("outputs") or []]
    fields["models"] = [ModelUse(**m) for m in fields.get("models") or []]
    fields["steps"] = [Step(**{**s, "started": _time(s.get("started")), "ended": _time(s.get("ended"))})
                       for s in fields.get("steps") or []]
    known = set(RunRecord.__dataclass_fields__)
    return RunRecord(**{k: v for k, v in fields.items() if k in known})
