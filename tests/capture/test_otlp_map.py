"""GenAI spans -> one session: the semantic conventions, OpenLLMetry and OpenInference dialects."""

from __future__ import annotations

import json

from agents.capture.otlp_decode import SpanEvent
from agents.capture.otlp_map import map_trace
from schemas.models import Answer, SessionStatus, Think, UseTool
from tests.capture.spans import TRACE, semconv_trace, span


def test_a_semconv_trace_is_one_session_with_its_steps_in_order() -> None:
    mapping = map_trace(semconv_trace())
    assert mapping.rejects == [] and mapping.skipped == 0
    s = mapping.session
    assert s is not None
    assert (s.session_id, s.agent_name, s.objective, s.group_id, s.model) == (
        TRACE, "math-bot", "what is 2+2?", "g1", "m-1")
    assert s.agent_config == {"source": "otlp", "trace_id": TRACE}
    assert (s.final_answer, s.status) == ("4", SessionStatus.succeeded)
    tool, answer = s.steps
    assert (tool.action, tool.tool_result, tool.tokens, tool.execution_time_ms) == (
        UseTool(tool="calc", input='{"expr": "2+2"}'), "4", 15, 22)
    assert tool.observation == "what is 2+2?" and tool.step_metadata["model"] == "m-1-2025"
    assert (answer.action, answer.tokens, answer.step_reward, answer.observation) == (
        Answer(text="4"), 27, 0.9, "tool result: 4")
    assert {k: v for k, v in answer.step_metadata.items() if k.startswith("evaluation")} == {
        "evaluation.correctness": "0.9", "evaluation.correctness.label": "pass",
        "evaluation.correctness.explanation": "right"}


def test_spans_arrive_in_any_order() -> None:
    assert map_trace(list(reversed(semconv_trace()))).session == map_trace(semconv_trace()).session


def test_openllmetry_attributes_map_to_the_same_facts() -> None:
    spans = [
        span("w1", "agent.workflow", {"traceloop.span.kind": "workflow", "art.agent": "ll-bot"}, start=0, end=50),
        span("l1", "openai.chat", {"llm.request.type": "chat", "gen_ai.request.model": "gpt-x",
                                   "gen_ai.usage.prompt_tokens": 8, "gen_ai.usage.completion_tokens": 3,
                                   "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "weather?",
                                   "gen_ai.completion.0.role": "assistant",
                                   "gen_ai.completion.0.finish_reason": "tool_calls",
                                   "gen_ai.completion.0.tool_calls.0.id": "t-1",
                                   "gen_ai.completion.0.tool_calls.0.name": "weather",
                                   "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Oslo"}'},
             parent="w1", start=1, end=5),
        span("x1", "weather.tool", {"traceloop.span.kind": "tool", "traceloop.entity.name": "weather",
                                    "traceloop.entity.output": "rain"}, parent="w1", start=6, end=7),
        span("l2", "openai.chat", {"llm.request.type": "chat", "gen_ai.request.model": "gpt-x",
                                   "gen_ai.usage.prompt_tokens": 12, "gen_ai.usage.completion_tokens": 2,
                                   "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "weather?",
                                   "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Rain."},
             parent="w1", start=8, end=9),
    ]
    s = map_trace(spans).session
    assert s is not None and s.agent_name == "ll-bot" and s.objective == "weather?"
    assert [(st.action, st.tool_result, st.tokens) for st in s.steps] == [
        (UseTool(tool="weather", input='{"city": "Oslo"}'), "rain", 11), (Answer(text="Rain."), None, 14)]
    assert (s.final_answer, s.status) == ("Rain.", SessionStatus.succeeded)


def test_openinference_attributes_map_to_the_same_facts() -> None:
    spans = [
        span("l1", "ChatCompletion", {"openinference.span.kind": "LLM", "llm.model_name": "oi-model",
                                      "llm.token_count.prompt": 4, "llm.token_count.completion": 2,
                                      "llm.token_count.total": 6,
                                      "llm.input_messages.0.message.role": "user",
                                      "llm.input_messages.0.message.content": "hello",
                                      "llm.output_messages.0.message.role": "assistant",
                                      "llm.output_messages.0.message.content": "hi there"}, start=1, end=3),
        span("r1", "retrieve", {"openinference.span.kind": "RETRIEVER"}, start=0, end=1),
    ]
    mapping = map_trace(spans)
    assert mapping.skipped == 1 and mapping.rejects == []
    s = mapping.session
    assert s is not None and (s.agent_name, s.model, s.objective) == ("svc", "oi-model", "hello")
    assert [(st.action, st.tokens) for st in s.steps] == [(Answer(text="hi there"), 6)]


def test_legacy_events_carry_prompts_and_choices() -> None:
    events = (SpanEvent("gen_ai.user.message", 1, {"content": "ping"}),
              SpanEvent("gen_ai.choice", 2, {"message": json.dumps({"content": "pong"}), "finish_reason": "stop"}))
    s = map_trace([span("c1", "chat", {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 1,
                                       "gen_ai.usage.output_tokens": 1}, events=events)]).session
    assert s is not None and [(st.observation, st.action) for st in s.steps] == [("ping", Answer(text="pong"))]


def test_what_cannot_be_mapped_is_rejected_with_a_reason_and_the_rest_still_maps() -> None:
    spans = [*semconv_trace(),
             span("h1", "GET /search", {"http.method": "GET"}, parent="a1", start=1),
             span("c9", "chat m-1", {"gen_ai.operation.name": "chat"}, parent="a1", start=95),
             span("t9", "execute_tool", {"gen_ai.operation.name": "execute_tool"}, parent="a1", start=96),
             span("u9", "x", {"gen_ai.operation.name": "teleport"}, parent="a1", start=97)]
    mapping = map_trace(spans)
    assert {s.span_id: reason for s, reason in mapping.rejects} == {
        "h1": "not a GenAI span (no gen_ai.operation.name, openinference.span.kind or traceloop.span.kind)",
        "c9": "chat span 'chat m-1' has no output messages "
              "(gen_ai.output.messages, gen_ai.choice events, gen_ai.completion.*)",
        "t9": "execute_tool span 'execute_tool' has no gen_ai.tool.name",
        "u9": "unknown gen_ai.operation.name 'teleport'"}
    assert mapping.session == map_trace(semconv_trace()).session


def test_failures_become_error_steps_and_an_error_status() -> None:
    spans = [span("a1", "invoke_agent", {"gen_ai.operation.name": "invoke_agent"}, start=0, end=50, status=2,
                  message="agent crashed"),
             span("c1", "chat", {"gen_ai.operation.name": "chat"}, parent="a1", start=1, status=2,
                  message="429 rate limited"),
             span("t1", "execute_tool lookup", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
                                                "gen_ai.tool.call.arguments": '{"k": 1}', "error.type": "KeyError"},
                  parent="a1", start=20, status=2)]
    s = map_trace(spans).session
    assert s is not None and s.status is SessionStatus.error and s.final_answer is None
    assert [(st.action, st.error, st.tool_result) for st in s.steps] == [
        (Think(note="model call failed"), "429 rate limited", None),
        (UseTool(tool="lookup", input='{"k": 1}'), "KeyError", None)]


def test_a_trace_of_nothing_mappable_is_no_session() -> None:
    mapping = map_trace([span("h1", "GET /", {"http.method": "GET"})])
    assert mapping.session is None and len(mapping.rejects) == 1
