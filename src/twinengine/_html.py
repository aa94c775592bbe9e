"""Small HTML tables for Jupyter's rich display (``_repr_html_``): every value is escaped, so a twin's name,
a parameter or a state value cannot inject markup into a notebook."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

__all__ = ["cell", "table"]

_STYLE = "border-collapse:collapse;font-family:monospace;font-size:12px"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"
_MAX = 200


def cell(value: Any) -> str:
    """One value as escaped text: datetimes in ISO 8601, containers as compact JSON, long text cut."""
    if value is None:
        text = ""
    elif isinstance(value, datetime):
        text = value.isoformat().replace("+00:00", "Z")
    elif isinstance(value, dict | list | tuple):
        text = json.dumps(value, default=str, separators=(", ", ": "))
    else:
        text = str(value)
    if len(text) > _MAX:
        text = text[:_MAX] + "…"
    return html.escape(text, quote=True)


def table(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str = "") -> str:
    """A titled table; ``title``, ``caption``, the header and every cell are escaped."""
    head = "".join(f'<th style="{_CELL}">{html.escape(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<td style="{_CELL}">{cell(v)}</td>' for v in row) + "</tr>" for row in rows)
    note = f'<div style="color:#666;font-size:11px">{html.escape(caption)}</div>' if caption else ""
    return (f'<div><strong>{html.escape(title)}</strong>{note}<table style="{_STYLE}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")
