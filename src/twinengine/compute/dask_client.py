"""The engine's Dask client of one scheduler address: made on first use, and made again once the one it holds
has closed for good.

``distributed`` closes a client that could not reconnect to its scheduler within its timeout (20 s). A
scheduler that dies while its site is idle and comes back on the same address later answers the site's probe
(healthy), while the old client stays closed: every run placed there would fail at once ("its client is
closed") without the site ever being found down, so never be moved. Asked for its client, this hands out a new
one instead; where the scheduler does not answer, connecting fails, the site's probe marks it down and the
run is placed again elsewhere (``compute.faults``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = ["DEAD", "DaskClient"]

log = logging.getLogger("twinengine.compute")

DEAD = ("closing", "closed", "failed")  # a client in one of these never answers again
TIMEOUT = "20s"  # to connect; also how long a client that lost its scheduler tries to reconnect before closing


class DaskClient:
    """The live client of ``address`` (``get``), reconnecting with a new client when the last one closed."""

    def __init__(self, address: str, *, timeout: str | None = None) -> None:
        self.address, self.timeout = address, timeout or TIMEOUT
        self._client: Any = None
        self._lock = threading.Lock()
        self.made = 0  # clients made so far (a test and the log read it)

    def get(self) -> Any:
        with self._lock:
            if self._client is not None and self._client.status in DEAD:
                old, self._client = self._client, None
                log.info("the Dask client of %s had closed (its scheduler was lost meanwhile); connecting again",
                         self.address)
                threading.Thread(target=_close, args=(old,), name="close-dask-client", daemon=True).start()
            if self._client is None:
                import distributed

                client_class: Any = distributed.Client
                self._client = client_class(self.address, set_as_default=False, timeout=self.timeout)
                self.made += 1
            return self._client

    @property
    def status(self) -> str | None:
        """The status of the client held now (``running``, ``connecting``, ``closed``...), None before one."""
        client = self._client
        return None if client is None else str(client.status)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _close(client: Any) -> None:
    try:
        client.close()
    except Exception as exc:  # already closed, or its loop gone: nothing left to release
        log.debug("closing a closed Dask client: %s", exc)
