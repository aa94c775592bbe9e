"""dask-jobqueue sets SIGINT to ``sys.exit`` when its Slurm module is imported: the engine imports it on
whatever thread first needs a Slurm cluster (a run or a calibration placed on a Slurm site), without the
``ValueError`` that raises off the main thread and without replacing the server's own SIGINT handler."""

from __future__ import annotations

import subprocess
import sys

from helpers import need_modules

CODE = """
import signal, sys, threading
mine = lambda *_: None
signal.signal(signal.SIGINT, mine)
from twinengine.workflows.executors import _slurm_cluster_class
found, failed = [], []
def first_use():
    try:
        found.append(_slurm_cluster_class())
    except BaseException as exc:
        failed.append(repr(exc))
thread = threading.Thread(target=first_use)
thread.start(); thread.join()
print(failed, found[0].__name__ if found else None, signal.getsignal(signal.SIGINT) is mine,
      signal.signal is not None and signal.signal.__module__ == "signal")
"""


def test_the_slurm_cluster_is_imported_off_the_main_thread_leaving_sigint_alone() -> None:
    need_modules("slurm", "dask_jobqueue", hint="the optional 'slurm' extra: pip install -e '.[slurm]'")
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[]", "SLURMCluster", "True", "True"]


def test_without_the_guard_the_import_fails_off_the_main_thread() -> None:
    """What the guard is for: the plain import, off the main thread, fails."""
    need_modules("slurm", "dask_jobqueue", hint="the optional 'slurm' extra: pip install -e '.[slurm]'")
    code = ("import threading\nerr = []\ndef go():\n    try:\n        import dask_jobqueue.runner\n"
            "    except ValueError as exc:\n        err.append(str(exc))\n"
            "t = threading.Thread(target=go); t.start(); t.join(); print(err)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert "main thread" in done.stdout, done.stdout + done.stderr[-1000:]
