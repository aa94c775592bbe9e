"""Synchronous processing out of the engine's process: a graph a request waits for is evaluated in a child.

A synchronous run (openEO ``/result``, a run with ``mode: sync``) is work a caller can make as large as they
like: a graph that allocates gigabytes, a node that never yields. Evaluated on a request thread it would take
the engine's memory and CPU from every other caller, and its time budget could stop it only between nodes.
So each synchronous run goes to a child process holding a runtime of its own over the same store, with no
background loops but its runs' heartbeat, under a data-segment limit (``sync_memory_bytes``). The engine waits
``sync_timeout`` at most; then the child is killed, whatever it was doing, and the run ends as
``ProcessingTimeLimit``. A child that dies ends its run as ``ProcessingMemoryLimit`` (what kills a process
that a limit does not stop first is the kernel's out-of-memory killer); the next run gets a new child.

The local stream log has one writer, the engine: a child reads stream history (``load_stream``) by asking
the engine over its pipe, which reads it as the identity of the run that child was given, never one the child
names. The processes that hand work to the engine's own loops or read its stream log (``ENGINE_PROCESSES``:
``assimilate``, ``calibrate``, ``train_model``) are called the same way: the child sends the arguments, the
engine evaluates the process as the run (its identity, its twin) and answers with the value. State revisions a
child writes are announced to the engine's waiters (live state readers, subscriptions) through the pipe too.
Messages from a child are JSON and Arrow IPC bytes, never pickles: nothing a graph makes its child say can
become code in the engine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from twinengine.auth.principal import Principal
    from twinengine.config import Settings
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["CHILD_MODULE", "ENGINE_PROCESSES", "EngineChannel", "SyncProcesses", "limit_memory"]

CHILD_MODULE = "twinengine.sync_child"  # the child's entry point (above the runtime, which it builds)
# Processes a child asks the engine to evaluate: they queue work for the engine's loops, wait on them, or read
# its stream log, which have one home, the engine's process.
ENGINE_PROCESSES = ("assimilate", "calibrate", "train_model")

log = logging.getLogger("twinengine.workflows")

# read_stream(principal, twin ref, stream, since, until) -> (records, time field, twin id), as the runtime reads
ReadStream = Callable[["Principal", str, str, "datetime | None", "datetime | None"],
                      tuple["pa.Table | None", str, str]]


class _Child:
    """One child process and the engine's end of its pipe."""

    def __init__(self, process: subprocess.Popen[bytes], conn: Connection) -> None:
        self.process, self.conn = process, conn

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # its sandboxed workers and Dask threads with it
        self.process.wait()


