"""Seeded frames of an interferometer's noise: coloured Gaussian noise in every channel, sine-Gaussian and blip
glitches born in auxiliary channels, some of which couple into the strain.

Each frame is one second of ``SAMPLE_RATE`` samples of the strain ``h`` and of the nine auxiliary channels;
the data acquisition sends each channel as its own stream (``by_stream``).
The strain's amplitude spectral density has a seismic wall, a flat thermal floor and rising shot noise (the
shape, not the numbers, of an interferometer's); each auxiliary channel has its own slope. Windows come in
four kinds, drawn independently:

- ``glitch``: a sine-Gaussian in one of the ``COUPLED`` channels, and the same transient, delayed by up to
  10 ms and scaled to a signal-to-noise ratio ``snr`` in the strain. These are the windows a veto must catch.
- ``aux_only``: a sine-Gaussian in an uncoupled auxiliary channel only; the strain is clean.
- ``signal``: a sine-Gaussian in the strain alone (what an astrophysical burst looks like to this twin);
  vetoing it would be a false veto.
- ``clean``: noise only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from virgo_glitch.channels import AUX, COUPLED, SAMPLE_RATE, SAMPLES, STRAIN, STRAIN_STREAM

__all__ = ["Frame", "by_stream", "frames", "sine_gaussian", "strain_asd"]

STRAIN_SCALE = 1e-23  # strain per sqrt(Hz) at the floor


def strain_asd(freqs: np.ndarray) -> np.ndarray:
    """Strain noise amplitude spectral density (1/sqrt(Hz)): seismic wall below ~20 Hz, floor, shot noise."""
    f = np.maximum(freqs, 5.0)
    return STRAIN_SCALE * np.sqrt((f / 20.0) ** -8 + 1.0 + (f / 400.0) ** 2)


def _aux_asd(freqs: np.ndarray, slope: float) -> np.ndarray:
    f = np.maximum(freqs, 5.0)
    return (f / 100.0) ** slope


_AUX_SLOPES = dict(zip(AUX, (-2.0, -2.0, -1.5, -1.0, -1.0, 0.0, -0.5, -0.5, -1.5), strict=True))


def _coloured(rng: np.random.Generator, n: int, asd: np.ndarray) -> np.ndarray:
    """Gaussian noise of one-sided amplitude spectral density ``asd`` (sampled at rfft frequencies)."""
    white = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    spectrum = white * asd * np.sqrt(SAMPLE_RATE * n / 4.0)  # E|X_k|^2 = S(f) fs n / 2 for a one-sided S
    spectrum[0] = spectrum[0].real
    spectrum[-1] = spectrum[-1].real
    return np.fft.irfft(spectrum, n)


def sine_gaussian(n: int, t0: float, f0: float, q: float) -> np.ndarray:
    """A unit-amplitude sine-Gaussian centred at ``t0`` (s) with frequency ``f0`` (Hz) and quality ``q``."""
    t = np.arange(n) / SAMPLE_RATE
    tau = q / (2 * np.pi * f0)
    return np.exp(-((t - t0) ** 2) / (2 * tau**2)) * np.sin(2 * np.pi * f0 * (t - t0))


def _snr(signal: np.ndarray, asd: np.ndarray) -> float:
    """Optimal signal-to-noise ratio of ``signal`` in noise of one-sided ``asd``: sqrt(4 df sum |S|^2/Sn)."""
    spectrum = np.fft.rfft(signal) / SAMPLE_RATE
    df = SAMPLE_RATE / signal.size
    return float(np.sqrt(4 * df * np.sum(np.abs(spectrum[1:]) ** 2 / asd[1:] ** 2)))


# Each coupled channel's glitches have their own family (as in real detectors: scattered light is slow, coil
# drivers ring in the low hundreds of hertz, intensity noise higher): the frequency range of its sine-Gaussians.
# The coil drivers' are blips: a cycle or two (Q 1 to 2, a few milliseconds), broadband, as blip glitches are.
FAMILIES = {"seis_z": (60.0, 120.0), "mag_x": (150.0, 260.0), "laser_int": (350.0, 500.0)}
QUALITY = {"mag_x": (1.0, 2.0)}  # blips; every other transient has Q from 3 to 10


def _transient(rng: np.random.Generator, n: int, band: tuple[float, float] = (60.0, 500.0),
               q: tuple[float, float] = (3.0, 10.0)) -> np.ndarray:
    return sine_gaussian(n, rng.uniform(0.15, 0.85), f0=rng.uniform(*band), q=rng.uniform(*q))


@dataclass(frozen=True)
class Frame:
    """One second of every channel, and what the simulator put in it (the truth a veto is judged by)."""

    record: dict[str, object]
    kind: str  # glitch, aux_only, signal, clean
    channel: str | None  # the auxiliary channel a glitch was born in
    snr: float  # in the strain (0 without a transient there)


def frames(n: int, *, seed: int = 0, start: datetime | None = None, glitch_rate: float = 0.15,
           aux_only_rate: float = 0.1, signal_rate: float = 0.03, snr: tuple[float, float] = (8.0, 40.0),
           aux_snr: tuple[float, float] = (10.0, 50.0)) -> Iterator[Frame]:
    """``n`` consecutive frames from ``start`` (default 2026-03-01T00:00:00Z), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    size = SAMPLE_RATE
    freqs = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
    h_asd = strain_asd(freqs)
    aux_asd = {name: _aux_asd(freqs, slope) for name, slope in _AUX_SLOPES.items()}
    start = start or datetime(2026, 3, 1, tzinfo=UTC)
    uncoupled = [a for a in AUX if a not in COUPLED]
    for i in range(n):
        record: dict[str, object] = {"time": start + timedelta(seconds=i)}
        h = _coloured(rng, size, h_asd)
        aux = {name: _coloured(rng, size, aux_asd[name]) for name in AUX}
        draw = rng.uniform()
        kind, channel, in_strain = "clean", None, 0.0
        if draw < glitch_rate:
            kind, channel = "glitch", str(rng.choice(COUPLED))
        elif draw < glitch_rate + aux_only_rate:
            kind, channel = "aux_only", str(rng.choice(uncoupled))
        elif draw < glitch_rate + aux_only_rate + signal_rate:
            kind = "signal"
        if channel is not None:
            shape = _transient(rng, size, FAMILIES.get(channel, (60.0, 500.0)), QUALITY.get(channel, (3.0, 10.0)))
            aux[channel] += shape * rng.uniform(*aux_snr) / _snr(shape, aux_asd[channel])
            if kind == "glitch":
                delayed = np.roll(shape, int(rng.uniform(0.0, 0.010) * SAMPLE_RATE))
                in_strain = rng.uniform(*snr)
                h += delayed * in_strain / _snr(delayed, h_asd)
        elif kind == "signal":
            shape = _transient(rng, size)
            in_strain = rng.uniform(*snr)
            h += shape * in_strain / _snr(shape, h_asd)
        record[STRAIN] = h
        record.update(aux)
        yield Frame(record=record, kind=kind, channel=channel, snr=in_strain)


def by_stream(sent: list[Frame]) -> dict[str, list[dict[str, object]]]:
    """The records each of the ten streams receives for ``sent`` frames: ``strain`` (time, h) and one
    stream per auxiliary channel (time, x)."""
    out: dict[str, list[dict[str, object]]] = {STRAIN_STREAM: [], **{name: [] for name in AUX}}
    for frame in sent:
        time = frame.record["time"]
        out[STRAIN_STREAM].append({"time": time, STRAIN: frame.record[STRAIN]})
        for name in AUX:
            out[name].append({"time": time, SAMPLES: frame.record[name]})
    return out
