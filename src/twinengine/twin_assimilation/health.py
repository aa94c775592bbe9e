"""Is a twin's filter keeping up? The innovations (observation minus background) of its latest cycles against
the spread the filter expected them to have, in a number and in words: innovations well beyond that spread,
cycle after cycle, mean a filter whose ensemble is too narrow to follow the observations, or a bad sensor."""

from __future__ import annotations

import math

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.twin_assimilation.models import AssimilationCycle
from twinengine.twins.assimilation_skill_schemas import FilterHealth, InnovationPoint
from twinengine.twins.models import Twin

__all__ = ["DIVERGING", "JUDGED", "SHOWN", "filter_health", "health_words"]

DIVERGING = 2.0  # innovations over twice their expected RMS: diverging (a consistent filter is near 1)
TOO_SMALL = 0.5
JUDGED = 20  # latest cycles the ratio is taken over: is the filter keeping up now
SHOWN = 200  # latest cycles whose innovations are returned


def health_words(ratio: float | None, judged: int) -> str:
    if ratio is None:
        return "No cycle has used an observation yet, so the filter cannot be judged."
    said = f"over the last {judged} cycles the innovations (observation minus background) were {ratio:.2f} times"
    if ratio > DIVERGING:
        return (f"Warning: {said} the spread the filter expected: the filter may be diverging (its ensemble too "
                "narrow to follow the observations), or a sensor may be bad.")
    if ratio < TOO_SMALL:
        return (f"The filter is consistent but cautious: {said} the spread it expected (the observation or "
                "model error may be declared larger than it is).")
    return f"The filter keeps up with its observations: {said} the spread it expected."


def filter_health(session: Session, twin: Twin) -> FilterHealth:
    """The latest ``SHOWN`` cycles' innovations and the ratio over the latest ``JUDGED`` that used observations."""
    rows = list(session.execute(
        select(AssimilationCycle.number, AssimilationCycle.valid_time, AssimilationCycle.obs_count,
               AssimilationCycle.innovation_mean, AssimilationCycle.innovation_rms, AssimilationCycle.expected_rms,
               AssimilationCycle.revision)
        .where(AssimilationCycle.twin_id == twin.id).order_by(AssimilationCycle.number.desc()).limit(SHOWN)).all())
    rows.reverse()
    total = session.scalar(select(AssimilationCycle.number).where(AssimilationCycle.twin_id == twin.id)
                           .order_by(AssimilationCycle.number.desc()).limit(1)) or 0
    # the first cycle's innovation measures the first guess, not the filter: left out of the judgement
    used = [r for r in rows if r.innovation_rms is not None and r.expected_rms and r.number > 1][-JUDGED:]
    ratio = math.sqrt(sum(r.innovation_rms**2 for r in used) / sum(r.expected_rms**2 for r in used)) if used else None
    points = [InnovationPoint(number=r.number, valid_time=r.valid_time, obs_count=r.obs_count,
                              innovation=r.innovation_mean, expected=r.expected_rms / math.sqrt(max(r.obs_count, 1)))
              for r in rows if r.innovation_mean is not None and r.expected_rms is not None]
    return FilterHealth(cycles=total, latest_analysis=rows[-1].valid_time if rows else None,
                        latest_revision=rows[-1].revision if rows else None, judged=len(used), ratio=ratio,
                        diverging=ratio is not None and ratio > DIVERGING, threshold=DIVERGING,
                        words=health_words(ratio, len(used)) if rows else "No assimilation cycle yet.",
                        innovations=points)
