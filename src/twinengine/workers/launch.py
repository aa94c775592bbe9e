"""Starting a sandbox's first process: a fresh worker, or a warm image that forks workers.

bwrap's options go through a pipe (``--args 3``), not its argv, so no path of the engine's shows in the
sandbox's ``/proc/1/cmdline``; every sandbox is started from one thread that lives as long as the engine, since
bwrap's ``--die-with-parent`` follows the *thread* that started it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO

__all__ = ["PIPE_BYTES", "TooManyOptions", "spawn", "widen"]

_SPAWNER = ThreadPoolExecutor(1, thread_name_prefix="twin-worker-spawner")
PIPE_BYTES = 1 << 20
_Stream = int | IO[bytes] | None


class TooManyOptions(Exception):
    """Raised when a sandbox's options do not fit the pipe they are handed over in."""


def spawn(argv: list[str], *, env: dict[str, str], cwd: str, stdin: _Stream, stdout: _Stream, stderr: _Stream,
          wrap: Callable[[list[str]], list[str]] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own (raises ``OSError`` when it cannot start). Where it starts bwrap
    (``bwrap OPTIONS -- command``), the options are written into a pipe bwrap reads (``--args FD``); ``wrap``
    may then put the command inside something (``cgroups.Group.command``)."""
    pass_fds: tuple[int, ...] = ()
    if "--" in argv and argv[0].endswith("bwrap"):
        split = argv.index("--")
        options = b"".join(a.encode() + b"\0" for a in argv[1:split])
        if len(options) > 60_000:
            raise TooManyOptions("too many sandbox options")
        reader, writer = os.pipe()
        os.write(writer, options)
        os.close(writer)
        pass_fds = (reader,)
        argv = [argv[0], "--args", str(reader), *argv[split + 1:]]
    if wrap is not None:
        argv = wrap(argv)
    try:
        return _SPAWNER.submit(subprocess.Popen, argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout,
                               stderr=stderr, start_new_session=True, close_fds=True, pass_fds=pass_fds).result()
    finally:
        for held in pass_fds:
            os.close(held)


def widen(fd: int) -> None:
    """Give a pipe to the worker room for a whole answer of ordinary size (Linux's default is 64 KiB): an
    array of a few hundred kilobytes then crosses in one write and one read, not a dozen handovers, each of
    which waits for this process's other threads to let go of the interpreter. Left as it is where the
    kernel refuses (another system, or a lower ``/proc/sys/fs/pipe-max-size``)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (OSError, ImportError):
        pass
