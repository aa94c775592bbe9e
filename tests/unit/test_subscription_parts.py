"""The parts of subscriptions that need no engine: conditions parsed and judged, webhook signatures, the
refusal of header injection, and the webhook addresses refused before anything is sent."""

from __future__ import annotations

import pytest

from twinengine.catalog.manifest import Manifest
from twinengine.errors import ValidationFailed
from twinengine.subscriptions import channels, messages, signing
from twinengine.subscriptions.conditions import Condition, parse, watchable

MANIFEST = Manifest.model_validate({
    "manifest_version": 1, "name": "flood", "version": "1.0.0", "title": "Flood", "description": "A reach.",
    "domain": "testing", "authors": [{"name": "Tester"}], "license": "MIT",
    "state": {"forecast_alert": {"type": "boolean"}, "p": {"type": "number"}, "n": {"type": "integer"},
              "head": {"type": "number", "key": "well"}, "label": {"type": "string"},
              "limit": {"type": "number", "desired_only": True}}})


@pytest.mark.parametrize(("text", "canonical", "kind"), [
    ("forecast_alert changes", "forecast_alert changes", "changes"),
    ("  label   changes ", "label changes", "changes"),
    ("p > 0.5", "p > 0.5", "above"),
    ("p>=.5", "p >= 0.5", "above"),
    ("n < 3", "n < 3", "below"),
    ("head[ow3] <= -1e-2", "head[ow3] <= -0.01", "below"),
    ("p stale 30m", "p stale 30m", "stale"),
    ("p stale for PT2H", "p stale 2h", "stale"),
    ("head[ow3] stale 90", "head[ow3] stale 90s", "stale"),
])
def test_conditions_parse_to_one_canonical_form(text: str, canonical: str, kind: str) -> None:
    condition = parse(text, MANIFEST)
    assert (condition.text, condition.kind) == (canonical, kind)
    assert parse(condition.text, MANIFEST) == condition  # the canonical form parses to the same condition


@pytest.mark.parametrize(("text", "says"), [
    ("flood_alert changes", "not a state property"),
    ("head changes", "keyed by well"),
    ("forecast_alert > 0.5", "threshold needs a number"),
    ("label < 2", "threshold needs a number"),
    ("p rises", "is not a condition"),
    ("p > nan", "is not a condition"),
    ("p > 1e999", "not a finite number"),
    ("p stale soon", "not a duration"),
    ("p stale 0s", "from 1 second to a year"),
    ("", "1 to 200 characters"),
    ("limit changes", "desired state only"),  # never reported: no condition on it could fire
    ("limit > 2", "could never fire"),
    ("limit stale 1h", "desired state only"),
])
def test_bad_conditions_are_refused_naming_when(text: str, says: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse(text, MANIFEST)
    assert caught.value.problems[0].loc == "when" and says in caught.value.problems[0].msg


def test_the_properties_a_condition_can_fire_on_are_the_reported_ones() -> None:
    assert watchable(MANIFEST) == ["forecast_alert", "p", "n", "head", "label"]


def test_a_threshold_holds_on_numbers_only() -> None:
    above = Condition("p", "above", operator=">", threshold=0.5)
    assert above.met(0.7) is True and above.met(0.5) is False
    assert above.met({"value": 0.9, "uncertainty": {"std": 0.1}}) is True  # a value stored with its uncertainty
    assert above.met(True) is None and above.met("0.9") is None and above.met(None) is None


def test_a_signature_is_accepted_fresh_and_refused_replayed_or_altered() -> None:
    secret, body = signing.new_secret(), b'{"event":"changed"}'
    header = signing.signature_header(secret, body, timestamp=1_800_000_000)
    assert header.startswith("t=1800000000,v1=") and len(header.split("v1=")[1]) == 64
    assert signing.verify(secret, body, header, now=1_800_000_010)
    assert not signing.verify(secret, body, header, now=1_800_000_000 + signing.TOLERANCE_S + 1)  # a replay
    assert not signing.verify(secret, body + b" ", header, now=1_800_000_010)
    assert not signing.verify(signing.new_secret(), body, header, now=1_800_000_010)
    newer = header.replace("t=1800000000", "t=1800000500")  # a replay with a new time: the digest no longer fits
    assert not signing.verify(secret, body, newer, now=1_800_000_500)
    assert not signing.verify(secret, body, "garbage", now=1_800_000_010)


@pytest.mark.parametrize("address", ["a@b.org\r\nBcc: x@y.org", "a@b.org\nSubject: hi", "a@b.org, c@d.org",
                                     "Eve <a@b.org>", "not an address", "a@b.org\x00"])
def test_an_address_that_could_make_headers_is_refused(address: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        channels.check_email(address)
    assert caught.value.problems[0].loc == "email"


def test_header_text_refuses_line_breaks() -> None:
    assert messages.header_text("plain subject", field="subject") == "plain subject"
    with pytest.raises(messages.HeaderRefused, match="subject"):
        messages.header_text("x\r\nBcc: y", field="subject")
    subject = messages.subject({"event": "changed", "property": "label", "previous": "a", "value": "b\r\nBcc: y",
                                "twin": {"name": "t"}})
    assert "\n" not in subject and "\r" not in subject  # a value is folded into the one line
    assert messages.header_text(messages.subject({"event": "changed", "property": "p", "previous": "\x01",
                                                  "value": "\x1b[31m", "twin": {"name": "t"}}), field="subject")


@pytest.mark.parametrize(("url", "hosts", "says"), [
    ("file:///etc/passwd", [], "only http and https"),
    ("gopher://example.org/", [], "only http and https"),
    ("http://127.0.0.1:8000/hook", [], "loopback, private or reserved"),
    ("http://[::1]/hook", [], "loopback, private or reserved"),
    ("http://localhost:8000/hook", [], "loopback, private or reserved"),
    ("http://169.254.169.254/latest/meta-data/", [], "link-local"),
    ("http://0.0.0.0:8000/hook", [], "unspecified"),
    ("http://[::127.0.0.1]:8000/hook", [], "loopback, private or reserved"),  # IPv4-compatible
    ("http://[64:ff9b::7f00:1]:8000/hook", [], "loopback, private or reserved"),  # NAT64
    ("http://[2002:7f00:1::]:8000/hook", [], "loopback, private or reserved"),  # 6to4
    ("http://2130706433:8000/hook", [], "short form"),
    ("http://0x7f.1:8000/hook", [], "short form"),
    ("http://127.0.0.1:8000/hook", ["93.184.216.34", "*.example.org"], "not in subscription_webhook_hosts"),
    ("http://10.1.2.3/hook", ["127.0.0.1"], "not in subscription_webhook_hosts"),
    ("http://user@93.184.216.34/", [], "names a user"),
    ("http://[::1/hook", [], "cannot be parsed"),
    ("http://93.184.216.34:99999/", [], "port"),
    ("http://93.184.216.34\\@127.0.0.1/", [], "backslash"),
])
def test_webhook_addresses_are_refused_before_anything_is_sent(url: str, hosts: list[str], says: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        channels.check_webhook(url, hosts)
    assert caught.value.problems[0].loc == "webhook" and says in caught.value.problems[0].msg


def test_a_public_or_listed_webhook_address_is_accepted() -> None:
    assert channels.check_webhook("https://93.184.216.34/hook", []) == "https://93.184.216.34/hook"
    assert channels.check_webhook("http://127.0.0.1:9/hook", ["127.0.0.1"]) == "http://127.0.0.1:9/hook"