class SyncProcesses:
    """Up to ``most`` child processes, each evaluating one synchronous run at a time; started on first use,
    kept warm between runs, replaced after one was killed or died."""

    def __init__(self, settings: Settings, *, read_stream: ReadStream, most: int, memory_bytes: int,
                 notify: Callable[[str], None] = lambda _topic: None) -> None:
        self.settings, self.read_stream, self.notify = settings, read_stream, notify
        self.most, self.memory_bytes = most, memory_bytes
        self._idle: list[_Child] = []
        self._all: set[_Child] = set()  # idle and busy
        self._lock = threading.Condition()
        self._closed = False

    def run(self, engine: WorkflowEngine, run_id: str, *, time_limit: float | None) -> None:
        """Evaluate the committed, queued run ``run_id`` in a child; return when it has ended (recorded in the
        store either way)."""
        from twinengine.workflows.sync import overdue_error

        deadline = None if time_limit is None else time.monotonic() + time_limit
        child = self._take(deadline)
        if child is None:
            _end_refused(engine, run_id, overdue_error(time_limit or 0.0))
            return
        ended = False
        try:
            ended = self._drive(child, engine, run_id, deadline, time_limit)
        finally:
            self._give_back(child, keep=ended)

    def close(self) -> None:
        """Kill every child (the engine is stopping; runs they evaluate end as errors saying so)."""
        with self._lock:
            self._closed = True
            children, self._idle = list(self._all), []
            self._lock.notify_all()
        for child in children:  # a busy one's run is ended by the thread waiting for it (``_drive``)
            child.kill()

    # -- children ----------------------------------------------------------------------------------------

    def _take(self, deadline: float | None) -> _Child | None:
        with self._lock:
            while not self._idle and len(self._all) >= self.most:
                remaining = None if deadline is None else deadline - time.monotonic()
                if self._closed or (remaining is not None and remaining <= 0):
                    return None
                self._lock.wait(remaining)
            if self._closed:
                return None
            if self._idle:
                return self._idle.pop()
            child = self._start()  # under the lock: a start is quick (the child builds its runtime after)
            self._all.add(child)
            return child

    def _give_back(self, child: _Child, *, keep: bool) -> None:
        with self._lock:
            if keep and not self._closed:
                self._idle.append(child)
            else:
                self._all.discard(child)
                keep = False
            self._lock.notify()
        if not keep:
            child.kill()
            child.conn.close()

    def _start(self) -> _Child:
        mine, theirs = socket.socketpair()
        env = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # fewer malloc arenas: less of the limit only reserved
        process = subprocess.Popen([sys.executable, "-m", CHILD_MODULE, str(theirs.fileno())],
                                   pass_fds=(theirs.fileno(),), process_group=0, env=env, stdin=subprocess.DEVNULL)
        theirs.close()
        conn = Connection(mine.detach())
        conn.send_bytes(pickle.dumps((self.settings, self.memory_bytes)))  # the engine's settings, to its own code
        return _Child(process, conn)

    # -- one run -----------------------------------------------------------------------------------------

    def _drive(self, child: _Child, engine: WorkflowEngine, run_id: str, deadline: float | None,
               time_limit: float | None) -> bool:
        """Hand ``run_id`` to ``child`` and serve its requests until it says the run ended (True), or end the
        run here when its budget runs out or the child dies (False: the child is not used again)."""
        from twinengine.errors import ProcessingMemoryLimit
        from twinengine.workflows.sync import overdue_error

        try:
            child.conn.send_bytes(json.dumps({"run": run_id, "held_by": engine.worker_id}).encode())
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    child.kill()
                    _end_refused(engine, run_id, overdue_error(time_limit or 0.0))
                    return False
                if not child.conn.poll(remaining):
                    continue
                message = json.loads(child.conn.recv_bytes())
                if message.get("ended") == run_id:
                    return True
                if "read_stream" in message:
                    self._serve_read(child, engine, run_id, message["read_stream"])
                elif "call" in message and not self._serve_call(child, engine, run_id, message["call"], deadline):
                    child.kill()  # past the budget while the engine evaluated a process for it
                    _end_refused(engine, run_id, overdue_error(time_limit or 0.0))
                    return False
                elif isinstance(message.get("notify"), str) and message["notify"].startswith("state:"):
                    self.notify(message["notify"])
        except (EOFError, OSError, ValueError):  # it died, or said what no child of ours says: not used again
            status = child.process.poll()
            if status is None:
                child.kill()
                status = child.process.returncode
            if self._closed:  # the engine is stopping
                _end_refused(engine, run_id, {"code": "EngineStopped", "message": "the engine stopped before "
                                                   "the run ended; start the run again"})
                return False
            log.warning("the process evaluating synchronous run %s ended (status %s)", run_id, status)
            error = ProcessingMemoryLimit(
                f"the process evaluating this graph ended (status {status}) before the graph did: most likely it "
                f"needed more memory than synchronous processing may use (sync_memory_bytes "
                f"{self.memory_bytes} bytes); reduce its extent or run it as a batch job")
            _end_refused(engine, run_id, {"code": error.code, "message": error.message})
            return False

    def _serve_read(self, child: _Child, engine: WorkflowEngine, run_id: str, ask: dict[str, Any]) -> None:
        """A stream's history for the child's ``load_stream``, read here as the run's own identity."""
        from twinengine.errors import ProcessParameterInvalid, TwinEngineError

        try:
            if not isinstance(ask, dict) or not isinstance(ask.get("ref"), str) \
                    or not isinstance(ask.get("stream"), str):
                raise ProcessParameterInvalid("load_stream: a malformed request from the sync process")
            principal, _ = _run_identity(engine, run_id)  # as ``runner.execute`` makes it
            table, time_field, twin_id = self.read_stream(principal, ask["ref"], ask["stream"],
                                                          _instant(ask.get("since")), _instant(ask.get("until")))
        except TwinEngineError as exc:
            child.conn.send_bytes(json.dumps({"error": {"code": exc.code, "message": exc.message,
                                                        "status": exc.status}}).encode())
            return
        child.conn.send_bytes(json.dumps({"time_field": time_field, "twin_id": twin_id,
                                          "records": table is not None}).encode())
        if table is not None:
            child.conn.send_bytes(_to_ipc(table))


    def _serve_call(self, child: _Child, engine: WorkflowEngine, run_id: str, ask: Any,
                    deadline: float | None) -> bool:
        """Evaluate one of ``ENGINE_PROCESSES`` for the child's run, here, as the run; False when the budget
        ran out first (the process's own work, queued for the engine's loops, goes on)."""
        answer: dict[str, Any] = {}
        worker = threading.Thread(target=_call, args=(engine, run_id, ask, answer), name=f"sync-call-{run_id}",
                                  daemon=True)
        worker.start()
        worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            return False
        child.conn.send_bytes(json.dumps(answer, default=_plain).encode())
        return True


def _end_refused(engine: WorkflowEngine, run_id: str, error: dict[str, Any]) -> None:
    """End a run its process could not finish (killed at its budget, dead, or never started) as ``error``,
    and remove what it had written of its results: a partial file serves nobody."""
    from twinengine.workflows.run_endings import end_unfinished
    from twinengine.workflows.runner import forget_results

    if end_unfinished(engine.db, run_id, error):
        forget_results(engine, run_id)


