"""One trace's GenAI spans -> one session: its start, its steps in order, how it ended.

A trace is a session. ``chat`` spans are model calls and become steps by the proxy's rules
(``steps.call_steps``); ``execute_tool`` spans give the result of the tool call they answer (by
call id, else the oldest open call of that tool) or, unmatched, a UseTool step of their own;
the ``invoke_agent`` span names the agent and says how the run ended; ``gen_ai.evaluation.result``
events put a reward on the step of the span they belong to. What cannot be mapped is returned
with a reason, for the dead-letter topic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agents.capture.chat import MappingError, completion_from_body, message_text, new_turn
from agents.capture.otlp_decode import STATUS_ERROR, Span
from agents.capture.otlp_messages import as_text, input_messages, output_messages, tool_facts
from agents.capture.steps import (
    OBJECTIVE_LIMIT,
    PendingStep,
    answer_text,
    call_cost,
    call_steps,
    clip,
    closing_status,
    error_step,
    with_tool_result,
)
from schemas.models import SessionStatus, StepRecorded, UseTool

CHAT, TOOL, AGENT, SKIP = "chat", "tool", "agent", "skip"
GEN_AI_OPERATIONS = {"chat": CHAT, "text_completion": CHAT, "generate_content": CHAT, "execute_tool": TOOL,
                     "invoke_agent": AGENT, "create_agent": SKIP, "embeddings": SKIP}
OPENINFERENCE_KINDS = {"LLM": CHAT, "TOOL": TOOL, "AGENT": AGENT, "CHAIN": SKIP, "EMBEDDING": SKIP,
                       "RETRIEVER": SKIP, "RERANKER": SKIP, "GUARDRAIL": SKIP, "EVALUATOR": SKIP}
TRACELOOP_KINDS = {"workflow": AGENT, "agent": AGENT, "tool": TOOL, "task": SKIP}
EVALUATION_EVENT = "gen_ai.evaluation.result"


def role_of(span: Span) -> tuple[str | None, str]:
    """(chat | tool | agent | skip, "") or (None, why the span is not understood)."""
    operation = span.attributes.get("gen_ai.operation.name")
    if operation is not None:
        role = GEN_AI_OPERATIONS.get(as_text(operation))
        return (role, "") if role else (None, f"unknown gen_ai.operation.name {as_text(operation)[:80]!r}")
    kind = span.attributes.get("openinference.span.kind")
    if kind is not None:
        role = OPENINFERENCE_KINDS.get(as_text(kind).upper())
        return (role, "") if role else (None, f"unknown openinference.span.kind {as_text(kind)[:80]!r}")
    kind = span.attributes.get("traceloop.span.kind")
    if kind is not None:
        role = TRACELOOP_KINDS.get(as_text(kind))
        return (role, "") if role else (None, f"unknown traceloop.span.kind {as_text(kind)[:80]!r}")
    if as_text(span.attributes.get("llm.request.type")) in ("chat", "completion"):
        return CHAT, ""
    return None, "not a GenAI span (no gen_ai.operation.name, openinference.span.kind or traceloop.span.kind)"


@dataclass
class TraceSession:
    session_id: str
    agent_name: str
    objective: str
    group_id: str | None
    model: str
    agent_config: dict[str, str]
    steps: list[StepRecorded]
    final_answer: str | None
    status: SessionStatus


@dataclass
class TraceMapping:
    session: TraceSession | None
    rejects: list[tuple[Span, str]] = field(default_factory=list)
    skipped: int = 0


def _at(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _error_of(span: Span) -> str | None:
    if span.status_code != STATUS_ERROR:
        return None
    return span.status_message or as_text(span.attributes.get("error.type")) or "error"


def _completion_body(span: Span, output: list[dict[str, Any]]) -> dict[str, Any]:
    """The span's answer as a chat.completion body, so the proxy's reader applies."""
    prompt = _int(span.attr("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"))
    completion = _int(span.attr("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                                "llm.token_count.completion"))
    total = _int(span.attr("llm.usage.total_tokens", "llm.token_count.total")) or prompt + completion
    reasons = span.attributes.get("gen_ai.response.finish_reasons")
    finish = reasons[0] if isinstance(reasons, list) and reasons else output[0].get("finish_reason", "")
    model = span.attr("gen_ai.response.model", "gen_ai.request.model", "llm.model_name") or ""
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
    if isinstance(span.attributes.get("gen_ai.usage.cost"), int | float):
        usage["cost"] = span.attributes["gen_ai.usage.cost"]
    message = {k: v for k, v in output[0].items() if k in ("content", "tool_calls")}
    return {"id": as_text(span.attributes.get("gen_ai.response.id")), "model": as_text(model), "usage": usage,
            "choices": [{"index": 0, "finish_reason": as_text(finish), "message": message}]}


def _after_last_answer(messages: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
    last = max((i + 1 for i, m in enumerate(messages) if m.get("role") == "assistant"), default=0)
    return messages[last:]


class _Builder:
    def __init__(self, prices: Mapping[str, Sequence[float]]) -> None:
        self.prices = prices
        self.steps: list[PendingStep] = []
        self.by_span: dict[str, int] = {}  # span id -> index of the last step it made or completed
        self.rejects: list[tuple[Span, str]] = []
        self.first_user = ""
        self.first_model = ""

    def _attach(self, index: int, result: str, error: str | None, ms: int) -> None:
        self.steps[index] = with_tool_result(self.steps[index], result, error=error, execution_time_ms=ms)

    def _open_call(self, call_id: str, name: str) -> int | None:
        open_calls = [i for i, p in enumerate(self.steps) if p.tool_call_id is not None and p.step.tool_result is None]
        for i in open_calls:
            if call_id and self.steps[i].tool_call_id == call_id:
                return i
        for i in open_calls:
            step_action = self.steps[i].step.action
            if not call_id and isinstance(step_action, UseTool) and step_action.tool == name:
                return i
        return None

    def chat(self, span: Span) -> None:
        messages = input_messages(span)
        turn = new_turn(_after_last_answer(messages))
        first = new_turn(messages)
        self.first_user = self.first_user or first.first_user
        for call_id, result in turn.tool_results.items():
            index = self._open_call(call_id, "")
            if index is not None:
                self._attach(index, result, None, 0)
        output = output_messages(span)
        error = _error_of(span)
        if error is not None and not output:
            self.steps.append(error_step(turn.observation, error, at=_at(span.end_ns),
                                         execution_time_ms=span.duration_ms))
        elif not output:
            self.rejects.append((span, f"chat span {span.name!r} has no output messages "
                                       "(gen_ai.output.messages, gen_ai.choice events, gen_ai.completion.*)"))
            return
        else:
            try:
                completion = completion_from_body(_completion_body(span, output))
            except MappingError as exc:
                self.rejects.append((span, f"chat span {span.name!r}: {exc}"))
                return
            self.first_model = self.first_model or completion.model
            self.steps.extend(call_steps(turn.observation, completion, at=_at(span.end_ns),
                                         execution_time_ms=span.duration_ms,
                                         cost=call_cost(completion.model, completion.usage, self.prices),
                                         metadata={"span_id": span.span_id}))
        self.by_span[span.span_id] = len(self.steps) - 1

    def tool(self, span: Span) -> None:
        name, call_id, arguments, result = tool_facts(span)
        if not name:
            self.rejects.append((span, f"execute_tool span {span.name!r} has no gen_ai.tool.name"))
            return
        error = _error_of(span)
        index = self._open_call(call_id, name)
        if index is not None:
            self._attach(index, result or "", error, span.duration_ms)
        else:
            meta = {"span_id": span.span_id} | ({"tool_call_id": call_id} if call_id else {})
            step = StepRecorded(step_number=0, observation="", thought="",
                                action=UseTool(tool=name, input=clip(arguments)),
                                action_input=clip(arguments), tool_result=None if result is None else clip(result),
                                error=error, step_metadata=meta, timestamp=_at(span.end_ns),
                                execution_time_ms=span.duration_ms)
            self.steps.append(PendingStep(step))
            index = len(self.steps) - 1
        self.by_span[span.span_id] = index

    def evaluate(self, span: Span) -> None:
        """``gen_ai.evaluation.result`` events: the score is the reward of the step the span made."""
        for event in sorted((e for e in span.events if e.name == EVALUATION_EVENT), key=lambda e: e.time_ns):
            index = self.by_span.get(span.span_id, len(self.steps) - 1)
            if index < 0:
                self.rejects.append((span, f"evaluation on span {span.name!r} of a trace without steps"))
                continue
            attrs = event.attributes
            name = as_text(attrs.get("gen_ai.evaluation.name")) or "evaluation"
            score = attrs.get("gen_ai.evaluation.score.value")
            step = self.steps[index].step
            meta = dict(step.step_metadata)
            update: dict[str, Any] = {}
            if isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score):
                update["step_reward"] = float(score)
                meta[f"evaluation.{name}"] = repr(float(score))
            for key in ("label", "explanation"):
                value = attrs.get(f"gen_ai.evaluation.score.{key}" if key == "label" else f"gen_ai.evaluation.{key}")
                if value is not None:
                    meta[f"evaluation.{name}.{key}"] = clip(as_text(value), 4096)
            update["step_metadata"] = meta
            self.steps[index] = PendingStep(step.model_copy(update=update), self.steps[index].tool_call_id)


def map_trace(spans: Sequence[Span], prices: Mapping[str, Sequence[float]] | None = None) -> TraceMapping:
    """Map every span of one trace; spans that cannot be mapped come back in ``rejects``."""
    builder = _Builder(prices or {})
    roles: dict[str, str] = {}
    skipped = 0
    for span in spans:
        role, reason = role_of(span)
        if role is None:
            builder.rejects.append((span, reason))
        elif role == SKIP:
            skipped += 1
        else:
            roles[span.span_id] = role
    ordered = sorted((s for s in spans if s.span_id in roles), key=lambda s: (s.start_ns, s.end_ns))
    for span in ordered:
        if roles[span.span_id] == CHAT:
            builder.chat(span)
        elif roles[span.span_id] == TOOL:
            builder.tool(span)
    for span in ordered:
        builder.evaluate(span)
    agents = [s for s in ordered if roles[s.span_id] == AGENT]
    ids = {s.span_id for s in spans}
    root = next((s for s in agents if s.parent_span_id not in ids), agents[0] if agents else None)
    if root is None and not builder.steps:
        return TraceMapping(None, builder.rejects, skipped)
    return TraceMapping(_session(spans, root, builder), builder.rejects, skipped)


def _session(spans: Sequence[Span], root: Span | None, builder: _Builder) -> TraceSession:
    def first_attr(*names: str) -> Any:
        for span in ([root] if root else []) + list(spans):
            value = span.attr(*names)
            if value is not None:
                return value
        return None

    steps = [p.step for p in builder.steps]
    trace_id = spans[0].trace_id
    agent_output = [m for m in output_messages(root) if m.get("role", "assistant") == "assistant"] if root else []
    agent_answer = message_text(agent_output[-1].get("content")) if agent_output else None
    root_input = new_turn(input_messages(root)).first_user if root else ""
    objective = as_text(first_attr("art.objective")) or root_input or builder.first_user or (root.name if root else "")
    if root is not None and root.status_code == STATUS_ERROR:
        status = SessionStatus.error
    elif agent_answer:
        status = SessionStatus.succeeded
    else:
        status = closing_status(steps[-1] if steps else None)
    config = {"source": "otlp", "trace_id": trace_id}
    for key, names in (("conversation_id", ("gen_ai.conversation.id", "session.id")),
                       ("agent_id", ("gen_ai.agent.id",))):
        value = first_attr(*names)
        if value is not None:
            config[key] = as_text(value)
    last_answer = next((a for a in (answer_text(s) for s in reversed(steps)) if a is not None), None)
    return TraceSession(
        session_id=as_text(first_attr("art.session")) or trace_id,
        agent_name=as_text((root.attr("gen_ai.agent.name") if root else None) or first_attr("art.agent")
                           or first_attr("service.name") or "otel-agent"),
        objective=clip(objective, OBJECTIVE_LIMIT), group_id=as_text(first_attr("art.group")) or None,
        model=as_text((root.attr("gen_ai.request.model") if root else None) or builder.first_model),
        agent_config=config, steps=steps, final_answer=agent_answer or last_answer, status=status)
