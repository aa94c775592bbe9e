"""Sigproc filterbank files written by the twin read back exactly (header and every sample, 8- and 32-bit),
a file that is not one is refused by name, and the simulator's dispersion follows the cold-plasma law."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pulsar_rfi import filterbank
from pulsar_rfi.simulator import DISPERSION, Pulsar, band, delays, quantised, simulate


def test_a_simulated_observation_round_trips_through_a_filterbank_file(tmp_path: Path) -> None:
    obs = simulate(7, nsamp=2048)
    path = tmp_path / "obs.fil"
    filterbank.write(path, obs.header, obs.data)
    assert path.read_bytes()[4:16] == b"HEADER_START"
    header, data = filterbank.read(path)
    assert data.dtype == np.float32 and data.shape == (64, 2048)
    assert np.array_equal(data, obs.data)  # every sample, bit for bit
    assert (header.nchans, header.fch1, header.foff, header.tsamp, header.nbits, header.source_name) == (
        64, 1500.0, -300.0 / 64, 0.001, 32, "J1234+5678")
    assert np.allclose(header.frequencies()[[0, -1]], [1500.0, 1204.6875])
    eight = replace_bits(obs.header, 8)
    filterbank.write(path, eight, quantised(obs))
    header8, data8 = filterbank.read(path)
    assert header8.nbits == 8 and data8.dtype == np.uint8 and np.array_equal(data8, quantised(obs))
    assert path.stat().st_size - data8.size == len(_header_bytes(path))


def replace_bits(header: filterbank.Header, nbits: int) -> filterbank.Header:
    from dataclasses import replace

    return replace(header, nbits=nbits)


def _header_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return raw[:raw.index(b"HEADER_END") + len(b"HEADER_END")]


def test_what_is_not_a_filterbank_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.fil"
    junk.write_bytes(b"\x05\x00\x00\x00hello" + bytes(64))
    with pytest.raises(ValueError, match="no HEADER_START"):
        filterbank.read(junk)
    with pytest.raises(ValueError, match="8-bit data must be integers"):
        filterbank.write(junk, replace_bits(band(), 8), np.full((64, 4), 300.0))
    with pytest.raises(ValueError, match="data has 3 channels"):
        filterbank.write(junk, band(), np.zeros((3, 4)))


def test_the_dispersion_delay_follows_the_cold_plasma_law() -> None:
    lag = delays(40.0, band())
    # 4.148808e3 s MHz^2 pc^-1 cm^3 x 40 x (1204.6875^-2 - 1500^-2) MHz^-2 = 40.59 ms
    assert DISPERSION == 4.148808e3 and lag[0] == 0 and lag[-1] == 41
    assert np.all(np.diff(lag) >= 0)
    obs = simulate(3, nsamp=4096, pulsar=Pulsar(dm=40.0, amplitude=1.0, jitter=0.0))
    first = int(obs.arrivals[0])
    for channel in (0, 31, 63):  # the pulse lies where the law puts it, in every channel
        on = np.flatnonzero(obs.pulse[channel, first:first + 100]) + first
        assert on[0] == first + lag[channel] and len(on) == obs.pulsar.width
