"""``run_udf``: user Python code in a separate process, with a time and memory limit.

The data goes to the child as a pickle in a temp folder, the child imports the code as a module and calls
``apply_datacube(cube, context)`` (openEO UDF convention) or ``udf(data, context)``; the result comes back
the same way. A UDF that loops, leaks memory or kills itself fails its node, never the engine.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twinengine.errors import ProcessFailed

__all__ = ["run_udf_process"]

_CHILD = "twinengine.workflows._udf_child"


def run_udf_process(data: Any, code: str, context: Any, *, timeout: float, memory_bytes: int) -> Any:
    """Run the UDF in a child process (its own session, so a kill reaches whatever it started).

    The child sets its own memory limit (no ``preexec_fn``: unsafe in a threaded server) and writes its
    output to a file, of which the last part is kept for the error message.
    """
    with tempfile.TemporaryDirectory(prefix="twin-udf-") as tmp:
        folder = Path(tmp)
        (folder / "udf_code.py").write_text(code)
        with (folder / "input.pkl").open("wb") as fh:
            pickle.dump({"data": data, "context": context}, fh, protocol=pickle.HIGHEST_PROTOCOL)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
        with (folder / "output.log").open("wb") as out:
            process = subprocess.Popen([sys.executable, "-m", _CHILD, str(folder), str(max(0, memory_bytes))],
                                       cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise ProcessFailed(f"run_udf: the UDF did not finish within {timeout:g} s and was stopped") from None
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)  # whatever it left running
        text = _tail(folder / "output.log", 2000)
        if process.returncode != 0:
            how = (f"was killed by signal {-process.returncode}" if process.returncode < 0
                   else f"exited with status {process.returncode}")
            raise ProcessFailed(f"run_udf: the UDF process {how}: {text.strip()[-800:] or 'no output'}")
        result_file = folder / "output.pkl"
        if not result_file.exists():
            raise ProcessFailed("run_udf: the UDF produced no result")
        with result_file.open("rb") as fh:
            return pickle.load(fh)["result"]


def _tail(path: Path, size: int) -> str:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - size))
        return fh.read().decode(errors="replace")
