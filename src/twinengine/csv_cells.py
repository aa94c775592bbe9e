"""CSV cells a spreadsheet reads as data, never as a formula (OWASP's advice on CSV injection).

Text that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``; numbers,
negative ones included, stay numbers. Every CSV the engine writes for a person (the CLI's usage records; the
portal's downloads do the same in ``ui/static/js/dom.js``) passes its cells through ``safe_cell``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["safe_cell", "safe_row"]

_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+|(?=\.\d))(?:\.\d+)?(?:[eE][-+]?\d+)?$")


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV writer should get it: a finite number or anything that is not text as it is, text
    that would start a formula behind a ``'``."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float) and (not isinstance(value, float) or math.isfinite(value)):
        return value
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA) and not _NUMBER.match(text) else value


def safe_row(row: Mapping[str, Any] | Iterable[Any]) -> Any:
    """A row (a mapping for ``csv.DictWriter`` or a sequence for ``csv.writer``) with every cell made safe."""
    if isinstance(row, Mapping):
        return {key: safe_cell(value) for key, value in row.items()}
    return [safe_cell(value) for value in row]
