"""The session fold as a pure function: idempotent, order-insensitive, gaps detected."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from schemas.limits import MAX_TRAJECTORY_BYTES
from schemas.models import (
    ClosedBy,
    SessionCompleted,
    SessionEvent,
    SessionStarted,
    SessionStatus,
    StepRecorded,
    Think,
    UseTool,
)
from streams.assembly import assemble, trajectory_event_id
from streams.state import Held, SessionState, due_closure, fold, fold_many, force_close

T0 = datetime(2026, 11, 25, tzinfo=UTC)


def session(n_steps: int = 3, sid: str = "s1") -> list[SessionEvent]:
    events = [SessionEvent(session_id=sid, seq=0, ts=T0, agent_name="a", payload=SessionStarted(
        objective="o", group_id="g", model="m", success_criteria=["x"]))]
    for i in range(n_steps):
        events.append(SessionEvent(session_id=sid, seq=i + 1, ts=T0 + timedelta(seconds=i + 1), agent_name="a",
                                   payload=StepRecorded(step_number=i, observation="", thought="t",
                                                        action=UseTool(tool=f"t{i % 2}", input=str(i)),
                                                        error="e" if i == 1 else None, tokens=10 * (i + 1),
                                                        cost=0.5, execution_time_ms=100, timestamp=T0)))
    events.append(SessionEvent(session_id=sid, seq=n_steps + 1, ts=T0 + timedelta(seconds=99), agent_name="a",
                               payload=SessionCompleted(final_answer="x", status=SessionStatus.succeeded)))
    return events


def fold_all(events: list[SessionEvent], state: SessionState | None = None) -> SessionState:
    for event in events:
        state = fold(state, event, now=1.0).state
    assert state is not None
    return state


def test_in_order_fold_totals() -> None:
    state = fold_all(session())
    assert state.ready and state.next_seq == 5 and state.completed_seq == 4
    assert (state.step_count, state.total_tokens, state.total_cost) == (3, 60, 1.5)
    assert (state.tools_used, state.error_count, state.execution_time_ms) == (["t0", "t1"], 1, 300)
    assert state.metadata().efficiency == 2 / 3
    assert state.step_seqs == [1, 2, 3]


def test_duplicates_change_nothing_and_are_counted() -> None:
    events = session()
    once = fold_all(events)
    twice = fold_all(events + events)
    assert twice.model_dump(exclude={"duplicates"}) == once.model_dump(exclude={"duplicates"})
    assert twice.duplicates == 5
    result = fold(once, events[2], now=2.0)
    assert result.duplicate and result.applied == [] and result.state.last_seen == once.last_seen


def test_any_order_gives_the_same_state() -> None:
    events = session(8)
    reference = fold_all(events)
    rng = random.Random(7)
    for _ in range(20):
        shuffled = events + rng.sample(events, 4)
        rng.shuffle(shuffled)
        state = fold_all(shuffled)
        assert state.model_dump(exclude={"duplicates", "gap_since"}) == reference.model_dump(
            exclude={"duplicates", "gap_since"})
        assert state.pending == {}


def test_gap_waits_then_fills() -> None:
    events = session(3)
    result = fold_many(None, [events[0], events[2], events[3]], now=10.0)
    assert [e.seq for e in result.applied] == [0]
    state = result.state
    assert sorted(state.pending) == [2, 3] and state.gap_since == 10.0 and state.missing_seqs() == [1]
    filled = fold(state, events[1], now=11.0)
    assert [e.seq for e in filled.applied] == [1, 2, 3]
    assert filled.state.pending == {} and filled.state.gap_since is None and filled.state.next_seq == 4


def test_closure_reasons() -> None:
    events = session(3)
    assert due_closure(fold_all(events), 1.0, 300, 30) is ClosedBy.completed
    gapped = fold_many(None, [events[0], events[2]], now=0.0).state
    assert due_closure(gapped, 29.0, 300, 30) is None
    assert due_closure(gapped, 30.0, 300, 30) is ClosedBy.gap_timeout
    idle = fold_many(None, events[:2], now=0.0).state
    assert due_closure(idle, 299.0, 300, 30) is None
    assert due_closure(idle, 300.0, 300, 30) is ClosedBy.idle_timeout
    closed = force_close(gapped, ClosedBy.gap_timeout)
    assert closed.emitted is ClosedBy.gap_timeout and closed.step_seqs == [2] and closed.pending == {}
    late = fold(closed, events[1], now=1.0)  # the seq it was closed without arrives too late
    assert late.state == closed and late.applied == []
    assert late.rejected == [(Held.of(events[1]), "event for a closed session: seq 1 arrived after the session "
                                                  "was closed over its gap")]
    assert fold(closed, events[2], now=1.0).duplicate  # a copy of what it holds changes nothing


def test_assemble_uses_step_bodies_and_reports_missing() -> None:
    events = session(3)
    state = fold_all(events)
    steps = {e.seq: e.payload for e in events if isinstance(e.payload, StepRecorded)}
    traj = assemble(state, steps, ClosedBy.completed, [])
    assert traj.event_id == trajectory_event_id("s1")
    assert [s.seq for s in traj.steps] == [1, 2, 3] and traj.missing_seqs == []
    assert (traj.objective, traj.group_id, traj.final_answer, traj.status) == ("o", "g", "x", SessionStatus.succeeded)
    assert traj.started_at == T0 and traj.completed_at == T0 + timedelta(seconds=99)
    partial = assemble(state, {1: steps[1]}, ClosedBy.gap_timeout, [])
    assert partial.missing_seqs == [2, 3] and len(partial.steps) == 1


def test_session_without_start_still_closes_on_timeout() -> None:
    step = SessionEvent(session_id="s2", seq=1, ts=T0, agent_name="b", payload=StepRecorded(
        step_number=0, observation="", thought="", action=Think(), timestamp=T0))
    state = fold(None, step, now=0.0).state
    assert state.missing_seqs() == [0]
    closed = force_close(state, ClosedBy.gap_timeout)
    traj = assemble(closed, {1: step.payload}, ClosedBy.gap_timeout, state.missing_seqs())
    assert traj.missing_seqs == [0] and traj.objective == "" and traj.agent_name == "b"


def test_conflicting_duplicates_are_refused_and_the_first_stays() -> None:
    events = session(3)
    state = fold_all(events[:3])
    other = events[2].model_copy(update={"event_id": uuid4()})  # same seq, other content
    result = fold(state, other, now=2.0)
    assert result.applied == [] and result.state.model_dump(exclude={"last_seen"}) == state.model_dump(
        exclude={"last_seen"})
    assert result.rejected == [(Held.of(other), "conflicting duplicate: seq 2 already holds another event")]
    gapped = fold_many(None, [events[0], events[3]], now=0.0).state  # seq 3 waits for seq 2
    waiting = fold(gapped, events[3].model_copy(update={"event_id": uuid4()}), now=1.0)
    assert [r for _, r in waiting.rejected] == ["conflicting duplicate: seq 3 already holds another event"]
    assert waiting.state.pending[3].event == events[3]


def test_events_after_completion_are_refused_in_any_order() -> None:
    events = session(2)  # 0 start, 1-2 steps, 3 completed
    late = SessionEvent(session_id="s1", seq=4, ts=T0, agent_name="a", payload=StepRecorded(
        step_number=2, observation="late", thought="", action=Think(), timestamp=T0))
    reason = "event after completion: seq 4 follows the session_completed at seq 3"
    in_order = fold_many(None, [*events, late], now=1.0)
    assert in_order.state.ready and in_order.state.step_seqs == [1, 2]
    assert in_order.rejected == [(Held.of(late), reason)]
    # the late step waits for the gap before the completion, then is refused when it fills
    first = fold_many(None, [events[0], events[1], late, events[3]], now=1.0)
    assert first.rejected == [] and sorted(first.state.pending) == [3, 4]
    filled = fold(first.state, events[2], now=2.0)
    assert filled.state.ready and filled.state.step_seqs == [1, 2] and filled.state.pending == {}
    assert filled.rejected == [(Held.of(late), reason)]


def test_a_session_may_not_grow_past_the_trajectory_limit() -> None:
    events = session(3)
    big = MAX_TRAJECTORY_BYTES // 3
    held = [Held.of(e, size=big if 0 < e.seq < 4 else 100) for e in events]
    result = fold_many(None, held, now=1.0)
    assert [e.seq for e in result.applied] == [0, 1, 2]
    assert [(h.event.seq, r) for h, r in result.rejected] == [
        (3, f"session too large: seq 3 would take it past {MAX_TRAJECTORY_BYTES} bytes")]
    assert result.state.size == 200 + 2 * big and sorted(result.state.pending) == [4]  # the rest waits: gap


def test_the_mirror_wins_over_a_different_pending_event() -> None:
    events = session(3)
    gapped = fold_many(None, [events[0], events[2].model_copy(update={"event_id": uuid4()})], now=0.0).state
    repaired = fold_many(gapped, events[1:3], now=1.0, authoritative=True)
    assert [e.seq for e in repaired.applied] == [1, 2] and repaired.applied[1] == events[2]
    assert [(h.event.seq, r) for h, r in repaired.rejected] == [
        (2, "conflicting duplicate: seq 2 already holds another event")]
