"""Poison records of every kind the pipeline must refuse, and good sessions to mix them with.

Each poison record is bad by construction, so the stream must dead-letter every one of them
(dead letters == poison sent) while good sessions around them land exactly. Kinds that copy a good
session (bit flips, conflicting duplicates, events after completion) are made from sessions already
sent, with the same key, so they follow their original in the log.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from schemas.codec import HEADER, Codec
from schemas.limits import MAX_EVENT_BYTES, MAX_SEQ
from schemas.models import (
    DeadLetter,
    SessionCompleted,
    SessionEvent,
    SessionStarted,
    SessionStatus,
    StepRecorded,
    Think,
    UseTool,
    utcnow,
)

Record = tuple[bytes, bytes]  # key, value
T0 = datetime(2026, 11, 25, tzinfo=UTC)


def good_session(session_id: str, steps: int, agent: str = "fuzz-good") -> list[SessionEvent]:
    """A complete session with known contents: start, ``steps`` steps (tokens = step number), completion."""
    events = [SessionEvent(session_id=session_id, seq=0, agent_name=agent, ts=T0, payload=SessionStarted(
        objective=f"fuzz {session_id[:40]}", model="m", group_id=None))]
    events += [SessionEvent(session_id=session_id, seq=i + 1, agent_name=agent, ts=T0 + timedelta(seconds=i + 1),
                            payload=StepRecorded(step_number=i, observation=f"o{i}", thought="t", tokens=i, cost=0.5,
                                                 action=UseTool(tool="calc", input=str(i)), timestamp=T0))
               for i in range(steps)]
    events.append(SessionEvent(session_id=session_id, seq=steps + 1, agent_name=agent, ts=T0 + timedelta(hours=1),
                               payload=SessionCompleted(final_answer="ok", status=SessionStatus.succeeded)))
    return events


def _step(**fields: object) -> StepRecorded:
    """A step that skips validation, so it can carry what the models refuse."""
    values: dict[str, Any] = dict(kind="step_recorded", step_number=0, observation="o", thought="t",
                                     action=Think(), action_input="", tool_result=None, error=None, reflection=None,
                                     step_reward=None, step_metadata={}, timestamp=T0, execution_time_ms=0, tokens=0,
                                     cost=0.0, completions=[])
    return StepRecorded.model_construct(**(values | fields))


def _event(session_id: str, seq: int, payload: object, **fields: object) -> SessionEvent:
    values: dict[str, Any] = dict(event_id=uuid.uuid4(), session_id=session_id, seq=seq, ts=T0,
                                     agent_name="fuzz-bad", payload=payload)
    return SessionEvent.model_construct(**(values | fields))


@dataclass
class Poisoner:
    """Makes poison records for ``topic``; ``sent`` are good sessions already in the log."""

    codec: Codec
    topic: str
    rng: random.Random
    sent: list[list[SessionEvent]] = field(default_factory=list)

    def encode(self, event: SessionEvent) -> bytes:
        return self.codec.encode(self.topic, event)

    def fresh(self) -> str:
        return f"bad-{uuid.UUID(int=self.rng.getrandbits(128))}"

    def bad_step(self, **fields: object) -> Record:
        sid = self.fresh()
        return sid.encode(), self.encode(_event(sid, 1 + self.rng.randrange(5), _step(**fields)))

    def source(self) -> list[SessionEvent]:
        return self.rng.choice(self.sent)

    # --- the kinds ----------------------------------------------------------------------

    def garbage(self) -> Record:
        return self.fresh().encode(), self.rng.randbytes(self.rng.randrange(1, 200))

    def truncated(self) -> Record:
        key, value = self.bad_step()
        return key, value[:self.rng.randrange(HEADER.size, len(value) - 1)]

    def bad_magic(self) -> Record:
        key, value = self.bad_step()
        return key, bytes([self.rng.randrange(1, 256)]) + value[1:]

    def unknown_schema(self) -> Record:
        key, value = self.bad_step()
        return key, HEADER.pack(0, 2_000_000_000 + self.rng.randrange(10**6)) + value[HEADER.size:]

    def trailing_bytes(self) -> Record:
        key, value = self.bad_step()
        return key, value + self.rng.randbytes(self.rng.randrange(1, 16))

    def bit_flip(self) -> Record:
        event = self.rng.choice(self.source()[1:])  # never the start: a flipped start could be a valid session
        value = bytearray(self.encode(event))
        for bit in self.rng.sample(range(8 * HEADER.size, 8 * len(value)), self.rng.randrange(1, 4)):
            value[bit // 8] ^= 1 << bit % 8  # distinct bits: two flips of one bit would give the original back
        return event.session_id.encode(), bytes(value)

    def non_finite(self) -> Record:
        number = self.rng.choice([float("nan"), float("inf"), float("-inf"), 1e308])
        return self.bad_step(**{self.rng.choice(["cost", "step_reward"]): number})

    def bad_time(self) -> Record:
        if self.rng.random() < 0.5:
            sid = self.fresh()
            ts = self.rng.choice([2**62, -(2**62), 10**17, 0])
            return sid.encode(), self.encode(_event(sid, 1, _step(), ts=ts))
        return self.bad_step(timestamp=self.rng.choice([2**62, 10**17, 1]))

    def bad_count(self) -> Record:
        return self.bad_step(**{self.rng.choice(["tokens", "execution_time_ms", "step_number"]):
                                self.rng.choice([-1, 2**62])})

    def bad_seq(self) -> Record:
        sid = self.fresh()
        seq, payload = self.rng.choice([(MAX_SEQ + 1, _step()), (10**6, _step()), (-3, _step()), (0, _step()),
                                        (4, SessionStarted(objective="o", model="m"))])
        return sid.encode(), self.encode(_event(sid, seq, payload))

    def empty_session_id(self) -> Record:
        return b"", self.encode(_event("", 1, _step()))

    def oversize(self) -> Record:
        return self.bad_step(observation="x" * (MAX_EVENT_BYTES + self.rng.randrange(1, 4096)))

    def invalid_utf8(self) -> Record:
        sid = self.fresh()
        value = bytearray(self.encode(_event(sid, 1, _step(observation="poison-here"))))
        at = value.index(b"poison-here")
        value[at + self.rng.randrange(len("poison-here"))] = self.rng.choice([0xFF, 0xC3, 0x80])
        return sid.encode(), bytes(value)

    def key_mismatch(self) -> Record:
        sid = self.fresh()
        event = _event(sid, 0, SessionStarted(objective="o", model="m"))
        return self.fresh().encode(), self.encode(event)

    def wrong_record(self) -> Record:
        letter = DeadLetter(source_topic=self.topic, source_partition=0, source_offset=0, raw=b"x", reason="fake")
        return self.fresh().encode(), self.codec.encode(self.topic, letter)

    def unknown_session(self) -> Record:
        sid = self.fresh()
        done = SessionCompleted(final_answer="?", status=SessionStatus.succeeded)
        return sid.encode(), self.encode(_event(sid, 1 + self.rng.randrange(20), done, ts=utcnow()))

    def after_completion(self) -> Record:
        session = self.source()
        sid = session[0].session_id
        return sid.encode(), self.encode(_event(sid, session[-1].seq + 1 + self.rng.randrange(3),
                                                _step(observation="late")))

    def conflicting_duplicate(self) -> Record:
        original = self.rng.choice(self.source())
        copy = original.model_copy(update={"event_id": uuid.uuid4()})
        return original.session_id.encode(), self.encode(copy)

    KINDS: ClassVar[tuple[str, ...]] = (
        "garbage", "truncated", "bad_magic", "unknown_schema", "trailing_bytes", "bit_flip", "non_finite", "bad_time",
        "bad_count", "bad_seq", "empty_session_id", "oversize", "invalid_utf8", "key_mismatch", "wrong_record",
        "unknown_session", "after_completion", "conflicting_duplicate")
    RARE: ClassVar[dict[str, float]] = {"oversize": 0.05}  # half a megabyte each: a few are enough

    def kind(self, name: str) -> Callable[[], Record]:
        return getattr(self, name)  # type: ignore[no-any-return]

    def mix(self, n: int) -> list[tuple[str, Record]]:
        """``n`` poison records of every kind (rare kinds less often), in random order."""
        weights = [self.RARE.get(k, 1.0) for k in self.KINDS]
        return [(name, self.kind(name)()) for name in self.rng.choices(self.KINDS, weights, k=n)]
