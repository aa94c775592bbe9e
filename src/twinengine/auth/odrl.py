"""ODRL 2.2 policies the engine offers and enforces: what an offer may say, and whether a participant's use passes
it at a phase (catalog visibility, negotiation, transfer, each data access on the provider, each use of the copy
the consumer landed). Kept with the engine's policy point (``auth``): the provider's data space and the
consumer's lake both judge by it.

A use is permitted when no prohibition holds and at least one permission holds: a rule holds when each of its
constraints does (``and``, ``or``, ``xone`` and ``andSequence`` combine them). A constraint on a left operand that
a phase cannot judge is left to the phases that can (``dateTime`` is judged at negotiation, transfer and access;
``count`` at transfer and at each use of the copy): it lets a permission pass there, and it keeps a prohibition
from holding there (a prohibition of the purpose ``marketing`` hides the offer from nobody's catalog; it refuses
that negotiation). So each phase judges what it can, and a use passes every gate it meets. A left operand,
operator or action the engine does not know is refused when an offer is made and fails closed everywhere else.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = ["GATES", "METADATA", "OPERANDS", "Context", "Phase", "PolicyError", "canonical", "check", "decide",
           "delete_by", "json_of", "obligations", "operands", "rules_text"]

ODRL = "http://www.w3.org/ns/odrl/2/"
PROFILE = "urn:twinengine:odrl:"  # the engine's own left operands: organisation, group


class PolicyError(ValueError):
    """Raised when a policy says something the engine does not know or cannot enforce; names where."""


class Phase(StrEnum):
    CATALOG = "catalog"
    NEGOTIATION = "negotiation"
    TRANSFER = "transfer"
    ACCESS = "access"
    COPY = "use of the copy"  # on the consumer's engine: each read of the data it landed under the agreement


# Each left operand the engine enforces: the operators it takes and the phases it gates.
OPERANDS: dict[str, tuple[frozenset[str], frozenset[Phase]]] = {
    "dateTime": (frozenset({"lt", "lteq", "gt", "gteq"}),
                 frozenset({Phase.NEGOTIATION, Phase.TRANSFER, Phase.ACCESS, Phase.COPY})),
    "elapsedTime": (frozenset({"lt", "lteq"}), frozenset({Phase.TRANSFER, Phase.ACCESS, Phase.COPY})),
    "count": (frozenset({"lt", "lteq"}), frozenset({Phase.TRANSFER, Phase.COPY})),
    "purpose": (frozenset({"eq", "neq", "isAnyOf", "isNoneOf"}), frozenset({Phase.NEGOTIATION})),
    "spatial": (frozenset({"eq", "neq", "isAnyOf", "isNoneOf", "isPartOf"}),
                frozenset({Phase.NEGOTIATION, Phase.TRANSFER})),
    "recipient": (frozenset({"eq", "neq", "isAnyOf", "isNoneOf"}),
                  frozenset({Phase.CATALOG, Phase.NEGOTIATION, Phase.TRANSFER})),
    "organisation": (frozenset({"eq", "neq", "isAnyOf", "isNoneOf"}),
                     frozenset({Phase.CATALOG, Phase.NEGOTIATION, Phase.TRANSFER})),
    "group": (frozenset({"eq", "neq", "isAnyOf", "isAllOf", "isNoneOf"}),
              frozenset({Phase.CATALOG, Phase.NEGOTIATION, Phase.TRANSFER})),
    # the area a read covers (an EDR query's) lies within a polygon (WKT, longitude latitude): each data access
    "spatialCoordinates": (frozenset({"isPartOf"}), frozenset({Phase.ACCESS, Phase.COPY})),
}
METADATA = "metadata"  # a ``Context.footprint``: a read of a collection's description, no values
GATES = {name: phases for name, (_ops, phases) in OPERANDS.items()}
ACTIONS = frozenset({"use"})  # what permissions and prohibitions are about
DUTIES = frozenset({"attribute", "delete"})  # obligations the engine records with, or carries out on, a landed copy
_LOGICAL = ("and", "andSequence", "or", "xone")
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


@dataclass(frozen=True)
class Context:
    """What a phase knows of a use: who (the participant's id, organisation, groups and regions), why (the
    purpose declared when negotiating), when, since when agreed, and how often: the transfers made under the
    agreement (on the provider), or the uses of the copies landed under it (on the consumer's engine)."""

    phase: Phase
    participant: str
    organisation: str | None = None
    groups: frozenset[str] = frozenset()
    spatial: frozenset[str] = frozenset()
    purpose: str | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    agreed_at: datetime | None = None
    transfers: int = 0  # transfers started under the agreement, this one included
    uses: int = 0  # uses of the copies landed under the agreement (phase COPY), this one included
    footprint: Any = None  # what an access reads: a shapely geometry (an EDR query's area), METADATA, or None (a
    # file, which has no area: ``spatialCoordinates`` refuses it)


def _name(value: Any, *, where: str, prefixes: tuple[str, ...] = (ODRL, "odrl:")) -> str:
    if isinstance(value, dict) and isinstance(value.get("@id"), str):
        value = value["@id"]
    if not isinstance(value, str):
        raise PolicyError(f"{where}: not a name")
    for prefix in (*prefixes, PROFILE):
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


def _operand(value: Any, where: str) -> str:
    name = _name(value, where=where)
    if name not in OPERANDS:
        raise PolicyError(f"{where}: left operand {value!r} is not one the engine enforces "
                          f"({', '.join(sorted(OPERANDS))})")
    if name in ("organisation", "group") and not (isinstance(value, str) and value.startswith(PROFILE)) \
            and value not in ("organisation", "group"):
        raise PolicyError(f"{where}: left operand {value!r} is not one the engine enforces")
    return name


def _right(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("@value", value.get("@id"))
    if isinstance(value, list):
        return [_right(item) for item in value]
    return value


def _when(value: Any, where: str) -> datetime:
    try:
        text = str(_right(value))
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PolicyError(f"{where}: {value!r} is not an xsd:dateTime") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _duration(value: Any, where: str) -> timedelta:
    match = _DURATION.match(str(_right(value)))
    if not match or not any(match.groups()):
        raise PolicyError(f"{where}: {value!r} is not a duration such as P7D or PT12H")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _count(value: Any, where: str) -> int:
    try:
        number = int(str(_right(value)))
    except ValueError:
        raise PolicyError(f"{where}: {value!r} is not a whole number") from None
    if number < 0:
        raise PolicyError(f"{where}: a count is not negative")
    return number


def _strings(value: Any, where: str, operator: str) -> list[str]:
    items = _right(value)
    items = items if isinstance(items, list) else [items]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise PolicyError(f"{where}: the right operand is a name or a list of names")
    if operator in ("eq", "neq", "isPartOf") and len(items) != 1:
        raise PolicyError(f"{where}: {operator} takes one name")
    return items


def _check_constraint(constraint: Any, where: str) -> None:
    if not isinstance(constraint, dict):
        raise PolicyError(f"{where}: a constraint is an object")
    logical = [key for key in _LOGICAL if key in constraint]
    if logical:
        members = constraint[logical[0]]
        if len(logical) > 1 or not isinstance(members, list) or not members:
            raise PolicyError(f"{where}: a logical constraint holds one non-empty list (and, or, xone, andSequence)")
        for i, member in enumerate(members):
            _check_constraint(member, f"{where}.{logical[0]}[{i}]")
        return
    name = _operand(constraint.get("leftOperand"), f"{where}.leftOperand")
    operator = _name(constraint.get("operator"), where=f"{where}.operator")
    operators = OPERANDS[name][0]
    if operator not in operators:
        raise PolicyError(f"{where}.operator: {operator!r} is not one the engine enforces on {name} "
                          f"({', '.join(sorted(operators))})")
    value, at = constraint.get("rightOperand"), f"{where}.rightOperand"
    if name == "dateTime":
        _when(value, at)
    elif name == "elapsedTime":
        _duration(value, at)
    elif name == "count":
        _count(value, at)
    elif name == "spatialCoordinates":
        _area(value, at)
    else:
        _strings(value, at, operator)


@functools.lru_cache(maxsize=256)
def _polygon(text: str) -> Any:
    import shapely

    try:
        area = shapely.from_wkt(text)
    except shapely.errors.GEOSException:
        return None
    if area.geom_type not in ("Polygon", "MultiPolygon") or area.is_empty or not area.is_valid:
        return None
    west, south, east, north = area.bounds
    return area if max(abs(west), abs(east)) <= 360 and max(abs(south), abs(north)) <= 90 else None


def _area(value: Any, where: str) -> Any:
    """The polygon a ``spatialCoordinates`` constraint names: WKT (``POLYGON((7 46, 8.5 46, ...))``, longitude
    and latitude)."""
    text = _right(value)
    area = _polygon(text) if isinstance(text, str) and len(text) <= 100_000 else None
    if area is None:
        raise PolicyError(f"{where}: a valid POLYGON or MULTIPOLYGON in WKT, longitude latitude")
    return area


def operands(policy: dict[str, Any]) -> set[str]:
    """The left operands a policy's rules constrain."""
    return {name for key in ("permission", "prohibition", "obligation") for rule in policy.get(key, [])
            if isinstance(rule, dict) for c in rule.get("constraint", []) for name in _operands_of(c)}


def _operands_of(constraint: Any) -> list[str]:
    if not isinstance(constraint, dict):
        return []
    for key in _LOGICAL:
        if key in constraint:
            return [name for member in constraint[key] for name in _operands_of(member)]
    return [_name(constraint.get("leftOperand"), where="leftOperand")]


def _check_rules(policy: dict[str, Any], key: str, actions: frozenset[str]) -> None:
    rules = policy.get(key, [])
    if not isinstance(rules, list):
        raise PolicyError(f"{key}: a list of rules")
    for i, rule in enumerate(rules):
        where = f"{key}[{i}]"
        if not isinstance(rule, dict):
            raise PolicyError(f"{where}: a rule is an object")
        if "target" in rule:
            raise PolicyError(f"{where}.target: rules carry no target (the policy's target is the dataset)")
        action = _name(rule.get("action"), where=f"{where}.action")
        if action not in actions:
            raise PolicyError(f"{where}.action: {rule.get('action')!r} is not one the engine enforces here "
                              f"({', '.join(sorted(actions))})")
        constraints = rule.get("constraint", [])
        if not isinstance(constraints, list):
            raise PolicyError(f"{where}.constraint: a list of constraints")
        for j, constraint in enumerate(constraints):
            _check_constraint(constraint, f"{where}.constraint[{j}]")
        for extra in ("duty", "refinement", "assignee", "assigner"):
            if extra in rule:
                raise PolicyError(f"{where}.{extra}: not enforced by the engine")


def check(policy: Any) -> None:
    """Refuse (``PolicyError``) a policy with a rule, action, left operand or operator the engine cannot enforce."""
    if not isinstance(policy, dict):
        raise PolicyError("the policy is not a JSON object")
    if not policy.get("permission"):
        raise PolicyError("permission: an offer permits at least one use")
    _check_rules(policy, "permission", ACTIONS)
    _check_rules(policy, "prohibition", ACTIONS)
    for i, rule in enumerate(policy.get("prohibition", [])):
        if any("spatialCoordinates" in _operands_of(c) for c in rule.get("constraint", [])):
            raise PolicyError(f"prohibition[{i}].constraint: spatialCoordinates only in a permission (the area "
                              "permitted; a prohibition would let a read partly inside pass)")
    _check_rules(policy, "obligation", DUTIES)
    for i, rule in enumerate(policy.get("obligation", [])):
        if rule.get("action") == "delete":
            _delete_when(rule, f"obligation[{i}]")


def _delete_when(rule: dict[str, Any], where: str) -> tuple[str, Any]:
    """(left operand, right operand) of a ``delete`` duty's one constraint, which says by when: ``elapsedTime
    lteq P30D`` (after the agreement) or ``dateTime lteq 2027-01-01T00:00:00Z``; ``PolicyError`` otherwise."""
    constraints = rule.get("constraint") or []
    leaf = constraints[0] if len(constraints) == 1 and isinstance(constraints[0], dict) else {}
    left = leaf.get("leftOperand")
    left = left.get("@id") if isinstance(left, dict) else left
    if left not in ("elapsedTime", "dateTime") or leaf.get("operator") not in ("lt", "lteq"):
        raise PolicyError(f"{where}.constraint: a delete duty says by when, in one constraint: elapsedTime lteq "
                          "P30D or dateTime lteq 2027-01-01T00:00:00Z")
    value = leaf.get("rightOperand")
    if left == "elapsedTime":
        _duration(value, f"{where}.constraint[0].rightOperand")
    else:
        _when(value, f"{where}.constraint[0].rightOperand")
    return str(left), value


def delete_by(policy: dict[str, Any], agreed_at: datetime) -> datetime | None:
    """When the policy's ``delete`` duties want the consumer's copy gone (the earliest), or None."""
    due = []
    for i, rule in enumerate(policy.get("obligation", [])):
        if isinstance(rule, dict) and rule.get("action") == "delete":
            left, value = _delete_when(rule, f"obligation[{i}]")
            due.append(agreed_at + _duration(value, "rightOperand") if left == "elapsedTime" else
                       _when(value, "rightOperand"))
    return min(due) if due else None


def _judge(constraint: dict[str, Any], ctx: Context) -> bool | None:
    """Whether ``constraint`` holds for ``ctx``'s use, or None where its phase cannot judge it (three-valued:
    ``and`` is false once a member is false, ``or`` true once a member is true, else unknown with an unknown)."""
    for key in _LOGICAL:
        if key in constraint:
            verdicts = [_judge(member, ctx) for member in constraint[key]]
            if key in ("and", "andSequence"):
                return False if False in verdicts else None if None in verdicts else True
            if key == "or":
                return True if True in verdicts else None if None in verdicts else False
            return None if None in verdicts else sum(bool(v) for v in verdicts) == 1
    name = _operand(constraint.get("leftOperand"), "leftOperand")
    if ctx.phase not in GATES[name]:
        return None
    return _leaf(name, constraint, ctx)


def _leaf(name: str, constraint: dict[str, Any], ctx: Context) -> bool:
    operator = _name(constraint.get("operator"), where="operator")
    value = constraint.get("rightOperand")
    if name == "dateTime":
        return _compare(ctx.now, operator, _when(value, "rightOperand"))
    if name == "elapsedTime":
        if ctx.agreed_at is None:
            return False
        return _compare(ctx.now - ctx.agreed_at, operator, _duration(value, "rightOperand"))
    if name == "count":
        done = ctx.uses if ctx.phase is Phase.COPY else ctx.transfers
        return _compare(done, operator, _count(value, "rightOperand"))
    if name == "spatialCoordinates":
        if ctx.footprint is METADATA:
            return True
        return ctx.footprint is not None and bool(_area(value, "rightOperand").covers(ctx.footprint))
    names = _strings(value, "rightOperand", operator)
    have: set[str] = {
        "purpose": {ctx.purpose} if ctx.purpose else set(),
        "spatial": set(ctx.spatial),
        "recipient": {ctx.participant},
        "organisation": {ctx.organisation} if ctx.organisation else set(),
        "group": set(ctx.groups),
    }[name]
    if operator in ("eq", "isPartOf"):
        return names[0] in have
    if operator == "neq":
        return names[0] not in have
    if operator == "isAnyOf":
        return bool(have & set(names))
    if operator == "isAllOf":
        return set(names) <= have
    return not have & set(names)  # isNoneOf


def _compare(left: Any, operator: str, right: Any) -> bool:
    return bool({"lt": left < right, "lteq": left <= right, "gt": left > right, "gteq": left >= right}[operator])


def decide(policy: dict[str, Any], ctx: Context) -> str | None:
    """Why ``ctx``'s use is refused at its phase, or None when the policy permits it. A policy that cannot be
    read refuses (fails closed)."""
    try:
        check(policy)
        for rule in policy.get("prohibition", []):  # holds only where each constraint is judged and met
            if all(_judge(c, ctx) is True for c in rule.get("constraint", [])):
                return f"a prohibition of the policy holds ({ctx.phase} of {ctx.participant})"
        refusals = []
        for rule in policy.get("permission", []):  # refused only where a constraint is judged and unmet
            failed = [c for c in rule.get("constraint", []) if _judge(c, ctx) is False]
            if not failed:
                return None
            refusals.append("; ".join(_describe(c) for c in failed))
    except PolicyError as exc:
        return f"the policy cannot be enforced: {exc}"
    return f"the policy does not permit this {ctx.phase}: " + " | ".join(refusals)


def _describe(constraint: dict[str, Any]) -> str:
    for key in _LOGICAL:
        if key in constraint:
            return f"{key}(...) does not hold"
    left = _name(constraint.get("leftOperand"), where="leftOperand")
    operator = _name(constraint.get("operator"), where="operator")
    return f"{left} {operator} {json.dumps(_right(constraint.get('rightOperand')))}"


def obligations(policy: dict[str, Any]) -> list[str]:
    """The duties the policy lays on the consumer (``attribute``), which the engine records with the data."""
    return [_name(rule.get("action"), where="obligation") for rule in policy.get("obligation", [])
            if isinstance(rule, dict)]


def canonical(value: Any) -> str:
    """The one JSON text of a policy or message the engine keeps and sends (no spaces, keys as given)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


RULE_KEYS = ("profile", "permission", "prohibition", "obligation")


def rules_text(policy: dict[str, Any]) -> str:
    """The policy's rules as text: an agreement's are the offer's, byte for byte."""
    return canonical({key: policy[key] for key in RULE_KEYS if key in policy})


def json_of(text: str) -> dict[str, Any]:
    """A kept policy's JSON text as an object."""
    found: dict[str, Any] = json.loads(text)
    return found
