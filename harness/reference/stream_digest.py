"""Streaming body digests and first/last-bytes evidence, shared by client and tests.

A digest is text that names its algorithm (``xxh3_64:<16 hex>`` or
``crc32:<8 hex>``), so a digest made with the fallback never equals one made
with xxh3 by accident.
"""

from __future__ import annotations

import os
import zlib

try:
    import xxhash
except ImportError:  # the project depends on xxhash; crc32 keeps the client usable without it
    xxhash = None

EVIDENCE_BYTES = 4096
FILE_READ_BYTES = 1024 * 1024


class StreamDigest:
    """Incremental hash: ``update()`` with chunks, ``hexdigest()`` at the end."""

    def __init__(self, algorithm: str = "xxh3") -> None:
        if algorithm not in ("xxh3", "crc32"):
            raise ValueError(f"unknown digest algorithm {algorithm!r}; use xxh3 or crc32")
        self._xxh = xxhash.xxh3_64() if algorithm == "xxh3" and xxhash is not None else None
        self._crc = 0
        self.name = "xxh3_64" if self._xxh is not None else "crc32"

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._xxh is not None:
            self._xxh.update(data)
        else:
            self._crc = zlib.crc32(data, self._crc)

    def hexdigest(self) -> str:
        value = self._xxh.hexdigest() if self._xxh is not None else f"{self._crc:08x}"
        return f"{self.name}:{value}"


def bytes_digest(data: bytes | bytearray | memoryview, algorithm: str = "xxh3") -> str:
    digest = StreamDigest(algorithm)
    digest.update(data)
    return digest.hexdigest()


def file_digest(path: str | os.PathLike[str], algorithm: str = "xxh3") -> str:
    """Digest of a file's bytes, read in 1 MiB pieces (never the whole file at once)."""
    digest = StreamDigest(algorithm)
    buffer = bytearray(FILE_READ_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as source:
        while count := source.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


class EvidenceWindow:
    """Keeps the first and the last ``size`` bytes of a stream seen in chunks."""

    def __init__(self, size: int = EVIDENCE_BYTES) -> None:
        self.size = size
        self.first = bytearray()
        self.last = bytearray()

    def add(self, data: bytes | bytearray | memoryview) -> None:
        if len(self.first) < self.size:
            self.first += data[: self.size - len(self.first)]
        if len(data) >= self.size:
            self.last = bytearray(data[len(data) - self.size:])
        else:
            self.last += data
            del self.last[: max(0, len(self.last) - self.size)]
