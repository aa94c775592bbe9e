"""The SDK's crates namespace (``client.crates``): a run's crate, a rerun (of a run, or of a crate made
elsewhere) and a rerun's diff against its original."""

from __future__ import annotations

import time
from pathlib import Path

from twinengine.crates.schemas import RerunDiff, RerunStarted
from twinengine.errors import RunNotFinished, TwinEngineError
from twinengine.transport import Transport, segment

__all__ = ["CratesClient"]


class CratesClient:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def crate(self, run_id: str, to: Path | str | None = None) -> bytes:
        """The run's Provenance Run Crate (zip bytes); written to ``to`` as well when given."""
        data = self._transport.request("GET", f"/api/v1/runs/{segment(run_id)}/crate").content
        if to is not None:
            Path(to).write_bytes(data)
        return bytes(data)

    def rerun(self, run_id: str) -> RerunStarted:
        """Run ``run_id`` again on this engine (its diff: ``diff(started.rerun)`` once it ended)."""
        return self._transport.send(RerunStarted, "POST", f"/api/v1/runs/{segment(run_id)}/rerun", {})

    def rerun_crate(self, crate: Path | str | bytes) -> RerunStarted:
        """Run again the run a crate describes (a zip made by ``crate``, here or on another engine)."""
        data = crate if isinstance(crate, bytes) else Path(crate).read_bytes()
        response = self._transport.request("POST", "/api/v1/runs/rerun", content=data,
                                           headers={"Content-Type": "application/zip"})
        return RerunStarted.model_validate(response.json())

    def diff(self, rerun_id: str) -> RerunDiff:
        """A rerun's outputs against its original's (409 while the rerun has not ended)."""
        return self._transport.get(RerunDiff, f"/api/v1/runs/{segment(rerun_id)}/diff")

    def wait_diff(self, rerun_id: str, *, timeout: float = 600.0, interval: float = 0.5) -> RerunDiff:
        """``diff`` once the rerun has ended (polled every ``interval`` seconds, up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.diff(rerun_id)
            except TwinEngineError as exc:
                if exc.code != RunNotFinished.code or time.monotonic() > deadline:
                    raise
            time.sleep(interval)
