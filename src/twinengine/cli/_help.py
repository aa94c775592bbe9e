"""Help screens print every word whole: a word wider than its column in typer's option and command tables
(a default path, a long option name, a setting's variable) folds onto the next line instead of being cut
with an ellipsis (``~/.local/share/t…``), at any width (``COLUMNS=80``, or output that is not a terminal).

typer renders help with rich tables whose columns cut long words; it offers no setting for that, so its help
is given a table class whose columns fold. Installed when a help is first shown: typer's rich help costs
about 50 ms to import, which a command that prints no help never pays.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["fold_help_tables"]


def fold_help_tables() -> None:
    """Make every help screen of typer's commands and groups fold long words (idempotent)."""
    from typer.core import TyperCommand, TyperGroup

    for cls in (TyperCommand, TyperGroup):
        original = cls.format_help
        if getattr(original, "folds_words", False):
            continue

        def format_help(self: Any, ctx: Any, formatter: Any, _original: Any = original) -> None:
            _install()
            _original(self, ctx, formatter)

        format_help.folds_words = True  # type: ignore[attr-defined]
        cls.format_help = format_help  # type: ignore[method-assign]


@functools.cache
def _install() -> None:
    import typer.rich_utils as rich_utils
    from rich.columns import Columns
    from rich.table import Table
    from rich.text import Text

    class FoldingTable(Table):
        """A help table whose columns fold a word too wide for them instead of cutting it."""

        def add_column(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("overflow", "fold")
            super().add_column(*args, **kwargs)

        def add_row(self, *renderables: Any, **kwargs: Any) -> None:
            super().add_row(*renderables, **kwargs)
            for column in self.columns:  # the columns a row adds are made with rich's default, the ellipsis
                column.overflow = "fold"

    def one_text(items: list[Any]) -> Any:
        """An option's help, its variable and default as one text (typer sets them side by side in a grid of
        its own, whose cells cut long words): it wraps by words in the column, which folds a long one."""
        if items and all(isinstance(item, Text) for item in items):
            return Text(" ").join(items)
        return Columns(items)

    setattr(rich_utils, "Table", FoldingTable)  # noqa: B010 - typer's module global, read when help renders
    setattr(rich_utils, "Columns", one_text)  # noqa: B010
