"""Real receivers on loopback for subscription tests: an SMTP server (aiosmtpd) and an HTTP server that checks
webhook signatures as the docs tell a receiver to."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import func, or_, select

from helpers import free_port
from twinengine.config import Settings
from twinengine.daemons.subscriptions import run_once
from twinengine.store.base import utcnow
from twinengine.store.engine import Database
from twinengine.subscriptions import signing
from twinengine.subscriptions.models import Delivery


@dataclass
class Mailbox:
    """What a real SMTP server on loopback received."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)


class _Collect:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        self.box.messages.append(parsed)  # type: ignore[arg-type,unused-ignore]
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    box = Mailbox(free_port())
    controller = Controller(_Collect(box), hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: records every POST; answers ``statuses`` in turn, then 200."""

    url: str
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    port = free_port()
    receiver = Receiver(f"http://127.0.0.1:{port}/hook")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.received.append(Received(body, {k: v for k, v in self.headers.items()}))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def receiver_accepts(secret: str, received: Received, *, now: float | None = None) -> bool:
    """The documented check a receiver makes (docs/subscriptions.md)."""
    return signing.verify(secret, received.body, received.headers.get(signing.HEADER, ""), now=now)


def settle(db: Database, settings: Settings, *, timeout: float = 60.0) -> None:
    """Run the subscription loop's pass until nothing is due or being sent (the engine's own loop may be
    sending at the same time: a claim keeps each message to one sender)."""
    deadline = time.monotonic() + timeout
    while True:
        run_once(db, settings)
        with db.session(readonly=True) as session:
            busy = session.scalar(select(func.count()).select_from(Delivery).where(or_(
                Delivery.status == "sending",
                (Delivery.status == "pending") & (Delivery.next_attempt_at <= utcnow()))))
        if not busy:
            return
        assert time.monotonic() < deadline, f"{busy} deliveries still due or being sent"
        time.sleep(0.05)