def _call(engine: WorkflowEngine, run_id: str, ask: Any, answer: dict[str, Any]) -> None:
    from twinengine.errors import ProcessParameterInvalid, TwinEngineError
    from twinengine.workflows.context import RunContext, running

    try:
        if not isinstance(ask, dict) or ask.get("process") not in ENGINE_PROCESSES \
                or not isinstance(ask.get("args"), dict):
            raise ProcessParameterInvalid("a malformed request from the sync process")
        principal, twin_id = _run_identity(engine, run_id)
        ctx = RunContext(run_id=run_id, principal=principal, collections=engine.collections, results=engine.results,
                         executor=engine.executor, db=engine.db, twin=twin_id, services=engine.services,
                         node=str(ask.get("node") or ""), log=lambda level, text: _log(engine, run_id, level, text),
                         max_array_elements=engine.max_array_elements)
        entry = engine.registry.get(ask["process"])
        with running(ctx):
            value = entry.implementation(**ask["args"])
        answer.update(value=value, state_writes=ctx.state_writes, inputs=ctx.inputs, models=ctx.models)
    except TwinEngineError as exc:
        answer["error"] = {"code": exc.code, "message": exc.message, "status": exc.status}
    except Exception as exc:  # a bug: the child's node fails with it, as it would have here
        log.exception("process %s for sync run %s failed", ask.get("process") if isinstance(ask, dict) else "?",
                      run_id)
        answer["error"] = {"code": "ProcessFailed", "message": f"{type(exc).__name__}: {exc}", "status": 400}


def _log(engine: WorkflowEngine, run_id: str, level: str, message: str) -> None:
    from twinengine.workflows.models import RunLog

    with engine.db.session() as session:
        session.add(RunLog(run_id=run_id, level=level, message=message))


def _plain(value: Any) -> Any:
    """JSON for what processes return beside JSON types (numpy scalars and arrays, times)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _run_identity(engine: WorkflowEngine, run_id: str) -> tuple[Principal, str | None]:
    from twinengine.errors import ProcessParameterInvalid
    from twinengine.workflows.models import WorkflowRun
    from twinengine.workflows.runner import run_principal

    with engine.db.session(readonly=True) as session:
        run = session.get(WorkflowRun, run_id)
        if run is None:
            raise ProcessParameterInvalid("the run is gone")
        return run_principal(session, run), run.twin_id


def _instant(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def _to_ipc(table: pa.Table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


# -- the child ---------------------------------------------------------------------------------------------


class EngineChannel:
    """The child's end of the pipe for what it asks the engine while a run goes on: stream history
    (``read_stream``), ``ENGINE_PROCESSES`` (``call``) and state revisions to announce (``notify``). One
    question at a time; the engine answers in order."""

    def __init__(self, conn: Connection) -> None:
        self.conn, self.lock = conn, threading.Lock()

    def read_stream(self, principal: Principal, ref: str, stream: str, since: datetime | None,
                    until: datetime | None) -> tuple[pa.Table | None, str, str]:
        import pyarrow as pa

        ask = {"ref": ref, "stream": stream, "since": since.isoformat() if since else None,
               "until": until.isoformat() if until else None}
        with self.lock:
            self.conn.send_bytes(json.dumps({"read_stream": ask}).encode())
            answer = self._answer()
            table = pa.ipc.open_stream(self.conn.recv_bytes()).read_all() if answer["records"] else None
        return table, answer["time_field"], answer["twin_id"]

    def call(self, process_id: str) -> Callable[..., Any]:
        """An implementation of ``process_id`` that the engine evaluates for this run."""
        from twinengine.workflows.context import current

        def implementation(**args: Any) -> Any:
            ctx = current()
            with self.lock:
                self.conn.send_bytes(json.dumps({"call": {"process": process_id, "args": args, "node": ctx.node}},
                                                default=_plain).encode())
                answer = self._answer()
            ctx.state_writes.extend(answer.get("state_writes") or [])
            ctx.inputs.extend(answer.get("inputs") or [])
            ctx.models.extend(answer.get("models") or [])
            return answer.get("value")

        return implementation

    def notify(self, topic: str) -> None:
        with self.lock:
            self.conn.send_bytes(json.dumps({"notify": topic}).encode())

    def _answer(self) -> dict[str, Any]:
        from twinengine.errors import error_from_payload

        answer: dict[str, Any] = json.loads(self.conn.recv_bytes())
        if "error" in answer:
            error = answer["error"]
            raise error_from_payload(int(error.get("status", 400)), error)
        return answer


def limit_memory(limit: int) -> None:
    """The calling process may use at most ``limit`` bytes of heap and anonymous memory (0: no limit)."""
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
