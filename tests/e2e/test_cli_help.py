"""``--help`` of every command and sub-command of ``twin`` renders, and shows every word of its texts.

Help texts are rich markup, where a square bracket opens a tag: ``bucket[/prefix]`` was read as a closing
tag and crashed the help; ``head[ow3]`` was read as a style and silently dropped. The tree is walked from
the root group, lazy sub-commands included, in one process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from rich.errors import StyleSyntaxError
from rich.markup import render
from rich.style import Style
from typer.testing import CliRunner

from twinengine.cli.main import app


def commands(command: Any, ctx: typer.Context, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command below ``command`` with its path (a group lists and loads its sub-commands)."""
    yield path, command
    for name in command.list_commands(ctx) if hasattr(command, "list_commands") else ():
        sub = command.get_command(ctx, name)
        assert sub is not None, f"twin {' '.join((*path, name))} is listed but cannot be loaded"
        yield from commands(sub, typer.Context(sub, info_name=name, parent=ctx), (*path, name))


def dropped_words(text: str) -> list[str]:
    """Bracketed words rich reads as a style that is none (it would drop them from the help)."""
    dropped = []
    for span in render(text).spans:
        try:
            Style.parse(str(span.style))
        except StyleSyntaxError:
            dropped.append(f"[{span.style}]")
    return dropped


def test_every_help_renders_whole() -> None:
    root = typer.main.get_command(app)
    tree = list(commands(root, typer.Context(root, info_name="twin")))
    paths = [path for path, _ in tree]
    assert len(paths) > 100 and ("lake", "endpoint", "add") in paths  # the walk reached the lazy groups
    runner = CliRunner()
    failed: dict[str, str] = {}
    for path, command in tree:
        result = runner.invoke(app, [*path, "--help"])
        if result.exit_code != 0 or "Usage" not in result.output:
            failed[" ".join(path)] = repr(result.exception) if result.exception else result.output[-300:]
            continue
        texts = [command.help, *(getattr(param, "help", None) for param in command.params)]
        dropped = [word for text in texts if text for word in dropped_words(text)]
        if dropped:
            failed[" ".join(path)] = f"the help drops {dropped} (escape a literal bracket as \\[)"
    assert not failed, failed
