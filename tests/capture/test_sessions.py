"""The proxy's session book on an in-memory recorder: who a call belongs to, what waits, what ends.
(The real SDK path is covered end to end in test_proxy.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.capture.chat import completion_from_body
from agents.capture.sessions import Identity, SessionBook, UnknownSession
from schemas.models import SessionStatus, StepRecorded, utcnow


@dataclass
class MemorySession:
    session_id: str
    started: dict[str, Any]
    steps: list[StepRecorded] = field(default_factory=list)
    completed: tuple[str | None, SessionStatus] | None = None

    @property
    def step_count(self) -> int:
        return len(self.steps)

    async def record(self, step: StepRecorded) -> int:
        assert self.completed is None
        self.steps.append(step.model_copy(update={"step_number": len(self.steps)}))
        return len(self.steps)

    async def complete(self, final_answer: str | None, status: SessionStatus) -> None:
        self.completed = (final_answer, status)


@dataclass
class MemoryTracker:
    sessions: list[MemorySession] = field(default_factory=list)

    async def start_session(self, *, session_id: str, **started: Any) -> MemorySession:
        self.sessions.append(MemorySession(session_id, started))
        return self.sessions[-1]


def answer(text: str, tokens: int = 3) -> Any:
    return completion_from_body({"model": "m", "usage": {"total_tokens": tokens},
                                 "choices": [{"message": {"role": "assistant", "content": text}}]})


def tool_call(call_id: str, name: str) -> Any:
    return completion_from_body({"model": "m", "choices": [{"message": {"role": "assistant", "content": None,
                                 "tool_calls": [{"id": call_id, "function": {"name": name, "arguments": "{}"}}]}}]})


def book() -> tuple[SessionBook, MemoryTracker]:
    tracker = MemoryTracker()
    return SessionBook(tracker, idle_timeout_s=10), tracker  # type: ignore[arg-type]


async def test_identical_conversations_stay_apart_and_each_continues_its_own() -> None:
    sessions, tracker = book()
    first = [{"role": "user", "content": "same question"}]
    a = await sessions.begin(Identity(), first, "m")
    b = await sessions.begin(Identity(), first, "m")
    await sessions.answered(a, answer("same answer"), utcnow())
    await sessions.answered(b, answer("same answer"), utcnow())
    follow = [*first, {"role": "assistant", "content": "same answer"}, {"role": "user", "content": "more"}]
    c = await sessions.begin(Identity(), follow, "m")
    d = await sessions.begin(Identity(), follow, "m")
    assert a.session.session_id != b.session.session_id
    assert {c.session.session_id, d.session.session_id} == {a.session.session_id, b.session.session_id}
    assert [len(s.steps) for s in tracker.sessions] == [1, 1]  # each answer emitted when its successor came
    unrelated = await sessions.begin(Identity(), [{"role": "user", "content": "new"}], "m")
    assert len(tracker.sessions) == 3 and unrelated.session.session_id not in {a.session.session_id,
                                                                               b.session.session_id}


async def test_a_pending_tool_step_gets_its_result_from_the_next_request() -> None:
    sessions, tracker = book()
    messages: list[Any] = [{"role": "user", "content": "go"}]
    call = await sessions.begin(Identity(session_id="s"), messages, "m")
    await sessions.answered(call, tool_call("c1", "lookup"), utcnow())
    assert tracker.sessions[0].steps == []  # waits for its result
    messages += [{"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": "{}"}}]},
                 {"role": "tool", "tool_call_id": "c1", "content": "found it"}]
    call = await sessions.begin(Identity(session_id="s"), messages, "m")
    [step] = tracker.sessions[0].steps
    assert (step.tool_result, step.observation) == ("found it", "go")
    await sessions.answered(call, answer("done"), utcnow())
    result = await sessions.complete("s", reward=0.5)
    assert result == {"session_id": "s", "status": "succeeded", "final_answer": "done", "steps": 2,
                      "outcome_recorded": True}
    assert tracker.sessions[0].steps[-1].step_reward == 0.5
    assert tracker.sessions[0].completed == ("done", SessionStatus.succeeded)


async def test_a_completed_name_used_again_opens_a_new_session() -> None:
    sessions, tracker = book()
    for _ in range(3):
        call = await sessions.begin(Identity(session_id="run"), [{"role": "user", "content": "x"}], "m")
        await sessions.answered(call, answer("y"), utcnow())
        await sessions.complete(call.session.session_id)
    assert [s.session_id for s in tracker.sessions] == ["run", "run-2", "run-3"]
    try:
        await sessions.complete("run")
        raise AssertionError("a completed session completed twice")
    except UnknownSession:
        pass


async def test_idle_sessions_complete_by_the_rule_and_calls_in_flight_are_spared() -> None:
    sessions, tracker = book()
    done = await sessions.begin(Identity(session_id="answered"), [{"role": "user", "content": "q"}], "m")
    await sessions.answered(done, answer("a"), utcnow())
    midway = await sessions.begin(Identity(session_id="midway"), [{"role": "user", "content": "q"}], "m")
    await sessions.answered(midway, tool_call("c", "t"), utcnow())
    broken = await sessions.begin(Identity(session_id="broken"), [{"role": "user", "content": "q"}], "m")
    await sessions.failed(broken, "upstream answered 500: boom", utcnow())
    await sessions.begin(Identity(session_id="busy"), [{"role": "user", "content": "q"}], "m")
    assert await sessions.sweep(now=done.session.last_seen + 9) == 0
    assert await sessions.sweep(now=done.session.last_seen + 60) == 3
    assert {s.session_id: s.completed for s in tracker.sessions} == {
        "answered": ("a", SessionStatus.succeeded), "midway": (None, SessionStatus.cancelled),
        "broken": (None, SessionStatus.error), "busy": None}
    assert list(sessions.open) == ["busy"]
