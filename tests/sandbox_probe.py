"""What an attacker's code tries from inside a worker: read the engine's secrets, look at its parent and
at the engine's process, write outside its scratch folder, reach servers on loopback, make a user namespace
of its own, change a global kernel setting. ``PROBE`` is source code (a UDF, an app function or an app process
wraps it); it returns what it got, as plain JSON. ``NEIGHBOURS`` is what one worker leaves behind and what
another looks for of it (its scratch folder, memory, descriptors, processes), whether they ran side by side
or one after the other."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from twinengine.config import Settings

PROBE = '''
def probe(targets):
    import os, socket
    loot = {"read": {}, "write": {}, "connect": {}}
    for name, path in targets["read"].items():
        try:
            with open(path, "rb") as fh:
                loot["read"][name] = fh.read(4000).decode(errors="replace")
        except Exception as exc:
            loot["read"][name] = None
    for pid in {os.getppid(), targets["engine_pid"]}:
        for what in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{what}", "rb") as fh:
                    loot["read"][f"proc/{pid}/{what}"] = fh.read(20000).decode(errors="replace")
            except Exception:
                loot["read"][f"proc/{pid}/{what}"] = None
    for path in targets["write"]:
        try:
            with open(path, "w") as fh:
                fh.write("written from inside")
            loot["write"][path] = True
        except Exception:
            loot["write"][path] = False
    for port in targets["connect"]:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
            loot["connect"][str(port)] = True
        except Exception:
            loot["connect"][str(port)] = False
    # a user namespace of its own (where it would hold every capability, and reach the kernel's code that
    # only such a namespace reaches), tried in a fresh single-threaded process as unshare(2) requires
    import subprocess, sys
    tried = subprocess.run([sys.executable, "-I", "-c", "import ctypes; print(ctypes.CDLL(None, use_errno=True)"
                            ".unshare(0x10000000))"], capture_output=True, text=True, timeout=60)
    loot["user_namespace"] = tried.stdout.strip() == "0"
    # a global kernel setting, written with the value it has (nothing changes where that is allowed): a worker
    # of an engine run as root is root to the kernel's sysctl checks (kernel.core_pattern runs what it names)
    try:
        with open("/proc/sys/kernel/printk_ratelimit") as fh:
            value = fh.read()
        with open("/proc/sys/kernel/printk_ratelimit", "w") as fh:
            fh.write(value)
        loot["sysctl"] = True
    except Exception:
        loot["sysctl"] = False
    return loot
'''

EVIL_RESULT = '''
class Evil:
    """Pickles to a call of os.system: whoever unpickles it runs the command."""
    def __init__(self, marker):
        self.marker = marker
    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))
'''


def targets(settings: Settings, outside: Path, ports: list[int]) -> dict[str, Any]:
    """Everything the probe should not reach on this engine (the attacker is told the exact paths)."""
    data = settings.data_dir
    secrets = {"admin.token": data / "admin.token", "admin.token.sha256": data / "admin.token.sha256",
               "issuer key": data / "keys" / "issuer-es256.pem",
               "lake credentials": data / "keys" / "lake-credentials.fernet",
               "database": data / "twin.db", "/etc/shadow": Path("/etc/shadow")}
    return {"read": {k: str(v) for k, v in secrets.items()}, "engine_pid": os.getpid(), "connect": ports,
            "write": [str(outside / "written.txt"), str(data / "written.txt"), str(data / "keys" / "issuer-es256.pem")]}


KINDS = ("fresh", "forked")  # workers started fresh, and workers forked from a warm image


@contextmanager
def workers_kind(engine: Any, kind: str) -> Iterator[str]:
    """Every worker of ``engine`` (a ``helpers.Engine``) starts fresh, or is forked from its kind's warm image
    from the first one on; afterwards, that the forked ones were."""
    images = engine.runtime.workers.images
    if kind == "fresh":
        images.capacity = 0
    else:
        images.after = 0
    yield kind
    assert (images.started > 0) == (kind == "forked")


def secrets_present(settings: Settings) -> list[str]:
    """The secret files that exist on this engine (so a failed read means something)."""
    data = settings.data_dir
    return [name for name, path in (("issuer key", data / "keys" / "issuer-es256.pem"),
                                    ("lake credentials", data / "keys" / "lake-credentials.fernet"))
            if path.exists()]


def assert_nothing_leaked(loot: dict[str, Any], settings: Settings, outside: Path) -> None:
    """No secret read, nothing of the engine's process seen, nothing written, no server reached."""
    stolen = {name: text for name, text in loot["read"].items()
              if text is not None and not name.startswith("proc/")}
    assert stolen == {}, f"read from inside the sandbox: {sorted(stolen)}"
    data_dir = str(settings.data_dir)
    for name, text in loot["read"].items():  # the worker's own parent may be seen: never the engine's
        assert text is None or (data_dir not in text and "TWIN_" not in text and "PYTEST" not in text), name
    assert not any(loot["write"].values()), loot["write"]
    assert not (outside / "written.txt").exists()
    assert not any(loot["connect"].values()), loot["connect"]
    assert loot["user_namespace"] is False, "the code made a user namespace of its own"
    assert loot["sysctl"] is False, "the code wrote a global kernel setting"


