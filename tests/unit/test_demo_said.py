"""What ``twin demo`` says is printed as written: brackets in the engine's words are not console markup."""

from __future__ import annotations

import io

from rich.console import Console

from twinengine.cli.demo import said


def test_brackets_in_what_the_demo_says_are_kept() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    said(console, "model chapter skipped: the ml extra is not installed (pip install -e '.[ml]')")
    said(console, "records at offsets [0, 12) and a closing tag [/green] as text")
    assert "pip install -e '.[ml]'" in out.getvalue()
    assert "offsets [0, 12) and a closing tag [/green] as text" in out.getvalue()
