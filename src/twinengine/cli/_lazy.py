"""A command group whose subcommands are imported when they run, not when ``twin`` starts.

Most commands import the SDK, pydantic schemas or pyarrow; importing all of them made ``twin --help`` take
seconds. The root group lists them from a table (name, module, attribute, one-line help) and imports only
the one being run; its help shows stand-ins carrying that line (a unit test keeps the lines in step).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup

from twinengine.cli._common import accept_json

__all__ = ["Lazy", "LazyGroup"]


@dataclass(frozen=True)
class Lazy:
    """Where a subcommand lives: ``attr`` names a ``typer.Typer`` (a group) or a command function; a dotted
    ``attr`` walks into it (``COMMANDS.create`` is ``module.COMMANDS["create"]``)."""

    module: str
    attr: str
    summary: str

    def load(self, name: str) -> Any:
        obj: Any = importlib.import_module(self.module)
        for part in self.attr.split("."):
            obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
        if isinstance(obj, typer.Typer):
            command: Any = typer.main.get_group(obj)
        else:
            single = typer.Typer()
            single.command(name)(obj)
            command = typer.main.get_command(single)
        command.name = name
        return command

    def stand_in(self, name: str) -> TyperCommand:
        return TyperCommand(name=name, help=self.summary)


class LazyGroup(TyperGroup):
    """A Typer group with subcommands from ``lazy`` besides those registered the usual way; every command
    it hands out also takes ``--json`` after its own arguments."""

    lazy: ClassVar[dict[str, Lazy]] = {}
    _listing = False

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        return [*self.commands, *(name for name in self.lazy if name not in self.commands)]

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:  # type: ignore[override]
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in self.lazy:
            if self._listing:
                return self.lazy[cmd_name].stand_in(cmd_name)
            command = self.commands[cmd_name] = self.lazy[cmd_name].load(cmd_name)
        return None if command is None else accept_json(command)

    def load_all(self, ctx: typer.Context) -> None:
        """Import every subcommand (tests compare the help's stand-ins with the real commands)."""
        for name in self.list_commands(ctx):
            self.get_command(ctx, name)

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:  # type: ignore[override]
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
