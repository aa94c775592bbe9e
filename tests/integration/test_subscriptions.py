"""Subscriptions end to end on a real store: conditions judged on state writes, e-mail received by a real SMTP
server, webhooks received and verified by a real HTTP server, retries, withheld messages, hostile input."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from helpers import MINIMAL_STATE, Engine, make_app
from subscription_fixtures import Mailbox, receiver_accepts, settle, smtp_server, webhook_receiver
from twinengine.config import Settings
from twinengine.store.base import utcnow
from twinengine.store.engine import Database
from twinengine.subscriptions import signing
from twinengine.subscriptions.evaluate import evaluate
from twinengine.subscriptions.models import Delivery, DeliveryAttempt, Subscription

STATE = {**MINIMAL_STATE, "alert": {"type": "boolean"},
         "probability": {"type": "number", "minimum": 0, "maximum": 1},
         "alert_threshold": {"type": "number", "desired_only": True}}
CAP = 4
EVALUATORS = 4


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, mailbox: Mailbox) -> Settings:
    """The test store, a real SMTP server on loopback, webhooks allowed to reach loopback (as an admin lists a
    private address), retries an hour apart (a test moves a retry's time itself)."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, warm_routes=False,
                    smtp_host="127.0.0.1", smtp_port=mailbox.port, smtp_security="none",
                    smtp_from="twins@example.org", portal_url="https://twins.example.org",
                    subscription_webhook_hosts=["127.0.0.1"], subscriptions_max_per_user=CAP,
                    subscription_attempts=3, subscription_backoff=timedelta(hours=1))


def _twin(engine: Engine, tmp_path: Path, name: str = "gauge-1") -> Any:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="alerting", manifest={"state": STATE}))
    uma = engine.as_role("uma", "user")
    uma.create_twin("alerting@1.0.0", name, {"station": "RR-01"})
    return uma


def _subscribe(engine: Engine, who: str, **body: Any) -> Any:
    return engine.http.post("/api/v1/subscriptions", json=body, headers=engine.headers(engine.token(who, "user")))


def _settle(engine: Engine) -> None:
    settle(engine.runtime.db, engine.runtime.settings)


def test_an_email_says_each_change_once_not_each_write(engine: Engine, tmp_path: Path, mailbox: Mailbox) -> None:
    uma = _twin(engine, tmp_path)
    uma.report("gauge-1", alert=False)
    made = _subscribe(engine, "uma", twin="gauge-1", when="alert   changes", email="uma@example.org")
    assert made.status_code == 201, made.text
    sub = made.json()
    assert sub["when"] == "alert changes" and sub["channel"] == "email" and sub["secret"] is None
    for value in (False, True, True, True, False, False, True):  # flapping: three changes in seven writes
        uma.report("gauge-1", alert=value)
    _settle(engine)
    _settle(engine)  # a second pass finds nothing new
    assert [m["Subject"] for m in mailbox.messages] == [
        "[twinengine] gauge-1: alert changed from false to true",
        "[twinengine] gauge-1: alert changed from true to false",
        "[twinengine] gauge-1: alert changed from false to true"]
    first = mailbox.messages[0]
    assert first["To"] == "uma@example.org" and first["From"] == "twins@example.org"
    text = first.get_content()
    assert "Test app alerting (gauge-1)" in text and "Condition: alert changes" in text and "Value: true" in text
    assert "https://twins.example.org/ui/twins/gauge-1" in text

    shown = engine.http.get(f"/api/v1/subscriptions/{sub['id']}", headers=engine.headers(engine.token("uma", "user")))
    deliveries = shown.json()["deliveries"]
    assert [(d["event"], d["status"], d["attempts"]) for d in deliveries] == [("changed", "sent", 1)] * 3
    assert deliveries[0]["tries"][0]["status"] == "ok" and deliveries[0]["summary"].startswith("alert changed")


