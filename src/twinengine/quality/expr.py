"""A tiny comparison grammar for consistency checks, evaluated over columns without ``eval``.

    expr    := operand (op operand)+        e.g. ``low <= high``, ``0 <= rain < 500``
    operand := field name | number
    op      := < | <= | > | >= | == | !=

A chain holds when every adjacent pair holds (as in Python). Rows where a field is null are not judged.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Comparison", "parse_expr"]

_TOKEN = re.compile(r"\s*(?:(<=|>=|==|!=|<|>)|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*))")
# each comparison's negation where both sides are numbers (a null, NaN, makes all but != false)
_NOT: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.ge, "<=": operator.gt, ">": operator.le, ">=": operator.lt, "==": operator.ne, "!=": operator.eq}

Operand = str | float


@dataclass(frozen=True)
class Comparison:
    operands: tuple[Operand, ...]
    ops: tuple[str, ...]

    @property
    def fields(self) -> list[str]:
        return [o for o in self.operands if isinstance(o, str)]

    def fails(self, columns: dict[str, npt.NDArray[np.float64]], size: int) -> npt.NDArray[np.bool_]:
        """Where every operand is known and some adjacent pair does not hold (rows with a null are not judged).
        Each pair's negation is false for a null, so a single pair other than ``==`` needs no pass to find the
        nulls."""
        failed = np.zeros(size, dtype=bool)
        with np.errstate(invalid="ignore"):
            for left, op, right in zip(self.operands, self.ops, self.operands[1:], strict=False):
                failed |= _NOT[op](columns[left] if isinstance(left, str) else left,
                                   columns[right] if isinstance(right, str) else right)
        if len(self.ops) > 1 or self.ops[0] == "==":
            for name in self.fields:
                failed &= ~np.isnan(columns[name])
        return failed


def parse_expr(text: str) -> Comparison:
    """Parse a comparison chain; ValueError says where it stops making sense."""
    pos, tokens = 0, []
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"cannot read {text[pos:].strip()!r} in {text!r}; write e.g. 'low <= high'")
        op, number, name = match.groups()
        tokens.append(("op", op) if op else ("num", float(number)) if number else ("name", name))
        pos = match.end()
    operands: list[Operand] = []
    ops: list[str] = []
    for i, (kind, token) in enumerate(tokens):
        want_op = i % 2 == 1
        if want_op != (kind == "op"):
            raise ValueError(f"expected {'a comparison' if want_op else 'a field or number'} at {token!r} in "
                             f"{text!r}")
        if kind == "op":
            ops.append(str(token))
        else:
            operands.append(token if kind == "name" else float(token))
    if not ops or len(operands) != len(ops) + 1:
        raise ValueError(f"{text!r} is not a comparison such as 'low <= high'")
    if not any(isinstance(o, str) for o in operands):
        raise ValueError(f"{text!r} compares no field")
    return Comparison(tuple(operands), tuple(ops))
