"""One worker process seen from the engine: start it in its sandbox, exchange messages with a deadline,
stop it. A worker that misses its deadline, dies or breaks the protocol is killed, never reused."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from twinengine.workers import cgroups
from twinengine.workers.cpu import TreeCpu, tree_cpu_seconds, tree_pids
from twinengine.workers.gpu import gpu_holders
from twinengine.workers.launch import TooManyOptions, spawn, widen
from twinengine.workers.memory_watch import Watch, watch
from twinengine.workers.protocol import _BLOB, _HEAD, MAX_MESSAGE_BYTES, Message, ProtocolError
from twinengine.workers.sandbox import Layout, Sandbox
from twinengine.workers.zygote import ForkedProcess, Spare, Zygote

__all__ = ["CHILD", "Ask", "Worker", "WorkerCrashed", "WorkerError", "WorkerOutOfMemory", "WorkerTimeout"]

CHILD = "twinengine.workers._child"
Ask = Callable[[dict[str, Any], list[bytes]], tuple[dict[str, Any], list[bytes]]]
Note = Callable[[dict[str, Any], list[bytes]], None]


class WorkerCrashed(Exception):
    """Raised when a worker process died, broke the protocol or could not start (its log tail included).
    ``completed``: the function calls of the request that had returned before (set where known)."""

    completed: int = 0


class WorkerTimeout(WorkerCrashed):
    """Raised when a worker did not answer within its time limit (it has been killed)."""


class WorkerOutOfMemory(WorkerCrashed):
    """Raised when a worker's processes together went over its sandbox's memory limit (``tree_bytes``): the
    kernel or the engine's watch killed them, and the worker has been stopped."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class WorkerError(Exception):
    """Raised when the code a worker ran raised: ``remote`` is its ``Type: message`` line, ``trace`` the
    last lines of its traceback. The worker itself is fine and stays warm."""

    def __init__(self, remote: str, trace: str = "") -> None:
        super().__init__(remote)
        self.remote, self.trace = remote, trace

    @property
    def place(self) -> str | None:
        """Where in the app's files it was raised (``package/module.py:12``), from the innermost frame of
        the app's code in ``trace``; None when no frame is in the app's folder."""
        return app_place(self.trace)


# A frame of app code: under the sandbox's mount, or an unpacked archive's folder (<sha256>/) without one.
_APP_FRAME = re.compile(r'File "(?:[^"]*?/twin/app/|[^"]*?/[0-9a-f]{64}/)([^"]+)", line (\d+)')


def app_place(trace: str) -> str | None:
    """The innermost ``relative/path.py:line`` of app code named in a traceback's text, or None."""
    found = _APP_FRAME.findall(trace)
    return f"{found[-1][0]}:{found[-1][1]}" if found else None