def test_a_threshold_is_told_when_it_comes_to_hold(engine: Engine, tmp_path: Path, mailbox: Mailbox) -> None:
    uma = _twin(engine, tmp_path)
    made = _subscribe(engine, "uma", twin="gauge-1", when="probability>0.5", email="uma@example.org")
    assert made.status_code == 201, made.text
    assert made.json()["when"] == "probability > 0.5"
    for value in (0.2, 0.7, 0.8, 0.3, 0.9, 0.95):  # crosses upward twice
        uma.report("gauge-1", probability=value)
    _settle(engine)
    assert [m["Subject"] for m in mailbox.messages] == [
        "[twinengine] gauge-1: probability > 0.5 now holds: probability is 0.7",
        "[twinengine] gauge-1: probability > 0.5 now holds: probability is 0.9"]


def test_a_webhook_is_signed_and_a_replay_would_be_refused(engine: Engine, tmp_path: Path) -> None:
    uma = _twin(engine, tmp_path)
    uma.report("gauge-1", alert=False)
    with webhook_receiver() as receiver:
        made = _subscribe(engine, "uma", twin="gauge-1", when="alert changes", webhook=receiver.url)
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        assert secret.startswith("whsec_")
        again = engine.http.get(f"/api/v1/subscriptions/{made.json()['id']}",
                                headers=engine.headers(engine.token("uma", "user")))
        assert "secret" not in again.json() and secret not in again.text  # shown once
        uma.report("gauge-1", alert=True)
        _settle(engine)
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert receiver_accepts(secret, got)
    assert got.json["event"] == "changed" and got.json["value"] is True and got.json["previous"] is False
    assert got.json["twin"]["name"] == "gauge-1" and got.json["summary"] == "alert changed from false to true"
    assert got.headers["Twin-Delivery"]
    stamp = int(got.headers[signing.HEADER].split(",")[0].removeprefix("t="))
    assert not receiver_accepts(secret, got, now=stamp + signing.TOLERANCE_S + 1)  # replayed later: refused
    assert not receiver_accepts("whsec_other", got)
    tampered = type(got)(got.body.replace(b"true", b"false", 1), got.headers)
    assert not receiver_accepts(secret, tampered)


def test_a_failed_delivery_is_retried_with_doubling_waits_and_each_try_is_recorded(
        engine: Engine, tmp_path: Path) -> None:
    uma = _twin(engine, tmp_path)
    uma.report("gauge-1", alert=False)
    db = engine.runtime.db
    with webhook_receiver() as receiver:
        receiver.statuses = [500, 503]
        made = _subscribe(engine, "uma", twin="gauge-1", when="alert changes", webhook=receiver.url).json()
        uma.report("gauge-1", alert=True)
        waits = []
        for _ in range(3):
            _settle(engine)
            with db.session() as session:
                row = session.scalars(select(Delivery).where(Delivery.subscription_id == made["id"])).one()
                waits.append((row.status, row.attempts, row.next_attempt_at - utcnow()))
                session.execute(update(Delivery).where(Delivery.id == row.id)  # the retry's time has come
                                .values(next_attempt_at=utcnow()))
    (first, second, third) = waits
    assert first[:2] == ("pending", 1) and timedelta(minutes=59) < first[2] <= timedelta(hours=1)
    assert second[:2] == ("pending", 2) and timedelta(minutes=119) < second[2] <= timedelta(hours=2)
    assert third[:2] == ("sent", 3)
    assert len(receiver.received) == 3 and len({r.headers["Twin-Delivery"] for r in receiver.received}) == 1
    shown = engine.http.get(f"/api/v1/subscriptions/{made['id']}", headers=engine.headers(engine.token("uma", "user")))
    tries = shown.json()["deliveries"][0]["tries"]
    assert [t["status"] for t in tries] == ["error", "error", "ok"]
    assert "HTTP 500" in tries[0]["error"] and "HTTP 503" in tries[1]["error"]


