"""Rucio's endpoint-expression grammar: which endpoints a replication rule may use.

    expression := term (("|" | "&" | "\\") term)*        union, intersection, complement; left to right,
    term       := "(" expression ")" | "*" | condition | NAME          all three of equal precedence
    condition  := KEY ("=" | "!=") VALUE | KEY ("<" | ">" | "<=" | ">=") NUMBER

``site=A|tier=1&type=disk`` reads ``(site=A | tier=1) & type=disk`` (as in Rucio); use parentheses to say
otherwise. A bare NAME is an endpoint's name or an attribute set to true (``eu=true`` makes ``eu`` a term);
``*`` is every endpoint. Errors carry the 0-based position of the offending character.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ExpressionError", "Node", "evaluate", "parse", "select_endpoints"]

_WORD = re.compile(r"[A-Za-z0-9_.:\-]+")
_TRUE = {"true", "1", "yes"}
_OPS = ("<=", ">=", "!=", "=", "<", ">")


class ExpressionError(ValueError):
    """A parse or evaluation problem at ``position`` (0-based) in the expression text."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(f"position {position}: {message}")
        self.position = position
        self.message = message


@dataclass(frozen=True)
class Name:
    name: str
    position: int


@dataclass(frozen=True)
class All:
    position: int


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    value: str
    position: int


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


Node = Name | All | Condition | Binary


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self) -> str:
        self._skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Node:
        if not self.text.strip():
            raise ExpressionError(0, "the expression is empty")
        node = self._expression()
        if self._peek():
            char = self._peek()
            what = "unbalanced ')'" if char == ")" else f"unexpected {char!r}; expected an operator (| & \\)"
            raise ExpressionError(self.pos, what)
        return node

    def _expression(self) -> Node:
        node = self._term()
        while self._peek() in ("|", "&", "\\") and self._peek():
            op = self._peek()
            self.pos += 1
            node = Binary(op, node, self._term())
        return node

    def _term(self) -> Node:
        char = self._peek()
        start = self.pos
        if char == "(":
            self.pos += 1
            node = self._expression()
            if self._peek() != ")":
                raise ExpressionError(self.pos, f"missing ')' to close the '(' at position {start}")
            self.pos += 1
            return node
        if char == "*":
            self.pos += 1
            return All(start)
        match = _WORD.match(self.text, self.pos)
        if not match:
            found = repr(char) if char else "the end"
            raise ExpressionError(self.pos, f"expected an endpoint name, key=value, '*' or '(', found {found}")
        self.pos = match.end()
        word = match.group()
        op = next((o for o in _OPS if self.text.startswith(o, self.pos)), None)
        if op is None:
            return Name(word, start)
        self.pos += len(op)
        value = _WORD.match(self.text, self.pos)
        if not value:
            raise ExpressionError(self.pos, f"expected a value after '{word}{op}'")
        self.pos = value.end()
        if op in ("<", ">", "<=", ">="):
            try:
                float(value.group())
            except ValueError:
                raise ExpressionError(value.start(), f"'{op}' compares numbers; {value.group()!r} is not one") from None
        return Condition(word, op, value.group(), start)


def parse(text: str) -> Node:
    """Parse an expression, or raise ExpressionError with the position of the first problem."""
    return _Parser(text).parse()


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _matches(cond: Condition, attributes: Mapping[str, str]) -> bool:
    if cond.key not in attributes:
        return cond.op == "!="
    have = str(attributes[cond.key])
    if cond.op == "=":
        return have == cond.value
    if cond.op == "!=":
        return have != cond.value
    number = _number(have)
    if number is None:
        return False
    limit = float(cond.value)
    return {"<": number < limit, ">": number > limit, "<=": number <= limit, ">=": number >= limit}[cond.op]


def evaluate(node: Node, endpoints: Mapping[str, Mapping[str, str]]) -> frozenset[str]:
    """The names of ``endpoints`` (name → attributes) the expression selects."""
    if isinstance(node, All):
        return frozenset(endpoints)
    if isinstance(node, Name):  # an endpoint's name, or an attribute set to true (Rucio's SPAINSITES style)
        flagged = {n for n, attrs in endpoints.items() if str(attrs.get(node.name, "")).lower() in _TRUE}
        if node.name not in endpoints and not flagged:
            raise ExpressionError(node.position, f"no endpoint named {node.name!r} and no endpoint with the "
                                                 f"attribute {node.name}=true")
        return frozenset(flagged | ({node.name} if node.name in endpoints else set()))
    if isinstance(node, Condition):
        return frozenset(n for n, attrs in endpoints.items() if _matches(node, attrs))
    left, right = evaluate(node.left, endpoints), evaluate(node.right, endpoints)
    if node.op == "|":
        return left | right
    if node.op == "&":
        return left & right
    return left - right


def select_endpoints(text: str, endpoints: Mapping[str, Mapping[str, str]]) -> frozenset[str]:
    """Parse and evaluate; an expression that selects nothing is an error too (position 0)."""
    chosen = evaluate(parse(text), endpoints)
    if not chosen:
        raise ExpressionError(0, f"{text!r} selects no endpoint")
    return chosen
