"""docs/tutorial.md, run: every ``console`` block's commands in order, in an empty folder, against a real
``twin serve``; a command that fails or a shown output line that is missing fails the test.

The page's rules: ``$ twin ...`` runs the CLI (this interpreter's ``python -m twinengine.cli.main``);
``$ export NAME=$(twin ...)`` keeps what the command printed on standard output, ``$ export NAME=VALUE`` a value
(``$NAME`` expands in both). The other lines of a block are output: each must match a line of what its command
printed (standard output and error), spaces collapsed, ``…`` standing for any text. A read (``state show``,
``models``, ``app show``) whose lines are not there yet runs again for up to a minute: functions on arrival run
in the background, as the page says.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import REPO, admin_token, free_port, need_sandbox, serve_engine
from ml_fixtures import need_torch

TUTORIAL = REPO / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
EXPORT_CAPTURE = re.compile(r"export (\w+)=\$\((.*)\)$")
EXPORT_VALUE = re.compile(r"export (\w+)=(\S*)$")
READS = (("state", "show"), ("models",), ("app", "show"))
RETRY_SECONDS = 60


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


def steps(markdown: str) -> list[Step]:
    """The commands of the page's ``console`` blocks with the output lines shown under each."""
    found: list[Step] = []
    for block in BLOCK.findall(markdown):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append(Step(line[2:].strip()))
            elif line.strip() and line.strip() != "…":
                assert found, f"output before any command: {line!r}"
                found[-1].expected.append(line.strip())
    return found


def _squash(text: str) -> str:
    return " ".join(text.split())


def missing(expected: list[str], output: str) -> list[str]:
    """The expected lines no output line matches (``…`` is any text)."""
    lines = [_squash(line) for line in output.splitlines()]
    gone = []
    for want in expected:
        pattern = re.compile(".*?".join(re.escape(part) for part in _squash(want).split("…")))
        if not any(pattern.search(line) for line in lines):
            gone.append(want)
    return gone


def _expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)", lambda m: env[m.group(1)], text)


def _argv(command: str, env: dict[str, str]) -> list[str]:
    words = shlex.split(_expand(command, env))
    assert words and words[0] == "twin", f"the tutorial runs only twin and export commands: {command!r}"
    return [sys.executable, "-m", "twinengine.cli.main", *words[1:]]


def run_step(step: Step, env: dict[str, str], cwd: Path) -> None:
    captured = EXPORT_CAPTURE.match(step.command)
    plain = EXPORT_VALUE.match(step.command) if captured is None else None
    if plain is not None:
        env[plain.group(1)] = _expand(plain.group(2), env)
        return
    argv = _argv(captured.group(2) if captured else step.command, env)
    retry = any(tuple(argv[3:3 + len(read)]) == read for read in READS)
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"$ {step.command}\nexit {done.returncode}\n{output}"
        gone = missing(step.expected, output)
        if not gone or not retry or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not gone, f"$ {step.command}\nmissing lines: {gone}\noutput:\n{output}"
    if captured:
        env[captured.group(1)] = done.stdout.strip()


def test_the_tutorial_is_well_formed() -> None:
    """Commands the runner knows, shown output for most of them, and the setup the test mirrors."""
    text = TUTORIAL.read_text()
    found = steps(text)
    assert len(found) >= 12
    for step in found:
        assert step.command.startswith(("twin ", "export ")), step.command
    assert sum(1 for s in found if s.expected) >= len(found) // 2
    for setup in ("twin serve", "export TWIN_URL=", "export TWIN_TOKEN="):
        assert setup in text  # what the test does before the first block, said on the page
    assert missing(["ok manifest (…)"], "  ok manifest (1.9 s)") == []
    assert missing(["│ 1 │ champion │"], "│ 1       │ champion │ tr-1 │") == []
    assert missing(["version 2"], "→ version 1") == ["version 2"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_command_of_the_tutorial_runs(tmp_path: Path) -> None:
    need_sandbox()
    need_torch()
    port = free_port()
    data = tmp_path / "engine"
    work = tmp_path / "work"
    work.mkdir()
    with serve_engine(data, port, start_timeout=240):  # a loaded machine starts it slowly
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
        env |= {"TWIN_URL": f"http://127.0.0.1:{port}", "TWIN_TOKEN": admin_token(data), "COLUMNS": "200",
                "NO_COLOR": "1"}
        for step in steps(TUTORIAL.read_text()):
            run_step(step, env, work)
    assert (work / "reach-forecast" / "twinapp.yaml").is_file()
