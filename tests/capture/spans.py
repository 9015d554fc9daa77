"""Builders for GenAI spans as the OTLP decoder yields them (tests only)."""

from __future__ import annotations

import json
from typing import Any

from agents.capture.otlp_decode import Span, SpanEvent

TRACE = "0af7651916cd43dd8448eb211c80319c"


def span(span_id: str, name: str, attrs: dict[str, Any], *, parent: str = "", start: int = 0, end: int | None = None,
         status: int = 0, message: str = "", events: tuple[SpanEvent, ...] = (), trace: str = TRACE,
         resource: dict[str, Any] | None = None) -> Span:
    return Span(trace_id=trace, span_id=span_id, parent_span_id=parent, name=name, start_ns=start * 1_000_000,
                end_ns=(end if end is not None else start + 10) * 1_000_000, status_code=status, status_message=message,
                attributes=attrs, events=events, resource=resource or {"service.name": "svc"}, raw=span_id.encode())


def parts(role: str, *items: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "parts": list(items)}
    if finish:
        message["finish_reason"] = finish
    return message


def text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


def semconv_trace() -> list[Span]:
    """invoke_agent > chat (tool call) > execute_tool > chat (answer, evaluated)."""
    question = json.dumps([parts("system", text("be exact")), parts("user", text("what is 2+2?"))])
    call = {"type": "tool_call", "id": "call-1", "name": "calc", "arguments": {"expr": "2+2"}}
    answer_in = json.dumps([parts("user", text("what is 2+2?")), parts("assistant", call),
                            parts("tool", {"type": "tool_call_response", "id": "call-1", "response": "4"})])
    evaluation = SpanEvent("gen_ai.evaluation.result", 95_000_000, {
        "gen_ai.evaluation.name": "correctness", "gen_ai.evaluation.score.value": 0.9,
        "gen_ai.evaluation.score.label": "pass", "gen_ai.evaluation.explanation": "right"})
    return [
        span("a1", "invoke_agent math", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "math-bot",
                                         "gen_ai.request.model": "m-1", "art.group": "g1",
                                         "gen_ai.input.messages": json.dumps([parts("user", text("what is 2+2?"))]),
                                         "gen_ai.output.messages": json.dumps([parts("assistant", text("4"))])},
             start=0, end=100),
        span("c1", "chat m-1", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m-1",
                                "gen_ai.response.model": "m-1-2025", "gen_ai.usage.input_tokens": 10,
                                "gen_ai.usage.output_tokens": 5, "gen_ai.response.finish_reasons": ["tool_calls"],
                                "gen_ai.input.messages": question,
                                "gen_ai.output.messages": json.dumps([parts("assistant", call, finish="tool_calls")])},
             parent="a1", start=10, end=30),
        span("t1", "execute_tool calc", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "calc",
                                         "gen_ai.tool.call.id": "call-1", "gen_ai.tool.call.result": "4"},
             parent="a1", start=31, end=33),
        span("c2", "chat m-1", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m-1",
                                "gen_ai.usage.input_tokens": 20, "gen_ai.usage.output_tokens": 7,
                                "gen_ai.input.messages": answer_in,
                                "gen_ai.output.messages": json.dumps([parts("assistant", text("4"), finish="stop")])},
             parent="a1", start=40, end=90, events=(evaluation,)),
    ]
