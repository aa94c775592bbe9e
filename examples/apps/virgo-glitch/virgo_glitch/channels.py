"""The channels of a frame: the strain channel and nine auxiliary channels, at one sample rate, each sent by
the data acquisition as its own stream (the strain as ``strain`` with field ``h``, an auxiliary channel as
the stream of its name with field ``x``)."""

from __future__ import annotations

SAMPLE_RATE = 4096  # Hz; a record holds one second of a channel
STRAIN = "h"
STRAIN_STREAM = "strain"
SAMPLES = "x"  # the field of an auxiliary channel's stream
AUX = ("seis_x", "seis_y", "seis_z", "mag_x", "mag_y", "mic", "laser_int", "laser_freq", "pitch")
COUPLED = ("seis_z", "mag_x", "laser_int")  # aux channels whose glitches reach the strain
