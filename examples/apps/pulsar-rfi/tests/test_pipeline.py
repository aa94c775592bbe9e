"""With the truth mask as its flags, the twin's pipeline is exact where it can be: the folded profile's S/N
matches the analytic S/N of the same fold of the noiseless pulse, the single-pulse search finds the loud
pulses where they arrive and nothing in chunks without one. The function on arrival publishes every chunk
and keeps count in state, and refuses to flag with a flagger that was never trained."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pulsar_rfi.functions import judge, record_of
from pulsar_rfi.pipeline import CHUNK
from pulsar_rfi.science import blocks, chunk_truth, measure, pulse_scores
from pulsar_rfi.simulator import simulate


def test_with_the_true_mask_the_fold_meets_its_analytic_snr() -> None:
    ratios = []
    for seed in (2001, 2002):
        obs = simulate(seed, nsamp=16384)
        measured = measure(obs, truth=True)
        ratios.append(measured.snr / measured.analytic_snr)
        assert measured.f1 == 1.0 and measured.on_pulse_flagged == 0.0
        scores = pulse_scores(measured, chunk_truth(obs))
        assert scores["empty"] >= 30 and scores["false"] == 0, scores
        assert scores["found"] >= 0.9 * scores["pulses"], scores
        loud = [r for r in measured.results if r.snr > 12]  # a loud pulse is found where it arrives
        assert loud and all(np.min(np.abs(obs.arrivals - r.peak)) <= 2 for r in loud)
    assert 0.95 <= np.mean(ratios) <= 1.05, ratios


class _Model:
    """A trained flagger as the engine serves it (``net`` and ``predict``): here one that flags nothing."""

    net = object()

    @staticmethod
    def predict(features: np.ndarray) -> np.ndarray:
        return np.zeros(len(features))


class _Ctx:
    def __init__(self, model: Any) -> None:
        self.parameters: dict[str, Any] = {"dm": 40, "period_s": 0.7137}
        self.model = model
        self.state = None
        self.published: list[tuple[str, list[dict[str, Any]]]] = []
        self.updates: list[dict[str, Any]] = []

    def publish(self, stream: str, records: list[dict[str, Any]]) -> None:
        self.published.append((stream, records))

    def update_state(self, **values: Any) -> None:
        self.updates.append(values)


def test_the_function_publishes_each_chunk_and_counts_in_state() -> None:
    obs = simulate(2003, nsamp=4096)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    records = [record_of(t0 + timedelta(seconds=start * obs.header.tsamp), start, block)
               for start, block in blocks(obs)]
    ctx = _Ctx(_Model())
    judge(ctx, records)
    ((stream, chunks),) = ctx.published
    assert stream == "chunks" and [c["start"] for c in chunks] == [i * CHUNK for i in range(len(records))]
    assert {c["label"] for c in chunks} <= {"pulse", "noise", "narrowband", "broadband", "mixed"}
    assert all(len(c["profile_sum"]) == 256 and c["flagged"] == 0.0 for c in chunks)
    state = ctx.updates[-1]
    assert state["chunks"] == len(records) and state["flagged_fraction"] == 0.0
    assert state["pulse_chunks"] == sum(c["pulse"] for c in chunks) >= 3
    assert all(c["label"] in ("pulse", "mixed") for c in chunks if c["pulse"])
    with pytest.raises(RuntimeError, match="no trained version yet"):
        judge(_Ctx(model=None), records)
    with pytest.raises(ValueError, match="a chunk is 64 x 320 samples"):
        record_of(t0, 0, np.zeros((64, 256)))
