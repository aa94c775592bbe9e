"""Single-twin state writes of many callers, applied together: what the store's writer hands over at once.

Each write is checked exactly as ``service.write_state`` checks it (``twin.operate`` on its twin at the policy
point, then the app's state declaration); one that is refused comes back as its error and writes nothing. The
accepted ones are judged by their properties' quality checks (each twin's revisions as one series, in the order
given) and appended with the statements of one batch: each twin's counter moves once, by its count, so the
numbers stay gap-free and every write gets a number of its own. The writer runs on SQLite only, and there every
statement of a group runs straight on its connection (``store.direct``; ``twins.operable`` reads the twins,
``log_writes.take_numbers_direct`` and ``insert_log_direct`` write): SQLAlchemy's execution layer was most
of the writer's time. On another store ``write_together`` refuses, and the writer applies each write alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.catalog.manifest import Manifest
from twinengine.errors import TwinEngineError
from twinengine.store.base import utcnow
from twinengine.twins import log_writes, service, state, state_checks
from twinengine.twins.new_values import NewValue
from twinengine.twins.operable import twins_to_operate
from twinengine.twins.schemas import PropertyWrite, RevisionRead, StateKind

__all__ = ["StateWriteCall", "write_one", "write_together"]


@dataclass(frozen=True, slots=True)
class StateWriteCall:
    """One caller's write of one twin's state, as ``service.write_state`` takes it."""

    principal: Principal
    ref: str
    reported: dict[str, PropertyWrite]
    desired: dict[str, PropertyWrite]
    message: str | None = None


def write_one(session: Session, call: StateWriteCall) -> RevisionRead:
    """``call`` on its own: ``service.write_state``."""
    return service.write_state(session, principal=call.principal, ref=call.ref, reported=call.reported,
                               desired=call.desired, message=call.message)[1]


@dataclass(frozen=True, slots=True)
class _Accepted:
    index: int  # the call's position
    twin_id: str
    manifest: Manifest
    values: list[NewValue]


def write_together(session: Session, calls: Sequence[StateWriteCall]) -> list[RevisionRead | TwinEngineError]:
    """One outcome per call, in order: its revision as ``write_one`` answers it, or the error refusing it."""
    outcomes: list[RevisionRead | TwinEngineError | None] = [None] * len(calls)
    by_twin: dict[str, list[_Accepted]] = {}
    found = twins_to_operate(session, [(call.principal, call.ref) for call in calls])
    for index, (call, twin_or_error) in enumerate(zip(calls, found, strict=True)):
        if isinstance(twin_or_error, TwinEngineError):
            outcomes[index] = twin_or_error
            continue
        twin, manifest = twin_or_error
        try:
            values = state.validate_write(manifest, {StateKind.REPORTED: call.reported,
                                                     StateKind.DESIRED: call.desired})
        except TwinEngineError as error:
            outcomes[index] = error
            continue
        by_twin.setdefault(twin.id, []).append(_Accepted(index, twin.id, manifest, values))
    if by_twin:
        _append(session, calls, by_twin, outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def _append(session: Session, calls: Sequence[StateWriteCall], by_twin: dict[str, list[_Accepted]],
            outcomes: list[RevisionRead | TwinEngineError | None]) -> None:
    now = utcnow()
    last = log_writes.take_numbers_direct(session, {twin_id: len(accepted) for twin_id, accepted in by_twin.items()},
                                          now)
    rows: dict[str, list[log_writes.LogRow]] = {}  # by author
    for twin_id, accepted in by_twin.items():
        judged = state_checks.judge(session, twin_id, accepted[0].manifest, [a.values for a in accepted])
        first = last[twin_id] - len(accepted) + 1
        for offset, (write, values) in enumerate(zip(accepted, judged, strict=True)):
            call = calls[write.index]
            rows.setdefault(call.principal.name, []).append((twin_id, first + offset, values, call.message))
            outcomes[write.index] = state.revision_read(twin_id, first + offset, values, recorded_at=now,
                                                        author=call.principal.name, message=call.message)
    for author, written in rows.items():
        log_writes.insert_log_direct(session, written, author=author, now=now)
