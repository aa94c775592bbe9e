"""What an attacker's code tries from inside a worker: read the engine's secrets, look at its parent and
at the engine's process, write outside its scratch folder, reach servers on loopback, make a user namespace
of its own. ``PROBE`` is
source code (a UDF, an app function or an app process wraps it); it returns what it got, as plain JSON."""

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


@contextmanager
def listening() -> Iterator[int]:
    """A TCP port of the engine's own process on loopback (the engine's API stands in for it)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def postgres_port() -> int:
    return 5432
