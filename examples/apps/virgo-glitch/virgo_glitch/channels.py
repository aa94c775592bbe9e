"""The channels of a frame: the strain channel and nine auxiliary channels, at one sample rate."""

from __future__ import annotations

SAMPLE_RATE = 4096  # Hz; a frame holds one second of every channel
STRAIN = "h"
AUX = ("seis_x", "seis_y", "seis_z", "mag_x", "mag_y", "mic", "laser_int", "laser_freq", "pitch")
COUPLED = ("seis_z", "mag_x", "laser_int")  # aux channels whose glitches reach the strain

