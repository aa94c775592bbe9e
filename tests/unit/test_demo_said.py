"""What ``twin demo`` says is printed as written: brackets in the engine's words are not console markup."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from twinengine.cli.demo import said


def test_brackets_in_what_the_demo_says_are_kept() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    said(console, "model chapter skipped: the ml extra is not installed (pip install -e '.[ml]')")
    said(console, "records at offsets [0, 12) and a closing tag [/green] as text")
    assert "pip install -e '.[ml]'" in out.getvalue()
    assert "offsets [0, 12) and a closing tag [/green] as text" in out.getvalue()


def test_a_chapter_that_failed_is_said_as_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chapter that goes on after its part failed (the data space's second engine) was printed with a ✓: a
    newcomer read a failure as a success. It is said with a ✗, again after the summary, and kept in the facts."""
    from typer.testing import CliRunner

    from twinengine.cli.main import app
    from twinengine.demo import runner
    from twinengine.demo.context import DemoContext

    def story(options: Any, *, say: Any, track: Any, finished: Any) -> DemoContext:
        ctx = DemoContext(options=options, runtime=None, url="", admin_token="", tokens={},  # type: ignore[arg-type]
                          app_folder=Path("."), app_package=None, say=say)
        ctx.say("the forecast ran")
        ctx.fail("data space", "ConnectError: the partner engine did not answer")
        finished(ctx)
        return ctx

    monkeypatch.setattr(runner, "run_demo", story)
    said_out = CliRunner().invoke(app, ["demo"], env={"COLUMNS": "200"})
    assert said_out.exit_code == 0, said_out.output
    lines = said_out.output.splitlines()
    assert "✓ the forecast ran" in lines
    assert "✗ the data space chapter failed: ConnectError: the partner engine did not answer" in lines
    assert "✗ 1 chapter(s) failed: data space" in said_out.output
    as_json = CliRunner().invoke(app, ["--json", "demo"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["failed"] == {"data space": "ConnectError: the partner engine did not answer"}
