"""The summary template of a view: plain text with ``{placeholders}`` the engine fills from the twin's state,
its latest forecast and their verification. A small language on purpose, never code: a placeholder reads
named values, may take one arithmetic step, ``abs(...)`` or a comparison, and formats with Python's format
spec; ``{x?yes|no}`` picks a word. Clauses (between ``;``) whose values the twin does not have yet are left
out, so a new twin reads sensibly.

    Flood alert {state.alert?ON|OFF}: level {state.level:.2f} m; last reading {state.level.age}
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["NAMESPACES", "Placeholder", "Scalar", "TemplateError", "parse", "render", "summary_properties"]

NAMESPACES = ("twin", "state", "desired", "forecast", "outlook", "skill", "model")
Scalar = str | int | float | bool | None

_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+){1,4}"
_NUMBER = r"-?\d+(?:\.\d+)?"
_OPERAND = rf"(?:{_PATH}|{_NUMBER})"
_SPEC = re.compile(r"^(?:[^{}]?[<>=^])?[+\- ]?z?#?0?\d{0,3}[,_]?(?:\.\d{1,2})?[bcdeEfFgGnosxX%]?$")
_VALUE = re.compile(rf"^(?P<abs>abs\()?\s*(?P<a>{_OPERAND})\s*(?:(?P<op>[-+*/])\s*(?P<b>{_OPERAND}))?\s*"
                    rf"(?(abs)\))\s*(?::(?P<spec>[^{{}}]*))?$")
_CHOICE = re.compile(rf"^(?P<a>{_OPERAND})\s*(?:(?P<op><=|>=|==|!=|<|>)\s*(?P<b>{_OPERAND}))?\s*"
                     r"\?(?P<yes>[^|{}]*)\|(?P<no>[^|{}]*)$")
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
MAX_PLACEHOLDERS = 40


class TemplateError(ValueError):
    """Raised when a summary template does not parse: names the placeholder and what is wrong."""


class _Missing(Exception):
    """A value the placeholder reads is not there (yet): its clause is left out."""


@dataclass(frozen=True)
class Placeholder:
    """One ``{...}``: either a value (``a op b``, ``abs``, a format spec) or a choice of two words."""

    text: str
    a: str
    op: str | None = None
    b: str | None = None
    absolute: bool = False
    spec: str = ""
    choice: tuple[str, str] | None = None

    def paths(self) -> list[str]:
        """The names it reads (numbers left out)."""
        return [p for p in (self.a, self.b) if p is not None and not re.fullmatch(_NUMBER, p)]


Part = str | Placeholder


def _placeholder(body: str) -> Placeholder:
    text = "{" + body + "}"
    if "?" in body:
        m = _CHOICE.match(body.strip())
        if m is None:
            raise TemplateError(f"{text}: a choice reads 'name?yes|no' or 'a < b?yes|no'")
        parsed = Placeholder(text, m["a"], m["op"], m["b"], choice=(m["yes"], m["no"]))
    else:
        m = _VALUE.match(body.strip())
        if m is None:
            raise TemplateError(f"{text}: a placeholder reads 'name', 'name:.2f', 'a - b', 'abs(a - b):.1f' or "
                                "'name?yes|no' (names like state.level)")
        spec = (m["spec"] or "").strip()
        if not _SPEC.match(spec):
            raise TemplateError(f"{text}: {spec!r} is not a format spec (e.g. .2f, g, .0%)")
        parsed = Placeholder(text, m["a"], m["op"], m["b"], absolute=bool(m["abs"]), spec=spec)
    for path in parsed.paths():
        if path.split(".")[0] not in NAMESPACES:
            raise TemplateError(f"{text}: {path!r} starts with none of {', '.join(NAMESPACES)}")
    return parsed


def parse(template: str) -> list[Part]:
    """Text and placeholders in order (``{{`` and ``}}`` are literal braces); TemplateError otherwise."""
    parts: list[Part] = []
    text, i = [], 0
    while i < len(template):
        c = template[i]
        if template.startswith(("{{", "}}"), i):
            text.append(c)
            i += 2
        elif c == "{":
            end = template.find("}", i)
            if end < 0:
                raise TemplateError(f"a '{{' at character {i + 1} is not closed")
            if text:
                parts.append("".join(text))
                text = []
            parts.append(_placeholder(template[i + 1:end]))
            i = end + 1
        elif c == "}":
            raise TemplateError(f"a '}}' at character {i + 1} closes nothing (write '}}}}' for a brace)")
        else:
            text.append(c)
            i += 1
    if text:
        parts.append("".join(text))
    if sum(isinstance(p, Placeholder) for p in parts) > MAX_PLACEHOLDERS:
        raise TemplateError(f"a summary has at most {MAX_PLACEHOLDERS} placeholders")
    return parts


def summary_properties(template: str | None) -> list[str]:
    """The state properties a (parsed) template reads, in order, once each: the catalogue checks they exist."""
    names: dict[str, None] = {}
    for part in parse(template) if template else []:
        if isinstance(part, Placeholder):
            for path in part.paths():
                kind, _, rest = path.partition(".")
                if kind in ("state", "desired"):
                    names[rest.split(".")[0]] = None
    return list(names)


def _operand(token: str, values: Mapping[str, Scalar]) -> Scalar:
    if re.fullmatch(_NUMBER, token):
        return float(token)
    value = values.get(token)
    if value is None:
        raise _Missing(token)
    return value


def _number(token: str, values: Mapping[str, Scalar]) -> float:
    value = _operand(token, values)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Missing(token)
    return float(value)


def _fill(p: Placeholder, values: Mapping[str, Scalar]) -> str:
    if p.choice is not None:
        if p.op is None or p.b is None:
            return p.choice[0] if bool(_operand(p.a, values)) else p.choice[1]
        return p.choice[0] if _COMPARE[p.op](_number(p.a, values), _number(p.b, values)) else p.choice[1]
    if p.op is None or p.b is None:
        value: Scalar = _operand(p.a, values)
        if p.absolute:
            value = abs(_number(p.a, values))
    else:
        try:
            value = _ARITH[p.op](_number(p.a, values), _number(p.b, values))
        except ZeroDivisionError:
            raise _Missing(p.text) from None
        value = abs(value) if p.absolute else value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not p.spec:
        return f"{value:g}" if isinstance(value, float) else str(value)
    try:
        return format(value, p.spec)
    except (ValueError, TypeError):  # a number's spec on a word: the word as it is
        return str(value)


def render(template: str, values: Mapping[str, Scalar]) -> str:
    """The template filled from ``values`` (dotted names to plain values); a clause that reads a missing
    value is left out."""
    clauses: list[list[Part]] = [[]]
    for part in parse(template):
        if isinstance(part, str):
            pieces = part.split(";")
            clauses[-1].append(pieces[0])
            clauses.extend([piece] for piece in pieces[1:])
        else:
            clauses[-1].append(part)
    kept = []
    for clause in clauses:
        try:
            kept.append("".join(p if isinstance(p, str) else _fill(p, values) for p in clause).strip())
        except _Missing:
            kept.append("")
    text = "; ".join(k for k in kept if k)
    if text and not kept[0]:  # the opening clause was left out: the sentence still starts with a capital
        text = text[0].upper() + text[1:]
    return text
