"""The SDK's view of calibrations: start one, follow it, read its runs and figure, accept or reject it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twinengine.calibration.schemas import CalibrationPage, CalibrationRead, CalibrationRunPage
from twinengine.transport import Transport

__all__ = ["CalibrationClient"]

ENDED = ("done", "error", "canceled")


class CalibrationClient:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def start(self, twin: str, **body: Any) -> CalibrationRead:
        """Start a calibration of ``twin`` (fields of ``CalibrationCreate``; None ones are left out), e.g.
        ``runs=500, workers=8, site="hpc"`` to run the model on the compute site ``hpc``."""
        payload = {k: v for k, v in body.items() if v is not None}
        return self._t.send(CalibrationRead, "POST", f"/api/v1/twins/{twin}/calibrations", payload)

    def get(self, calibration_id: str) -> CalibrationRead:
        return self._t.get(CalibrationRead, f"/api/v1/calibrations/{calibration_id}")

    def list(self, twin: str, *, limit: int = 50, offset: int = 0) -> CalibrationPage:
        return self._t.get(CalibrationPage, f"/api/v1/twins/{twin}/calibrations", limit=limit, offset=offset)

    def runs(self, calibration_id: str, *, limit: int = 1000, offset: int = 0) -> CalibrationRunPage:
        return self._t.get(CalibrationRunPage, f"/api/v1/calibrations/{calibration_id}/runs", limit=limit,
                           offset=offset)

    def figure(self, calibration_id: str) -> bytes:
        """The figure as PNG bytes (once the calibration is done)."""
        return self._t.request("GET", f"/api/v1/calibrations/{calibration_id}/figure").content

    def accept(self, calibration_id: str) -> CalibrationRead:
        return self._t.send(CalibrationRead, "POST", f"/api/v1/calibrations/{calibration_id}/accept", {})

    def reject(self, calibration_id: str) -> CalibrationRead:
        return self._t.send(CalibrationRead, "POST", f"/api/v1/calibrations/{calibration_id}/reject", {})

    def cancel(self, calibration_id: str) -> CalibrationRead:
        return self._t.send(CalibrationRead, "POST", f"/api/v1/calibrations/{calibration_id}/cancel", {})

    def wait(self, calibration_id: str, *, on_progress: Callable[[CalibrationRead], None] | None = None,
             interval: float = 0.5, timeout: float | None = None) -> CalibrationRead:
        """Poll until the calibration ends (done, error, canceled); ``on_progress`` sees every answer."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            read = self.get(calibration_id)
            if on_progress is not None:
                on_progress(read)
            if read.status in ENDED or (deadline is not None and time.monotonic() > deadline):
                return read
            time.sleep(interval)
