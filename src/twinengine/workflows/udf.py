"""``run_udf``: user Python code in a separate process, with a time and memory limit.

The data goes to the child as a pickle in a temp folder, the child imports the code as a module and calls
``apply_datacube(cube, context)`` (openEO UDF convention) or ``udf(data, context)``; the result comes back
the same way. A UDF that loops, leaks memory or kills itself fails its node, never the engine.
"""

from __future__ import annotations

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


def _limits(memory_bytes: int) -> Any:
    def apply() -> None:  # runs in the child before exec
        import resource

        if memory_bytes > 0:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    return apply


def run_udf_process(data: Any, code: str, context: Any, *, timeout: float, memory_bytes: int) -> Any:
    with tempfile.TemporaryDirectory(prefix="twin-udf-") as tmp:
        folder = Path(tmp)
        (folder / "udf_code.py").write_text(code)
        with (folder / "input.pkl").open("wb") as fh:
            pickle.dump({"data": data, "context": context}, fh, protocol=pickle.HIGHEST_PROTOCOL)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
        process = subprocess.Popen([sys.executable, "-m", _CHILD, str(folder)], cwd=folder, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=_limits(memory_bytes))
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise ProcessFailed(f"run_udf: the UDF did not finish within {timeout:g} s and was stopped") from None
        text = output.decode(errors="replace")[-2000:]
        if process.returncode != 0:
            how = (f"was killed by signal {-process.returncode}" if process.returncode < 0
                   else f"exited with status {process.returncode}")
            raise ProcessFailed(f"run_udf: the UDF process {how}: {text.strip()[-800:] or 'no output'}")
        result_file = folder / "output.pkl"
        if not result_file.exists():
            raise ProcessFailed("run_udf: the UDF produced no result")
        with result_file.open("rb") as fh:
            return pickle.load(fh)["result"]
