"""The proxy's open sessions: who a call belongs to, and the steps waiting for the agent's next move.

A call's steps stay pending until the same conversation calls again (its ``tool`` messages are the
results of the pending UseTool steps) or the session completes (explicitly, or by idle timeout), so
each step is emitted once, whole, in order, through the tracking SDK. No HTTP in here.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agents.capture.chat import Turn, extend_key, new_turn, prefix_keys
from agents.capture.deadletters import DeadLetters
from agents.capture.steps import (
    OBJECTIVE_LIMIT,
    Completion,
    PendingStep,
    answer_text,
    call_cost,
    call_steps,
    clip,
    closing_status,
    error_step,
    with_outcome,
    with_tool_result,
)
from agents.tracking import TrackedSession, Tracker
from schemas.models import SessionStatus, StepRecorded

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Identity:
    """What the agent said about itself (``X-ART-*`` headers); all optional."""

    session_id: str | None = None
    agent: str = "proxy"
    group: str | None = None
    objective: str | None = None


@dataclass
class OpenSession:
    session_id: str
    named: bool  # by header (else found by conversation prefix)
    tracked: TrackedSession | None = None
    pending: list[PendingStep] = field(default_factory=list)
    last_key: str = ""
    last_step: StepRecorded | None = None
    last_answer: str | None = None
    last_seen: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Call:
    """One call in progress: its session, what it adds, and the conversation key before the answer."""

    session: OpenSession
    turn: Turn
    key: str
    started: float = field(default_factory=time.monotonic)
    settled: bool = False  # answered or failed


class UnknownSession(KeyError):
    """``complete`` named a session that is not open."""


class SessionBook:
    def __init__(self, tracker: Tracker, *, idle_timeout_s: float = 300.0,
                 prices: Mapping[str, Sequence[float]] | None = None, remember_completed: int = 100_000,
                 dead: DeadLetters | None = None) -> None:
        self.tracker = tracker
        self.dead = dead
        self.idle_timeout_s = idle_timeout_s
        self.prices = dict(prices or {})
        self.open: dict[str, OpenSession] = {}
        self.by_prefix: dict[str, deque[str]] = {}
        self.completed: OrderedDict[str, int] = OrderedDict()  # id -> times its name was reused since
        self.remember_completed = remember_completed

    # --- identity ---------------------------------------------------------------------------

    def _resolve(self, identity: Identity, messages: Sequence[Any], keys: list[str]) -> tuple[OpenSession, int]:
        """The session a request belongs to and how many of its messages that session already saw."""
        if identity.session_id:
            sid = self._fresh_name(identity.session_id)
            session = self.open.get(sid)
            if session is None:
                session = self.open[sid] = OpenSession(sid, named=True)
                return session, 0
            for k in range(len(keys) - 1, 0, -1):
                if keys[k] == session.last_key:
                    return session, k
            last_assistant = max((i + 1 for i, m in enumerate(messages)
                                  if isinstance(m, dict) and m.get("role") == "assistant"), default=0)
            return session, last_assistant  # history rewritten: what follows the last answer is new
        for k in range(len(keys) - 1, 0, -1):
            message = messages[k - 1]
            if isinstance(message, dict) and message.get("role") == "assistant" and keys[k] in self.by_prefix:
                waiting = self.by_prefix[keys[k]]
                sid = waiting.popleft()
                if not waiting:
                    del self.by_prefix[keys[k]]
                return self.open[sid], k
        sid = str(uuid.uuid4())
        session = self.open[sid] = OpenSession(sid, named=False)
        return session, 0

    def _fresh_name(self, sid: str) -> str:
        """A named session that already completed cannot take more events (the stream would drop
        them as duplicates), so reusing its name opens ``<name>-2``, ``<name>-3``, …"""
        if sid in self.open or sid not in self.completed:
            return sid
        self.completed[sid] += 1
        return self._fresh_name(f"{sid}-{self.completed[sid] + 1}")

    # --- calls ------------------------------------------------------------------------------

    async def begin(self, identity: Identity, messages: Sequence[Any], model: str) -> Call:
        """Before forwarding: find the session, emit the steps this request completes."""
        keys = prefix_keys(messages)
        session, seen = self._resolve(identity, messages, keys)
        session.in_flight += 1
        session.last_seen = time.monotonic()
        turn = new_turn(messages[seen:])
        async with session.lock:
            if not self._is_open(session):  # completed while this call waited for it: start afresh
                session.in_flight -= 1
                return await self.begin(identity, messages, model)
            if session.tracked is None:
                first = new_turn(messages)
                objective = identity.objective or first.first_user or first.observation
                config = {"source": "proxy"} | ({"system_prompt": clip(first.system_prompt, OBJECTIVE_LIMIT)}
                                                if first.system_prompt else {})
                session.tracked = await self.tracker.start_session(
                    agent_name=identity.agent, objective=clip(objective, OBJECTIVE_LIMIT), group_id=identity.group,
                    model=model, agent_config=config, session_id=session.session_id)
            await self._flush(session, turn.tool_results)
        return Call(session, turn, keys[-1])

    async def answered(self, call: Call, completion: Completion, at: datetime) -> None:
        """After the upstream answered: the call's steps wait for the agent's next move."""
        session = call.session
        call.settled = True
        elapsed = int((time.monotonic() - call.started) * 1000)
        cost = call_cost(completion.model, completion.usage, self.prices)
        steps = call_steps(call.turn.observation, completion, at=at, execution_time_ms=elapsed, cost=cost)
        async with session.lock:
            if await self._orphaned(session, steps):
                return
            session.pending.extend(steps)
            session.last_step = steps[-1].step
            session.last_answer = answer_text(steps[-1].step) or session.last_answer
            if self._is_open(session):
                session.last_key = extend_key(call.key, completion)
                if not session.named:
                    self.by_prefix.setdefault(session.last_key, deque()).append(session.session_id)
        self._end_call(session)

    async def failed(self, call: Call, error: str, at: datetime) -> None:
        """The call failed (upstream error status, unreachable upstream, broken stream)."""
        call.settled = True
        elapsed = int((time.monotonic() - call.started) * 1000)
        step = error_step(call.turn.observation, error, at=at, execution_time_ms=elapsed)
        async with call.session.lock:
            if await self._orphaned(call.session, [step]):
                return
            call.session.pending.append(step)
            call.session.last_step = step.step
            if self._is_open(call.session) and not call.session.named:
                call.session.last_key = call.key  # a retry of the same request continues the session
                self.by_prefix.setdefault(call.key, deque()).append(call.session.session_id)
        self._end_call(call.session)

    def _is_open(self, session: OpenSession) -> bool:
        return self.open.get(session.session_id) is session

    async def _orphaned(self, session: OpenSession, steps: list[PendingStep]) -> bool:
        """A call that finished after its session was completed cannot join it: dead-letter its steps."""
        if self._is_open(session):
            return False
        self._end_call(session)
        for item in steps:
            reason = f"proxy: call finished after session {session.session_id} completed"
            log.warning("%s", reason)
            if self.dead is not None:
                await self.dead.put(item.step.model_dump_json().encode(), reason)
        return True

    def _end_call(self, session: OpenSession) -> None:
        session.in_flight -= 1
        session.last_seen = time.monotonic()

    async def _flush(self, session: OpenSession, results: Mapping[str, str]) -> None:
        """Emit the pending steps (with their tool results, when this request carries them)."""
        assert session.tracked is not None
        pending, session.pending = session.pending, []
        for item in pending:
            if item.tool_call_id is not None and item.tool_call_id in results:
                item = with_tool_result(item, results[item.tool_call_id])
            await session.tracked.record(item.step)

    # --- completion -------------------------------------------------------------------------

    async def complete(self, session_id: str, *, status: SessionStatus | None = None, final_answer: str | None = None,
                       outcome: str | None = None, reward: float | None = None) -> dict[str, Any]:
        session = self.open.get(session_id)
        if session is None or session.tracked is None:
            raise UnknownSession(session_id)
        async with session.lock:
            if not self._is_open(session):
                raise UnknownSession(session_id)
            rewarded = False
            if session.pending and (reward is not None or outcome):
                session.pending[-1] = with_outcome(session.pending[-1], reward=reward, outcome=outcome)
                rewarded = True
            await self._flush(session, {})
            status = status or closing_status(session.last_step)
            answer = final_answer if final_answer is not None else session.last_answer
            await session.tracked.complete(answer, status)
            self._forget(session)
        return {"session_id": session_id, "status": status.value, "final_answer": answer,
                "steps": session.tracked.step_count, "outcome_recorded": rewarded}

    def _forget(self, session: OpenSession) -> None:
        self.open.pop(session.session_id, None)
        waiting = self.by_prefix.get(session.last_key)
        if waiting is not None and session.session_id in waiting:
            waiting.remove(session.session_id)
            if not waiting:
                del self.by_prefix[session.last_key]
        if session.named:
            self.completed[session.session_id] = 0
            while len(self.completed) > self.remember_completed:
                self.completed.popitem(last=False)

    async def sweep(self, now: float | None = None) -> int:
        """Complete the sessions idle for ``idle_timeout_s`` (none with a call in flight)."""
        now = time.monotonic() if now is None else now
        idle = [s for s in self.open.values()
                if s.in_flight == 0 and s.tracked is not None and now - s.last_seen >= self.idle_timeout_s]
        for session in idle:
            try:
                await self.complete(session.session_id)
            except UnknownSession:
                continue  # completed meanwhile
        return len(idle)

    async def close_all(self) -> int:
        """On shutdown: complete every open session as the idle rule would (nothing left pending)."""
        count = 0
        for session in list(self.open.values()):
            if session.tracked is None:
                continue
            try:
                await self.complete(session.session_id)
                count += 1
            except UnknownSession:
                continue
        return count
