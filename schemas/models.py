"""Pydantic mirrors of the Avro schemas in ``schemas/avro``.

Same record names, same field names, same defaults: ``tests/test_contract.py`` proves field parity
and byte-exact round trips, so the .avsc files stay the single source of truth.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from uuid import UUID, uuid4, uuid5

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from schemas.limits import MAX_COUNT, MAX_MAGNITUDE, TIME_MAX, TIME_MIN


def _as_utc(value: datetime) -> datetime:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not TIME_MIN <= value < TIME_MAX:
        raise ValueError(f"time {value.isoformat()} outside [{TIME_MIN.year}, {TIME_MAX.year})")
    return value


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]
"""Aware UTC datetimes in [TIME_MIN, TIME_MAX): naive input is taken as UTC, so Avro round trips are exact."""

Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
"""Tokens, milliseconds, step numbers: bounded so sums over a session fit a signed 64-bit long."""

Amount = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
"""Costs and step rewards: finite and bounded, so sums stay finite (NaN would be stored as null)."""

_F32 = struct.Struct("<f")


def _as_float32(value: float) -> float:
    return float(_F32.unpack(_F32.pack(value))[0])


Float32 = Annotated[float, AfterValidator(_as_float32)]
"""A float held at Avro ``float`` precision, so a record equals its own round trip."""


def utcnow() -> datetime:
    """Wall-clock time truncated to microseconds, the resolution Avro timestamp-micros keeps."""
    return datetime.now(UTC)


class AvroModel(BaseModel):
    """Base for every record: immutable, strict about unknown fields, aware UTC timestamps."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    avro_name: ClassVar[str]


# --- actions -------------------------------------------------------------------------------


class UseTool(AvroModel):
    avro_name: ClassVar[str] = "art.UseTool"
    kind: Literal["use_tool"] = "use_tool"
    tool: str
    input: str


class Answer(AvroModel):
    avro_name: ClassVar[str] = "art.Answer"
    kind: Literal["answer"] = "answer"
    text: str


class Ask(AvroModel):
    avro_name: ClassVar[str] = "art.Ask"
    kind: Literal["ask"] = "ask"
    question: str


class Think(AvroModel):
    avro_name: ClassVar[str] = "art.Think"
    kind: Literal["think"] = "think"
    note: str = ""


Action = Annotated[UseTool | Answer | Ask | Think, Field(discriminator="kind")]


# --- session events ------------------------------------------------------------------------


class SessionStatus(StrEnum):
    succeeded = "succeeded"
    failed = "failed"
    error = "error"
    cancelled = "cancelled"


class SessionStarted(AvroModel):
    avro_name: ClassVar[str] = "art.SessionStarted"
    kind: Literal["session_started"] = "session_started"
    objective: str
    group_id: str | None = None
    model: str
    agent_config: dict[str, str] = Field(default_factory=dict)
    success_criteria: list[str] = Field(default_factory=list)


class CompletionTrace(AvroModel):
    """The tokens of one LLM completion behind a step and their logprobs (the served policy's, raw),
    so training can use exactly what the model produced. ``purpose`` says which call (think, decide...)."""

    avro_name: ClassVar[str] = "art.CompletionTrace"
    purpose: str = ""
    model: str = ""
    token_ids: list[int] = Field(default_factory=list)
    logprobs: list[Float32] = Field(default_factory=list)

    @model_validator(mode="after")
    def _aligned(self) -> CompletionTrace:
        if self.logprobs and len(self.logprobs) != len(self.token_ids):
            raise ValueError(f"{len(self.logprobs)} logprobs for {len(self.token_ids)} token ids")
        return self


class StepRecorded(AvroModel):
    avro_name: ClassVar[str] = "art.StepRecorded"
    kind: Literal["step_recorded"] = "step_recorded"
    step_number: Count
    observation: str
    thought: str
    action: Action
    action_input: str = ""
    tool_result: str | None = None
    error: str | None = None
    reflection: str | None = None
    step_reward: Amount | None = None
    step_metadata: dict[str, str] = Field(default_factory=dict)
    timestamp: Timestamp = Field(default_factory=utcnow)
    execution_time_ms: Count = 0
    tokens: Count = 0
    cost: Amount = 0.0
    completions: list[CompletionTrace] = Field(default_factory=list)


