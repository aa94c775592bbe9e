"""Several engine processes on one socket: what ``twin serve --processes N`` runs.

Python runs one thread at a time per process, so one engine process uses about one core however many
requests it has. With ``--processes N`` the parent prepares the store once (migrations, the first admin),
binds the socket and hands it to uvicorn's supervisor, which starts N processes that all accept on it (the
kernel spreads connections between them), replaces one that dies or stops answering its pings, and stops
them all on SIGTERM or Ctrl-C (each ends its requests and runs as a single engine does). Each process is a
whole engine behind ``StartingApp``, built from the same settings, which the children read from the
environment the parent sets; one of them runs the elected loops (``daemons/primary.py``).

A process whose engine cannot start asks the parent to stop (SIGUSR1): the others would fail alike, and
replacing it would only fail again.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from twinengine.api.starting import StartingApp
from twinengine.config import Settings

__all__ = ["child_app", "serve_processes"]


def serve_processes(settings: Settings, *, grace: int) -> bool:
    """Serve ``settings.serve_processes`` engine processes until stopped; False when one could not start (or
    the store could not be prepared)."""
    from uvicorn.supervisors import Multiprocess

    from twinengine.api.edge import edge_config
    from twinengine.bootstrap import announce_admin_token, issuer_for, prepare_store
    from twinengine.store.engine import Database

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url, pool_size=1)
    try:
        token = prepare_store(db, issuer_for(settings), settings)  # once, before any process starts
    except Exception as exc:
        print(f"twinengine: the engine did not start: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return False
    finally:
        db.dispose()
    if token:
        announce_admin_token(token, settings.data_dir)
    os.environ.update(child_environment(settings))

    class Supervisor(Multiprocess):
        failed = False

        def handle_usr1(self) -> None:  # a child's engine did not start (see child_app)
            self.failed = True
            self.should_exit.set()

    config = edge_config(f"{__name__}:child_app", settings, factory=True, host=settings.host, port=settings.port,
                         workers=settings.serve_processes, log_level=settings.log_level,
                         timeout_graceful_shutdown=grace)  # the edge's limits travel to each process with it
    supervisor = Supervisor(config, sockets=[config.bind_socket()])
    supervisor.run()
    return not supervisor.failed


def child_environment(settings: Settings) -> dict[str, str]:
    """What a child needs beyond the parent's own environment: the settings the command line changed."""
    values: dict[str, Any] = {"data_dir": settings.data_dir, "host": settings.host, "port": settings.port,
                              "serve_processes": settings.serve_processes, "sandbox": settings.sandbox,
                              "lake_daemons": "true" if settings.lake_daemons else "false"}
    return {f"TWIN_{name.upper()}": str(value) for name, value in values.items()}


def child_app() -> StartingApp:
    """One of the processes (uvicorn calls this factory in each child)."""
    return StartingApp(Settings(), on_failure=_ask_parent_to_stop)


def _ask_parent_to_stop() -> None:
    os.kill(os.getppid(), signal.SIGUSR1)
