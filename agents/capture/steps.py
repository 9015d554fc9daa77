"""What one model call becomes as steps, shared by the proxy and the OTLP receiver.

Both doors see the same facts (a model's answer, its tool calls, usage, timing), so the rules that
turn them into ``StepRecorded`` live here once: one UseTool step per tool call (the tool's result
is attached when the agent reports it), one Answer step for a final message, usage and cost on the
call's first step (so a trajectory's tokens sum to the upstream's usage exactly), and the status a
session gets when it ends without saying how.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from agents.prompts import clip as clip_to
from schemas.models import Answer, CompletionTrace, SessionStatus, StepRecorded, Think, UseTool

TEXT_LIMIT = 64 * 1024  # one step field; longer text is clipped with a marker, never refused
OBJECTIVE_LIMIT = 4000


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """Step fields are clipped, with the runner's marker of how much was cut, never refused."""
    return clip_to(text, limit)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None  # when the upstream prices the call itself (e.g. ``usage.cost``)


@dataclass(frozen=True)
class Completion:
    """What one model call answered: a response body, an accumulated stream, or a chat span."""

    model: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = ""
    usage: Usage = Usage()
    response_id: str = ""
    token_ids: tuple[int, ...] | None = None  # the completion's tokens, when the upstream returns them
    logprobs: tuple[float, ...] | None = None  # one per token id (None: the upstream sent none)


@dataclass(frozen=True)
class PendingStep:
    """A step waiting for what only the agent's next move tells (its tool's result)."""

    step: StepRecorded
    tool_call_id: str | None = None


def call_cost(model: str, usage: Usage, prices: Mapping[str, Sequence[float]]) -> float:
    """The upstream's own price when it sends one, else the configured per-million-token prices."""
    if usage.cost is not None and math.isfinite(usage.cost) and usage.cost >= 0:
        return usage.cost
    price = prices.get(model)
    if not price:
        return 0.0
    return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1_000_000


def call_steps(observation: str, completion: Completion, *, at: datetime, execution_time_ms: int, cost: float,
               metadata: Mapping[str, str] | None = None) -> list[PendingStep]:
    """The steps of one call: a UseTool per tool call, else one Answer."""
    first_meta = {"model": completion.model, "finish_reason": completion.finish_reason,
                  "prompt_tokens": str(completion.usage.prompt_tokens),
                  "completion_tokens": str(completion.usage.completion_tokens), **(metadata or {})}
    if completion.response_id:
        first_meta["response_id"] = completion.response_id
    costs: dict[str, Any] = {"tokens": completion.usage.total_tokens, "cost": cost,
                             "execution_time_ms": execution_time_ms}
    if completion.token_ids is not None:  # what the policy produced, exactly, for training
        costs["completions"] = [CompletionTrace(purpose="chat", model=completion.model,
                                                token_ids=list(completion.token_ids),
                                                logprobs=list(completion.logprobs or ()))]
    if not completion.tool_calls:
        step = StepRecorded(step_number=0, observation=clip(observation), thought="",
                            action=Answer(text=clip(completion.content)), step_metadata=first_meta, timestamp=at,
                            **costs)
        return [PendingStep(step)]
    out: list[PendingStep] = []
    for i, call in enumerate(completion.tool_calls):
        first = i == 0
        meta = {**(first_meta if first else {}), "tool_call_id": call.id}
        if len(completion.tool_calls) > 1:
            meta["parallel_call"] = f"{i + 1}/{len(completion.tool_calls)}"
        step = StepRecorded(step_number=0, observation=clip(observation) if first else "",
                            thought=clip(completion.content) if first else "",
                            action=UseTool(tool=call.name, input=clip(call.arguments)),
                            action_input=clip(call.arguments),
                            step_metadata=meta, timestamp=at,
                            **(costs if first else {"tokens": 0, "cost": 0.0, "execution_time_ms": 0}))
        out.append(PendingStep(step, call.id or None))
    return out


def error_step(observation: str, error: str, *, at: datetime, execution_time_ms: int,
               metadata: Mapping[str, str] | None = None) -> PendingStep:
    """A call that failed (upstream error, broken stream): the agent saw it, so the trajectory does."""
    step = StepRecorded(step_number=0, observation=clip(observation), thought="",
                        action=Think(note="model call failed"),
                        error=clip(error, 4096), step_metadata=dict(metadata or {}), timestamp=at,
                        execution_time_ms=execution_time_ms)
    return PendingStep(step)


def with_tool_result(pending: PendingStep, result: str, *, error: str | None = None,
                     execution_time_ms: int = 0) -> PendingStep:
    step = pending.step.model_copy(update={
        "tool_result": clip(result), "error": error if error is not None else pending.step.error,
        "execution_time_ms": pending.step.execution_time_ms + execution_time_ms})
    return replace(pending, step=step)


def with_outcome(pending: PendingStep, *, reward: float | None, outcome: str | None) -> PendingStep:
    """A reward or outcome reported at completion lands on the last step."""
    update: dict[str, object] = {}
    if reward is not None:
        update["step_reward"] = reward
    if outcome:
        update["step_metadata"] = {**pending.step.step_metadata, "outcome": clip(outcome, 4096)}
    return replace(pending, step=pending.step.model_copy(update=update)) if update else pending


def closing_status(last: StepRecorded | None) -> SessionStatus:
    """How a session that ended without saying so ended: an answer means the agent finished, a failed
    call means it broke, anything else means it was abandoned mid-run."""
    if last is None:
        return SessionStatus.cancelled
    if last.error is not None and isinstance(last.action, Think):
        return SessionStatus.error
    if isinstance(last.action, Answer):
        return SessionStatus.succeeded
    return SessionStatus.cancelled


def answer_text(step: StepRecorded | None) -> str | None:
    """The final answer a step gives, if it is an Answer."""
    return step.action.text if step is not None and isinstance(step.action, Answer) else None
