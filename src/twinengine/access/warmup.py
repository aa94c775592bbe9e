"""The EDR listing warmed after start: the first ``GET /edr/collections`` would otherwise load the format
plugins and their libraries (zarr, h5netcdf) and open every collection's file, about 0.7 s on the demo's data.
A background thread does it once the server answers, so start-up is not held up, and ``/health`` names it
while it runs (``"warming": ["edr"]``) rather than claiming a warmth it does not have yet.
"""

from __future__ import annotations

import logging
import threading
import time

from twinengine.access.listing import PLACEHOLDER, list_collections
from twinengine.access.service import DataAccess
from twinengine.auth.principal import SYSTEM, Principal, Role

__all__ = ["Warmup"]

log = logging.getLogger(__name__)

# a signed-in user with no grants: the per-user readability queries are prepared (compiled) by its listing
NOBODY = Principal(name="system", role=Role.USER, issuer="internal")


class Warmup:
    """Lists every collection once as the engine (opening every file) and once as a user without grants
    (the path a person's listing takes), on a thread of its own; ``done`` is set when it ended (warm, or
    failed and logged: a request then pays the opening, as it did before)."""

    name = "edr"

    def __init__(self, access: DataAccess) -> None:
        self.access = access
        self.done = threading.Event()
        self.opened = 0
        self.seconds: float | None = None
        self._thread = threading.Thread(target=self._run, name="twin-edr-warmup", daemon=True)

    def start(self) -> Warmup:
        self._thread.start()
        return self

    @property
    def warming(self) -> bool:
        return not self.done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self.opened = len(list_collections(self.access, principal=SYSTEM, base=PLACEHOLDER))
            list_collections(self.access, principal=NOBODY, base=PLACEHOLDER)
        except Exception:  # a closing runtime, an unreadable store: the first request opens what it needs
            log.warning("warming the EDR collections failed", exc_info=True)
        finally:
            self.seconds = time.perf_counter() - started
            self.done.set()
        log.info("EDR collections warmed: %d opened in %.2f s", self.opened, self.seconds)
