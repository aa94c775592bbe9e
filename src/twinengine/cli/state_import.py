"""``twin state import FILE.jsonl``: many revisions of many twins, sent in batches with a progress bar.

Each line is one item of ``POST /api/v1/state/batch`` (``{"twin": ..., "reported": {...}, "desired": {...},
"message": ...}``, values as ``{"value": ..., "unit": ..., "timestamp": ...}``). Each batch is one transaction;
the first refused batch stops the import, and its error names the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from twinengine.cli._common import console, err_console, state_of
from twinengine.errors import Problem, TwinEngineError, ValidationFailed, join_loc
from twinengine.twins.batch_schemas import StateBatchItem

__all__ = ["import_file"]

_ITEM = re.compile(r"^items\[(\d+)\]")


def _items(path: Path) -> Iterator[tuple[int, StateBatchItem]]:
    """(line number, item) for each non-blank line; a bad line is a ValidationFailed naming it."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield number, StateBatchItem.model_validate_json(line)
            except ValidationError as exc:
                raise ValidationFailed([Problem(join_loc([f"line {number}", *e["loc"]]), e["msg"])
                                        for e in exc.errors()]) from None


def _renamed(exc: TwinEngineError, lines: list[int]) -> TwinEngineError:
    """The server names items by position in the batch; the user knows lines of the file."""
    def loc(text: str) -> str:
        return _ITEM.sub(lambda m: f"line {lines[int(m.group(1))]}" if int(m.group(1)) < len(lines)
                         else m.group(0), text)

    exc.message = loc(exc.message)
    exc.details = [{**d, "loc": loc(str(d["loc"]))} if "loc" in d else d for d in exc.details]
    return exc


def import_file(ctx: typer.Context,
                path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, metavar="FILE.jsonl"),
                batch: int = typer.Option(1000, "--batch", min=1, help="Items per request (one transaction each)."
                                          )) -> None:
    """Write revisions from a JSON Lines file (one item of the batch endpoint per line), in batches."""
    out = state_of(ctx)
    total = sum(1 for line in path.open(encoding="utf-8") if line.strip())
    revisions = values = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("revisions"),
               TimeRemainingColumn())
    with out.client() as client, Progress(*columns, console=err_console, transient=True,
                                          disable=out.as_json) as progress:
        task = progress.add_task(f"importing {path.name}", total=total)
        lines: list[int] = []
        chunk: list[StateBatchItem] = []

        def send() -> None:
            nonlocal revisions, values
            try:
                result = client.write_state_batch(chunk)
            except TwinEngineError as exc:
                raise _renamed(exc, lines) from None
            revisions += len(result.revisions)
            values += result.values
            progress.advance(task, len(chunk))
            chunk.clear()
            lines.clear()

        for number, item in _items(path):
            lines.append(number)
            chunk.append(item)
            if len(chunk) >= batch:
                send()
        if chunk:
            send()
    summary = {"revisions": revisions, "values": values, "file": str(path)}
    out.emit(summary, lambda: console.print(f"imported {revisions:,} revisions ({values:,} values) from {path}",
                                            highlight=False))
