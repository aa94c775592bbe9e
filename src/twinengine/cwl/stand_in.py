"""A stand-in for a container runtime where none is installed: cwltool's ``--user-space-docker-cmd`` calls it as
it would call udocker (``run --volume=HOST:CONTAINER ... --workdir=DIR --env=K=V ... IMAGE COMMAND...``), and it
runs the command under bubblewrap with this machine's system folders (``/usr``, ``/etc``, ...), read-only,
standing in for the image, and the volumes bound where the container would see them (nothing else of the
machine is there). Only for images whose tools this machine has (the packages
``twin app export-cwl`` writes need a Python 3 and its standard library): it does not pull or read any image.

``python -m twinengine.cwl.stand_in --write PATH`` writes an executable that cwltool can be pointed at.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
from pathlib import Path

__all__ = ["SYSTEM", "bwrap_command", "main", "write_executable"]

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")


def bwrap_command(argv: list[str], bwrap: str = "bwrap") -> list[str]:
    """The bubblewrap command of a ``run`` call as cwltool makes it for a user-space container runtime."""
    if not argv or argv[0] != "run":
        raise SystemExit(f"stand-in: only 'run' is supported, not {' '.join(argv[:1])!r}")
    args = argv[1:]
    command = [bwrap, "--dev", "/dev", "--proc", "/proc", "--die-with-parent", "--tmpfs", "/tmp"]
    for folder in SYSTEM:  # the image's stand-in: the system's programs and libraries, read-only
        if Path(folder).exists():
            command += ["--ro-bind", folder, folder]
    workdir = None
    while args and args[0].startswith("--"):
        option = args.pop(0)
        name, _, value = option.partition("=")
        if name == "--volume":
            host, _, inside = value.partition(":")
            inside = inside.rsplit(":", 1)[0] if inside.endswith((":ro", ":rw")) else inside
            command += ["--bind", host, inside]
        elif name == "--workdir":
            workdir = value
        elif name == "--env":
            key, _, text = value.partition("=")
            command += ["--setenv", key, text]
    if not args:
        raise SystemExit("stand-in: an image and a command are required")
    _image, *program = args
    if workdir is not None:
        command += ["--chdir", workdir]
    return [*command, "--", *program]


def write_executable(path: Path) -> Path:
    """An executable at ``path`` running this module with this Python (for ``--user-space-docker-cmd``)."""
    path.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m twinengine.cwl.stand_in \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--write"] and len(args) == 2:
        print(write_executable(Path(args[1])))
        return 0
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SystemExit("stand-in: bubblewrap (bwrap) is not installed")
    command = bwrap_command(args, bwrap)
    os.execv(command[0], command)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
