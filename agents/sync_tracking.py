"""A thin synchronous face on the tracking SDK for agents that are not async.

The async ``Tracker`` runs on an event loop in a background thread; each call hands a coroutine
to that loop and waits for it, so ordering and backpressure are exactly those of the async SDK.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from agents.tracking import TrackedSession, Tracker
from config.settings import ArtConfig
from schemas.models import Action, SessionStatus

T = TypeVar("T")


class SyncSession:
    def __init__(self, owner: SyncTracker, session: TrackedSession) -> None:
        self._owner = owner
        self._session = session
        self.session_id = session.session_id

    def record_step(self, *, observation: str, thought: str, action: Action, **fields: Any) -> int:
        return self._owner._call(self._session.record_step(observation=observation, thought=thought, action=action,
                                                           **fields))

    def complete(self, final_answer: str | None, status: SessionStatus | str) -> None:
        self._owner._call(self._session.complete(final_answer, status))

    @property
    def metadata(self) -> Any:
        return self._session.metadata


class SyncTracker:
    """``with SyncTracker(Tracker(...)) as tracker: session = tracker.start_session(...)``."""

    def __init__(self, tracker: Tracker | None = None, *, config: ArtConfig | None = None, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tracker-loop", daemon=True)
        self._thread.start()
        if tracker is None:
            if config is None:
                raise ValueError("pass a Tracker or a config")
            tracker = self._call(self._make(config, kwargs))
        self.tracker = tracker

    @staticmethod
    async def _make(config: ArtConfig, kwargs: dict[str, Any]) -> Tracker:
        return Tracker.from_config(config, **kwargs)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> SyncTracker:
        self._call(self.tracker.start())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start_session(self, **fields: Any) -> SyncSession:
        return SyncSession(self, self._call(self.tracker.start_session(**fields)))

    def flush(self, timeout_s: float | None = None) -> None:
        self._call(self.tracker.flush(timeout_s))

    def close(self) -> None:
        try:
            self._call(self.tracker.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
