"""Sigproc filterbank files: a header of keyword/value pairs between ``HEADER_START`` and ``HEADER_END``,
then the samples time-major (every channel of the first sample, then the next), 8-bit unsigned or 32-bit
float. The twin reads and writes them exactly, so a simulated observation can travel as a real one would."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["Header", "read", "write"]

# sigproc's keyword types: the rest of its vocabulary is refused by name rather than misread
_INTS = ("machine_id", "telescope_id", "data_type", "nchans", "nbits", "nifs", "ibeam", "nbeams", "barycentric")
_DOUBLES = ("fch1", "foff", "tstart", "tsamp", "src_raj", "src_dej", "az_start", "za_start", "refdm")
_STRINGS = ("source_name", "rawdatafile")
_DTYPES: dict[int, np.dtype[Any]] = {8: np.dtype("uint8"), 32: np.dtype("<f4")}


@dataclass
class Header:
    """The keywords of a filterbank header the twin uses (channel 0 at ``fch1`` MHz, ``foff`` apart)."""

    nchans: int
    fch1: float  # MHz, the first channel's centre
    foff: float  # MHz between channels (negative: the band is stored from the top down)
    tsamp: float  # s
    nbits: int = 32
    tstart: float = 60000.0  # MJD
    source_name: str = "J0000+0000"
    telescope_id: int = 0
    machine_id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # other known keywords, kept on a round trip

    def frequencies(self) -> np.ndarray:
        """Each channel's centre frequency, MHz."""
        return self.fch1 + self.foff * np.arange(self.nchans)


def _put(out: BinaryIO, text: str) -> None:
    out.write(struct.pack("<i", len(text)) + text.encode("ascii"))


def _get(raw: BinaryIO) -> str:
    (size,) = struct.unpack("<i", raw.read(4))
    if not 0 < size < 80:
        raise ValueError(f"not a sigproc filterbank header: a keyword of {size} characters")
    return raw.read(size).decode("ascii")


def write(path: Path, header: Header, data: np.ndarray) -> None:
    """Write ``data`` (channel, sample) under ``header``; 8-bit data must already be integers 0..255."""
    if header.nbits not in _DTYPES:
        raise ValueError(f"nbits {header.nbits}: the twin writes 8 or 32")
    if data.shape[0] != header.nchans:
        raise ValueError(f"data has {data.shape[0]} channels, the header says {header.nchans}")
    dtype = _DTYPES[header.nbits]
    if header.nbits == 8 and (np.any(data < 0) or np.any(data > 255) or np.any(data != np.round(data))):
        raise ValueError("8-bit data must be integers from 0 to 255")
    with open(path, "wb") as out:
        _put(out, "HEADER_START")
        values: dict[str, Any] = {"telescope_id": header.telescope_id, "machine_id": header.machine_id,
                                  "data_type": 1, "source_name": header.source_name, "fch1": header.fch1,
                                  "foff": header.foff, "nchans": header.nchans, "nbits": header.nbits,
                                  "tstart": header.tstart, "tsamp": header.tsamp, "nifs": 1, **header.extra}
        for key, value in values.items():
            _put(out, key)
            if key in _INTS:
                out.write(struct.pack("<i", int(value)))
            elif key in _DOUBLES:
                out.write(struct.pack("<d", float(value)))
            elif key in _STRINGS:
                _put(out, str(value))
            else:
                raise ValueError(f"{key!r} is not a sigproc keyword the twin knows")
        _put(out, "HEADER_END")
        out.write(np.ascontiguousarray(data.T, dtype=dtype).tobytes())


def read(path: Path) -> tuple[Header, np.ndarray]:
    """The header and the data (channel, sample) of a filterbank file (uint8 or float32, as stored)."""
    with open(path, "rb") as raw:
        if _get(raw) != "HEADER_START":
            raise ValueError(f"{path}: not a sigproc filterbank file (no HEADER_START)")
        values: dict[str, Any] = {}
        while (key := _get(raw)) != "HEADER_END":
            if key in _INTS:
                values[key] = struct.unpack("<i", raw.read(4))[0]
            elif key in _DOUBLES:
                values[key] = struct.unpack("<d", raw.read(8))[0]
            elif key in _STRINGS:
                values[key] = _get(raw)
            else:
                raise ValueError(f"{path}: unknown header keyword {key!r}")
        payload = raw.read()
    nbits = int(values.pop("nbits"))
    if nbits not in _DTYPES:
        raise ValueError(f"{path}: nbits {nbits}; the twin reads 8 or 32")
    nchans = int(values.pop("nchans"))
    values.pop("data_type", None)
    values.pop("nifs", None)
    known = {k: values.pop(k) for k in ("fch1", "foff", "tsamp", "tstart", "source_name", "telescope_id",
                                         "machine_id") if k in values}
    header = Header(nchans=nchans, nbits=nbits, extra=values, **known)
    data = np.frombuffer(payload, dtype=_DTYPES[nbits]).reshape(-1, nchans).T.copy()
    return header, data
