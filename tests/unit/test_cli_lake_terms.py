"""``twin lake show`` of a copy held under a data-space agreement tells its holder the uses counted here and
whether one more is permitted (``lake.terms``; the counting itself: tests/integration/test_lake_copy_terms.py)."""

from __future__ import annotations

from datetime import UTC, datetime


def test_lake_show_tells_the_holder_the_uses_and_why_no_more() -> None:
    """``twin lake show`` of a copy held under terms says its uses here and whether one more is permitted."""
    from twinengine.cli import lake as cli_lake
    from twinengine.cli._common import console
    from twinengine.lake.schemas import CopyTerms, DidRead, DidType

    copy = DidRead(did="remote:rain/rain.nc", scope="remote", name="rain/rain.nc", type=DidType.FILE, bytes=1,
                   adler32="1", sha256="ab", media_type=None, meta={}, bbox=None, geometry=None, start_time=None,
                   end_time=None, created_by="uma", created_at=datetime.now(UTC),
                   terms=CopyTerms(agreement="urn:uuid:a", provider="did:web:p.example", uses=3, usable=False,
                                   refusal='count lteq "3"'))
    with console.capture() as captured:
        cli_lake._show_did(copy)
    text = " ".join(captured.get().split())
    assert ("a copy of did:web:p.example's data under agreement urn:uuid:a: used 3 times on this engine; refused "
            'now: count lteq "3"') in text, text

    once = copy.model_copy(update={"terms": CopyTerms(agreement="urn:uuid:a", uses=1, usable=True)})
    with console.capture() as captured:
        cli_lake._show_did(once)
    assert "used once on this engine; one more use is permitted now" in " ".join(captured.get().split())
