"""The engine process ``assimilate`` for process graphs: run a twin's pending cycles (or at most N) and
return what a scientist checks first, with the last analysis. Registered when the runtime is built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from twinengine.errors import ProcessParameterInvalid, TwinEngineError
from twinengine.twin_assimilation.schemas import MAX_CYCLES, AssimilationRequest, CycleRead
from twinengine.twin_assimilation.service import Engines
from twinengine.twin_assimilation.summary import summary
from twinengine.workflows.context import current
from twinengine.workflows.registry import ProcessRegistry

__all__ = ["MAX_PROCESS_CYCLES", "assimilate", "register_processes"]

MAX_PROCESS_CYCLES = 100_000  # cycles one node runs (in requests of MAX_CYCLES, each cycle committed)
_NULLABLE_INT = [{"type": "integer", "minimum": 1}, {"type": "null"}]


def _request(cycles: int, method: str | None, members: int | None, seed: int | None) -> AssimilationRequest:
    try:
        return AssimilationRequest(cycles=cycles, method=method, members=members, seed=seed)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ProcessParameterInvalid(f"assimilate: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def assimilate(engines: Callable[[], Engines], twin: str | None = None, cycles: int | None = None,
               method: str | None = None, members: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """Run up to ``cycles`` cycles (default: every pending observation time) on the twin (default: the run's)
    as the run's identity; returns the summary, the cycles' numbers and revisions, and the last analysis."""
    from twinengine.twin_assimilation import service

    ctx = current()
    ref = twin or ctx.twin
    if ref is None or ctx.db is None:
        raise ProcessParameterInvalid("assimilate: this run has no twin; pass twin")
    if cycles is not None and not 1 <= cycles <= MAX_PROCESS_CYCLES:
        raise ProcessParameterInvalid(f"assimilate: cycles must be between 1 and {MAX_PROCESS_CYCLES}")
    wanted = cycles or MAX_PROCESS_CYCLES
    done: list[CycleRead] = []
    pending, name, last_id = 0, ref, None
    try:
        while len(done) < wanted:
            request = _request(min(MAX_CYCLES, wanted - len(done)), method, members, seed)
            with ctx.db.session() as session:
                got = service.assimilate(session, engines(), principal=ctx.principal, ref=ref, request=request,
                                         checkpoint=session.commit)
            done += got.cycles
            pending, name = got.pending, got.twin
            ctx.compute_progress(len(done), len(done) + min(pending, wanted - len(done)))
            if not got.cycles or not pending:
                break
        if done:
            last_id = done[-1].id
            with ctx.db.session(readonly=True) as session:
                last = service.get_cycle(session, principal=ctx.principal, ref=ref, cycle=last_id)
    except TwinEngineError as exc:
        raise ProcessParameterInvalid(f"assimilate: {exc}") from None
    ctx.log("info", f"assimilate: {len(done)} cycles on twin {name}, {pending} observation times pending")
    return {"twin": name, **summary(done), "pending": pending, "numbers": [c.number for c in done],
            "revisions": [c.revision for c in done], "last_cycle": last_id,
            "analysis": last.analysis if done else None}


def register_processes(registry: ProcessRegistry, engines: Callable[[], Engines]) -> None:
    def assimilate_impl(twin: str | None = None, cycles: int | None = None, method: str | None = None,
                        members: int | None = None, seed: int | None = None) -> dict[str, Any]:
        return assimilate(engines, twin, cycles, method, members, seed)

    summary_text = "Correct a twin's state from the observations since its last cycle (data assimilation)"
    registry.register({
        "id": "assimilate", "summary": summary_text, "categories": ["engine", "data assimilation"],
        "description": summary_text + ": each cycle advances the twin's ensemble with its app's model to the "
                       "next observation time, runs the filter and writes the analysis as a state revision "
                       "(docs/assimilation.md). Returns the cycles run, the innovation statistics against what "
                       "the filter expected, and the last analysis (mean and std per state entry).",
        "parameters": [
            {"name": "twin", "description": "Default: the run's twin", "schema": [{"type": "string"},
                                                                                {"type": "null"}],
             "optional": True, "default": None},
            {"name": "cycles", "description": f"At most this many cycles (default: every pending observation "
                                              f"time, at most {MAX_PROCESS_CYCLES})", "schema": _NULLABLE_INT,
             "optional": True, "default": None},
            {"name": "method", "description": "etkf, enkf, letkf, pf or 3dvar (default: the app's)",
             "schema": [{"type": "string", "enum": ["enkf", "etkf", "letkf", "pf", "3dvar"]}, {"type": "null"}],
             "optional": True, "default": None},
            {"name": "members", "description": "Ensemble size (default: the app's, or the kept ensemble's)",
             "schema": _NULLABLE_INT, "optional": True, "default": None},
            {"name": "seed", "description": "Seed (default: the app's); the same seed gives the same analysis",
             "schema": [{"type": "integer", "minimum": 0}, {"type": "null"}], "optional": True, "default": None}],
        "returns": {"description": "twin, cycles, observations, innovation_mean, innovation_rms, expected_rms, "
                                   "ratio, spread, revision, pending, numbers, revisions, last_cycle, analysis",
                    "schema": {"type": "object"}}}, assimilate_impl, cacheable=False)
