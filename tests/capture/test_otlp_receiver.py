"""The OTLP/HTTP receiver through `art up`: GenAI spans from the real opentelemetry-sdk exporter (and
OTLP/JSON) land as exact rows; malformed protobuf, JSON, spans missing attributes and oversized
payloads become dead letters with their reason, and the receiver keeps serving."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode, Tracer

from tests.capture.conftest import rows
from tests.ingest.helpers import wait_for
from tests.ingest.stack import RunningStack


def msgs(*items: tuple[str, dict[str, Any]]) -> str:
    return json.dumps([{"role": role, "parts": [part]} for role, part in items])


def text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


@pytest.fixture(scope="module")
def tracing(capture_stack: RunningStack) -> Iterator[tuple[Tracer, TracerProvider]]:
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-agent-svc"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{capture_stack.info.otlp_url}/v1/traces", timeout=30)))
    yield provider.get_tracer("tests.capture"), provider
    provider.shutdown()


def trace_id(span: Any) -> str:
    return format(span.get_span_context().trace_id, "032x")


def test_genai_spans_from_the_sdk_exporter_are_exact_rows(tracing: tuple[Tracer, TracerProvider], ch: Any) -> None:
    tracer, provider = tracing
    group = f"g-otel-{uuid.uuid4().hex[:6]}"
    call = {"type": "tool_call", "id": "call-7", "name": "weather", "arguments": {"city": "Oslo"}}
    with tracer.start_as_current_span("invoke_agent trip-planner", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "trip-planner", "art.group": group,
            "gen_ai.request.model": "m-otel", "gen_ai.input.messages": msgs(("user", text("pack for Oslo?"))),
            "gen_ai.output.messages": msgs(("assistant", text("Bring a raincoat.")))}) as agent:
        with tracer.start_as_current_span("chat m-otel", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "m-otel", "gen_ai.usage.input_tokens": 30,
                "gen_ai.usage.output_tokens": 9, "gen_ai.input.messages": msgs(("user", text("pack for Oslo?"))),
                "gen_ai.output.messages": msgs(("assistant", call))}):
            pass
        with tracer.start_as_current_span("execute_tool weather", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "weather", "gen_ai.tool.call.id": "call-7",
                "gen_ai.tool.call.arguments": '{"city": "Oslo"}', "gen_ai.tool.call.result": "rain, 8C"}):
            pass
        with tracer.start_as_current_span("chat m-otel", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "m-otel", "gen_ai.usage.input_tokens": 45,
                "gen_ai.usage.output_tokens": 6,
                "gen_ai.output.messages": msgs(("assistant", text("Bring a raincoat.")))}) as chat:
            chat.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "helpfulness",
                                                        "gen_ai.evaluation.score.value": 0.8})
    with tracer.start_as_current_span("chat m-otel", attributes={  # a bare model call: a trace of one step
            "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 2,
            "art.group": group, "gen_ai.input.messages": msgs(("user", text("hi"))),
            "gen_ai.output.messages": msgs(("assistant", text("hello")))}) as bare:
        pass
    assert provider.force_flush(30_000)
    sql = ("SELECT session_id, agent_name, objective, model, status, final_answer, closed_by, step_count, "
           "total_tokens, tools_used, agent_config FROM trajectories WHERE group_id = {g:String} ORDER BY agent_name")
    wait_for(lambda: len(rows(ch, sql, g=group)) >= 2)
    single, planned = rows(ch, sql, g=group)  # ordered by agent name
    assert single == {"session_id": trace_id(bare), "agent_name": "otel-agent-svc", "objective": "hi", "model": "",
                      "status": "succeeded", "final_answer": "hello", "closed_by": "completed", "step_count": 1,
                      "total_tokens": 5, "tools_used": [],
                      "agent_config": {"source": "otlp", "trace_id": trace_id(bare)}}
    assert planned == {"session_id": trace_id(agent), "agent_name": "trip-planner", "objective": "pack for Oslo?",
                       "model": "m-otel", "status": "succeeded", "final_answer": "Bring a raincoat.",
                       "closed_by": "completed", "step_count": 2, "total_tokens": 90, "tools_used": ["weather"],
                       "agent_config": {"source": "otlp", "trace_id": trace_id(agent)}}
    got = rows(ch, "SELECT action_kind, tool, action_text, tool_result, tokens, step_reward FROM steps "
                   "WHERE session_id = {s:String} ORDER BY seq", s=trace_id(agent))
    assert got == [
        {"action_kind": "use_tool", "tool": "weather", "action_text": '{"city": "Oslo"}', "tool_result": "rain, 8C",
         "tokens": 39, "step_reward": None},
        {"action_kind": "answer", "tool": "", "action_text": "Bring a raincoat.", "tool_result": None, "tokens": 51,
         "step_reward": 0.8}]


def _json_trace(trace: str, span_id: str, answer: str) -> dict[str, Any]:
    attrs = [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
             {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "4"}},
             {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "1"}},
             {"key": "gen_ai.output.messages", "value": {"stringValue": msgs(("assistant", text(answer)))}}]
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js"}}]},
                               "scopeSpans": [{"spans": [{"traceId": trace, "spanId": span_id, "name": "chat",
                                                          "startTimeUnixNano": "1700000000000000000",
                                                          "endTimeUnixNano": "1700000000500000000",
                                                          "attributes": attrs}]}]}]}


def test_otlp_json_maps_like_protobuf(capture_stack: RunningStack, ch: Any) -> None:
    trace = uuid.uuid4().hex.upper()
    response = httpx.post(f"{capture_stack.info.otlp_url}/v1/traces", json=_json_trace(trace, "00F067AA0BA902B7", "ok"))
    assert response.status_code == 200 and response.json() == {}
    sql = "SELECT agent_name, final_answer, step_count, total_tokens FROM trajectories WHERE session_id = {s:String}"
    assert wait_for(lambda: rows(ch, sql, s=trace.lower())) == [
        {"agent_name": "js", "final_answer": "ok", "step_count": 1, "total_tokens": 5}]


def test_bad_input_is_dead_lettered_and_the_receiver_stays_up(capture_stack: RunningStack, ch: Any,
                                                             tracing: tuple[Tracer, TracerProvider]) -> None:
    url = f"{capture_stack.info.otlp_url}/v1/traces"
    marker = uuid.uuid4().hex[:8]
    garbage = b"\x0a\xff\xff\xff\x0f" + marker.encode()
    refused = [
        httpx.post(url, content=garbage, headers={"Content-Type": "application/x-protobuf"}),
        httpx.post(url, content=f"{{broken {marker}", headers={"Content-Type": "application/json"}),
        httpx.post(url, content=json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": f"not-hex-{marker}"}]}]}]}), headers={"Content-Type": "application/json"}),
        httpx.post(url, content=marker.encode() + b"\x00" * 70_000, headers={"Content-Type": "application/x-protobuf"}),
    ]
    assert [r.status_code for r in refused] == [400, 400, 400, 413]
    tracer, provider = tracing
    with tracer.start_as_current_span("invoke_agent", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": f"flaky-{marker}"}) as agent:
        with tracer.start_as_current_span("GET /search", attributes={"http.request.method": "GET"}):
            pass
        with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat"}):
            pass  # no output: missing attributes
        with tracer.start_as_current_span("execute_tool", attributes={"gen_ai.operation.name": "execute_tool"}):
            pass  # no tool name
        with tracer.start_as_current_span("chat", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.output.messages": msgs(("assistant", text("done")))}) as ok:
            ok.set_status(Status(StatusCode.OK))
    assert provider.force_flush(30_000)
    tid = trace_id(agent)
    sql = "SELECT reason FROM dead_letters WHERE source_topic = 'capture.otlp' AND (reason LIKE {t:String} " \
          "OR position(raw, {m:String}) > 0 OR position(reason, {m:String}) > 0)"
    wait_for(lambda: len(rows(ch, sql, t=f"%{tid}%", m=marker)) >= 7)
    reasons = sorted(r["reason"].split(": ", 2)[-1] if tid in r["reason"] else r["reason"]
                     for r in rows(ch, sql, t=f"%{tid}%", m=marker))
    assert len(reasons) == 7, reasons
    assert reasons[:3] == [
        "chat span 'chat' has no output messages (gen_ai.output.messages, gen_ai.choice events, gen_ai.completion.*)",
        "execute_tool span 'execute_tool' has no gen_ai.tool.name",
        "not a GenAI span (no gen_ai.operation.name, openinference.span.kind or traceloop.span.kind)"]
    assert reasons[3].startswith("otlp: invalid JSON: Expecting property name enclosed in double quotes")
    assert reasons[4].startswith("otlp: invalid protobuf: ")
    assert reasons[5:] == ["otlp: payload larger than 65536 bytes (first bytes kept)",
                           f"otlp: traceId 'not-hex-{marker}' is not hex"]
    sql = "SELECT agent_name, step_count, final_answer FROM trajectories WHERE session_id = {s:String}"
    assert wait_for(lambda: rows(ch, sql, s=tid)) == [
        {"agent_name": f"flaky-{marker}", "step_count": 1, "final_answer": "done"}]
    health = httpx.get(f"{capture_stack.info.otlp_url}/v1/art/health").json()
    assert health["ok"] is True and health["dead_letters"] >= 7
