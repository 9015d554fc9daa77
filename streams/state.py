"""The per-session fold: a pure function (state, event) -> state, tested without Kafka.

Idempotent by construction: ``next_seq`` says what is applied; an event below it (or already
waiting) that is byte-identical (same digest) changes nothing; one with other content is a
conflicting duplicate and is refused, as are events after the session's completion, events of a
closed session and events that would grow a session beyond ``MAX_TRAJECTORY_BYTES``. An event above
``next_seq`` waits in ``pending`` until the gap fills, is repaired from the ClickHouse mirror, or
times out. The state is small (no step bodies) because Faust writes it to a changelog on every update.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.limits import MAX_TRAJECTORY_BYTES
from schemas.models import (
    ClosedBy,
    SessionCompleted,
    SessionEvent,
    SessionStarted,
    StepRecorded,
    Timestamp,
)
from schemas.totals import RunningTotals

NO_DIGEST = "........"  # a seq below next_seq that never arrived (closed over a gap)


def record_digest(raw: bytes) -> str:
    """Identity of a record's content (its Avro body): equal for resent copies, not for conflicts."""
    return f"{zlib.crc32(memoryview(raw)[5:]):08x}"


class Origin(BaseModel):
    """Where a record sits in the log: what its dead letter names."""

    log_epoch: int = 0
    topic: str = ""
    partition: int = -1
    offset: int = -1


class Held(BaseModel):
    """An accepted record: the event, its content digest, its size and where it came from."""

    event: SessionEvent
    digest: str
    size: int = 0
    origin: Origin = Field(default_factory=Origin)

    @classmethod
    def of(cls, event: SessionEvent, digest: str = "", size: int = 0, origin: Origin | None = None) -> Held:
        """Without validation (the event is already a model); with no digest, the event id stands in."""
        return cls.model_construct(event=event, digest=digest or event.event_id.hex[:8], size=size,
                                   origin=origin or Origin())


class SessionState(RunningTotals):
    """A session's fold state; the running totals' fields (``schemas.totals``) sit flat beside these."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    agent_name: str = ""
    started: SessionStarted | None = None
    started_at: Timestamp | None = None
    next_seq: int = 0
    pending: dict[int, Held] = Field(default_factory=dict)
    digests: list[str] = Field(default_factory=list)  # per seq below next_seq (NO_DIGEST where none arrived)
    size: int = 0  # bytes of the records accepted so far (applied or pending)
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
    applied_held: list[Held] = field(default_factory=list)
    rejected: list[tuple[Held, str]] = field(default_factory=list)  # to dead-letter, with the reason
    duplicate: bool = False


def _apply(state: SessionState, held: Held) -> None:
    event = held.event
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
    state.digests.extend([NO_DIGEST] * (event.seq - state.next_seq))
    state.digests.append(held.digest)
    state.next_seq = event.seq + 1


def _digest_at(state: SessionState, seq: int) -> str:
    return state.digests[seq] if seq < len(state.digests) else NO_DIGEST


def _refusal(state: SessionState, held: Held) -> str | None:
    """Why a record that is not a plain duplicate cannot join the session, if it cannot."""
    seq = held.event.seq
    if seq < state.next_seq:
        if _digest_at(state, seq) == NO_DIGEST:
            return f"event for a closed session: seq {seq} arrived after the session was closed over its gap"
        return f"conflicting duplicate: seq {seq} already holds another event"
    if seq in state.pending:
        return f"conflicting duplicate: seq {seq} already holds another event"
    if state.completed_seq is not None and seq > state.completed_seq:
        return f"event after completion: seq {seq} follows the session_completed at seq {state.completed_seq}"
    if state.emitted is not None:
        return f"event for a closed session: seq {seq} arrived after it was closed ({state.emitted.value})"
    if state.size + held.size > MAX_TRAJECTORY_BYTES:
        return f"session too large: seq {seq} would take it past {MAX_TRAJECTORY_BYTES} bytes"
    return None


def _is_duplicate(state: SessionState, held: Held) -> bool:
    seq = held.event.seq
    if seq < state.next_seq:
        return _digest_at(state, seq) == held.digest
    waiting = state.pending.get(seq)
    return waiting is not None and waiting.digest == held.digest


def _fold_into(current: SessionState, held: Held, now: float, result: FoldResult, authoritative: bool) -> None:
    seq = held.event.seq
    if _is_duplicate(current, held):
        current.duplicates += 1
        result.duplicate = True
        return
    if authoritative and seq < current.next_seq:
        current.duplicates += 1  # applied before the state was lost and rebuilt: nothing to change
        return
    reason = _refusal(current, held)
    if reason is not None:
        result.rejected.append((held, reason))
        return
    current.size += held.size
    current.last_seen = now
    if seq > current.next_seq:
        current.pending[seq] = held
        current.gap_since = current.gap_since or now
        return
    _apply(current, held)
    result.applied.append(held.event)
    result.applied_held.append(held)
    while current.next_seq in current.pending and current.completed_seq is None:
        waiting = current.pending.pop(current.next_seq)
        _apply(current, waiting)
        result.applied.append(waiting.event)
        result.applied_held.append(waiting)
    if current.completed_seq is not None:  # what waited beyond the completion can never join
        for late in sorted(s for s in current.pending if s > current.completed_seq):
            waiting = current.pending.pop(late)
            current.size -= waiting.size
            result.rejected.append((waiting, f"event after completion: seq {late} follows the "
                                             f"session_completed at seq {current.completed_seq}"))
    current.gap_since = now if current.pending else None


def fold(state: SessionState | None, event: SessionEvent | Held, now: float) -> FoldResult:
    """Apply ``event`` to ``state`` (None for a session not seen yet); never mutates the input."""
    return fold_many(state, [event], now)


def fold_many(state: SessionState | None, events: Sequence[SessionEvent | Held], now: float, *,
              owned: bool = False, authoritative: bool = False) -> FoldResult:
    """Fold several events of one session (one copy of the state, not one per event), in seq order.

    ``owned``: the caller hands over ``state`` (e.g. just parsed from the table), so it is updated in
    place instead of deep-copied first; otherwise the input is never mutated. ``authoritative``: the
    events come from the mirror (the first of each seq the log carried), so they win over a
    different pending event of the same seq.
    """
    held = [e if isinstance(e, Held) else Held.of(e) for e in events]
    held.sort(key=lambda h: h.event.seq)
    if state is None:
        current = SessionState(session_id=held[0].event.session_id)
    else:
        current = state if owned else state.model_copy(deep=True)
    result = FoldResult(current)
    for h in held if authoritative else ():  # the mirror kept the first of the log: it wins
        loser = current.pending.get(h.event.seq)
        if loser is not None and loser.digest != h.digest:
            current.pending[h.event.seq] = h
            current.size += h.size - loser.size
            result.rejected.append((loser, f"conflicting duplicate: seq {h.event.seq} already holds another event"))
    for h in held:
        _fold_into(current, h, now, result, authoritative)
    result.duplicate = result.duplicate and not result.applied and not result.rejected
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
