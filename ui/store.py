"""The UI's only way into the store: ``store.clickhouse.reader``, kept open while it stays right.

A reader is opened once and reused: with a running stack it is the stack's gateway (read-only
sessions, decided by ClickHouse); without one it is a readers-only gateway of this process over
the chDB directory. Before each query the UI asks where a reader should point now
(``clickhouse_dsn_for``: a file read), so a stack that starts or stops is followed. Without a stack
this process holds the directory, which would keep ``art up`` from starting: an idle local reader
is closed after ``idle_release_s`` (the live page's polling keeps it open while a browser watches).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from contextlib import ExitStack
from typing import Any

from config.settings import ArtConfig
from schemas.runtime import clickhouse_dsn_for
from store.clickhouse import StoreError, error_text, reader


class UiStoreError(Exception):
    """The store is missing, unreachable, or refused a query; the message is one line for a page."""


class UiStore:
    def __init__(self, cfg: ArtConfig, idle_release_s: float = 20.0) -> None:
        self.cfg = cfg
        self.idle_release_s = idle_release_s
        self._lock = threading.Lock()
        self._stack: ExitStack | None = None
        self._client: Any = None  # the reader's client (ui/ imports no ClickHouse client module)
        self._target = ""
        self._last_used = 0.0

    def query(self, sql: str, params: dict[str, Any] | None = None,
              column_formats: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Rows of one read-only statement, as dicts. SQL text is constant; values travel as
        ClickHouse ``{name:Type}`` parameters, never in the text."""
        with self._lock:
            client = self._open()
            try:
                result = client.query(sql, parameters=params or {}, column_formats=column_formats)
            except Exception as exc:
                if self._target.startswith("chdb://") or _unreachable(exc):
                    self._close()  # a stack that went away, or a replaced session: open afresh next time
                raise UiStoreError(error_text(exc)) from None
            finally:
                self._last_used = time.monotonic()
            return list(result.named_results())

    async def rows(self, sql: str, params: dict[str, Any] | None = None,
                   column_formats: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.query, sql, params, column_formats)

    async def one(self, sql: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        found = await self.rows(sql, params)
        return found[0] if found else {}

    async def tables(self, *names: str) -> set[str]:
        """Which of ``names`` the store has (a store made before a table was added lacks it)."""
        found = await self.rows("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                "AND name IN {names:Array(String)}", {"names": list(names)})
        return {r["name"] for r in found}

    def release_if_idle(self) -> None:
        """Close a local reader (this process holding the directory) that nobody used lately."""
        with self._lock:
            if self._client is not None and self._target.startswith("chdb://") and \
                    time.monotonic() - self._last_used > self.idle_release_s:
                self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _open(self) -> Any:
        target = clickhouse_dsn_for(self.cfg)
        if self._client is not None and target == self._target:
            return self._client
        self._close()
        stack = ExitStack()
        try:
            self._client = stack.enter_context(reader(self.cfg))
        except StoreError as exc:
            stack.close()
            raise UiStoreError(str(exc)) from None
        self._stack, self._target = stack, target
        return self._client

    def _close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client, self._target = self._stack, None, None, ""
            with contextlib.suppress(Exception):  # a client whose server is gone must not hide the page's own error
                stack.close()


def _unreachable(exc: BaseException) -> bool:
    text = str(exc)
    return any(s in text for s in ("Connection refused", "Max retries exceeded", "RemoteDisconnected",
                                   "Connection aborted", "timed out"))
