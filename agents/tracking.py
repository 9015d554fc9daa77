"""The tracking SDK: how an agent process streams its run into Kafka.

A ``Tracker`` owns a bounded queue (``record_step`` waits when the queue is full: backpressure with
bounded memory) and a ``Delivery`` that sends it (``agents.delivery``: spooling while the broker is
away, following a restarted stack, keeping every event until it is durable). Each
``TrackedSession`` numbers its events (``seq`` from 0) and ids them, so downstream folds can drop
duplicates and wait for gaps. An event is checked at the boundary: the models refuse non-finite
numbers and out-of-range times, and an event over ``MAX_EVENT_BYTES`` is refused before it takes a
seq (it could never be sent, and would block every event behind it).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from agents.delivery import Delivery
from config.settings import ArtConfig
from schemas.codec import Codec
from schemas.limits import MAX_EVENT_BYTES
from schemas.models import (
    Action,
    CompletionTrace,
    SessionCompleted,
    SessionEvent,
    SessionStarted,
    SessionStatus,
    StepRecorded,
    TrajectoryMetadata,
)
from schemas.registry import registry_for
from schemas.runtime import read_stack_info
from schemas.topics import Topics, TopicSpec
from schemas.totals import RunningTotals

log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    """The tracker was used wrongly (closed, or a session used after completion)."""


class TrackedSession:
    """One agent run. Not thread-safe; one coroutine records its steps in order."""

    def __init__(self, tracker: Tracker, session_id: str, agent_name: str, started: SessionStarted) -> None:
        self.tracker = tracker
        self.session_id = session_id
        self.agent_name = agent_name
        self.started = started
        self.seq = 0
        self.closed = False
        self.totals = RunningTotals()

    async def _emit(self, payload: SessionStarted | StepRecorded | SessionCompleted) -> int:
        if self.closed:
            raise TrackingError(f"session {self.session_id} is already completed")
        seq = self.seq
        event = SessionEvent(session_id=self.session_id, seq=seq, agent_name=self.agent_name, payload=payload)
        value = self.tracker.encode(event)  # refused here (too large) before it takes its seq
        self.seq += 1
        await self.tracker.emit_raw(self.session_id.encode(), value)
        return seq

    async def record_step(self, *, observation: str, thought: str, action: Action, action_input: str = "",
                          tool_result: str | None = None, error: str | None = None, reflection: str | None = None,
                          step_reward: float | None = None, step_metadata: dict[str, str] | None = None,
                          execution_time_ms: int = 0, tokens: int = 0, cost: float = 0.0,
                          completions: list[CompletionTrace] | None = None) -> int:
        """Record one step; returns its seq. ``completions``: the token ids and logprobs of the LLM calls
        behind the step, when the endpoint returned them (``agents.llm``, ``art serve``)."""
        step = StepRecorded(step_number=self.totals.step_count, observation=observation, thought=thought,
                            action=action,
                            action_input=action_input, tool_result=tool_result, error=error, reflection=reflection,
                            step_reward=step_reward, step_metadata=step_metadata or {},
                            execution_time_ms=execution_time_ms, tokens=tokens, cost=cost,
                            completions=completions or [])
        return await self.record(step)

    async def record(self, step: StepRecorded) -> int:
        """Record a step built elsewhere (capture keeps upstream timestamps and token data); the
        session numbers it. Returns its seq."""
        if step.step_number != self.totals.step_count:
            step = step.model_copy(update={"step_number": self.totals.step_count})
        seq = await self._emit(step)
        self.totals.add(step)
        return seq

    async def complete(self, final_answer: str | None, status: SessionStatus | str) -> None:
        await self._emit(SessionCompleted(final_answer=final_answer, status=SessionStatus(status)))
        self.closed = True

    @property
    def step_count(self) -> int:
        return self.totals.step_count

    @property
    def metadata(self) -> TrajectoryMetadata:
        """Running totals, by the same rule as the stream's fold (``schemas.totals``)."""
        return self.totals.metadata()


