"""The physical twin, simulated: a filterbank observation (channel x sample) of a dispersed pulsar under radio
interference, with the truth the checks score against (which cells hold interference, which the pulse).

No real observation can be fetched here, so every figure of the app comes from these simulations. Units are
the noise's: each cell is unit Gaussian noise plus interference plus pulse, then scaled by a bandpass whose
gain ripples towards the band edges and offset by a level per channel, as a receiver's would be. The
interference is of the four kinds a flagger meets: persistent narrowband channels, zero-DM broadband bursts,
drifting carriers, and weak (1-2 sigma) narrowband and broadband bursts, so that a flagger cannot flag
everything bright and be done. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pulsar_rfi.filterbank import Header

__all__ = ["DISPERSION", "Event", "Observation", "Pulsar", "band", "delays", "quantised", "simulate"]

DISPERSION = 4.148808e3  # s MHz^2 pc^-1 cm^3: the cold-plasma dispersion constant
NCHAN = 64
FCH1 = 1500.0  # MHz, the top channel
FOFF = -300.0 / NCHAN  # MHz: 1500 down to 1204.7 MHz
TSAMP = 0.001  # s


@dataclass(frozen=True)
class Pulsar:
    """What the sky puts in the beam: dispersion measure (pc cm^-3), period (s), the mean pulse amplitude per
    cell (noise sigma), its width (samples) and the arrival of the first pulse at the top channel (s)."""

    dm: float = 40.0
    period: float = 0.7137
    amplitude: float = 0.5
    width: int = 4
    epoch: float = 0.1
    jitter: float = 0.5  # sigma of the pulse-to-pulse log amplitude (pulsars flicker)


@dataclass(frozen=True)
class Event:
    """One interference event: its kind, its samples [start, stop) and whether it is weak (1-2 sigma)."""

    kind: str  # narrowband or broadband
    start: int
    stop: int
    weak: bool = False


@dataclass
class Observation:
    """A simulated observation: the raw data and the truth (interference mask, noiseless pulse, events)."""

    header: Header
    data: np.ndarray  # (channel, sample) float32, bandpass applied
    rfi: np.ndarray  # (channel, sample) bool: the cells interference touched
    pulse: np.ndarray  # (channel, sample) float32: the noiseless pulse, noise sigma units
    arrivals: np.ndarray  # the pulses' first samples at the top channel
    amplitudes: np.ndarray  # their amplitudes per cell
    pulsar: Pulsar
    events: list[Event] = field(default_factory=list)


def band() -> Header:
    """The receiver's channels and sampling (the header every simulated observation has)."""
    return Header(nchans=NCHAN, fch1=FCH1, foff=FOFF, tsamp=TSAMP, source_name="J1234+5678")


def delays(dm: float, header: Header) -> np.ndarray:
    """Each channel's dispersion delay behind the top channel, in whole samples."""
    freqs = header.frequencies()
    seconds = DISPERSION * dm * (freqs ** -2.0 - freqs.max() ** -2.0)
    return np.asarray(np.round(seconds / header.tsamp), dtype=int)


def _bandpass(rng: np.random.Generator, nchan: int) -> tuple[np.ndarray, np.ndarray]:
    """Gain and level per channel: a smooth band with ripple growing towards both edges."""
    x = np.linspace(-1.0, 1.0, nchan)
    ripple = 0.25 * np.abs(x) ** 3 * np.sin(2 * np.pi * nchan * x / 16 + rng.uniform(0, 2 * np.pi))
    gain = (1.0 + 0.3 * (1 - x ** 2) + ripple) * rng.uniform(8, 12)
    return gain, 100.0 + 20.0 * (1 - x ** 2) + rng.normal(0, 2, nchan)


def _persistent(rng: np.random.Generator, cube: np.ndarray, mask: np.ndarray) -> None:
    """Two to three channels held by transmitters the whole time, their power swinging."""
    nchan, nsamp = cube.shape
    t = np.arange(nsamp)
    for channel in rng.choice(np.arange(2, nchan - 2), size=int(rng.integers(2, 4)), replace=False):
        level = rng.uniform(2.0, 6.0)
        swing = 0.6 + 0.4 * np.sin(2 * np.pi * t / rng.uniform(200, 2000) + rng.uniform(0, 6.3))
        cube[channel] += level * swing * (1 + 0.5 * rng.standard_normal(nsamp))
        mask[channel] = True


