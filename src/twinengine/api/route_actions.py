"""What each route enforces, said beside the route: the policy actions (``auth.policy.RULES``) its endpoint
(or the service it calls) requires, or that it needs a valid token and no action, or that it is public.

A decorator on the endpoint declares it; ``api.routing.Router`` copies it into the route's OpenAPI operation
(``x-twin-actions``, and ``x-twin-public`` for a public one), so clients read it in ``/openapi.json`` and the
suite reads it from the built app: a route that declares nothing, or an action the table does not know,
fails the suite, and each declared route is called as several identities and checked against what
``auth.policy.allowed`` says of its actions.

The declaration states; it does not enforce. The endpoints and services still call ``require``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["ACTIONS_KEY", "PUBLIC_KEY", "Declaration", "acts", "declaration_of", "declared", "public",
           "signed_in", "with_declaration"]

ACTIONS_KEY = "x-twin-actions"
PUBLIC_KEY = "x-twin-public"
_ATTR = "__twinengine_route_actions__"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Declaration:
    """A route's declaration: the actions it enforces (empty: a valid token is enough), or public."""

    actions: tuple[str, ...]
    public: bool = False


def _declare(endpoint: F, declaration: Declaration) -> F:
    if getattr(endpoint, _ATTR, None) is not None:
        raise TypeError(f"{endpoint.__name__} declares its actions twice")
    setattr(endpoint, _ATTR, declaration)
    return endpoint


def acts(*actions: str) -> Callable[[F], F]:
    """Declare the policy actions the route enforces (each one its endpoint or service passes to ``require``,
    on the resource the path names, or on none)."""
    if not actions:
        raise TypeError("acts() names at least one action; a route that needs only a token is @signed_in")

    def declare(endpoint: F) -> F:
        return _declare(endpoint, Declaration(tuple(actions)))

    return declare


def signed_in(endpoint: F) -> F:
    """Declare a route that needs a valid token and checks no action (the caller's own identity, session)."""
    return _declare(endpoint, Declaration(()))


def public(endpoint: F) -> F:
    """Declare a route that answers without a token (health, capabilities, sign-in, descriptions)."""
    return _declare(endpoint, Declaration((), public=True))


def with_declaration(endpoint: Callable[..., Any], openapi_extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """The route's ``openapi_extra`` with the endpoint's declaration added (unchanged when it has none)."""
    found = declaration_of(endpoint)
    if found is None:
        return openapi_extra
    extra = {**(openapi_extra or {}), ACTIONS_KEY: list(found.actions)}
    if found.public:
        extra[PUBLIC_KEY] = True
    return extra


def declaration_of(endpoint: Callable[..., Any]) -> Declaration | None:
    """The endpoint's own declaration (a WebSocket route has no OpenAPI operation to carry it)."""
    found: Declaration | None = getattr(endpoint, _ATTR, None)
    return found


def declared(openapi_extra: dict[str, Any] | None) -> Declaration | None:
    """The declaration a route's ``openapi_extra`` carries, or None when it declares nothing."""
    if not openapi_extra or ACTIONS_KEY not in openapi_extra:
        return None
    return Declaration(tuple(openapi_extra[ACTIONS_KEY]), public=bool(openapi_extra.get(PUBLIC_KEY, False)))
