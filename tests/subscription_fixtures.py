"""Real receivers on loopback for subscription tests: an SMTP server (aiosmtpd), an HTTP server that checks
webhook signatures as the docs tell a receiver to, and a tarpit: receivers that take a connection and never
answer."""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import func, select

from helpers import free_port
from twinengine.config import Settings
from twinengine.daemons.subscriptions import run_once
from twinengine.store.base import utcnow
from twinengine.store.engine import Database
from twinengine.subscriptions import signing
from twinengine.subscriptions.delivery import due
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
def webhook_receiver(host: str = "127.0.0.1") -> Iterator[Receiver]:
    port = free_port()
    receiver = Receiver(f"http://{host}:{port}/hook")

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

    server = ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Tarpit:
    """Webhook receivers that accept a connection, read nothing and answer nothing until the tarpit closes:
    one listener on each loopback address of ``hosts``, all on ``port``."""

    hosts: list[str]
    port: int
    accepted: int = 0  # connections taken so far

    def url(self, n: int) -> str:
        """The ``n``-th receiver: its own path, on the hosts in turn."""
        return f"http://{self.hosts[n % len(self.hosts)]}:{self.port}/hook/{n}"


@contextmanager
def tarpit(hosts: list[str]) -> Iterator[Tarpit]:
    pit = Tarpit(hosts, free_port())
    selector, listeners, held = selectors.DefaultSelector(), list[socket.socket](), list[socket.socket]()
    for host in hosts:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, pit.port))
        listener.listen(256)
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ, len(listeners))
        listeners.append(listener)
    stop = threading.Event()

    def hold() -> None:
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.1):
                try:
                    conn, _ = listeners[key.data].accept()
                except BlockingIOError:
                    continue
                held.append(conn)
                pit.accepted += 1

    thread = threading.Thread(target=hold, name="tarpit", daemon=True)
    thread.start()
    try:
        yield pit
    finally:
        stop.set()
        thread.join(timeout=10)
        selector.close()
        for sock in [*held, *listeners]:
            sock.close()


def receiver_accepts(secret: str, received: Received, *, now: float | None = None) -> bool:
    """The documented check a receiver makes (docs/subscriptions.md)."""
    return signing.verify(secret, received.body, received.headers.get(signing.HEADER, ""), now=now)


def settle(db: Database, settings: Settings, *, timeout: float = 60.0) -> None:
    """Run the subscription loop's pass until nothing is due or being sent (the engine's own loop may be
    sending at the same time: a claim keeps each message to one sender). Due: the first undone message of a
    subscription whose time has come; those behind it wait for it (``delivery.due``)."""
    deadline = time.monotonic() + timeout
    while True:
        run_once(db, settings)
        with db.session(readonly=True) as session:
            sending = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sending"))
            busy = (sending or 0) + len(due(session, settings, now=utcnow()))
        if not busy:
            return
        assert time.monotonic() < deadline, f"{busy} deliveries still due or being sent"
        time.sleep(0.05)
