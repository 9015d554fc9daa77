"""Append-only spool of encoded events that are not durable yet.

Frames are ``crc32 | key length | value length | key | value`` so a write torn by a kill is
detected and dropped at the tail instead of corrupting what follows. Each tracker owns one file
under a lock; a later tracker adopts files whose owner died and re-sends them in order.

Ownership is race-free: a new spool is created and locked under a hidden name, then renamed into
place, so no adopter ever sees an owned file unlocked; an adopter that wins a lock checks that the
name still points at the file it locked (another adopter may have emptied and removed it in
between), and a spool is removed while its lock is still held.
"""

from __future__ import annotations

import fcntl
import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_FRAME = struct.Struct(">III")


class Spool:
    """One locked, append-only spool file. ``Spool.create`` makes a new one; ``adopt`` takes an orphan."""

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path = path
        self._file = file
        self.count = sum(1 for _ in self.frames())

    @classmethod
    def create(cls, directory: Path) -> Spool:
        directory.mkdir(parents=True, exist_ok=True)
        name = f"tracker-{os.getpid()}-{uuid.uuid4().hex[:8]}.spool"
        hidden = directory / f".{name}.new"
        fd = os.open(hidden, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_APPEND, 0o644)
        file = os.fdopen(fd, "ab+")
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours alone: nobody else knows the name yet
        os.replace(hidden, directory / name)
        return cls(directory / name, file)

    @classmethod
    def adopt(cls, path: Path) -> Spool | None:
        """The spool at ``path`` if its owner is gone, else None (owned, or already taken and removed)."""
        try:
            file = open(path, "ab+")  # noqa: SIM115 - lives as long as the spool
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(file.fileno()).st_ino != path.stat().st_ino:
                raise FileNotFoundError(path)  # emptied and removed by another adopter since we opened it
        except (BlockingIOError, FileNotFoundError):
            file.close()
            return None
        return cls(path, file)

    def append(self, key: bytes, value: bytes) -> None:
        self.append_many([(key, value)])

    def append_many(self, frames: list[tuple[bytes, bytes]]) -> None:
        if not frames:
            return
        data = b"".join(_FRAME.pack(zlib.crc32(k + v), len(k), len(v)) + k + v for k, v in frames)
        self._file.write(data)
        self._file.flush()
        self.count += len(frames)

    def sync(self) -> None:
        os.fsync(self._file.fileno())

    def frames(self, start: int = 0) -> Iterator[tuple[bytes, bytes]]:
        """Every intact frame in write order from the ``start``-th; stops at the first torn or corrupt one."""
        data = os.pread(self._file.fileno(), os.fstat(self._file.fileno()).st_size, 0)
        pos, index = 0, 0
        while pos + _FRAME.size <= len(data):
            crc, klen, vlen = _FRAME.unpack_from(data, pos)
            begin = pos + _FRAME.size
            key, value = data[begin:begin + klen], data[begin + klen:begin + klen + vlen]
            if len(value) != vlen or zlib.crc32(key + value) != crc:
                return
            if index >= start:
                yield key, value
            pos, index = begin + klen + vlen, index + 1

    def clear(self) -> None:
        self._file.truncate(0)
        self._file.seek(0)
        self.count = 0

    def close(self, remove_if_empty: bool = True) -> None:
        if remove_if_empty and self.count == 0:
            self.path.unlink(missing_ok=True)  # still locked: no adopter can be reading it
        self._file.close()


def orphaned_spools(directory: Path) -> list[Spool]:
    """Spool files whose owning process is gone (their lock is free), oldest first."""
    found: list[Spool] = []
    if not directory.exists():
        return found
    paths = []
    for path in directory.glob("*.spool"):
        try:
            paths.append((path.stat().st_mtime, path))
        except FileNotFoundError:
            continue  # adopted and removed meanwhile
    for _, path in sorted(paths):
        spool = Spool.adopt(path)
        if spool is not None:
            found.append(spool)
    return found
