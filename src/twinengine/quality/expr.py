"""A small expression grammar for quality checks over a record's fields and the previous record's of the same
source (``prev.<field>``), parsed here and evaluated over columns with numpy, never with ``eval``.

    expr       := and ("or" and)*
    and        := not ("and" not)*
    not        := "not"* comparison
    comparison := sum (cmp sum)*          a chain, as in Python: ``0 <= rain < 500``
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := ("-" | "+")* atom
    atom       := number | "true" | "false" | field | "prev" "." field | "(" expr ")"
                | ("abs" | "min" | "max") "(" expr ("," expr)* ")"   (their arguments are numbers)
    cmp        := < | <= | > | >= | == | !=

The whole expression is a condition; arithmetic and functions take numbers. A row is judged only where every
field it reads is known (not null) and no division by zero occurs: elsewhere the condition is unknown.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_DEPTH", "MAX_EXPR_CHARS", "Expression", "Reference", "parse_expr"]

MAX_EXPR_CHARS = 200  # the longest expression a manifest may declare
MAX_DEPTH = 16  # the deepest nesting of parentheses and function calls

Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Number = Floats | float

_TOKEN = re.compile(r"\s*(?:(<=|>=|==|!=|[<>+\-*/(),.])"  # an operator or punctuation
                    r"|((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"  # a number (its sign is an operator)
                    r"|([A-Za-z_][A-Za-z0-9_]*))")  # a field, a function or a word of the grammar
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
# each comparison's negation but ``==``'s (``!=``, true where a side is NaN): false where a side is NaN
_NOT: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.ge, "<=": operator.gt, ">": operator.le, ">=": operator.lt, "!=": operator.eq}
_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply}
_FUNCTIONS = {"abs": 1, "min": 2, "max": 2}  # the least number of arguments each takes
_WORDS = {"and", "or", "not", "true", "false"}  # never field names


@dataclass(frozen=True)
class Reference:
    """A field the expression reads: of the record itself, or of the previous record of its source
    (``prev``); ``position`` counts characters from 1, as an editor does."""

    field: str
    prev: bool
    position: int

    @property
    def column(self) -> str:
        """The column the evaluation reads it from (``prev.head`` for the previous record's ``head``)."""
        return f"prev.{self.field}" if self.prev else self.field


@dataclass(frozen=True)
class _Const:
    value: float


@dataclass(frozen=True)
class _Neg:
    operand: _Num


@dataclass(frozen=True)
class _Arith:
    op: str
    left: _Num
    right: _Num


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[_Num, ...]


@dataclass(frozen=True)
class _Chain:
    operands: tuple[_Num, ...]
    ops: tuple[str, ...]


@dataclass(frozen=True)
class _Logic:
    op: str  # "and" or "or"
    parts: tuple[_Bool, ...]


@dataclass(frozen=True)
class _Not:
    operand: _Bool


_Num = Reference | _Const | _Neg | _Arith | _Call
_Bool = _Chain | _Logic | _Not


@dataclass(frozen=True)
class Expression:
    """A parsed condition; ``false_where`` is what a check flags (or, for ``when``, where it is suspended)."""

    text: str
    root: _Bool
    references: tuple[Reference, ...]

    @property
    def fields(self) -> list[str]:
        """The stream fields read (of the record or the previous one), each once, in order of appearance."""
        return list(dict.fromkeys(r.field for r in self.references))

    @property
    def previous(self) -> list[str]:
        """The fields read from the previous record of the same source."""
        return list(dict.fromkeys(r.field for r in self.references if r.prev))

    @property
    def columns(self) -> list[str]:
        """The columns ``evaluate`` reads: fields, and ``prev.<field>`` for the previous record's."""
        return list(dict.fromkeys(r.column for r in self.references))

    def evaluate(self, columns: dict[str, Floats], size: int) -> tuple[Mask, Mask]:
        """Where the condition holds, and where it is known (every field read is not null and no divisor is
        zero); a row that is not known never holds."""
        unknown: list[Mask] = []
        with np.errstate(all="ignore"):
            holds = _truth(self.root, columns, size, unknown)
        if not unknown:  # the usual case: nothing null, no pass to mask
            return holds, np.ones(size, dtype=bool)
        known = ~functools.reduce(np.logical_or, unknown)
        return holds & known, known

    def false_where(self, columns: dict[str, Floats], size: int) -> Mask:
        """Rows where the condition is known and does not hold. A lone comparison other than ``==`` takes
        one pass: its negation is false where a side is unknown (NaN), so it needs no pass for the nulls."""
        root = self.root
        if isinstance(root, _Chain) and len(root.ops) == 1 and root.ops[0] != "==":
            with np.errstate(all="ignore"):
                fails = _NOT[root.ops[0]](_number(root.operands[0], columns, size),
                                          _number(root.operands[1], columns, size))
            return fails if isinstance(fails, np.ndarray) else np.full(size, fails)
        holds, known = self.evaluate(columns, size)
        return known & ~holds


def _number(node: _Num, columns: dict[str, Floats], size: int) -> Number:
    if isinstance(node, Reference):
        return columns[node.column]
    if isinstance(node, _Const):
        return node.value
    if isinstance(node, _Neg):
        return np.negative(_number(node.operand, columns, size))
    if isinstance(node, _Arith):
        left, right = _number(node.left, columns, size), _number(node.right, columns, size)
        if node.op != "/":
            out: Number = _ARITHMETIC[node.op](left, right)
            return out
        quotient: Floats = np.divide(np.broadcast_to(left, (size,)), right)
        quotient[np.broadcast_to(np.equal(right, 0), (size,))] = np.nan  # a zero divisor: unknown
        return quotient
    args = [_number(a, columns, size) for a in node.args]
    if node.name == "abs":
        return np.abs(args[0])
    out = args[0]
    for arg in args[1:]:  # NaN (unknown) wins, so a row with an unknown argument stays unknown
        out = np.minimum(out, arg) if node.name == "min" else np.maximum(out, arg)
    return out


def _truth(node: _Bool, columns: dict[str, Floats], size: int, unknown: list[Mask]) -> Mask:
    """Where ``node`` holds; adds to ``unknown`` the rows where a comparison meets an unknown number (NaN)."""
    if isinstance(node, _Chain):
        values = [_number(o, columns, size) for o in node.operands]
        for value in values:
            nan = np.isnan(value)
            if nan.any():
                unknown.append(np.broadcast_to(nan, (size,)))
        pairs = [_COMPARE[op](left, right) for left, op, right in zip(values, node.ops, values[1:], strict=False)]
        return np.broadcast_to(functools.reduce(np.logical_and, pairs), (size,))
    if isinstance(node, _Not):
        return ~_truth(node.operand, columns, size, unknown)
    parts = [_truth(p, columns, size, unknown) for p in node.parts]
    out = parts[0]
    for part in parts[1:]:
        out = out & part if node.op == "and" else out | part
    return out


@dataclass(frozen=True)
class _Token:
    kind: str  # "op", "num", "name" or "end"
    text: str
    position: int  # from 1


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None:
            rest = text[pos:].strip()
            start = len(text) - len(text[pos:].lstrip()) + 1
            hint = " (write == to compare)" if rest.startswith("=") else ""
            raise ValueError(f"cannot read {rest!r} at position {start} of {text!r}{hint}")
        op, number, name = match.groups()
        start = match.start(match.lastindex or 0) + 1
        tokens.append(_Token("op", op, start) if op else _Token("num", number, start) if number
                      else _Token("name", name, start))
        pos = match.end()
    tokens.append(_Token("end", "", end + 1))
    return tokens


class _Parser:
    """Recursive descent over the tokens; only parentheses and calls recurse, so ``MAX_DEPTH`` bounds the
    stack whatever the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0
        self.references: list[Reference] = []

    def error(self, message: str, token: _Token | None = None) -> ValueError:
        """``message`` at ``token`` (the next one when not given, then saying what was found there)."""
        if token is not None:
            return ValueError(f"{message} at position {token.position} of {self.text!r}")
        token = self.peek()
        found = "the end" if token.kind == "end" else repr(token.text)
        return ValueError(f"{message} at position {token.position} of {self.text!r}, found {found}")

    def closed(self, opening: _Token, what: str) -> None:
        """The ``)`` that closes ``opening``."""
        if self.take(")") is not None:
            self.depth -= 1
            return
        if self.peek().kind == "end":
            raise ValueError(f"unbalanced parentheses: '(' at position {opening.position} is never closed in "
                             f"{self.text!r}")
        raise self.error(f"expected {what} (for the '(' at position {opening.position})")

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self, *texts: str) -> _Token | None:
        token = self.peek()
        if token.kind in ("op", "name") and token.text in texts:
            self.at += 1
            return token
        return None

    def expect(self, text: str, what: str) -> _Token:
        token = self.take(text)
        if token is None:
            raise self.error(f"expected {what}")
        return token

    def parse(self) -> Expression:
        node, start = self.condition()
        token = self.peek()
        if token.kind != "end":
            if token.text == ")":
                raise ValueError(f"unbalanced parentheses: ')' at position {token.position} closes no '(' in "
                                 f"{self.text!r}")
            raise self.error("expected an operator (+ - * /, a comparison, and, or)")
        root = self._bool(node, start)
        if not self.references:
            raise ValueError(f"{self.text!r} reads no field")
        return Expression(self.text, root, tuple(self.references))

    def condition(self) -> tuple[_Num | _Bool, _Token]:
        start = self.peek()
        return self.logic("or", self.conjunction), start

    def conjunction(self) -> _Num | _Bool:
        return self.logic("and", self.negation)

    def logic(self, word: str, part: Callable[[], _Num | _Bool]) -> _Num | _Bool:
        """Parts joined by ``word`` (and, or); each must be a condition."""
        starts = [self.peek()]
        parts = [part()]
        while self.take(word):
            starts.append(self.peek())
            parts.append(part())
        if len(parts) == 1:
            return parts[0]
        return _Logic(word, tuple(self._bool(p, start) for p, start in zip(parts, starts, strict=True)))

    def negation(self) -> _Num | _Bool:
        nots = 0
        while self.take("not"):
            nots += 1
        start = self.peek()
        node = self.comparison()
        for _ in range(nots):
            node = _Not(self._bool(node, start))
        return node

    def comparison(self) -> _Num | _Bool:
        starts = [self.peek()]
        operands: list[_Num | _Bool] = [self.sum()]
        ops: list[str] = []
        while (token := self.take(*_COMPARE)) is not None:
            ops.append(token.text)
            starts.append(self.peek())
            operands.append(self.sum())
        if not ops:
            return operands[0]
        return _Chain(tuple(self._num(o, start) for o, start in zip(operands, starts, strict=True)), tuple(ops))

    def sum(self) -> _Num | _Bool:
        start = self.peek()
        node = self.product()
        while (token := self.take("+", "-")) is not None:
            right_start = self.peek()
            node = _Arith(token.text, self._num(node, start), self._num(self.product(), right_start))
        return node

    def product(self) -> _Num | _Bool:
        start = self.peek()
        node = self.unary()
        while (token := self.take("*", "/")) is not None:
            right_start = self.peek()
            node = _Arith(token.text, self._num(node, start), self._num(self.unary(), right_start))
        return node

    def unary(self) -> _Num | _Bool:
        negate = False
        while (token := self.take("-", "+")) is not None:
            negate ^= token.text == "-"
        start = self.peek()
        node = self.atom()
        return _Neg(self._num(node, start)) if negate else node

    def atom(self) -> _Num | _Bool:
        token = self.peek()
        if token.kind == "num":
            self.at += 1
            return _Const(float(token.text))
        if token.kind == "name":
            return self.name(token)
        if token.text == "(":
            self.at += 1
            self.enter(token)
            node, _start = self.condition()
            self.closed(token, "')'")
            return node
        raise self.error("expected a field, a number or '('")

    def name(self, token: _Token) -> _Num | _Bool:
        self.at += 1
        word = token.text
        if word in ("true", "false"):
            return _Const(1.0 if word == "true" else 0.0)
        if word in _WORDS:
            raise self.error(f"'{word}' is a word of the grammar; expected a field, a number or '('", token)
        following = self.peek()
        if word in _FUNCTIONS and following.text == "(":
            return self.call(token)
        if word == "prev" and following.text == ".":
            self.at += 1
            field = self.peek()
            if field.kind != "name" or field.text in _WORDS:
                raise self.error("expected a field after 'prev.'")
            self.at += 1
            reference = Reference(field.text, True, token.position)
        else:
            reference = Reference(word, False, token.position)
        self.references.append(reference)
        return reference

    def call(self, token: _Token) -> _Call:
        opening = self.expect("(", "'('")
        self.enter(opening)
        parsed = [self.condition()]  # conditions too, to say so rather than stop at their comparison
        while self.take(",") is not None:
            parsed.append(self.condition())
        self.closed(opening, "',' or ')'")
        args = [self._num(node, start) for node, start in parsed]
        least = _FUNCTIONS[token.text]
        if token.text == "abs" and len(args) != 1:
            raise self.error("abs takes one number", token)
        if len(args) < least:
            raise self.error(f"{token.text} takes at least {least} numbers", token)
        return _Call(token.text, tuple(args))

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested deeper than {MAX_DEPTH} levels", token)

    def _num(self, node: _Num | _Bool, start: _Token) -> _Num:
        if isinstance(node, _Chain | _Logic | _Not):
            raise self.error("expected a number, not a condition", start)
        return node

    def _bool(self, node: _Num | _Bool, start: _Token) -> _Bool:
        if not isinstance(node, _Chain | _Logic | _Not):
            raise self.error("expected a condition (a comparison such as 'level < 15'), not a number", start)
        return node


def parse_expr(text: str) -> Expression:
    """Parse a condition; ValueError says what is wrong and at which position (counted from 1)."""
    if len(text) > MAX_EXPR_CHARS:
        raise ValueError(f"an expression has at most {MAX_EXPR_CHARS} characters; this one has {len(text)}")
    if not text.strip():
        raise ValueError("an expression cannot be empty")
    return _Parser(text).parse()
