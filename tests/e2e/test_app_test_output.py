"""What ``twin app test`` and the help screens print where a person or a log reads them: a failure's message
whole (on its progress line and after the table), never cut at 80 columns nor folded into a table cell, in
output that is not a terminal; and help tables that fold a long word instead of cutting it with an ellipsis."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DECLARED = "forecast_alert, forecast_peak_level, level, level_change, rain, storage"


def twin(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``twin ...`` as a program whose output goes to a pipe (a log, CI), at 80 columns."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")} | {"COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "twinengine.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600, check=False)


def test_a_failure_is_said_whole_on_its_line_and_after_the_table(tmp_path: Path) -> None:
    assert twin("app", "new", "reach", "--dir", str(tmp_path / "reach")).returncode == 0
    functions = tmp_path / "reach" / "reach" / "functions.py"
    source = functions.read_text()
    functions.write_text(source.replace('ctx.reported("level")', 'ctx.reported("levle")'))  # a wrong guess
    line = next(n for n, text in enumerate(functions.read_text().splitlines(), 1) if '"levle"' in text)
    done = twin("app", "test", str(tmp_path / "reach"), "--no-tests", "--no-training")
    assert done.returncode == 1, done.stdout + done.stderr
    message = f"'levle' is not a state property of this app (its manifest declares: {DECLARED})"
    progress = next(text for text in done.stderr.splitlines() if "function observe" in text)
    assert "failed" in progress and message in progress and f"(at reach/functions.py:{line})" in progress
    said = [text for text in done.stdout.splitlines() if text.startswith("failed function observe: ")]
    assert len(said) == 1 and message in said[0] and said[0].endswith(f"(at reach/functions.py:{line})"), said
    assert "twinengine.app.UnknownProperty" in said[0]
    assert all(len(text) <= 80 for text in done.stdout.splitlines() if text.startswith(("│", "┃", "┏", "└")))


def test_help_tables_fold_long_words_instead_of_cutting_them() -> None:
    done = twin("serve", "--help")
    assert done.returncode == 0 and "…" not in done.stdout, done.stdout
    text = re.sub(r"[\s│╭╮╰╯─]+", "", done.stdout)  # a folded word's lines, joined again
    assert "~/.local/share/twinengine" in text and "TWIN_SERVE_PROCESSES" in text
