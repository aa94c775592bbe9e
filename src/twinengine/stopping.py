"""Foreground commands that run until told to stop: Ctrl-C or SIGTERM, whatever signal state they inherited.

A process inherits its signal mask and its ignored signals from whatever started it. Started from a thread
that had SIGINT blocked, or as a background job of a script (SIGINT ignored, so Python installs no
KeyboardInterrupt handler), Ctrl-C never reaches Python; and SIGTERM's default action ends a process without
its cleanup (a throw-away engine's temporary data left behind). ``until_stopped`` handles and unblocks both
signals for as long as it waits, and puts the previous handlers back after.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["STOP_SIGNALS", "unblock_stop_signals", "until_stopped"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def unblock_stop_signals() -> None:
    """Let SIGINT and SIGTERM through to this thread again: a blocked signal stays pending, whatever handler
    is set for it (uvicorn installs handlers of its own and unblocks nothing)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def until_stopped(stop: threading.Event | None = None, *, poll: float = 1.0) -> None:
    """Block until SIGINT or SIGTERM arrives, or ``stop`` is set from elsewhere; ``stop`` is set either way
    (loops that share it end too). Call it from the main thread, where Python runs signal handlers."""
    event = stop if stop is not None else threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: event.set()) for sig in STOP_SIGNALS}
    unblock_stop_signals()
    try:
        while not event.wait(poll):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
