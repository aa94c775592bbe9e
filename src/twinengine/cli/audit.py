"""``twin audit``: read the audit log (admins)."""

from __future__ import annotations

import typer

from twinengine.cli._common import console, state_of, table
from twinengine.errors import ValidationFailed
from twinengine.timeutil import parse_instant


def audit(
    ctx: typer.Context,
    actor: str | None = typer.Option(None, "--actor"),
    action: str | None = typer.Option(None, "--action", help="Operation id prefix, e.g. twins- or apps-publish."),
    outcome: str | None = typer.Option(None, "--outcome", help="success, denied, rejected or failed."),
    since: str | None = typer.Option(None, "--since", help="ISO 8601 time."),
    until: str | None = typer.Option(None, "--until", help="ISO 8601 time."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
) -> None:
    """Who wrote what, when, and how it ended (newest first)."""
    out = state_of(ctx)
    try:
        start = parse_instant(since) if since else None
        end = parse_instant(until) if until else None
    except ValueError as exc:
        raise ValidationFailed.one("--since/--until", str(exc)) from None
    with out.client() as client:
        page = client.audit(actor=actor, action=action, outcome=outcome, since=start, until=end, limit=limit)
    out.emit(page, lambda: console.print(table(
        f"audit log ({len(page.items)} of {page.total})",
        ["at (UTC)", "actor", "action", "target", "outcome"],
        [(e.at, f"{e.actor} ({e.role})" if e.role else e.actor, e.action, e.target,
          f"{e.outcome} {e.status or ''}".strip()) for e in page.items])))
