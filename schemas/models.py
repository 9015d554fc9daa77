"""Pydantic mirrors of the Avro schemas in ``schemas/avro``.

Same record names, same field names, same defaults: ``tests/test_contract.py`` proves field parity
and byte-exact round trips, so the .avsc files stay the single source of truth.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]
"""Aware UTC datetimes: naive input is taken as UTC, so Avro round trips are exact."""

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
    step_number: int
    observation: str
    thought: str
    action: Action
    action_input: str = ""
    tool_result: str | None = None
    error: str | None = None
    reflection: str | None = None
    step_reward: float | None = None
    step_metadata: dict[str, str] = Field(default_factory=dict)
    timestamp: Timestamp = Field(default_factory=utcnow)
    execution_time_ms: int = 0
    tokens: int = 0
    cost: float = 0.0
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
