"""The engine sessions that serve readers: ``readonly = 1``, time- and size-limited, checked by
ClickHouse's parser before anything runs.

chDB allows many sessions on the one engine of a process; settings are per session and
``readonly = 1`` cannot be lifted once set (not by ``SET``, not by a query's ``SETTINGS``). So the
limits are set first, then ``readonly = 1``, and writers keep their own session untouched. Reader
sessions run beside the writer's, so a slow reader never holds the engine the sink writes through.

A session whose query failed is replaced: chDB (4.4) hands the partial output of a failed query to
the next query on the same session as its result.
"""

from __future__ import annotations

import queue
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from store.readguard import TABLE_FUNCTIONS_SQL, ReadGuard

#: what one reader query may use; max_execution_time comes from [art.clickhouse] reader_timeout_s.
#: chDB checks max_result_bytes between blocks only, so one huge block is stopped by max_memory_usage
#: and the output by MAX_OUTPUT_BYTES.
READER_LIMITS: dict[str, int] = {"max_result_bytes": 256 << 20, "max_memory_usage": 1 << 30}
MAX_OUTPUT_BYTES = 512 << 20
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ReadersBusy(Exception):
    """Every reader session stayed busy for longer than one reader query may run."""


class ReaderSessions:
    """A small pool of ``readonly = 1`` sessions on the engine at ``path``."""

    def __init__(self, path: str, size: int = 4, timeout_s: float = 30.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._free: queue.Queue[Any] = queue.Queue()
        for _ in range(size):
            self._free.put(self._open())
        with self._session() as conn:
            self.guard = ReadGuard(_raw(conn, TABLE_FUNCTIONS_SQL, {}).split())

    def _open(self) -> Any:
        import chdb

        conn = chdb.connect(self.path)
        for name, value in {**READER_LIMITS, "max_execution_time": self.timeout_s}.items():
            conn.query(f"SET {name} = {value}")
        conn.query("SET readonly = 1")  # last: from here on nothing can change a setting of this session
        return conn

    def query(self, sql: str, params: Mapping[str, str], database: str | None = None,
              settings: Mapping[str, str] | None = None) -> tuple[str, bytes]:
        """Run one reader statement; returns the statement that ran (ClickHouse's formatting of
        ``sql``) and its output. URL ``settings`` ride in the statement's SETTINGS clause, where
        ClickHouse refuses any change a ``readonly = 1`` session forbids."""
        with self._session() as conn:
            if database:
                conn.query(f"USE {_identifier(database)}", "TabSeparated")
            statement = self.guard.canonical(lambda q, p: _raw(conn, q, p), sql, params)
            if settings:
                statement += "\nSETTINGS " + ", ".join(f"{_setting(k)} = {_string(v)}" for k, v in settings.items())
            out = conn.query(statement, "TabSeparated", params=dict(params)).bytes() or b""
        if len(out) > MAX_OUTPUT_BYTES:
            raise ValueError(f"Code: 396. DB::Exception: Limit for result exceeded: {len(out)} bytes of output, "
                             f"at most {MAX_OUTPUT_BYTES} for a reader. (TOO_MANY_ROWS_OR_BYTES)")
        return statement, out

    def close(self) -> None:
        while not self._free.empty():
            self._free.get_nowait().close()

    @contextmanager
    def _session(self) -> Iterator[Any]:
        try:
            conn = self._free.get(timeout=self.timeout_s + 5)
        except queue.Empty:
            raise ReadersBusy(f"every reader session stayed busy for {self.timeout_s + 5:.0f} s") from None
        try:
            yield conn
        except BaseException:
            conn.close()  # never reuse a session whose query failed (see the module docstring)
            self._free.put(self._open())
            raise
        self._free.put(conn)


def _raw(conn: Any, sql: str, params: Mapping[str, str]) -> str:
    return (conn.query(sql, "TabSeparatedRaw", params=dict(params)).bytes() or b"").decode("utf-8", "replace")


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _setting(name: str) -> str:
    if not _SETTING_NAME.match(name):
        raise ValueError(f"Code: 115. DB::Exception: Unknown setting {name!r}. (UNKNOWN_SETTING)")
    return name
