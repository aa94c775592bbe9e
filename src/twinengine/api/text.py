"""Refuse JSON text (and query or path text) that no store can keep, naming where it is.

JSON may carry ``\\u0000`` and lone UTF-16 surrogates (``\\ud800``); Python decodes both, SQLite keeps them
escaped, but PostgreSQL's ``text`` and ``jsonb`` refuse them mid-transaction. Python's parser also reads the
tokens ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON (RFC 8259), and reads ``1e999`` as an
infinity: SQLite keeps them, PostgreSQL's ``json`` refuses them. Rejecting all of these at the edge keeps the
two stores alike and turns what would be a 500 into a 422 that names the field. A route that takes data where
such numbers mean something (stream records, a model's inputs) says so with ``takes_non_finite_numbers``.
Bodies are scanned only when their bytes could hold such a thing, so ordinary requests pay two byte searches.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from starlette.requests import HTTPConnection

from twinengine.errors import Problem, ValidationFailed, join_loc

__all__ = ["refuse_unstorable_text", "takes_non_finite_numbers", "unstorable_text"]

# A NUL byte, or a \u escape of NUL or of a surrogate, in the raw body: a cheap necessary condition.
_SUSPECT = re.compile(rb"\x00|\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
# The tokens, or a number that may overflow to infinity (1e999, or 309 digits before a fraction): a cheap
# necessary condition; the decoded document tells which are numbers and not text.
_NON_FINITE = re.compile(rb"NaN|Infinity|[eE][+-]?\d{3}|\d{309}")
_MAX_PROBLEMS = 5
_TAKES_NON_FINITE = "_twin_takes_non_finite_numbers"
F = TypeVar("F", bound=Callable[..., Any])


def takes_non_finite_numbers(endpoint: F) -> F:
    """Mark an endpoint whose JSON body may hold NaN and infinities as data (stream records)."""
    setattr(endpoint, _TAKES_NON_FINITE, True)
    return endpoint


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def unstorable_text(value: Any, loc: tuple[object, ...] = (), *, non_finite: bool = False) -> list[Problem]:
    """Every string (key or value) in a decoded JSON document that holds NUL or a lone surrogate, and with
    ``non_finite`` every NaN or infinity."""
    problems: list[Problem] = []
    stack: list[tuple[tuple[object, ...], Any]] = [(loc, value)]
    while stack and len(problems) < _MAX_PROBLEMS:
        where, item = stack.pop()
        if non_finite and isinstance(item, float) and not math.isfinite(item):
            token = "NaN" if item != item else ("Infinity" if item > 0 else "-Infinity")
            problems.append(Problem(join_loc(where) or "body", f"{token} is not a JSON number (RFC 8259 has no NaN "
                                                               "or Infinity): send a finite number or null"))
        elif isinstance(item, str):
            if _BAD_CHAR.search(item):
                problems.append(Problem(join_loc(where) or "body",
                                        "text may not contain NUL (U+0000) or unpaired surrogates"))
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and _BAD_CHAR.search(key):
                    problems.append(Problem(join_loc(where) or "body",
                                            "a key may not contain NUL (U+0000) or unpaired surrogates"))
                stack.append(((*where, key), child))
        elif isinstance(item, list):
            stack.extend(((*where, i), child) for i, child in enumerate(item))
    return problems


def _refuse_nul_in_url(request: Request) -> None:
    """A NUL in a query parameter or the path would reach the store as a name to look up: refused by name."""
    query = request.scope.get("query_string", b"")
    problems = []
    if b"%00" in query or b"\x00" in query:
        problems = [Problem(f"query.{key}", "text may not contain NUL (U+0000)")
                    for key, value in request.query_params.multi_items() if "\x00" in key or "\x00" in value]
    if "\x00" in request.scope.get("path", ""):
        problems.append(Problem("path", "text may not contain NUL (U+0000)"))
    if problems:
        raise ValidationFailed(problems[:_MAX_PROBLEMS])


async def refuse_unstorable_text(connection: HTTPConnection) -> None:
    """An app-wide dependency: FastAPI has already read and decoded a JSON body, so both calls are cached.
    Web sockets (which reach it too) check their own messages."""
    if not isinstance(connection, Request):
        return
    request = connection
    _refuse_nul_in_url(request)
    if request.method in ("GET", "HEAD", "OPTIONS", "DELETE") or not _is_json(request):
        return
    body = await request.body()
    if not body:
        return
    route = request.scope.get("route")
    non_finite = _NON_FINITE.search(body) is not None and not getattr(getattr(route, "endpoint", None),
                                                                       _TAKES_NON_FINITE, False)
    if not non_finite and not _SUSPECT.search(body):
        return
    try:
        document = await request.json()
    except (ValueError, RecursionError):
        return  # invalid JSON (or nested deeper than the parser goes) is FastAPI's or the route's to report
    problems = unstorable_text(document, non_finite=non_finite)
    if problems:
        raise ValidationFailed(problems)