@contextmanager
def listening() -> Iterator[int]:
    """A TCP port of the engine's own process on loopback (the engine's API stands in for it)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def postgres_port() -> int:
    return 5432


NEIGHBOURS = '''
import ctypes
import hashlib
import os
import socket
import sys

KEPT = []  # what a worker leaves in its memory, held as long as it lives
_libc = ctypes.CDLL(None, use_errno=True)


def leave(prefix, secret, key):
    """Leave ``prefix + secret`` wherever a later or a neighbouring worker might find it."""
    mark = (prefix + secret).encode()
    KEPT.append(bytearray(mark * 64))
    sys.modules["twinengine"].left_behind = mark.decode()
    os.environ["TWIN_PROBE_LEFT"] = mark.decode()
    for folder in ("/twin/scratch", "/tmp", "/dev/shm"):
        with open(os.path.join(folder, "left-" + prefix), "wb") as fh:
            fh.write(mark)
    shm = _libc.shmget(key, 4096, 0o1666)  # IPC_CREAT, readable by all
    if shm >= 0:
        _libc.shmat.restype = ctypes.c_void_p
        at = _libc.shmat(shm, None, 0)
        ctypes.memmove(at, mark, len(mark))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\\0left-" + prefix)  # an abstract socket: no file, seen by whoever shares the network
    server.listen(4)
    tcp = socket.create_server(("127.0.0.1", 0))
    KEPT.extend([server, tcp])
    with open("/proc/self/mountinfo") as fh:
        host = [line.split()[3] for line in fh if line.split()[4] == "/twin/scratch"]
    return {"pid": os.getpid(), "port": tcp.getsockname()[1], "scratch": host[0] if host else None,
            "shm": shm >= 0}


def look(prefix, digest, key, port, scratch):
    """What of ``leave``'s marks this worker finds (each entry: what it found, or None/False/[] when nothing);
    it knows the mark only by ``prefix`` and the sha256 of the whole, so its own memory never holds it."""
    found = {}

    def mark_in(data):
        at = data.find(prefix.encode())
        while at >= 0:
            if hashlib.sha256(data[at:at + len(prefix) + 32]).hexdigest() == digest:
                return True
            at = data.find(prefix.encode(), at + 1)
        return False

    found["files"] = [p for p in ("/twin/.scratch", scratch, "/twin/scratch/left-" + prefix, "/tmp/left-" + prefix,
                                  "/dev/shm/left-" + prefix) if p and os.path.exists(p)
                      and (os.path.isfile(p) or os.listdir(p))]
    found["module"] = getattr(sys.modules["twinengine"], "left_behind", None) is not None
    found["environ"] = "TWIN_PROBE_LEFT" in os.environ
    found["shm"] = _libc.shmget(key, 0, 0) >= 0
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect("\\0left-" + prefix)
        found["abstract_socket"] = True
    except OSError:
        found["abstract_socket"] = False
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        found["loopback"] = True
    except OSError:
        found["loopback"] = False
    # its memory, every readable private mapping: a fork that carried another worker's pages would show them
    memory = False
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5].startswith(("/", "[v"))):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                if mark_in(mem.read(end - start)):
                    memory = True
            except (OSError, OverflowError, ValueError):
                continue
    found["memory"] = memory
    # processes: those it sees besides its own sandbox's, and what it can read or trace of them
    own = {os.getpid(), os.getppid(), 1}
    seen = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    found["processes"] = [p for p in seen if p not in own and _parent(p) not in own]
    traced = []
    for pid in range(1, 400):
        if pid == os.getpid():
            continue
        if _libc.ptrace(16, pid, 0, 0) == 0:  # PTRACE_ATTACH
            traced.append(pid)
            _libc.ptrace(17, pid, 0, 0)  # PTRACE_DETACH
    found["traced"] = [p for p in traced if p != 1 or os.getppid() != 1]  # the sandbox's own init aside
    found["traced_init"] = 1 in traced
    found["descriptors"] = sorted(link for link in (_link(fd) for fd in os.listdir("/proc/self/fd"))
                                  if link and not link.startswith("pipe:") and not link.endswith(".log")
                                  and not link.startswith("/proc/"))
    return found


def _parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _link(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
'''


def nothing_found(found: dict[str, Any]) -> dict[str, Any]:
    """What ``look`` found of its neighbour or predecessor (empty: nothing)."""
    return {k: v for k, v in found.items() if v and k != "traced_init"}