class Worker:
    """A started worker: ``request`` sends one message and returns the answer, serving the worker's own
    questions (``ask``) on the way."""

    def __init__(self, sandbox: Sandbox, layout: Layout, *, memory_bytes: int, label: str,
                 tree_bytes: int | None = None, image: Zygote | None = None) -> None:
        """``memory_bytes``: the address-space limit of each of its processes (0: none); ``tree_bytes``: what
        its processes may hold in memory together (default ``memory_bytes``; 0: no bound), held by a memory
        cgroup of its own where the host allows one (``workers/cgroups.py``), else by the engine's watch of
        its process tree (``workers/memory_watch.py``). ``image``: fork it from that warm image instead of
        starting a sandbox of its own (its scratch folder is then the one the image made for it, not
        ``layout.scratch``); raises ``ImageFailed`` when the image could not fork it."""
        self.label = label
        self.tree_bytes = max(0, memory_bytes if tree_bytes is None else tree_bytes)
        self.memory: Watch | None = None
        self.image = image
        self.process: subprocess.Popen[bytes] | ForkedProcess
        if image is None:
            self.layout = layout
            fd, log_path = tempfile.mkstemp(prefix="twin-worker-", suffix=".log")  # outside the scratch folder
            self.log_path = Path(log_path)
            try:
                self.process = self._spawn(sandbox, memory_bytes, fd)
            except BaseException:
                self.log_path.unlink(missing_ok=True)
                raise
            finally:
                os.close(fd)
        else:
            spare = image.take()
            self.layout, self.log_path = replace(layout, scratch=spare.scratch), spare.log_path
            self.process = self._adopt(spare, memory_bytes)
        self.scrub = sandbox.scrubber(self.layout)  # what goes back to callers names no engine path
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in, self._out = self.process.stdin.fileno(), self.process.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        widen(self._in)
        widen(self._out)
        self._buffer = bytearray()
        self._writable = selectors.DefaultSelector()  # one pair per worker, not one per frame read or written
        self._writable.register(self._in, selectors.EVENT_WRITE)
        self._readable = selectors.DefaultSelector()
        self._readable.register(self._out, selectors.EVENT_READ)
        self.calls = 0
        self.started = time.monotonic()
        self.affinity: Hashable = None  # who used it last (the pool prefers to give it to them again)
        self.served: dict[Hashable, None] = {}  # who used it, oldest first (their warm models may still be here)
        self._cpu: TreeCpu | None = None  # its processes, kept between walks (cpu_seconds(kept=True))

    def _spawn(self, sandbox: Sandbox, memory_bytes: int, log_fd: int) -> subprocess.Popen[bytes]:
        """A fresh sandbox and interpreter: bubblewrap (or nothing), in cgroups of its own where the host allows
        them (a bound on the memory its processes hold together, and in bubblewrap a cap on its processes and
        threads that holds for root too)."""
        argv, env, cwd = sandbox.command(CHILD, [f"--memory={max(0, memory_bytes)}"], self.layout)
        bwrapped = "--" in argv and argv[0].endswith("bwrap")
        self.group = cgroups.make(processes=sandbox.limits.processes if bwrapped else 0, memory_bytes=self.tree_bytes)
        try:
            process = spawn(argv, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_fd,
                            wrap=self.group.command)
        except TooManyOptions:
            self.group.close()
            raise WorkerCrashed(f"{self.label}: too many sandbox options") from None
        except OSError as exc:
            self.group.close()
            raise WorkerCrashed(f"{self.label}: the worker could not start: {exc}") from None
        self.memory = watch(process.pid, self.tree_bytes, self.group)
        return process

    def _adopt(self, spare: Spare, memory_bytes: int) -> ForkedProcess:
        """A worker forked from an image (ahead of this request, or now) and waiting in its cgroups: its memory
        bound set, its tree watched, then let serve."""
        process, self.group = spare.process, spare.group
        assert process is not None
        try:
            self.group.limit_memory(self.tree_bytes)
            self.memory = watch(process.pid, self.tree_bytes, self.group)
            process.release(memory_bytes)
        except OSError as exc:
            if self.memory is not None:
                self.memory.stop()
            spare.discard()
            raise WorkerCrashed(f"{self.label}: the forked worker could not start: {exc}") from None
        return process

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def request(self, header: dict[str, Any], blobs: list[bytes] | None = None, *, timeout: float,
                ask: Ask | None = None, note: Note | None = None, later: Iterable[Message] = (),
                renew: bool = False) -> Message:
        """Send ``header`` (+ ``blobs``), then the messages of ``later`` (more of the request, made while the
        worker starts on the first), and wait at most ``timeout`` seconds for the answer. The request is sent
        whole before anything is read, and the worker reads all of it before it writes, so neither side waits
        on the other with both pipes full. On the way the worker may ask a question (``ask`` answers it) or
        send a note that needs no answer (``note`` takes it: a part of the answer, read while the worker goes
        on). An answer with ``error`` raises ``WorkerError``; a missed deadline kills the worker and raises
        ``WorkerTimeout``. With ``renew``, each note gives the worker ``timeout`` seconds more (a long call that
        sends its answer in parts is stopped when it falls silent, not for its length)."""
        deadline = time.monotonic() + timeout
        self.calls += 1
        try:
            self._send(header, blobs or [], deadline)
            for message in later:
                self._send(*message, deadline)
            while True:
                reply, data = self._receive(deadline)
                if "note" in reply:
                    if note is None:
                        raise ProtocolError(f"the worker sent a note {reply['note']!r}, which this call does not take")
                    note(reply, data)
                    if renew:
                        deadline = time.monotonic() + timeout
                    continue
                if "ask" not in reply:
                    break
                if ask is None:
                    raise ProtocolError(f"the worker asked for {reply['ask']!r}, which this call does not answer")
                self._send(*ask(reply, data), deadline)
        except TimeoutError:
            self.kill()
            self._check_memory()
            raise WorkerTimeout(f"{self.label}: no answer within {timeout:g} s; the worker was stopped") from None
        except (EOFError, BrokenPipeError, ProtocolError, OSError) as exc:
            self.kill()
            self._check_memory()
            raise WorkerCrashed(f"{self.label}: {self.scrub(self._ended(exc))}") from None
        self._check_memory()  # a process it forked may have been killed for memory while the call went on
        if "error" in reply:
            raise WorkerError(self.scrub(str(reply["error"])), self.scrub(str(reply.get("trace", ""))))
        failed = reply.get("failed")
        if isinstance(failed, dict):  # the first failure of a batch of function calls
            reply["failed"] = {k: self.scrub(v) if isinstance(v, str) else v for k, v in failed.items()}
        return reply, data

    def _check_memory(self) -> None:
        """Raise ``WorkerOutOfMemory`` (the worker stopped) when its processes went over their memory limit."""
        why = self.memory.ended_call() if self.memory is not None else None
        if why is not None:
            self.kill()
            raise WorkerOutOfMemory(f"{self.label}: {why}; the worker was stopped", self.tree_bytes) from None

    def _ended(self, exc: BaseException) -> str:
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        if isinstance(exc, ProtocolError) or code is None:
            how = f"broke the protocol ({exc})"
        elif code < 0 or code > 128:  # bwrap reports a child killed by signal n as 128 + n
            how = f"was killed by signal {-code if code < 0 else code - 128}"
        else:
            how = f"exited with status {code}"
        tail = self.log_tail().strip()
        return f"the worker process {how}" + (f": {tail[-800:]}" if tail else "")

    def _send(self, header: dict[str, Any], blobs: list[bytes], deadline: float) -> None:
        import json

        head = json.dumps(header, separators=(",", ":")).encode()
        parts: list[bytes | memoryview] = [_HEAD.pack(len(head), len(blobs)), head]
        for blob in blobs:
            parts += [_BLOB.pack(len(blob)), blob]
        for part in parts:
            view = memoryview(part)
            while view:
                if not self._writable.select(_left(deadline)):
                    raise TimeoutError
                try:
                    written = os.write(self._in, view[: 1 << 20])
                except BlockingIOError:
                    continue
                view = view[written:]

    def _read(self, size: int, deadline: float) -> bytes:
        if size > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"a frame of {size} bytes is larger than the protocol allows")
        while len(self._buffer) < size:
            if not self._readable.select(_left(deadline)):
                raise TimeoutError
            try:
                chunk = os.read(self._out, max(1 << 16, min(size - len(self._buffer), 1 << 24)))
            except BlockingIOError:
                continue
            if not chunk:
                raise EOFError("the worker closed its pipe")
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _receive(self, deadline: float) -> Message:
        import json

        head_len, count = _HEAD.unpack(self._read(_HEAD.size, deadline))
        if count > 1 << 20:
            raise ProtocolError(f"{count} blobs in one message")
        try:
            header = json.loads(self._read(head_len, deadline))
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"a header that is not JSON: {exc}") from None
        if not isinstance(header, dict):
            raise ProtocolError("a header that is not a JSON object")
        blobs = [self._read(_BLOB.unpack(self._read(_BLOB.size, deadline))[0], deadline) for _ in range(count)]
        return header, blobs

    def log_tail(self, size: int = 4000) -> str:
        """The end of what the worker printed (kept outside its sandbox, so it cannot point elsewhere)."""
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - size))
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def cpu_seconds(self, *, kept: bool = False) -> float:
        """CPU seconds the worker (its sandbox and every process in it) has used so far, read from outside.
        ``kept``: through the processes found by a walk of its tree at most a second old (the stream path reads
        it for every slice of calls); otherwise the tree is walked now, so a process the last call started
        and still runs is counted with that call."""
        if not kept:
            return tree_cpu_seconds(self.process.pid)
        if self._cpu is None:
            self._cpu = TreeCpu(self.process.pid)
        return self._cpu.seconds()

    def gpus_held(self) -> int:
        """On how many GPUs the worker's processes hold a context now, as the driver lists them (NVML, read
        from outside: ``workers/gpu.py``); 0 on a machine without GPUs, where nothing is looked up."""
        holders = gpu_holders()
        if not holders.count or not self.alive:
            return 0
        return holders.held(tree_pids(self.process.pid))

    def kill(self) -> None:
        self.signal_kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.group.kill()  # what escaped the process group (a process that made a session of its own)

    def signal_kill(self) -> None:
        """SIGKILL to the worker's process group (a forked one: its sandbox's init, which takes every process
        of its pid namespace with it), without waiting (callable from another thread: the request in progress
        then ends with ``WorkerCrashed``, and the worker is never reused)."""
        if isinstance(self.process, ForkedProcess):
            self.process.kill()
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop the worker (closing its stdin ends its loop; a worker that lingers is killed) and clean up."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                if self.process.stdin is not None:
                    self.process.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=2)
        self.kill()
        self._writable.close()
        self._readable.close()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        self.log_path.unlink(missing_ok=True)
        shutil.rmtree(self.layout.scratch, ignore_errors=True)
        if self.memory is not None:
            self.memory.stop()
        self.group.close()
        if isinstance(self.process, ForkedProcess):
            self.process.close()


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left