class Tracker:
    """Opens sessions and ships their events; use as ``async with Tracker(...) as tracker``."""

    def __init__(self, bootstrap: str, topics: Topics, codec: Codec, spool_dir: Path, *,
                 max_pending: int = 10_000, linger_ms: int = 5, retry_interval_s: float = 1.0,
                 request_timeout_ms: int = 5_000, settle_s: float = 2.0, stack_dir: Path | None = None,
                 durable: str = "broker", poll_s: float = 0.2, topic: TopicSpec | None = None) -> None:
        topic = topic or topics.session_events  # another topic: e.g. capture's dead letters, with its own spool
        self.topic = topic.name
        self.codec = codec
        self.delivery = Delivery(bootstrap, self.topic, topic.partitions, spool_dir,
                                 stack_dir=stack_dir, durable=durable, linger_ms=linger_ms,
                                 request_timeout_ms=request_timeout_ms, retry_interval_s=retry_interval_s,
                                 settle_s=settle_s, poll_s=poll_s, max_pending=max_pending)

    @classmethod
    def from_config(cls, cfg: ArtConfig, **kwargs: Any) -> Tracker:
        """Bootstrap from config, or from the running embedded stack when none is configured (then the
        tracker follows that stack: restarts, new log epochs, its store watermark)."""
        data_dir = cfg.storage.data_dir
        bootstrap = cfg.kafka.bootstrap
        if not bootstrap:
            info = read_stack_info(data_dir)
            if info is None:
                raise TrackingError("no kafka.bootstrap configured and no running stack: start `art up` first")
            bootstrap = info.bootstrap
            kwargs = {"stack_dir": data_dir, "durable": info.durable, **kwargs}
        codec = Codec(registry_for(cfg.kafka.schema_registry_url, data_dir))
        spool_dir = kwargs.pop("spool_dir", data_dir / "spool")
        return cls(bootstrap, cfg.kafka.topics(), codec, spool_dir, **kwargs)

    async def __aenter__(self) -> Tracker:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        await self.delivery.start()

    async def start_session(self, *, agent_name: str, objective: str, group_id: str | None = None, model: str = "",
                            agent_config: dict[str, str] | None = None, success_criteria: list[str] | None = None,
                            session_id: str | None = None) -> TrackedSession:
        started = SessionStarted(objective=objective, group_id=group_id, model=model,
                                 agent_config=agent_config or {}, success_criteria=success_criteria or [])
        session = TrackedSession(self, session_id or str(uuid.uuid4()), agent_name, started)
        await session._emit(started)
        return session

    def encode(self, event: SessionEvent) -> bytes:
        """The event's bytes; ``TrackingError`` when it is over the size limit of one event."""
        value = self.codec.encode(self.topic, event)
        if len(value) > MAX_EVENT_BYTES:
            raise TrackingError(f"event of {len(value)} bytes exceeds the limit of {MAX_EVENT_BYTES} bytes per "
                                f"session event (session {event.session_id[:64]}, seq {event.seq}): shorten its "
                                "observation, tool result or metadata")
        return value

    async def emit(self, event: SessionEvent) -> None:
        """Queue one event; waits while ``max_pending`` events are unsent (backpressure)."""
        await self.emit_raw(event.session_id.encode(), self.encode(event))

    async def emit_raw(self, key: bytes, value: bytes) -> None:
        if not self.delivery.running:
            raise TrackingError("tracker is not running (use `async with Tracker(...)`)")
        await self.delivery.queue.put((key, value))

    async def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every queued event is acknowledged or spooled."""
        await asyncio.wait_for(self.delivery.queue.join(), timeout_s)

    async def wait_durable(self, timeout_s: float = 30.0) -> bool:
        """Wait until every event so far is durable (stored, on the embedded stack); True when it is."""
        return await self.delivery.wait_durable(timeout_s)

    @property
    def spooled_pending(self) -> int:
        return self.delivery.spooled_pending

    @property
    def sent(self) -> int:
        return self.delivery.stats.sent

    @property
    def spooled(self) -> int:
        return self.delivery.stats.spooled

    @property
    def resent(self) -> int:
        return self.delivery.stats.resent

    async def close(self, timeout_s: float = 30.0) -> None:
        """Wait (up to ``timeout_s``) until everything is durable, then stop. Events that are not
        stay in the spool file, for the next tracker on this data directory."""
        await self.delivery.close(timeout_s)
