"""With the truth mask as its flags, the twin's pipeline is exact where it can be: the folded profile's S/N
matches the analytic S/N of the same fold of the noiseless pulse, the single-pulse search finds the loud
pulses where they arrive and nothing in chunks without one. The function on arrival publishes every chunk
and keeps count in state, and refuses to flag with a flagger that was never trained. A channel flagged whole
in earlier chunks is held by the channels' memory if its level swings, and a channel whose level holds still
under 1 sigma (a receiver channel's offset) is not flagged whole; a found pulse's own cells are spared."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
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
    assert state["channel_memory"] == [0.0] * 64  # nothing flagged whole, nothing remembered
    assert state["pulse_chunks"] == sum(c["pulse"] for c in chunks) >= 3
    assert all(c["label"] in ("pulse", "mixed") for c in chunks if c["pulse"])
    with pytest.raises(RuntimeError, match="no trained version yet"):
        judge(_Ctx(model=None), records)

    class _Channel5(_Model):  # flags channel 5 whole in every chunk
        @staticmethod
        def predict(features: np.ndarray) -> np.ndarray:
            return (np.arange(len(features)) // (CHUNK + 64) == 5).astype(float)

    first, second = _Ctx(_Channel5()), _Ctx(_Channel5())
    judge(first, records[:4])
    second.state = SimpleNamespace(reported={name: SimpleNamespace(value=value)
                                             for name, value in first.updates[-1].items()})
    judge(second, records[4:8])  # the memory goes on from what the state kept
    assert 0 < first.updates[-1]["channel_memory"][5] < second.updates[-1]["channel_memory"][5]
    assert second.updates[-1]["channel_memory"][5] == pytest.approx(1 - (15 / 16) ** 8, abs=1e-3)
    assert np.allclose(second.updates[-1]["channel_levels"][0], 1 - (15 / 16) ** 8, atol=1e-5)  # levels go on too
    with pytest.raises(ValueError, match="a chunk is 64 x 320 samples"):
        record_of(t0, 0, np.zeros((64, 256)))


def _flags_cells(cells: np.ndarray) -> Any:
    """A flagger that flags exactly ``cells`` (channel x block samples) of every block it is given."""
    return lambda features: cells.ravel().astype(float)


def test_a_channel_flagged_whole_in_earlier_chunks_is_held_and_a_short_carrier_is_not() -> None:
    from pulsar_rfi.pipeline import OVERLAP, process_chunk
    from pulsar_rfi.simulator import NCHAN, band, delays

    header, rng = band(), np.random.default_rng(7)
    lag = delays(40.0, header)
    shape = (NCHAN, CHUNK + OVERLAP)
    seen = np.zeros(shape, dtype=bool)
    seen[5] = True  # a transmitter's channel, seen in the first chunks, then too faint to see
    seen[9] = True  # a carrier sitting in channel 9 for one chunk
    nothing = np.zeros(shape, dtype=bool)
    memory = levels = None
    for chunk, cells in enumerate([seen] + [seen & (np.arange(NCHAN) == 5)[:, None]] * 7 + [nothing] * 3):
        block = rng.normal(size=shape)
        block[5] += 1.5 * (chunk % 2)  # the transmitter's power swings from chunk to chunk
        result = process_chunk(block, chunk * CHUNK, lag=lag, period=0.7137, tsamp=header.tsamp,
                               flagger=_flags_cells(cells), memory=memory, levels=levels)
        memory, levels = result.memory, result.levels
        if chunk >= 8:  # the flagger no longer sees channel 5: the memory holds it
            assert result.flags[5].all() and not result.flags[9].any(), chunk
    assert memory is not None and memory[5] >= 0.25 > memory[9] > 0 and memory[0] == 0
    released = memory
    for chunk in range(40):  # a channel the transmitter left is released
        released = process_chunk(rng.normal(size=shape), chunk * CHUNK, lag=lag, period=0.7137,
                                 tsamp=header.tsamp, flagger=_flags_cells(nothing), memory=released,
                                 levels=levels).memory
    assert released is not None and released[5] < 0.25


def test_a_steady_faint_channel_is_the_receiver_s_and_a_swinging_or_bright_one_stays_flagged() -> None:
    """Channels 5, 9 and 20 are flagged whole by the cell flagger in every chunk: 5 sits 0.5 sigma above its
    neighbours throughout (a receiver channel's own offset), 9 swings between 0 and 1.5 sigma (a transmitter),
    20 sits steady at 3 sigma (a bright steady carrier). Once the levels have been followed long enough, 5 is
    no longer flagged, nor held by the memory its early chunks built; 9 and 20 stay flagged whole."""
    from pulsar_rfi.pipeline import OVERLAP, process_chunk
    from pulsar_rfi.simulator import NCHAN, band, delays

    header, rng = band(), np.random.default_rng(5)
    lag = delays(40.0, header)
    shape = (NCHAN, CHUNK + OVERLAP)
    cells = np.zeros(shape, dtype=bool)
    cells[[5, 9, 20]] = True
    memory = levels = None
    for chunk in range(16):
        held = memory is not None and memory[5] >= 0.25  # what the memory says before this chunk
        block = rng.normal(size=shape)
        block[5] += 0.5
        block[9] += 1.5 * (chunk % 2)
        block[20] += 3.0
        result = process_chunk(block, chunk * CHUNK, lag=lag, period=0.7137, tsamp=header.tsamp,
                               flagger=_flags_cells(cells), memory=memory, levels=levels)
        memory, levels = result.memory, result.levels
        assert result.flags[9].all() and result.flags[20].all(), chunk
        if chunk < 10:  # too few chunks to call a level steady: the flagger's word stands
            assert result.flags[5].all(), chunk
        elif chunk > 11:
            assert held and not result.flags[5].any(), chunk  # the memory built early is not acted on


def test_a_found_pulse_s_own_cells_are_spared_and_interference_across_it_is_not() -> None:
    from pulsar_rfi.pipeline import OVERLAP, process_chunk
    from pulsar_rfi.simulator import NCHAN, band, delays

    header, rng = band(), np.random.default_rng(11)
    lag = delays(40.0, header)
    block = rng.normal(size=(NCHAN, CHUNK + OVERLAP))
    sweep = np.zeros(block.shape, dtype=bool)
    for channel, lagged in enumerate(lag):
        sweep[channel, 100 + lagged:104 + lagged] = True
    block[sweep] += 2.0  # a bright pulse arriving at sample 100, 4 samples wide
    flagged = sweep & (np.arange(NCHAN) % 3 == 0)[:, None]  # the cell flagger took a third of it
    flagged[20, 60:180] = True  # and a carrier in channel 20 runs across the sweep
    result = process_chunk(block, 0, lag=lag, period=0.7137, tsamp=header.tsamp, flagger=_flags_cells(flagged))
    assert result.pulse and abs(result.peak - 100) <= 1
    assert not result.block_mask[sweep & (np.arange(NCHAN) != 20)[:, None]].any()  # the pulse's cells kept
    assert result.block_mask[20, 60:180].all()  # the carrier's flags stay, across the sweep too
    truth = process_chunk(block, 0, lag=lag, period=0.7137, tsamp=header.tsamp, mask=flagged,
                          flagger=_flags_cells(flagged))
    assert truth.block_mask[sweep & (np.arange(NCHAN) % 3 == 0)[:, None]].all()  # a given mask is kept as is
    quiet = process_chunk(rng.normal(size=block.shape), 0, lag=lag, period=0.7137, tsamp=header.tsamp,
                          flagger=_flags_cells(flagged))
    assert not quiet.pulse and quiet.block_mask[flagged].all()  # no pulse found: nothing is spared
