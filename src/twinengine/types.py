"""Small shared types and limits, importable without pulling in the database or web stacks."""

from __future__ import annotations

from typing import Any

__all__ = ["INT32_MAX", "JSONDict"]

# Largest value an INTEGER column holds on every backend; API inputs that land in one are bounded by it.
INT32_MAX = 2**31 - 1

JSONDict = dict[str, Any]
