"""The engine's errors: one tree, raised by services, rendered once by the API, re-raised by the SDK.

    TwinEngineError                 500  Internal
    ├── InvalidInput                400  InvalidInput
    │   ├── ValidationFailed        422  ValidationFailed   (carries problems: [{loc, msg}])
    │   ├── InvalidParameterValue   400  InvalidParameterValue  (an EDR query parameter, named in details)
    │   ├── ProcessGraphInvalid     400  ProcessGraphInvalid (openEO codes below name the node)
    │   │   ├── ProcessGraphMissing         400  ProcessGraphMissing
    │   │   ├── ProcessUnsupported          400  ProcessUnsupported
    │   │   ├── ProcessParameterMissing     400  ProcessParameterMissing
    │   │   ├── ProcessParameterUnsupported 400  ProcessParameterUnsupported
    │   │   └── ProcessParameterInvalid     400  ProcessParameterInvalid
    │   ├── ProcessFailed           400  ProcessFailed      (a process raised while a run executed)
    │   │   └── MemberFailed        400  MemberFailed       (an ensemble's member failed: nothing written)
    │   ├── RunNotFinished          400  RunNotFinished
    │   ├── RunLocked               400  RunLocked
    │   ├── InvalidExpression       400  InvalidExpression  (an endpoint expression, with the position)
    │   └── ChecksumMismatch        400  ChecksumMismatch   (bytes differ from the checksum the client gave)
    ├── AuthenticationRequired      401  AuthenticationRequired
    │   └── TokenInvalid            401  TokenInvalid
    ├── PermissionDenied            403  PermissionDenied
    │   └── CsrfRejected            403  CsrfRejected       (a cookie-authenticated write without its CSRF token)
    ├── NotFound                    404  NotFound
    │   ├── AppNotFound             404  AppNotFound
    │   ├── TwinNotFound            404  TwinNotFound
    │   ├── RevisionNotFound        404  RevisionNotFound
    │   ├── IdentityNotFound        404  IdentityNotFound
    │   ├── CollectionNotFound      404  CollectionNotFound
    │   ├── RunNotFound             404  RunNotFound
    │   ├── WorkflowNotFound        404  WorkflowNotFound
    │   ├── ProcessGraphNotFound    404  ProcessGraphNotFound
    │   ├── TriggerNotFound         404  TriggerNotFound
    │   ├── EndpointNotFound        404  EndpointNotFound
    │   ├── DidNotFound             404  DidNotFound
    │   ├── ReplicaNotFound         404  ReplicaNotFound
    │   ├── RuleNotFound            404  RuleNotFound
    │   ├── StreamNotFound          404  StreamNotFound
    │   ├── BufferNotFound          404  BufferNotFound
    │   ├── FunctionNotFound        404  FunctionNotFound
    │   ├── ModelNotFound           404  ModelNotFound
    │   ├── TrainingRunNotFound     404  TrainingRunNotFound
    │   ├── ViewNotFound            404  ViewNotFound
    │   ├── SiteNotFound            404  SiteNotFound       (no compute site of that name)
    │   ├── ProcessNotFound         404  ProcessNotFound    (no OGC process of that id, built in or deployed)
    │   └── CalibrationNotFound     404  CalibrationNotFound (in calibration/service.py)
    ├── Conflict                    409  Conflict
    │   ├── AppVersionConflict      409  AppVersionConflict
    │   ├── TwinNameTaken           409  TwinNameTaken
    │   ├── TriggerNameTaken        409  TriggerNameTaken   (the twin has a trigger of that name)
    │   ├── IdentityInUse           409  IdentityInUse      (an identity that still owns twins cannot be deleted)
    │   ├── FunctionNotPaused       409  FunctionNotPaused  (resume of a function that is running)
    │   ├── DidConflict             409  DidConflict        (scope:name exists with other content or type)
    │   ├── DuplicateRule           409  DuplicateRule      (the owner has a rule like it on that DID)
    │   ├── DuplicateProcess        409  DuplicateProcess   (a process of that id is deployed already)
    │   └── StoredConflict          409  StoredConflict     (a write collided with a stored key or reference)
    ├── PayloadTooLarge             413  PayloadTooLarge
    │   ├── ResponseTooLarge        413  ResponseTooLarge   (an EDR answer would exceed the size limit)
    │   └── ResultTooLarge          413  ResultTooLarge     (a synchronous result exceeds its size limit)
    ├── ProcessingTimeLimit         408  ProcessingTimeLimit (synchronous processing ran past its time budget)
    ├── ProcessingMemoryLimit       400  ProcessingMemoryLimit (synchronous processing needed more memory than it may)
    ├── UnreadableFile              422  UnreadableFile     (a stored file cannot be opened in its format)
    ├── FormatUnavailable           501  FormatUnavailable  (a file format whose library is not installed)
    ├── StorageFull                 507  StorageFull        (endpoint quota or disk space exhausted)
    ├── QuotaExceeded               429  QuotaExceeded      (a compute quota is used up: names quota, use, limit)
    ├── StreamBackpressure          429  StreamBackpressure (consumers are behind; carries retry_after)
    │   └── StreamUnavailable       503  StreamUnavailable  (the stream log cannot take writes now)
    ├── DataCorrupted               500  DataCorrupted      (stored bytes no longer match their checksum)
    ├── StorageUnavailable          503  StorageUnavailable (an endpoint cannot be reached or has vanished)
    ├── SandboxUnavailable          503  SandboxUnavailable (code the engine did not write, and no sandbox for it)
    ├── StoreNewerThanEngine        503  StoreNewerThanEngine (the store's schema is newer than this engine)
    ├── StoreUnavailable            503  StoreUnavailable   (the store does not answer now; carries retry_after)
    └── EngineUnavailable           503  EngineUnavailable  (SDK side: the server cannot be reached)

Every error has a machine ``code``, an HTTP ``status`` and a human ``message``; the wire form is
``{"code": ..., "message": ..., "details": [...]}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AppNotFound",
    "AppVersionConflict",
    "AuthenticationRequired",
    "BufferNotFound",
    "ChecksumMismatch",
    "CollectionNotFound",
    "Conflict",
    "CsrfRejected",
    "DataCorrupted",
    "DidConflict",
    "DidNotFound",
    "DuplicateRule",
    "EndpointNotFound",
    "EngineUnavailable",
    "FormatUnavailable",
    "FunctionNotFound",
    "FunctionNotPaused",
    "IdentityNotFound",
    "InvalidExpression",
    "InvalidInput",
    "InvalidParameterValue",
    "MemberFailed",
    "ModelNotFound",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "Problem",
    "ProcessFailed",
    "ProcessGraphInvalid",
    "ProcessGraphMissing",
    "ProcessGraphNotFound",
    "ProcessParameterInvalid",
    "ProcessParameterMissing",
    "ProcessParameterUnsupported",
    "ProcessUnsupported",
    "QuotaExceeded",
    "ReplicaNotFound",
    "ResponseTooLarge",
    "RevisionNotFound",
    "RuleNotFound",
    "RunLocked",
    "RunNotFinished",
    "RunNotFound",
    "SandboxUnavailable",
    "SiteNotFound",
    "StorageFull",
    "StorageUnavailable",
    "StoreNewerThanEngine",
    "StoreUnavailable",
    "StoredConflict",
    "StreamBackpressure",
    "StreamNotFound",
    "StreamUnavailable",
    "TokenInvalid",
    "TrainingRunNotFound",
    "TriggerNameTaken",
    "TriggerNotFound",
    "TwinEngineError",
    "TwinNameTaken",
    "TwinNotFound",
    "UnreadableFile",
    "ValidationFailed",
    "ViewNotFound",
    "WorkflowNotFound",
    "error_from_payload",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located by a dotted path (``streams.gauges.fields.level.unit``)."""

    loc: str
    msg: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.msg}" if self.loc else self.msg

    def to_dict(self) -> dict[str, str]:
        return {"loc": self.loc, "msg": self.msg}


