"""A sync process (``workflows.sync_processes``): a runtime of its own over the engine's store, evaluating the
synchronous runs the engine hands it, one at a time, under the memory limit it was given."""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

from twinengine.daemons.supervisor import NeverElected
from twinengine.daemons.workflows_runner import heartbeat_loop
from twinengine.runtime import Runtime
from twinengine.workers.sandbox import said_by_engine
from twinengine.workflows.sync import run_here
from twinengine.workflows.sync_processes import ENGINE_PROCESSES, EngineChannel, limit_memory

__all__ = ["main"]


def main(fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the engine, which ends this process
    said_by_engine()  # the engine has said on stderr what its sandbox cannot do; this process logs it only
    threading.Thread(target=_end_with_engine, args=(os.getppid(),), name="sync-orphan-watch", daemon=True).start()
    conn = Connection(fd)
    settings, memory_bytes = pickle.loads(conn.recv_bytes())  # from the engine that started it: trusted
    limit_memory(memory_bytes)
    runtime = Runtime.from_settings(settings.model_copy(update={"sync_isolation": "thread"}))
    engine = runtime.workflows
    channel = EngineChannel(conn)
    engine.services["read_stream"] = channel.read_stream  # the engine is the stream log's one writer
    for process_id in ENGINE_PROCESSES:  # work for the engine's own loops: the engine evaluates them
        entry = engine.registry.get(process_id)
        engine.registry.register(entry.spec, channel.call(process_id), cacheable=entry.cacheable)
    announce = runtime.notifier.notify

    def notify(topic: str) -> None:  # a state revision written here wakes the engine's waiters as well
        announce(topic)
        channel.notify(topic)

    runtime.notifier.notify = notify  # type: ignore[method-assign]
    engine.memory_limit = f"sync_memory_bytes {memory_bytes} bytes"
    engine.start()
    runtime.loops.add(heartbeat_loop(engine))  # its runs' heartbeat, cancel requests and lost grants
    runtime.loops.elect(lambda _start: NeverElected())  # the engine runs the elected loops, never this process
    runtime.loops.start()
    try:
        while True:
            try:
                message = json.loads(conn.recv_bytes())
            except (EOFError, OSError):
                return  # the engine stopped, or let this process go
            try:
                run_here(engine, message["run"], held_by=message["held_by"])
            finally:  # a site's client lives no longer than the run here: the engine may remove the site
                sites = engine.services.get("sites")
                if sites is not None:
                    sites.close()
            conn.send_bytes(json.dumps({"ended": message["run"]}).encode())
    finally:
        runtime.close()


def _end_with_engine(engine_pid: int) -> None:
    """An engine killed outright cannot kill this process: it ends itself, mid-run or not, once orphaned."""
    while os.getppid() == engine_pid:
        time.sleep(1.0)
    os._exit(1)


if __name__ == "__main__":
    main(int(sys.argv[1]))
