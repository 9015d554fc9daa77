"""Judge answers keyed by (content hash, judge version), so a replay never asks the LLM twice.

The hash is sha256 over a canonical JSON rendering (sorted keys, no whitespace), so it is equal
across processes and machines, unlike Python's salted ``hash()``. Memory holds an LRU of recent
answers; an optional SQLite file keeps them across restarts and is shared safely by processes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from judges.errors import JudgeError


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, compact separators, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(value: Any) -> str:
    """sha256 hex digest of ``canonical_json(value)``; stable across processes."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


class JudgeCache:
    """In-memory LRU in front of an optional SQLite file; values are the LLM's raw answer text."""

    def __init__(self, *, max_entries: int = 1024, path: Path | str | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.path = Path(path) if path is not None else None
        self._lru: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS answers (content_hash TEXT NOT NULL, judge_version TEXT NOT NULL,"
                    " answer TEXT NOT NULL, stored_at REAL NOT NULL, PRIMARY KEY (content_hash, judge_version))")
                self._db.commit()
            except sqlite3.Error as exc:
                raise JudgeError(f"cannot open judge cache {self.path}: {exc}") from None

    def get(self, digest: str, judge_version: str) -> str | None:
        key = (digest, judge_version)
        with self._lock:
            if key in self._lru:
                self._lru.move_to_end(key)
                return self._lru[key]
            if self._db is None:
                return None
            row = self._db.execute("SELECT answer FROM answers WHERE content_hash = ? AND judge_version = ?",
                                   key).fetchone()
            if row is None:
                return None
            self._remember(key, row[0])
            return str(row[0])

    def put(self, digest: str, judge_version: str, answer: str) -> None:
        key = (digest, judge_version)
        with self._lock:
            self._remember(key, answer)
            if self._db is not None:
                self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)", (*key, answer, time.time()))
                self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return len(self._lru)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _remember(self, key: tuple[str, str], answer: str) -> None:
        self._lru[key] = answer
        self._lru.move_to_end(key)
        while len(self._lru) > self.max_entries:
            self._lru.popitem(last=False)