def join_loc(parts: Iterable[object]) -> str:
    """Render a location tuple as a dotted path, list indices in brackets: ``fields[2].unit``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class TwinEngineError(Exception):
    """Base of every error the engine raises on purpose; anything else reaching the API is a bug."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "Internal"

    def __init__(self, message: str, *, details: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[dict[str, Any]] = [dict(d) for d in details or ()]

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(TwinEngineError):
    """Raised when a request is malformed: unparsable body, bad archive, bad query parameter."""

    status = 400
    code = "InvalidInput"


class ValidationFailed(InvalidInput):
    """Raised when well-formed input breaks the rules: every problem is listed with its location."""

    status = 422
    code = "ValidationFailed"

    def __init__(self, problems: Sequence[Problem], *, message: str | None = None) -> None:
        self.problems = list(problems)
        text = message or "; ".join(str(p) for p in self.problems[:5])
        if len(self.problems) > 5:
            text += f" (and {len(self.problems) - 5} more)"
        super().__init__(text, details=[p.to_dict() for p in self.problems])

    @classmethod
    def one(cls, loc: str, msg: str) -> ValidationFailed:
        return cls([Problem(loc, msg)])


class InvalidParameterValue(InvalidInput):
    """Raised when a data-access (EDR) query parameter is malformed or outside the collection's extent."""

    code = "InvalidParameterValue"

    def __init__(self, field: str, message: str | None = None, *,
                 details: Sequence[Mapping[str, Any]] | None = None) -> None:
        if message is None:  # rebuilt from a response body (SDK side): ``field`` holds the whole message
            self.field = str(details[0].get("loc", "")) if details else ""
            super().__init__(field, details=details)
            return
        self.field = field
        super().__init__(f"{field}: {message}", details=details or [{"loc": field, "msg": message}])
class ProcessGraphInvalid(InvalidInput):
    """Raised when a process graph is malformed (no result node, a cycle, a dangling reference)."""

    code = "ProcessGraphInvalid"

    def __init__(self, message: str, *, node: str | None = None,
                 details: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.node = node
        extra = [{"loc": f"process_graph.{node}", "msg": message}] if node and not details else []
        super().__init__(message, details=[*extra, *(details or ())])


class ProcessGraphMissing(ProcessGraphInvalid):
    """Raised when a request that needs a process graph carries none."""

    code = "ProcessGraphMissing"


class ProcessUnsupported(ProcessGraphInvalid):
    """Raised when a node names a process (or namespace) the engine does not know."""

    code = "ProcessUnsupported"


class ProcessParameterMissing(ProcessGraphInvalid):
    """Raised when a node lacks a required argument, or a graph parameter has no value."""

    code = "ProcessParameterMissing"


class ProcessParameterUnsupported(ProcessGraphInvalid):
    """Raised when a node passes an argument its process does not declare."""

    code = "ProcessParameterUnsupported"


class ProcessParameterInvalid(ProcessGraphInvalid):
    """Raised when an argument's value does not match the type its process declares."""

    code = "ProcessParameterInvalid"


class ProcessFailed(InvalidInput):
    """Raised when a process raised while a graph was executed (the message names node and process)."""

    code = "ProcessFailed"


class MemberFailed(ProcessFailed):
    """Raised when members of an ensemble failed or their results do not stack: the ensemble writes nothing."""

    code = "MemberFailed"


class RunNotFinished(InvalidInput):
    """Raised when a run's results are asked for before it finished."""

    code = "RunNotFinished"


class RunLocked(InvalidInput):
    """Raised when a queued or running run is modified or deleted."""

    code = "RunLocked"


class AuthenticationRequired(TwinEngineError):
    """Raised when a request carries no bearer token."""

    status = 401
    code = "AuthenticationRequired"


class TokenInvalid(AuthenticationRequired):
    """Raised when a token is malformed, badly signed, expired, revoked or from an unknown issuer."""

    code = "TokenInvalid"


class PermissionDenied(TwinEngineError):
    """Raised when the principal's role or grants do not allow the action."""

    status = 403
    code = "PermissionDenied"


class CsrfRejected(PermissionDenied):
    """Raised when a write authenticated by the portal's session cookie lacks the session's CSRF token or
    comes from another origin."""

    code = "CsrfRejected"


class NotFound(TwinEngineError):
    """Raised when a named thing does not exist."""

    status = 404
    code = "NotFound"


class AppNotFound(NotFound):
    """Raised when no published DT application has that name (and version)."""

    code = "AppNotFound"


class TwinNotFound(NotFound):
    """Raised when no twin has that id or name."""

    code = "TwinNotFound"


class RevisionNotFound(NotFound):
    """Raised when a twin has no such state revision (or none at that time)."""

    code = "RevisionNotFound"


class IdentityNotFound(NotFound):
    """Raised when no identity has that name."""

    code = "IdentityNotFound"


class CollectionNotFound(NotFound):
    """Raised when no gridded collection has that id."""

    code = "CollectionNotFound"


class RunNotFound(NotFound):
    """Raised when no workflow run (openEO job) has that id, or the caller may not see it."""

    code = "RunNotFound"


class WorkflowNotFound(NotFound):
    """Raised when a twin's app declares no workflow of that name."""

    code = "WorkflowNotFound"


class ProcessGraphNotFound(NotFound):
    """Raised when no user-defined process has that id."""

    code = "ProcessGraphNotFound"


class ProcessNotFound(NotFound):
    """Raised when OGC API - Processes has no process of that id (built in, or deployed and visible)."""

    code = "ProcessNotFound"


class TriggerNotFound(NotFound):
    """Raised when no trigger has that id or name."""

    code = "TriggerNotFound"
class StreamNotFound(NotFound):
    """Raised when a twin's app declares no stream of that name."""

    code = "StreamNotFound"


class BufferNotFound(NotFound):
    """Raised when a twin has no retraining buffer of that name (or id)."""

    code = "BufferNotFound"


class FunctionNotFound(NotFound):
    """Raised when a twin's app declares no function on arrival of that name."""

    code = "FunctionNotFound"


class ModelNotFound(NotFound):
    """Raised when a twin's app declares no model of that name, or the registry has no such version."""

    code = "ModelNotFound"


class TrainingRunNotFound(NotFound):
    """Raised when no training run has that id (for that twin)."""

    code = "TrainingRunNotFound"


class ViewNotFound(NotFound):
    """Raised when a twin's app declares no view of that name."""

    code = "ViewNotFound"


class SiteNotFound(NotFound):
    """Raised when no compute site has that name."""

    code = "SiteNotFound"


class QuotaExceeded(TwinEngineError):
    """Raised when a run would start after its owner's compute quota on a site is used up (refused, not queued)."""

    status = 429
    code = "QuotaExceeded"


class Conflict(TwinEngineError):
    """Raised when the request contradicts what is already stored."""

    status = 409
    code = "Conflict"


class FunctionNotPaused(Conflict):
    """Raised when a function that is not paused is asked to resume: there is no failed run to replay."""

    code = "FunctionNotPaused"


class StoredConflict(Conflict):
    """Raised when the store refused a write for a key it holds already or a reference to a row it does not
    hold, most often written or removed by another request at the same moment (``store.conflicts``):
    nothing of the request was written, and repeating it gives its answer."""

    code = "StoredConflict"


class AppVersionConflict(Conflict):
    """Raised when name@version is already published with different content (versions are immutable)."""

    code = "AppVersionConflict"


class TwinNameTaken(Conflict):
    """Raised when a twin with that name already exists."""

    code = "TwinNameTaken"


class TriggerNameTaken(Conflict):
    """Raised when the twin has a trigger of that name already (``details[0].loc`` names the field)."""

    code = "TriggerNameTaken"


class IdentityInUse(Conflict):
    """Raised when an identity to delete still owns twins (they would be left without an owner)."""

    code = "IdentityInUse"


class PayloadTooLarge(TwinEngineError):
    """Raised when a request body or archive is larger than the configured limit."""

    status = 413
    code = "PayloadTooLarge"


class ResponseTooLarge(PayloadTooLarge):
    """Raised before any data is read when a data-access answer would exceed the configured size limit."""

    code = "ResponseTooLarge"


class ResultTooLarge(PayloadTooLarge):
    """Raised when a synchronous result is larger than the limit it may return (a batch job may be larger)."""

    code = "ResultTooLarge"


class ProcessingMemoryLimit(TwinEngineError):
    """Raised when synchronous processing needs more memory than its process may have; the run was stopped."""

    status = 400
    code = "ProcessingMemoryLimit"


class ProcessingTimeLimit(TwinEngineError):
    """Raised when synchronous processing runs past its wall-time budget; the run was stopped."""

    status = 408
    code = "ProcessingTimeLimit"
class StreamBackpressure(TwinEngineError):
    """Raised when a stream's consumers are further behind than the allowed lag: retry after a while.

    Nothing of the refused batch was written; producers slow down, no data is dropped.
    """

    status = 429
    code = "StreamBackpressure"

    def __init__(self, message: str, *, retry_after: float = 1.0,
                 details: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class StreamUnavailable(StreamBackpressure):
    """Raised when the stream log cannot take writes now (backend down, write queue full): retry later."""

    status = 503
    code = "StreamUnavailable"


class DataCorrupted(TwinEngineError):
    """Raised when stored bytes no longer match the checksum they were registered with."""

    status = 500
    code = "DataCorrupted"


class EngineUnavailable(TwinEngineError):
    """Raised by the SDK when the engine cannot be reached or answers with something that is not ours."""

    status = 503
    code = "EngineUnavailable"


class StoreUnavailable(TwinEngineError):
    """Raised when the store does not answer (PostgreSQL restarting, its host out of reach): the request is
    refused, not failed; repeat it after ``retry_after`` seconds. A write whose answer was lost this way may
    have been kept: repeat it as it was (a producer's sequence numbers make a repeated batch a no-op)."""

    status = 503
    code = "StoreUnavailable"

    def __init__(self, message: str, *, retry_after: float = 2.0,
                 details: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class StoreNewerThanEngine(TwinEngineError):
    """Raised when the store's schema revision is one this engine does not know (a newer engine upgraded it):
    an engine never runs on, or downgrades, a store newer than itself."""

    status = 503
    code = "StoreNewerThanEngine"


class InvalidExpression(InvalidInput):
    """Raised when an endpoint expression does not parse or selects no endpoint; details carry the position."""

    code = "InvalidExpression"


class ChecksumMismatch(InvalidInput):
    """Raised when uploaded or fetched bytes do not match the checksum the client or source declared."""

    code = "ChecksumMismatch"


class EndpointNotFound(NotFound):
    """Raised when no storage endpoint has that name."""

    code = "EndpointNotFound"


class DidNotFound(NotFound):
    """Raised when no file, dataset or container has that scope:name."""

    code = "DidNotFound"


class ReplicaNotFound(NotFound):
    """Raised when a file has no (available, readable) replica where one was asked for."""

    code = "ReplicaNotFound"


class RuleNotFound(NotFound):
    """Raised when no replication rule has that id."""

    code = "RuleNotFound"


class DidConflict(Conflict):
    """Raised when scope:name is registered already with other bytes or of another type."""

    code = "DidConflict"


class DuplicateProcess(Conflict):
    """Raised when a package is deployed under the id of a process that exists (replace it instead)."""

    code = "DuplicateProcess"


class DuplicateRule(Conflict):
    """Raised when the owner already has a rule with the same copies and endpoint expression on that DID (as
    Rucio refuses it): a second one would place the same locks and tell nothing new. ``details[0].rule`` names
    the rule there is."""

    code = "DuplicateRule"


class UnreadableFile(TwinEngineError):
    """Raised when a stored file (a collection, a lake dataset's file) cannot be opened in its format: corrupt,
    truncated, an unknown extension, or content its format reader refuses (a GRIB without a grid). The message
    names the file and the reason."""

    status = 422
    code = "UnreadableFile"


class FormatUnavailable(TwinEngineError):
    """Raised when a file's format is known but the library reading it is not installed here."""

    status = 501
    code = "FormatUnavailable"


class StorageFull(TwinEngineError):
    """Raised when writing would exceed an endpoint's quota or the space left on its storage."""

    status = 507
    code = "StorageFull"


class SandboxUnavailable(TwinEngineError):
    """Raised when UDFs or app code would have to run without a sandbox and the settings do not allow it."""

    status = 503
    code = "SandboxUnavailable"


class StorageUnavailable(TwinEngineError):
    """Raised when a storage endpoint cannot be reached, refuses the credential or has vanished."""

    status = 503
    code = "StorageUnavailable"


def _all_classes() -> dict[str, type[TwinEngineError]]:
    found: dict[str, type[TwinEngineError]] = {}
    stack: list[type[TwinEngineError]] = [TwinEngineError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


def error_from_payload(status: int, payload: Any) -> TwinEngineError:
    """Rebuild the typed error from a response body, so SDK users catch the same classes the server raised."""
    if not isinstance(payload, dict) or "code" not in payload:
        err = TwinEngineError(f"HTTP {status}: {str(payload)[:200]}")
        err.status = status  # type: ignore[misc]
        return err
    cls = _all_classes().get(str(payload["code"]))
    message = str(payload.get("message", ""))
    details = payload.get("details") or []
    if cls is ValidationFailed:
        problems = [Problem(str(d.get("loc", "")), str(d.get("msg", ""))) for d in details]
        return ValidationFailed(problems, message=message)
    if cls is None or cls.status != status:
        # A code we do not know (newer server or a sibling API): keep status and code as data.
        err = TwinEngineError(message, details=details)
        err.status = status  # type: ignore[misc]
        err.code = str(payload["code"])  # type: ignore[misc]
        return err
    return cls(message, details=details)
