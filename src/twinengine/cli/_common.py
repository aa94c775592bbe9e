"""What every command shares: the connection options, output in tables or JSON, and argument parsing."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from twinengine._defaults import DEFAULT_URL
from twinengine.errors import Problem, ValidationFailed, join_loc

if TYPE_CHECKING:  # imported where used: ``twin --help`` needs neither pydantic models nor the SDK
    from pydantic import BaseModel
    from rich.table import Table

    from twinengine.client import Client
    from twinengine.config import Settings

__all__ = [
    "DataDirOption",
    "Output",
    "accept_json",
    "console",
    "err_console",
    "local_settings",
    "parse_assignments",
    "state_of",
]

console = Console()
err_console = Console(stderr=True)

DataDirOption = typer.Option(None, "--data-dir", help="Engine data dir (default: $TWIN_DATA_DIR or "
                                                      "~/.local/share/twinengine).", show_default=False)


@dataclass
class Output:
    """Per-invocation options from the top-level callback."""

    url: str = DEFAULT_URL
    token: str | None = None
    as_json: bool = False
    profile: str = "default"

    def client(self) -> Client:
        from twinengine.client import Client
        from twinengine.credentials import bearer

        # no --token / TWIN_TOKEN: the sign-in `twin login` kept for this engine in the profile, if any
        return Client(self.url, self.token if self.token is not None else bearer(self.url, self.profile))

    def emit(self, value: BaseModel | Sequence[BaseModel] | dict[str, Any], render: Any = None) -> None:
        """Print ``value`` as JSON with --json, else call ``render`` (or pretty-print it)."""
        from pydantic import BaseModel

        if self.as_json or render is None:
            if isinstance(value, BaseModel):
                text = value.model_dump_json(indent=2)
            elif isinstance(value, dict):
                text = json.dumps(value, indent=2, default=str)
            else:
                text = json.dumps([v.model_dump(mode="json") for v in value], indent=2)
            print(text)
        else:
            render()


def state_of(ctx: typer.Context) -> Output:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Output) else Output()


def _json_after(ctx: Any, _param: Any, value: Any) -> Any:
    if value:
        root = ctx.find_root()
        if not isinstance(root.obj, Output):
            root.obj = Output()
        root.obj.as_json = True
    return value


def _json_option() -> Any:
    """A ``--json`` flag built by Typer itself (so help shows it), whose value goes to the root's Output."""
    probe = typer.Typer()

    @probe.command()
    def _flag(as_json: bool = typer.Option(False, "--json", help="Machine-readable output (as `twin --json`).")
              ) -> None:
        """Only here to have Typer build the option."""

    option = typer.main.get_command(probe).params[0]
    option.expose_value = False
    option.callback = _json_after
    return option


def accept_json(command: Any) -> Any:
    """Let ``--json`` follow a command as well as precede it: ``twin create ... --json`` is ``twin --json
    create ...``. Walks a group's commands; a command with a ``--json`` of its own keeps that one."""
    if getattr(command, "_accepts_json", False):
        return command
    command._accepts_json = True
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            accept_json(sub)
    elif not any("--json" in getattr(p, "opts", ()) for p in command.params):
        command.params.append(_json_option())
    return command


def local_settings(data_dir: Path | None, **overrides: Any) -> Settings:
    """Settings for commands that work on a local data dir (``overrides``: what their options set, checked
    with the rest); bad values become a clean CLI error."""
    from pydantic import ValidationError

    from twinengine.config import Settings

    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ValidationFailed([Problem(f"settings.{join_loc(e['loc'])}", e["msg"]) for e in exc.errors()],
                               message="invalid settings (TWIN_* environment variables or twin.toml): " +
                                       ", ".join(join_loc(e["loc"]) for e in exc.errors())) from None


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(items: Iterable[str], *, option: str) -> dict[str, Any]:
    """``key=value`` pairs (values parsed as JSON when they are JSON, else kept as text); dotted keys
    build nested objects: ``rating.a=18`` → ``{"rating": {"a": 18}}``."""
    result: dict[str, Any] = {}
    problems = []
    for i, item in enumerate(items):
        key, sep, raw = item.partition("=")
        if not sep or not key:
            problems.append(Problem(f"{option}[{i}]", f"{item!r} is not key=value"))
            continue
        target = result
        parts = re.split(r"\.(?![^\[]*\])", key)  # a dot inside a key (head[ow.3]) does not nest
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = _value(raw)
    if problems:
        raise ValidationFailed(problems)
    return result


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    from rich.table import Table

    t = Table(title=title, title_justify="left", header_style="bold")
    for i, column in enumerate(columns):
        # Names and ids stay whole; other cells fold onto more lines instead of being cut with an ellipsis.
        t.add_column(column, no_wrap=i == 0, overflow="fold")
    for row in rows:
        t.add_row(*[_cell(c) for c in row])
    return t


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):  # the API speaks UTC; tables say so in their headers
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}
