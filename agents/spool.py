"""Append-only spool of encoded events, for when the broker cannot be reached.

Frames are ``crc32 | key length | value length | key | value`` so a write torn by a kill is
detected and dropped at the tail instead of corrupting what follows. Each tracker owns one file
under a lock; a later tracker adopts files whose owner died and re-sends them in order.
"""

from __future__ import annotations

import fcntl
import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

_FRAME = struct.Struct(">III")


class Spool:
    """One locked, append-only spool file."""

    def __init__(self, directory: Path, name: str | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / (name or f"tracker-{os.getpid()}-{uuid.uuid4().hex[:8]}.spool")
        self._file = open(self.path, "ab+")  # noqa: SIM115 - lives as long as the spool
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.count = sum(1 for _ in self.frames())

    def append(self, key: bytes, value: bytes) -> None:
        crc = zlib.crc32(key + value)
        self._file.write(_FRAME.pack(crc, len(key), len(value)) + key + value)
        self._file.flush()
        self.count += 1

    def sync(self) -> None:
        os.fsync(self._file.fileno())

    def frames(self) -> Iterator[tuple[bytes, bytes]]:
        """Every intact frame in write order; stops at the first torn or corrupt one."""
        with open(self.path, "rb") as reader:
            data = reader.read()
        pos = 0
        while pos + _FRAME.size <= len(data):
            crc, klen, vlen = _FRAME.unpack_from(data, pos)
            start = pos + _FRAME.size
            key, value = data[start:start + klen], data[start + klen:start + klen + vlen]
            if len(value) != vlen or zlib.crc32(key + value) != crc:
                return
            yield key, value
            pos = start + klen + vlen

    def clear(self) -> None:
        self._file.truncate(0)
        self._file.seek(0)
        self.count = 0

    def close(self, remove_if_empty: bool = True) -> None:
        empty = self.count == 0
        self._file.close()
        if remove_if_empty and empty:
            self.path.unlink(missing_ok=True)


def orphaned_spools(directory: Path) -> list[Spool]:
    """Spool files whose owning process is gone (their lock is free), oldest first."""
    found: list[Spool] = []
    if not directory.exists():
        return found
    for path in sorted(directory.glob("*.spool"), key=lambda p: p.stat().st_mtime):
        try:
            found.append(Spool(directory, path.name))
        except BlockingIOError:
            continue  # a live tracker owns it
    return found