def test_a_subscriptions_messages_keep_their_order_through_retries(engine: Engine, tmp_path: Path) -> None:
    """A later message never overtakes an earlier one of the same subscription that waits for its retry."""
    uma = _twin(engine, tmp_path)
    uma.report("gauge-1", alert=False)
    db = engine.runtime.db
    with webhook_receiver() as receiver:
        receiver.statuses = [503]  # the first try of the first message fails
        made = _subscribe(engine, "uma", twin="gauge-1", when="alert changes", webhook=receiver.url).json()
        for value in (True, False, True):  # three changes: three messages, in this order
            uma.report("gauge-1", alert=value)
        _settle(engine)
        with db.session(readonly=True) as session:
            rows = list(session.scalars(select(Delivery).where(Delivery.subscription_id == made["id"])
                                        .order_by(Delivery.id)))
        assert [(r.status, r.attempts) for r in rows] == [("pending", 1), ("pending", 0), ("pending", 0)]
        assert [r.json["value"] for r in receiver.received] == [True]  # the two after it wait behind its retry
        with db.session() as session:  # the retry's time has come
            session.execute(update(Delivery).where(Delivery.id == rows[0].id).values(next_attempt_at=utcnow()))
        _settle(engine)
    assert [r.json["value"] for r in receiver.received] == [True, True, False, True]
    sent = [int(r.headers["Twin-Delivery"]) for r in receiver.received]
    assert sent == [rows[0].id, rows[0].id, rows[1].id, rows[2].id]


def test_tries_run_out_and_the_delivery_fails(engine: Engine, tmp_path: Path) -> None:
    uma = _twin(engine, tmp_path)
    uma.report("gauge-1", alert=False)
    with webhook_receiver() as receiver:
        receiver.statuses = [500] * 5
        made = _subscribe(engine, "uma", twin="gauge-1", when="alert changes", webhook=receiver.url).json()
        uma.report("gauge-1", alert=True)
        for _ in range(4):
            _settle(engine)
            with engine.runtime.db.session() as session:
                session.execute(update(Delivery).where(Delivery.subscription_id == made["id"],
                                                       Delivery.status == "pending").values(next_attempt_at=utcnow()))
    assert len(receiver.received) == 3  # subscription_attempts
    with engine.runtime.db.session(readonly=True) as session:
        row = session.scalars(select(Delivery).where(Delivery.subscription_id == made["id"])).one()
    assert row.status == "failed" and row.attempts == 3 and "HTTP 500" in (row.last_error or "")


def test_a_revoked_grant_stops_deliveries(engine: Engine, tmp_path: Path, mailbox: Mailbox) -> None:
    uma = _twin(engine, tmp_path)
    uma.report("gauge-1", alert=False)
    engine.token("bob", "user")  # bob is known to the engine
    uma.grant("gauge-1", "bob", "read")
    made = _subscribe(engine, "bob", twin="gauge-1", when="alert changes", email="bob@example.org")
    assert made.status_code == 201, made.text
    uma.report("gauge-1", alert=True)
    _settle(engine)
    assert len(mailbox.messages) == 1
    uma.revoke_grant("gauge-1", "bob")
    uma.report("gauge-1", alert=False)
    _settle(engine)
    assert len(mailbox.messages) == 1  # nothing more reached bob
    shown = engine.http.get(f"/api/v1/subscriptions/{made.json()['id']}",
                            headers=engine.headers(engine.token("bob", "user"))).json()
    newest = shown["deliveries"][0]
    assert newest["status"] == "withheld" and "may no longer read twin gauge-1" in newest["last_error"]
    assert newest["tries"][0]["status"] == "withheld"


def test_stale_data_is_told_once_per_silence(engine: Engine, tmp_path: Path, mailbox: Mailbox) -> None:
    uma = _twin(engine, tmp_path)
    uma.report("gauge-1", level=1.0)
    made = _subscribe(engine, "uma", twin="gauge-1", when="level stale for 30m", email="uma@example.org")
    assert made.status_code == 201 and made.json()["when"] == "level stale 30m"
    db, settings = engine.runtime.db, engine.runtime.settings
    later = utcnow() + timedelta(minutes=31)
    with db.session() as session:
        assert evaluate(session, settings, now=later) == 1
    with db.session() as session:
        assert evaluate(session, settings, now=later + timedelta(hours=5)) == 0  # still the same silence
    _settle(engine)
    assert len(mailbox.messages) == 1 and "no level reported for 30m" in mailbox.messages[0]["Subject"]
    uma.report("gauge-1", level=1.1)
    with db.session() as session:
        assert evaluate(session, settings, now=utcnow() + timedelta(minutes=10)) == 0  # fresh
        assert evaluate(session, settings, now=utcnow() + timedelta(minutes=31)) == 1  # a new silence


