"""What every judge shares: the ``Judge`` protocol, metric weights and deterministic event ids.

Weights: the configured five apply to task_completion, solution_quality, efficiency, tool_usage and
reasoning_coherence (default 0.4/0.2/0.2/0.1/0.1). With five weights, error_recovery *modulates
solution quality* inside the overall score:

    overall = (w1*tc + w2*sq*(0.5 + 0.5*er) + w3*eff + w4*tool + w5*coh) / sum(w)

so a run without errors (er = 1) gets exactly the seed's weighted sum, and an unrecovered error
halves the quality term. Six weights (Python API only) make error_recovery a plain sixth term
instead, without modulation. Weights are divided by their sum, so overall stays in [0, 1].
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from config.settings import JudgeConfig
from schemas.models import TrajectoryCompleted, TrajectoryJudged, TrajectoryStep

METRICS: tuple[str, ...] = (
    "task_completion",
    "solution_quality",
    "efficiency",
    "tool_usage",
    "reasoning_coherence",
    "error_recovery",
)
DEFAULT_WEIGHTS: tuple[float, ...] = (0.4, 0.2, 0.2, 0.1, 0.1)
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "art-stream/judges")


@runtime_checkable
class Judge(Protocol):
    """Turns one finished trajectory into a judgment; ``name``/``version`` stamp every output."""

    name: str
    version: str

    def judge(self, traj: TrajectoryCompleted) -> TrajectoryJudged: ...


@runtime_checkable
class AsyncJudge(Judge, Protocol):
    """A judge that can also be awaited (LLM judges do I/O; stream processors must not block)."""

    async def ajudge(self, traj: TrajectoryCompleted) -> TrajectoryJudged: ...


class MetricScores(BaseModel):
    """The six performance metrics, each in [0, 1]."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    task_completion: float = Field(ge=0, le=1)
    solution_quality: float = Field(ge=0, le=1)
    efficiency: float = Field(ge=0, le=1)
    tool_usage: float = Field(ge=0, le=1)
    reasoning_coherence: float = Field(ge=0, le=1)
    error_recovery: float = Field(ge=0, le=1)


class JudgeWeights(BaseModel):
    """Five weights (error recovery modulates quality) or six (error recovery is its own term)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    values: tuple[float, ...] = DEFAULT_WEIGHTS

    @field_validator("values")
    @classmethod
    def _check(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if len(values) not in (5, 6):
            raise ValueError(f"need 5 or 6 weights, got {len(values)}")
        if any(v < 0 for v in values) or sum(values) <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {values}")
        return values

    @classmethod
    def from_config(cls, config: JudgeConfig) -> JudgeWeights:
        return cls(values=tuple(config.weights))

    def combine(self, s: MetricScores) -> float:
        """The overall score; see the module docstring for the formula."""
        w = self.values
        if len(w) == 6:
            terms = [getattr(s, m) for m in METRICS]
        else:
            quality = s.solution_quality * (0.5 + 0.5 * s.error_recovery)
            terms = [s.task_completion, quality, s.efficiency, s.tool_usage, s.reasoning_coherence]
        return clamp(sum(wi * ti for wi, ti in zip(w, terms, strict=True)) / sum(w))


def clamp(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return min(high, max(low, value))


def stable_id(*parts: str) -> uuid.UUID:
    """uuid5 over the JSON list of ``parts``: unambiguous, and equal across processes and replays."""
    return uuid.uuid5(ID_NAMESPACE, json.dumps(list(parts), ensure_ascii=False))


def judgment_id(session_id: str, judge_name: str, judge_version: str) -> uuid.UUID:
    return stable_id(session_id, judge_name, judge_version)


def reward_id(session_id: str, reward_version: str) -> uuid.UUID:
    return stable_id(session_id, reward_version)


def ordered_steps(traj: TrajectoryCompleted) -> list[TrajectoryStep]:
    """Steps by sequence number: order matters for recovery and switches, whatever the input order."""
    return sorted(traj.steps, key=lambda s: s.seq)


def make_judgment(
    traj: TrajectoryCompleted,
    *,
    name: str,
    version: str,
    scores: MetricScores,
    weights: JudgeWeights,
    step_rewards: Sequence[float] = (),
    reasoning: str = "",
) -> TrajectoryJudged:
    """Assemble the event with its deterministic id and the combined overall score."""
    return TrajectoryJudged(
        event_id=judgment_id(traj.session_id, name, version),
        session_id=traj.session_id,
        agent_name=traj.agent_name,
        group_id=traj.group_id,
        judge_name=name,
        judge_version=version,
        overall=weights.combine(scores),
        step_rewards=list(step_rewards),
        reasoning=reasoning,
        **scores.model_dump(),
    )

