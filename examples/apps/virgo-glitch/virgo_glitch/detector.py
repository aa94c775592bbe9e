"""Whiten a frame's channels and decide whether its strain window is vetoed.

Whitening: the noise spectrum of each channel is estimated from the frame itself (Welch, Hann segments of
1/4 s overlapping by half, the median over segments so that a transient barely moves it); the Tukey-tapered
series is divided by the amplitude spectral density in the frequency domain, kept between ``F_LOW`` and
``F_HIGH`` and scaled to unit variance. In whitened data a transient stands out as excess power: the
mean of the squared whitened series over sliding tiles (1 for Gaussian noise) is turned into a significance,
its excess over 1 in units of its standard deviation in noise (sqrt(2 / (2 B T)) for a band B and a tile of
T seconds), at each of the ``TILES`` durations, so short blips and long scattered-light arches are both seen;
the largest significance and its time are a channel's trigger.

Veto: the strain window is vetoed when the strain's peak exceeds ``strain_threshold`` and an auxiliary
channel's peak exceeds ``aux_threshold`` within ``coincidence`` seconds of it. A transient in the strain
alone (what a gravitational-wave burst would look like) and a transient in an auxiliary channel alone are
both left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from virgo_glitch.channels import AUX, SAMPLE_RATE, STRAIN

__all__ = ["Decision", "Thresholds", "decide", "gate", "psd", "tile_energy", "trigger", "whiten"]

F_LOW, F_HIGH = 20.0, 1000.0  # Hz, the band kept after whitening
SEGMENT = SAMPLE_RATE // 4
TILES = (1 / 256, 1 / 64, 1 / 16)  # s
_EDGE = 0.1  # s at each end where the taper leaves the statistic meaningless
GATE = 0.0625  # s zeroed on each side of a vetoed glitch's peak (then a 0.1 s taper back to the data)


@dataclass(frozen=True)
class Thresholds:
    strain: float = 7.0
    aux: float = 8.0
    coincidence: float = 0.05  # s

    @classmethod
    def of(cls, parameters: dict[str, Any]) -> Thresholds:
        return cls(strain=float(parameters.get("strain_threshold", cls.strain)),
                   aux=float(parameters.get("aux_threshold", cls.aux)),
                   coincidence=float(parameters.get("coincidence_s", cls.coincidence)))


def psd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, one-sided power spectral density) by Welch with the median over segments."""
    step = SEGMENT // 2
    starts = range(0, x.size - SEGMENT + 1, step)
    window = np.hanning(SEGMENT)
    segments = np.stack([x[s: s + SEGMENT] * window for s in starts])
    power = np.abs(np.fft.rfft(segments, axis=1)) ** 2 * 2 / (SAMPLE_RATE * np.sum(window**2))
    median_bias = np.log(2.0) if len(segments) > 2 else 1.0  # the median of a chi2_2 / 2 is ln 2 of its mean
    return np.fft.rfftfreq(SEGMENT, 1 / SAMPLE_RATE), np.median(power, axis=0) / median_bias


def whiten(x: np.ndarray) -> np.ndarray:
    """The series divided by its own noise amplitude spectrum, band-limited, at unit variance."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    freqs_psd, density = psd(x)
    n = x.size
    taper = np.ones(n)
    edge = int(_EDGE * SAMPLE_RATE)
    ramp = 0.5 * (1 - np.cos(np.pi * np.arange(edge) / edge))
    taper[:edge], taper[-edge:] = ramp, ramp[::-1]
    spectrum = np.fft.rfft(x * taper)
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    asd = np.sqrt(np.interp(freqs, freqs_psd, density))
    band = (freqs >= F_LOW) & (freqs <= F_HIGH)
    spectrum = np.where(band & (asd > 0), spectrum / np.where(asd > 0, asd, 1.0), 0.0)
    white = np.fft.irfft(spectrum, n)
    middle = white[edge:-edge]
    scale = 1.4826 * np.median(np.abs(middle - np.median(middle)))  # robust: a transient does not set it
    return white / scale if scale > 0 else white


def tile_energy(white: np.ndarray) -> np.ndarray:
    """Excess power's significance at every sample: the largest over the tile durations of (mean of the
    squared whitened series over the tile - 1) / its standard deviation in noise; zero near the edges."""
    squared = white**2
    best = np.full(white.size, -np.inf)
    for tile in TILES:
        width = max(int(tile * SAMPLE_RATE), 1)
        mean = np.convolve(squared, np.ones(width) / width, mode="same")
        spread = np.sqrt(2 / max(2 * (F_HIGH - F_LOW) * tile, 1.0))
        best = np.maximum(best, (mean - 1) / spread)
    edge = int(_EDGE * SAMPLE_RATE)
    best[:edge] = best[-edge:] = 0.0
    return best


def trigger(x: np.ndarray) -> tuple[float, float, np.ndarray]:
    white = whiten(x)
    energy = tile_energy(white)
    peak = int(np.argmax(energy))
    return float(energy[peak]), peak / SAMPLE_RATE, white


@dataclass(frozen=True)
class Decision:
    vetoed: bool
    strain_peak: float  # largest excess-power significance of the whitened strain
    strain_time: float  # where it is, in seconds from the frame's start
    aux_peak: float  # the loudest coincident auxiliary channel's peak above its threshold (0: none, or no
    # transient in the strain)
    channel: str | None  # that channel, when it vetoed
    whitened: np.ndarray  # the whitened strain


def decide(frame: dict[str, Any], thresholds: Thresholds) -> Decision:
    """Whiten the strain and decide the frame's veto; the auxiliary channels are whitened only when the
    strain has a transient (without one nothing is vetoed, and most frames are clean). A channel absent from
    the frame (its record never came) cannot veto."""
    strain_peak, strain_time, white = trigger(np.asarray(frame[STRAIN]))
    best, best_channel = 0.0, None
    for name in AUX if strain_peak > thresholds.strain else ():
        if frame.get(name) is None:
            continue
        peak, at, _white = trigger(np.asarray(frame[name]))
        near = abs(at - strain_time) <= thresholds.coincidence
        if peak > thresholds.aux and near and peak > best:
            best, best_channel = peak, name
    vetoed = strain_peak > thresholds.strain and best_channel is not None
    return Decision(vetoed=vetoed, strain_peak=strain_peak, strain_time=strain_time, aux_peak=best,
                    channel=best_channel if vetoed else None, whitened=white)


def gate(white: np.ndarray, at: float) -> np.ndarray:
    """The whitened series with ``GATE`` seconds on each side of ``at`` zeroed, tapered in and out over
    ``_EDGE`` seconds (an inverse Tukey window, as gating does to glitches in interferometer data)."""
    t = np.arange(white.size) / SAMPLE_RATE
    distance = np.abs(t - at) - GATE
    weight = np.where(distance <= 0, 0.0, np.where(distance >= _EDGE, 1.0,
                                                    0.5 * (1 - np.cos(np.pi * np.clip(distance, 0, _EDGE) / _EDGE))))
    return white * weight
