"""The report of ``twin app test``: its items, and the run that collects them as each ends.

They live here, below ``harness`` (the manifest and the app's tests) and ``_checks`` (the engine-side
items), which both record items and import each other no more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from twinengine.errors import TwinEngineError, ValidationFailed

__all__ = ["Failed", "Item", "Run"]


@dataclass
class Item:
    """One checked thing: ``name`` (e.g. ``function observe``), ``ok``, ``seconds``, and for a failure the
    ``error`` and ``where`` (``file.py:line`` in the app, or a manifest field)."""

    name: str
    ok: bool
    seconds: float
    error: str | None = None
    where: str | None = None
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.name, "ok": self.ok, "skipped": self.skipped, "seconds": round(self.seconds, 3),
                "error": self.error, "where": self.where}


class Failed(Exception):
    """An item failed: ``error`` says what, ``where`` the place in the app or the manifest field."""

    def __init__(self, error: str, where: str | None = None) -> None:
        super().__init__(error)
        self.error, self.where = error, where


class Run:
    """The items of one check, reported as each ends."""

    def __init__(self, report: Callable[[Item], None] | None) -> None:
        self.items: list[Item] = []
        self.report = report

    @contextmanager
    def item(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except Failed as exc:
            self._add(Item(name, False, time.perf_counter() - start, exc.error, exc.where))
        except ValidationFailed as exc:
            where = ", ".join(p.loc for p in exc.problems if p.loc) or None
            self._add(Item(name, False, time.perf_counter() - start, "; ".join(map(str, exc.problems)), where))
        except TwinEngineError as exc:
            self._add(Item(name, False, time.perf_counter() - start, f"{exc.code}: {exc.message}"))
        except Exception as exc:
            self._add(Item(name, False, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"))
        else:
            self._add(Item(name, True, time.perf_counter() - start))

    def skip(self, name: str, reason: str) -> None:
        self._add(Item(name, True, 0.0, reason, skipped=True))

    def _add(self, item: Item) -> None:
        self.items.append(item)
        if self.report is not None:
            self.report(item)

    @property
    def failed(self) -> bool:
        return any(not i.ok for i in self.items)