def test_an_event_is_put_in_the_outbox_once_however_many_evaluate_it(engine: Engine, tmp_path: Path) -> None:
    """Evaluators that see the same change at once, each on a store connection pool of its own (as engine
    processes sharing the store would), or again after a crash before the cursor moved, add one outbox row:
    the unique key on (subscription, event) decides."""
    uma = _twin(engine, tmp_path)
    uma.report("gauge-1", alert=False)
    made = _subscribe(engine, "uma", twin="gauge-1", when="alert changes", email="uma@example.org").json()
    uma.report("gauge-1", alert=True)
    settings = engine.runtime.settings
    with engine.runtime.db.session() as session:
        cursor = session.get_one(Subscription, made["id"])
        before = {"last_revision": cursor.last_revision, "last_value": cursor.last_value,
                  "last_met": cursor.last_met}
    stores = [Database(settings.db_url) for _ in range(EVALUATORS)]
    start = threading.Barrier(EVALUATORS)
    found: list[int] = []

    def evaluator(db: Database) -> None:
        start.wait()
        with db.session() as session:
            found.append(evaluate(session, settings))

    try:
        for _ in range(2):  # at once, then again from the same cursor (an evaluator that died before it moved)
            with engine.runtime.db.session() as session:
                session.execute(update(Subscription).where(Subscription.id == made["id"]).values(**before))
            threads = [threading.Thread(target=evaluator, args=(db,)) for db in stores]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
    finally:
        for db in stores:
            db.dispose()
    assert len(found) == 2 * EVALUATORS
    with engine.runtime.db.session(readonly=True) as session:
        keys = session.scalars(select(Delivery.event_key).where(Delivery.subscription_id == made["id"])).all()
    assert keys == ["r2"]


def test_hostile_subscriptions_are_refused_naming_the_field(engine: Engine, tmp_path: Path) -> None:
    _twin(engine, tmp_path)

    def refused(who: str, status: int, field: str, **body: Any) -> str:
        answer = _subscribe(engine, who, **{"twin": "gauge-1", "when": "alert changes",
                                            "email": "uma@example.org", **body})
        assert answer.status_code == status, answer.text
        assert field in answer.text, answer.text
        return answer.text

    refused("mallory", 403, "gauge-1")  # another user's twin
    refused("uma", 404, "nowhere", twin="nowhere")
    refused("uma", 422, "when", when="flood_level changes")  # no such property in the app
    refused("uma", 422, "when", when="alert > 0.5")  # a threshold on a boolean
    refused("uma", 422, "when", when="alert rises")
    refused("uma", 422, "when", when="level stale soon")
    said = refused("uma", 422, "when", when="alert_threshold > 2")  # desired only: it could never fire
    assert "could never fire" in said and "alert_threshold" in said
    refused("uma", 422, "email", email="uma@example.org\r\nBcc: all@example.org")  # header injection
    refused("uma", 422, "email", email="uma@example.org, eve@example.org")
    refused("uma", 422, "webhook", email=None, webhook="file:///etc/passwd")
    refused("uma", 422, "webhook", email=None, webhook="ftp://127.0.0.1/x")
    refused("uma", 422, "webhook", email=None, webhook="http://169.254.169.254/latest/meta-data/")
    refused("uma", 422, "email", webhook="http://127.0.0.1:9/x")  # both channels
    for _ in range(CAP):
        assert _subscribe(engine, "uma", twin="gauge-1", when="alert changes", email="u@example.org"
                          ).status_code == 201
    text = refused("uma", 409, "subscriptions_max_per_user")
    assert "Traceback" not in text


