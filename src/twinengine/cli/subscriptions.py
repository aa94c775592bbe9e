"""``twin subscribe TWIN --when ... --email/--webhook`` and ``twin subscriptions list|show|delete|test``."""

from __future__ import annotations

import time

import typer

from twinengine.cli._common import console, err_console, state_of, table
from twinengine.errors import ValidationFailed
from twinengine.subscriptions.schemas import DeliveryRead, SubscriptionRead

__all__ = ["app", "subscribe"]

app = typer.Typer(no_args_is_help=True, help="Your subscriptions to twins' conditions: list, show, delete, test.")

_WHEN_HELP = ("'<property> changes', '<property> > <number>' (>=, <, <=) or '<property> stale <duration>', e.g. "
              "\"forecast_alert changes\".")
TEST_WAIT_S = 60.0  # how long `test` follows its message before it says it is still on its way


def subscribe(
    ctx: typer.Context,
    twin: str = typer.Argument(..., help="Twin name or id."),
    when: str = typer.Option(..., "--when", help=_WHEN_HELP),
    email: str | None = typer.Option(None, "--email", help="Tell this address by e-mail."),
    webhook: str | None = typer.Option(None, "--webhook", help="POST signed JSON to this http(s) URL."),
) -> None:
    """Be told when a twin's condition changes, by e-mail or a signed webhook."""
    if (email is None) == (webhook is None):
        raise ValidationFailed.one("--email", "give exactly one of --email and --webhook")
    out = state_of(ctx)
    with out.client() as client:
        created = client.subscriptions.subscribe(twin, when, email=email, webhook=webhook)

    def show() -> None:
        console.print(f"subscribed {created.id}: {created.twin_name} '{created.when}' → {created.channel} "
                      f"{created.target}", highlight=False, soft_wrap=True)
        if created.secret:
            console.print(f"signing secret (shown once; keep it to verify Twin-Signature): {created.secret}",
                          highlight=False, soft_wrap=True)

    out.emit(created, show)


def _deliveries(sub: SubscriptionRead) -> None:
    rows = [(d.id, d.event, d.status, d.attempts, d.created_at, d.sent_at, d.summary, d.last_error)
            for d in sub.deliveries]
    console.print(table("Latest deliveries (UTC)", ["id", "event", "status", "tries", "queued", "sent", "what",
                                                    "last error"], rows))


@app.command("list")
def list_(ctx: typer.Context, twin: str | None = typer.Option(None, "--twin", help="Only those of this twin.")
          ) -> None:
    """Your subscriptions, with the last delivery of each."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.subscriptions.list(twin=twin)

    def show() -> None:
        rows = [(s.id, s.twin_name, s.when, s.channel, s.target,
                 f"{s.deliveries[0].status} {s.deliveries[0].event}" if s.deliveries else None) for s in page.items]
        console.print(table(f"{page.total} subscriptions", ["id", "twin", "when", "channel", "to", "last"], rows))

    out.emit(page, show)


@app.command()
def show(ctx: typer.Context, id: str = typer.Argument(..., help="Subscription id (sub-...).")) -> None:
    """One subscription with its latest deliveries: status, tries, errors."""
    out = state_of(ctx)
    with out.client() as client:
        sub = client.subscriptions.get(id)

    def render() -> None:
        console.print(f"{sub.id}: {sub.twin_name} '{sub.when}' → {sub.channel} {sub.target} (since "
                      f"{sub.created_at:%Y-%m-%d %H:%M:%S} UTC)", highlight=False, soft_wrap=True)
        _deliveries(sub)

    out.emit(sub, render)


@app.command()
def delete(ctx: typer.Context, id: str = typer.Argument(..., help="Subscription id (sub-...).")) -> None:
    """End a subscription; messages not sent yet are dropped."""
    out = state_of(ctx)
    with out.client() as client:
        client.subscriptions.delete(id)
    out.emit({"deleted": id}, lambda: console.print(f"deleted {id}", highlight=False))


@app.command("test")
def send_test(ctx: typer.Context, id: str = typer.Argument(..., help="Subscription id (sub-...)."),
         wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow the message until it is sent or fails.")
         ) -> None:
    """Send a test message through the subscription's channel and say how it went."""
    out = state_of(ctx)
    with out.client() as client:
        queued = client.subscriptions.test(id)
        final: DeliveryRead = queued
        if wait:
            deadline = time.monotonic() + TEST_WAIT_S
            with err_console.status(f"sending test message {queued.id}…"):
                while final.status in ("pending", "sending") and time.monotonic() < deadline:
                    time.sleep(0.5)
                    found = [d for d in client.subscriptions.get(id).deliveries if d.id == queued.id]
                    final = found[0] if found else final

    def render() -> None:
        error = f": {final.last_error}" if final.last_error else ""
        console.print(f"test message {final.id}: {final.status} after {final.attempts} tries{error}",
                      highlight=False, soft_wrap=True)

    out.emit(final, render)
    if final.status in ("failed", "withheld"):
        raise typer.Exit(1)
