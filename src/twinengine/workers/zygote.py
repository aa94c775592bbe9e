"""A warm image seen from the engine: one fork server (``workers/_zygote.py``) in its bubblewrap sandbox, for one
app version (or for UDFs) and one set of preloaded modules, and the workers forked from it.

``Zygote.fork`` hands the image a new worker's pipes and log and gets back a ``ForkedProcess``: the worker's
sandbox (pid 1 of its own pid namespace, the reaper of what the code leaves behind), found among the image's
children by its pid in the image's namespace (``NSpid``, which the kernel keeps), and held by a pidfd, so a
signal never reaches a process that took over its number. The worker waits for ``release`` (sent once it is in
its cgroups) before it serves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinengine.workers import cgroups
from twinengine.workers.launch import spawn, widen
from twinengine.workers.sandbox import Layout, Sandbox

__all__ = ["ForkedProcess", "ImageFailed", "Spare", "Zygote"]

log = logging.getLogger("twinengine.workers")

IMAGE = "twinengine.workers._zygote"
_MESSAGE = 1 << 16
_ENTERED, _GO = b"\x02", b"\x01"
_ANSWER_SECONDS = 30.0  # a fork the image does not answer within this: the image is taken for lost
_AHEAD_BYTES = 1 << 30  # the memory bound of a worker forked ahead until it is taken (it runs the engine's code)


class ImageFailed(Exception):
    """Raised when a warm image could not start, or could not fork a worker (it is then stopped)."""


class Zygote:
    """One warm image: started in its sandbox (``preload`` imported there), ready when the constructor returns
    (or ``ImageFailed``)."""

    def __init__(self, sandbox: Sandbox, *, code: Path | None, env: Path | None, cache: Path | None,
                 preload: tuple[str, ...], scratch_root: Path, label: str, timeout: float = 120.0) -> None:
        self.label, self.preload, self.limits = label, preload, sandbox.limits
        self._spare: Spare | None = None  # the next worker, forked ahead and waiting in its cgroups
        self._refilling = False
        self._closed = False
        self.root = Path(tempfile.mkdtemp(prefix="twin-image-", dir=scratch_root))  # every worker's scratch
        own = Path(tempfile.mkdtemp(prefix="image-", dir=self.root))
        (own / "tmp").mkdir()
        self.layout = Layout(scratch=own, code=code, env=env, cache=cache)
        self._lock = threading.Lock()
        self._news = threading.Condition(self._lock)
        self._answers: dict[int, dict[str, Any]] = {}
        self._ended: dict[int, int] = {}
        self._ready: dict[str, Any] | None = None
        self._lost = False
        self._ids = 0
        self.host_pid = 0
        fd, log_path = tempfile.mkstemp(prefix="twin-image-", suffix=".log")
        self.log_path = Path(log_path)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._socket = ours
        try:
            argv, environment, cwd = sandbox.image_command(IMAGE, self.layout, self.root)
            self.process = spawn(argv, env=environment, cwd=cwd, stdin=theirs.fileno(), stdout=subprocess.DEVNULL,
                                 stderr=fd)
        except BaseException:
            ours.close()
            self._discard()
            raise
        finally:
            theirs.close()
            os.close(fd)
        self._reader = threading.Thread(target=self._read, name="twin-image-reader", daemon=True)
        self._reader.start()
        try:
            self._socket.send(json.dumps({"preload": list(preload)}).encode())
            ready = self._wait(lambda: self._ready, timeout)
            self.host_pid = self._find_image(int(ready["ready"]))
        except (OSError, ImageFailed, ValueError, KeyError, TypeError) as exc:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(2)  # what it printed before it ended is all in its log
            said = self._tail()
            self.close(wait=True)
            raise ImageFailed(f"the warm image of {label} could not start: {exc}{said}") from None
        self.preloaded: list[str] = list(ready.get("preloaded", []))
        self.skipped: dict[str, str] = dict(ready.get("skipped", {}))
        self.started = time.monotonic()
        self._refill()  # the first worker, forked ahead

    @property
    def alive(self) -> bool:
        return not self._lost and self.process.poll() is None

    def take(self) -> Spare:
        """A forked worker in its cgroups, waiting for ``Spare.release``: the one forked ahead when it is ready,
        else one forked now; the next is forked ahead on a thread of its own. Raises ``ImageFailed``."""
        deadline = time.monotonic() + _ANSWER_SECONDS
        with self._news:  # one being forked ahead now is further on than one forked from here
            while self._spare is None and self._refilling and not self._closed and time.monotonic() < deadline:
                self._news.wait(deadline - time.monotonic())
            spare, self._spare = self._spare, None
        if spare is not None and (spare.process is None or spare.process.poll() is not None):  # ended meanwhile
            spare.discard()
            spare = None
        if spare is None:
            spare = self._prepare()
        self._refill()
        return spare

    def _refill(self) -> None:
        with self._lock:
            if self._refilling or self._spare is not None or self._closed:
                return
            self._refilling = True
        threading.Thread(target=self._refill_now, name="twin-image-spare", daemon=True).start()

    def _refill_now(self) -> None:
        spare: Spare | None = None
        try:
            spare = self._prepare()
        except Exception as exc:  # the next take forks one itself (or finds the image gone)
            log.debug("the warm image of %s could not fork a worker ahead: %s", self.label, exc)
        with self._news:
            self._refilling = False
            keep = spare is not None and not self._closed and self._spare is None
            if keep:
                self._spare = spare
            self._news.notify_all()
        if spare is not None and not keep:
            spare.discard()

    def _prepare(self) -> Spare:
        """Fork a worker and put it into cgroups of its own (its memory limit is set when it is taken)."""
        scratch = Path(tempfile.mkdtemp(prefix="twin-scratch-", dir=self.root))
        (scratch / "tmp").mkdir()
        fd, log_path = tempfile.mkstemp(prefix="twin-worker-", suffix=".log")
        group = cgroups.make(processes=self.limits.processes, memory_bytes=_AHEAD_BYTES)
        spare = Spare(None, group, scratch, Path(log_path))
        try:
            spare.process = self.fork(scratch=scratch, processes=self.limits.processes,
                                      file_bytes=self.limits.file_bytes, shm_bytes=self.limits.shm_bytes, log_fd=fd)
            group.enter(spare.process.pid)
            os.write(spare.process.stdin.fileno(), _ENTERED)  # it forks the process that will serve
        except OSError as exc:
            spare.discard()
            raise ImageFailed(f"a forked worker could not be put into its cgroups: {exc}") from None
        except BaseException:
            spare.discard()
            raise
        finally:
            os.close(fd)
        return spare

    def fork(self, *, scratch: Path, processes: int, file_bytes: int, shm_bytes: int,
             log_fd: int) -> ForkedProcess:
        """A new worker whose scratch folder is ``scratch`` (made under ``self.root``), its stderr ``log_fd``;
        it is not serving yet (``ForkedProcess.release``). Raises ``ImageFailed`` (the image stopped)."""
        if scratch.parent != self.root:
            raise ValueError("a worker's scratch folder lies in its image's folder")
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        widen(stdin_w)
        widen(stdout_r)
        try:
            with self._lock:
                self._ids += 1
                ident = self._ids
            request = {"op": "fork", "id": ident, "scratch": scratch.name, "processes": processes,
                       "file_bytes": file_bytes, "shm_bytes": shm_bytes}
            try:
                socket.send_fds(self._socket, [json.dumps(request).encode()], [stdin_r, stdout_w, log_fd])
            except OSError as exc:
                raise ImageFailed(f"the warm image of {self.label} is gone ({exc})") from None
            finally:
                os.close(stdin_r)
                os.close(stdout_w)
            answer = self._wait(lambda: self._answers.pop(ident, None), _ANSWER_SECONDS)
            if "error" in answer:
                raise ImageFailed(str(answer["error"]))
            pid = self._host_pid(int(answer["pid"]))
            return ForkedProcess(self, ident, pid, stdin_w, stdout_r)
        except BaseException:
            for fd in (stdin_w, stdout_r):
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise

    def worker_pids(self) -> list[int]:
        """The host pids of the workers forked from the image and not ended (each its sandbox's init; the one
        forked ahead included)."""
        return _children(self.host_pid) if self.host_pid else []

    def exit_code(self, ident: int, timeout: float) -> int | None:
        """How the worker of fork request ``ident`` ended, as the image saw it (None: not known within
        ``timeout`` seconds, its image gone)."""
        try:
            code: int = self._wait(lambda: self._ended.pop(ident, None), timeout)
        except ImageFailed:
            return None
        return code

    def close(self, *, wait: bool = False) -> None:
        """Retire the image: it forks nothing more and ends with the last worker it forked (those go on; the
        one forked ahead is stopped). ``wait``: stop it now (its workers with it) and wait for it."""
        with self._news:
            self._closed = True
            spare, self._spare = self._spare, None
            self._news.notify_all()
        if spare is not None:
            spare.discard()
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        if wait:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self._reap()
            return
        threading.Thread(target=self._reap, name="twin-image-retired", daemon=True).start()

    def _reap(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait()
        self._socket.close()
        self._discard()

    def _discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)

    def _tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip()
        except OSError:
            return ""
        return f": {text[-800:]}" if text else ""

    def _read(self) -> None:
        """The image's messages, filed for whoever waits on them (one thread per image)."""
        while True:
            try:
                data = self._socket.recv(_MESSAGE)
                message = json.loads(data) if data else None
            except (OSError, ValueError):
                message = None
            with self._news:
                if not isinstance(message, dict):
                    self._lost = True
                    self._news.notify_all()
                    return
                if "ended" in message:
                    self._ended[int(message["ended"])] = int(message.get("code", -9))
                elif "id" in message:
                    self._answers[int(message["id"])] = message
                elif "ready" in message:
                    self._ready = message
                self._news.notify_all()

    def _wait(self, found: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        with self._news:
            while True:
                value = found()
                if value is not None:
                    return value
                left = deadline - time.monotonic()
                if self._lost or left <= 0:
                    why = "ended" if self._lost else f"did not answer within {timeout:g} s"
                    raise ImageFailed(f"the image {why}")
                self._news.wait(min(left, 1.0))

    def _find_image(self, inside: int) -> int:
        """The image's host pid: the process under bwrap whose pid in the sandbox is ``inside``."""
        for pid in _descendants(self.process.pid):
            levels = _nspids(pid)
            if len(levels) == 2 and levels[1] == inside:
                return pid
        raise ImageFailed("its process was not found under its sandbox")

    def _host_pid(self, inside: int) -> int:
        """The host pid of the image's child whose pid in the image's namespace is ``inside``."""
        for _ in range(50):
            for pid in _children(self.host_pid):
                levels = _nspids(pid)
                if len(levels) >= 2 and levels[1] == inside:
                    return pid
            time.sleep(0.01)
        raise ImageFailed(f"the forked worker {inside} was not found among the image's children")


@dataclass
class Spare:
    """A worker forked ahead: its process (waiting for ``release``), cgroups, scratch folder and log."""

    process: ForkedProcess | None
    group: cgroups.Group
    scratch: Path
    log_path: Path

    def discard(self) -> None:
        if self.process is not None:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            self.process.close()
        self.group.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)


