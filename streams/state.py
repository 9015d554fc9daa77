"""The per-session fold: a pure function (state, event) -> state, tested without Kafka.

Idempotent by construction: ``next_seq`` says what is applied; an event below it (or already
waiting) changes nothing; an event above it waits in ``pending`` until the gap fills, is repaired
from the ClickHouse mirror, or times out. The state is small (no step bodies) because Faust writes
it to a changelog on every update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ConfigDict, Field

from schemas.models import (
    ClosedBy,
    SessionCompleted,
    SessionEvent,
    SessionStarted,
    StepRecorded,
    Timestamp,
)
from schemas.totals import RunningTotals


class SessionState(RunningTotals):
    """A session's fold state; the running totals' fields (``schemas.totals``) sit flat beside these."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    agent_name: str = ""
    started: SessionStarted | None = None
    started_at: Timestamp | None = None
    next_seq: int = 0
    pending: dict[int, SessionEvent] = Field(default_factory=dict)
    completed: SessionCompleted | None = None
    completed_seq: int | None = None
    completed_at: Timestamp | None = None
    last_event_at: Timestamp | None = None
    step_seqs: list[int] = Field(default_factory=list)
    last_seen: float = 0.0  # processing clock (time.time) of the last event, for the idle timeout
    gap_since: float | None = None  # processing clock when the oldest pending event arrived
    duplicates: int = 0
    emitted: ClosedBy | None = None

    @property
    def ready(self) -> bool:
        """Every event up to and including the completion has been applied."""
        return self.completed_seq is not None and self.next_seq > self.completed_seq

    def missing_seqs(self) -> list[int]:
        """Seqs below the highest seen that have not arrived."""
        top = max(self.pending) if self.pending else self.next_seq - 1
        return [s for s in range(self.next_seq, top) if s not in self.pending]


@dataclass
class FoldResult:
    state: SessionState
    applied: list[SessionEvent] = field(default_factory=list)  # newly applied, in seq order
    duplicate: bool = False


def _apply(state: SessionState, event: SessionEvent) -> None:
    payload = event.payload
    if isinstance(payload, SessionStarted):
        state.started = payload
        state.agent_name = event.agent_name
        state.started_at = event.ts
    elif isinstance(payload, StepRecorded):
        state.step_seqs.append(event.seq)
        state.add(payload)
    elif isinstance(payload, SessionCompleted):
        state.completed = payload
        state.completed_seq = event.seq
        state.completed_at = event.ts
    state.agent_name = state.agent_name or event.agent_name
    state.last_event_at = event.ts
    state.next_seq = event.seq + 1


def _fold_into(current: SessionState, event: SessionEvent, now: float, result: FoldResult) -> None:
    if event.seq < current.next_seq or event.seq in current.pending or current.emitted is not None:
        current.duplicates += 1
        result.duplicate = True
        return
    current.last_seen = now
    if event.seq > current.next_seq:
        current.pending[event.seq] = event
        current.gap_since = current.gap_since or now
        return
    _apply(current, event)
    result.applied.append(event)
    while current.next_seq in current.pending:
        waiting = current.pending.pop(current.next_seq)
        _apply(current, waiting)
        result.applied.append(waiting)
    current.gap_since = now if current.pending else None


def fold(state: SessionState | None, event: SessionEvent, now: float) -> FoldResult:
    """Apply ``event`` to ``state`` (None for a session not seen yet); never mutates the input."""
    return fold_many(state, [event], now)


def fold_many(state: SessionState | None, events: list[SessionEvent], now: float, *,
              owned: bool = False) -> FoldResult:
    """Fold several events of one session (one copy of the state, not one per event).

    ``owned``: the caller hands over ``state`` (e.g. just parsed from the table), so it is updated in
    place instead of deep-copied first; otherwise the input is never mutated.
    """
    if state is None:
        current = SessionState(session_id=events[0].session_id)
    else:
        current = state if owned else state.model_copy(deep=True)
    result = FoldResult(current)
    for event in events:
        _fold_into(current, event, now, result)
    result.duplicate = result.duplicate and not result.applied
    return result


def due_closure(state: SessionState, now: float, idle_timeout_s: float, gap_timeout_s: float) -> ClosedBy | None:
    """Why this session should be closed now, if at all."""
    if state.emitted is not None:
        return None
    if state.ready:
        return ClosedBy.completed
    if state.gap_since is not None and now - state.gap_since >= gap_timeout_s:
        return ClosedBy.gap_timeout
    if now - state.last_seen >= idle_timeout_s:
        return ClosedBy.idle_timeout
    return None


def force_close(state: SessionState, reason: ClosedBy) -> SessionState:
    """Give up on the gap: apply what waits beyond it, record what never came."""
    closed = state.model_copy(deep=True)
    for seq in sorted(closed.pending):
        _apply(closed, closed.pending.pop(seq))
    closed.gap_since = None
    closed.emitted = reason
    return closed


def completed_at(state: SessionState) -> datetime | None:
    return state.completed_at or state.last_event_at
