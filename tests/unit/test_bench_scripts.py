"""Every bench script still starts: its imports resolve and its options parse (``--help``). Nothing else runs
the benches in CI, and one of them (``state_quality_reads.py``) broke unseen when a helper it imported from
another bench was rewritten."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if '__name__ == "__main__"' in p.read_text())

# One interpreter for all of them: each is run as a script with --help, which argparse answers and exits 0.
RUNNER = """
import runpy, sys
failed = []
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            failed.append(f"{path}: exit {exc.code}")
    except Exception as exc:
        failed.append(f"{path}: {type(exc).__name__}: {exc}")
    else:
        failed.append(f"{path}: --help did not end it")
print("\\n".join(failed), file=sys.stderr)
sys.exit(1 if failed else 0)
"""


def test_every_bench_script_starts() -> None:
    assert len(SCRIPTS) >= 15, SCRIPTS
    result = subprocess.run([sys.executable, "-c", RUNNER, *map(str, SCRIPTS)], cwd=BENCH, capture_output=True,
                            text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(BENCH)})
    assert result.returncode == 0, result.stderr[-4000:]