class ForkedProcess:
    """A worker forked from an image, as ``Worker`` uses a ``subprocess.Popen``: ``pid`` (its sandbox's init on
    the host), ``stdin``, ``stdout``, ``poll``, ``wait``, ``returncode``; ``kill`` through its pidfd (held until
    ``close``, so a kill from another thread never reaches a process that took over its number)."""

    def __init__(self, image: Zygote, ident: int, pid: int, stdin: int, stdout: int) -> None:
        self.image, self.ident, self.pid = image, ident, pid
        self._held = threading.Lock()
        self.pidfd = os.pidfd_open(pid)
        if len(_nspids(pid)) < 2:  # ended (and its number taken) between finding it and opening it
            os.close(self.pidfd)
            raise ImageFailed("the forked worker ended before it was held")
        self.stdin = os.fdopen(stdin, "wb", buffering=0)
        self.stdout = os.fdopen(stdout, "rb", buffering=0)
        self.returncode: int | None = None

    def release(self, memory_bytes: int) -> None:
        """Let the worker serve (it is in its cgroups now), each of its processes' address space bounded at
        ``memory_bytes`` beyond what the image maps (0: no bound)."""
        os.write(self.stdin.fileno(), _GO + struct.pack("<Q", max(0, memory_bytes)))

    def poll(self) -> int | None:
        if self.returncode is None and _readable(self.pidfd, 0.0):
            self.returncode = self._code()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not _readable(self.pidfd, timeout):
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            self.returncode = self._code()
        return self.returncode

    def _code(self) -> int:
        code = self.image.exit_code(self.ident, 5.0)
        return -signal.SIGKILL if code is None else code  # gone with its image

    def kill(self) -> None:
        with self._held:
            if self.pidfd >= 0:
                with contextlib.suppress(ProcessLookupError, OSError):
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def close(self) -> None:
        """Let go of the pidfd (the worker has ended, or been killed)."""
        with self._held:
            if self.pidfd >= 0:
                os.close(self.pidfd)
                self.pidfd = -1


def _readable(fd: int, timeout: float | None) -> bool:
    """Whether a pidfd says its process ended (within ``timeout`` seconds); a let-go one, that it did."""
    if fd < 0:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    except (OSError, ValueError):  # let go of meanwhile
        return True


def _nspids(pid: int) -> list[int]:
    """The pid of ``pid`` in each pid namespace it is in, outermost first (``NSpid`` of its status)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return [int(p) for p in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for thread in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{thread}/children") as fh:
                found.extend(int(p) for p in fh.read().split())
    except OSError:
        pass
    return found


def _descendants(root: int) -> list[int]:
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(_children(pid))
    return found