def _burst(rng: np.random.Generator, cube: np.ndarray, mask: np.ndarray, weak: bool) -> Event:
    """A zero-DM broadband burst: most of the band at once, a few to twenty samples long."""
    nchan, nsamp = cube.shape
    length, start = int(rng.integers(2, 21)), int(rng.integers(0, nsamp - 21))
    low = int(rng.integers(0, nchan // 4))
    high = int(rng.integers(3 * nchan // 4, nchan + 1))
    level = rng.uniform(1.0, 2.0) if weak else rng.uniform(3.0, 8.0)
    shape = 0.7 + 0.3 * np.cos(np.linspace(0, rng.uniform(1, 6), high - low))[:, None]
    cube[low:high, start:start + length] += level * shape
    mask[low:high, start:start + length] = True
    return Event("broadband", start, start + length, weak)


def _narrow(rng: np.random.Generator, cube: np.ndarray, mask: np.ndarray, weak: bool) -> Event:
    """A carrier: strong ones drift across channels for hundreds of samples; weak ones sit in a channel."""
    nchan, nsamp = cube.shape
    length = int(rng.integers(64, 513)) if weak else int(rng.integers(100, 801))
    start = int(rng.integers(0, nsamp - length))
    t = np.arange(length)
    drift = 0.0 if weak else rng.choice([-1, 1]) * rng.uniform(0.005, 0.05)
    channels = np.clip(np.round(rng.uniform(0, nchan - 1) + drift * t), 0, nchan - 1).astype(int)
    level = rng.uniform(1.0, 2.0) if weak else rng.uniform(2.0, 8.0)
    cube[channels, start + t] += level
    mask[channels, start + t] = True
    return Event("narrowband", start, start + length, weak)


def simulate(seed: int, *, nsamp: int = 32768, pulsar: Pulsar | None = None, rfi_rate: float = 1.0) -> Observation:
    """One observation of ``nsamp`` samples; ``rfi_rate`` scales how many interference events there are
    (about one broadband burst a second and one carrier every two seconds at 1, as many weak ones again)."""
    rng = np.random.default_rng(seed)
    pulsar = pulsar or Pulsar()
    header = band()
    cube = rng.standard_normal((NCHAN, nsamp)).astype("float64")
    mask = np.zeros(cube.shape, dtype=bool)
    _persistent(rng, cube, mask)
    seconds = nsamp * TSAMP
    events = []
    for _ in range(rng.poisson(rfi_rate * seconds)):
        events.append(_burst(rng, cube, mask, weak=bool(rng.random() < 0.5)))
    for _ in range(rng.poisson(rfi_rate * seconds)):
        events.append(_narrow(rng, cube, mask, weak=bool(rng.random() < 0.5)))
    lag = delays(pulsar.dm, header)
    starts = np.round((pulsar.epoch + pulsar.period * np.arange(int(seconds / pulsar.period) + 1)) / TSAMP)
    starts = starts[starts + lag.max() + pulsar.width < nsamp].astype(int)
    amplitudes = pulsar.amplitude * np.exp(pulsar.jitter * rng.standard_normal(len(starts))
                                           - pulsar.jitter ** 2 / 2)  # mean amplitude as asked
    pulse = np.zeros(cube.shape, dtype="float32")
    for start, amplitude in zip(starts, amplitudes, strict=True):
        for channel, lagged in enumerate(lag):
            pulse[channel, start + lagged:start + lagged + pulsar.width] = amplitude
    gain, level = _bandpass(rng, NCHAN)
    data = (level[:, None] + gain[:, None] * (cube + pulse)).astype("float32")
    return Observation(header=header, data=data, rfi=mask, pulse=pulse, arrivals=starts, amplitudes=amplitudes,
                       pulsar=pulsar, events=sorted(events, key=lambda e: e.start))


def quantised(obs: Observation) -> np.ndarray:
    """The data as an 8-bit digitiser would record it (for 8-bit filterbank files)."""
    return np.clip(np.round(obs.data), 0, 255).astype("uint8")