def test_subscriptions_are_their_owners_alone(engine: Engine, tmp_path: Path, mailbox: Mailbox) -> None:
    uma = _twin(engine, tmp_path)
    engine.token("bob", "user")  # bob is known to the engine
    uma.grant("gauge-1", "bob", "read")
    made = _subscribe(engine, "uma", twin="gauge-1", when="alert changes", email="uma@example.org").json()
    bob = engine.headers(engine.token("bob", "user"))
    assert engine.http.get(f"/api/v1/subscriptions/{made['id']}", headers=bob).status_code == 404
    assert engine.http.delete(f"/api/v1/subscriptions/{made['id']}", headers=bob).status_code == 404
    assert engine.http.post(f"/api/v1/subscriptions/{made['id']}/test", headers=bob).status_code == 404
    assert engine.http.get("/api/v1/subscriptions", headers=bob).json() == {"items": [], "total": 0}

    mine = engine.headers(engine.token("uma", "user"))
    queued = engine.http.post(f"/api/v1/subscriptions/{made['id']}/test", headers=mine)
    assert queued.status_code == 202 and queued.json()["event"] == "test"
    _settle(engine)
    assert mailbox.messages[-1]["Subject"] == "[twinengine] gauge-1: test message for 'alert changes'"
    page = engine.http.get("/api/v1/subscriptions", params={"twin": "gauge-1"}, headers=mine).json()
    assert page["total"] == 1 and page["items"][0]["deliveries"][0]["status"] == "sent"
    assert engine.http.delete(f"/api/v1/subscriptions/{made['id']}", headers=mine).status_code == 204
    with engine.runtime.db.session(readonly=True) as session:  # its outbox and tries went with it
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        assert session.scalar(select(func.count()).select_from(DeliveryAttempt)) == 0


def test_deleting_the_twin_ends_its_subscriptions(engine: Engine, tmp_path: Path) -> None:
    uma = _twin(engine, tmp_path)
    made = _subscribe(engine, "uma", twin="gauge-1", when="alert changes", email="uma@example.org").json()
    engine.http.post(f"/api/v1/subscriptions/{made['id']}/test", headers=engine.headers(engine.token("uma", "user")))
    uma.delete_twin("gauge-1")
    mine = engine.http.get("/api/v1/subscriptions", headers=engine.headers(engine.token("uma", "user"))).json()
    assert mine == {"items": [], "total": 0}
    with engine.runtime.db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_a_member_is_told_through_the_groups_grant_until_it_leaves_the_group(
        engine: Engine, tmp_path: Path, mailbox: Mailbox) -> None:
    uma = _twin(engine, tmp_path)
    uma.report("gauge-1", alert=False)
    admin = engine.headers(engine.admin_token)
    engine.token("bob", "user")
    assert engine.http.post("/api/v1/groups", json={"name": "hydro"}, headers=admin).status_code in (200, 201)
    assert engine.http.put("/api/v1/groups/hydro/members/bob", headers=admin).status_code in (200, 201)
    granted = engine.http.put("/api/v1/twins/gauge-1/group-grants/hydro", json={"permission": "read"},
                              headers=engine.headers(engine.token("uma", "user")))
    assert granted.status_code in (200, 201), granted.text
    made = _subscribe(engine, "bob", twin="gauge-1", when="alert changes", email="bob@example.org")
    assert made.status_code == 201, made.text
    uma.report("gauge-1", alert=True)
    _settle(engine)
    assert [m["To"] for m in mailbox.messages] == ["bob@example.org"]
    assert engine.http.delete("/api/v1/groups/hydro/members/bob", headers=admin).status_code == 204
    uma.report("gauge-1", alert=False)
    _settle(engine)
    assert len(mailbox.messages) == 1
    shown = engine.http.get(f"/api/v1/subscriptions/{made.json()['id']}",
                            headers=engine.headers(engine.token("bob", "user"))).json()
    assert shown["deliveries"][0]["status"] == "withheld"