class SessionCompleted(AvroModel):
    avro_name: ClassVar[str] = "art.SessionCompleted"
    kind: Literal["session_completed"] = "session_completed"
    final_answer: str | None = None
    status: SessionStatus


Payload = Annotated[SessionStarted | StepRecorded | SessionCompleted, Field(discriminator="kind")]


class SessionEvent(AvroModel):
    avro_name: ClassVar[str] = "art.SessionEvent"
    event_id: UUID = Field(default_factory=uuid4)
    session_id: str
    seq: int
    ts: Timestamp = Field(default_factory=utcnow)
    agent_name: str
    payload: Payload


# --- derived events ------------------------------------------------------------------------


class TrajectoryStep(AvroModel):
    avro_name: ClassVar[str] = "art.TrajectoryStep"
    seq: int
    step: StepRecorded


class ClosedBy(StrEnum):
    completed = "completed"
    idle_timeout = "idle_timeout"
    gap_timeout = "gap_timeout"


class TrajectoryMetadata(AvroModel):
    avro_name: ClassVar[str] = "art.TrajectoryMetadata"
    step_count: int
    total_tokens: int
    total_cost: float
    tools_used: list[str]
    error_count: int
    execution_time_ms: int
    efficiency: float


class TrajectoryCompleted(AvroModel):
    avro_name: ClassVar[str] = "art.TrajectoryCompleted"
    event_id: UUID = Field(default_factory=uuid4)
    session_id: str
    agent_name: str
    group_id: str | None = None
    objective: str
    model: str
    agent_config: dict[str, str] = Field(default_factory=dict)
    success_criteria: list[str] = Field(default_factory=list)
    steps: list[TrajectoryStep]
    final_answer: str | None = None
    status: SessionStatus | None = None
    closed_by: ClosedBy
    missing_seqs: list[int] = Field(default_factory=list)
    started_at: Timestamp
    completed_at: Timestamp
    metadata: TrajectoryMetadata


class TrajectoryJudged(AvroModel):
    avro_name: ClassVar[str] = "art.TrajectoryJudged"
    event_id: UUID = Field(default_factory=uuid4)
    session_id: str
    agent_name: str
    group_id: str | None = None
    judge_name: str
    judge_version: str
    task_completion: float
    solution_quality: float
    efficiency: float
    tool_usage: float
    reasoning_coherence: float
    error_recovery: float
    overall: float
    step_rewards: list[float] = Field(default_factory=list)
    reasoning: str = ""
    judged_at: Timestamp = Field(default_factory=utcnow)


class RewardAssigned(AvroModel):
    avro_name: ClassVar[str] = "art.RewardAssigned"
    event_id: UUID = Field(default_factory=uuid4)
    session_id: str
    agent_name: str
    group_id: str | None = None
    reward_version: str
    total: float
    success: float
    efficiency: float
    quality: float
    novelty: float
    reasoning: str = ""
    confidence: float
    advantage: float
    group_size: int = 1
    assigned_at: Timestamp = Field(default_factory=utcnow)


DEAD_LETTER_NAMESPACE = UUID("0b7f3f0e-3c56-4f2a-8d1e-5a8a3c6d9e21")


def dead_letter_id(log_epoch: int, topic: str, partition: int, offset: int) -> UUID:
    """One id per refused record (its log coordinates): whoever refuses it (stream or sink), however
    often it is redelivered, it is one dead letter."""
    return uuid5(DEAD_LETTER_NAMESPACE, f"{log_epoch}/{topic}/{partition}/{offset}")


class DeadLetter(AvroModel):
    avro_name: ClassVar[str] = "art.DeadLetter"
    event_id: UUID = Field(default_factory=uuid4)
    source_topic: str
    source_partition: int
    source_offset: int
    raw: bytes
    reason: str
    occurred_at: Timestamp = Field(default_factory=utcnow)


"""The records that travel on topics, each with its own .avsc file."""


def _all_models(base: type[AvroModel]) -> list[type[AvroModel]]:
    return [m for sub in base.__subclasses__() for m in (sub, *_all_models(sub))]


MODEL_BY_AVRO_NAME: dict[str, type[AvroModel]] = {m.avro_name: m for m in _all_models(AvroModel)}
"""Every record model (nested ones too) by its Avro full name."""
