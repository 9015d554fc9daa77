"""The two aiohttp apps' edge paths, served for real on loopback, with in-memory recorders behind
them (the Kafka path is covered end to end in test_proxy.py and test_otlp_receiver.py)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from agents.capture import receiver as receiver_module
from agents.capture.deadletters import DeadLetters
from agents.capture.proxy import RecordingProxy, redact
from agents.capture.receiver import OtlpReceiver
from agents.capture.sessions import SessionBook
from agents.capture.traces import TraceBuffer
from schemas.codec import Codec
from schemas.models import DeadLetter
from schemas.registry import LocalRegistry
from stack.broker import free_port
from tests.capture.test_sessions import MemoryTracker


class LetterBox(MemoryTracker):
    """Sessions and dead letters in memory: what the two apps hand to the SDK."""

    def __init__(self, registry: Path) -> None:
        super().__init__()
        self.codec = Codec(LocalRegistry(registry))
        self.topic = "t.dead-letters"
        self.letters: list[DeadLetter] = []

    async def emit_raw(self, key: bytes, value: bytes) -> None:
        self.letters.append(self.codec.decode(value, expect=DeadLetter))


def export(*spans: PbSpan) -> bytes:
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])]) \
        .SerializeToString()


def chat_span(span_id: int, trace: int = 1, parent: int = 0) -> PbSpan:
    attrs = [KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")),
             KeyValue(key="gen_ai.output.messages", value=AnyValue(
                 string_value='[{"role": "assistant", "parts": [{"type": "text", "content": "hi"}]}]'))]
    return PbSpan(trace_id=trace.to_bytes(16, "big"), span_id=span_id.to_bytes(8, "big"),
                  parent_span_id=parent.to_bytes(8, "big") if parent else b"", name="chat", attributes=attrs,
                  start_time_unix_nano=1, end_time_unix_nano=2)


@pytest.fixture
async def otlp(tmp_path: Path) -> Any:
    box = LetterBox(tmp_path / "reg.json")
    app = OtlpReceiver(box, DeadLetters(box, "capture.otlp"),  # type: ignore[arg-type]
                       TraceBuffer(settle_s=0, idle_s=60, max_spans=2), max_body_bytes=4096)
    async with TestClient(TestServer(app.app)) as client:
        yield client, app, box


PB = {"Content-Type": "application/x-protobuf"}


async def test_a_full_buffer_answers_503_with_retry_after_until_it_drains(otlp: Any) -> None:
    client, app, box = otlp
    assert (await client.post("/v1/traces", data=export(chat_span(1, parent=9), chat_span(2, parent=9)),
                              headers=PB)).status == 200
    full = await client.post("/v1/traces", data=export(chat_span(3)), headers=PB)
    assert (full.status, full.headers["Retry-After"]) == (503, "1")
    assert await app.flush_due(now=10**9) == 1  # idle: mapped, the buffer drains
    assert (await client.post("/v1/traces", data=export(chat_span(3, trace=2)), headers=PB)).status == 200
    assert [s.session_id for s in box.sessions] == [f"{1:032x}"] and box.letters == []


async def test_gzip_bodies_are_read_and_bad_spans_are_a_partial_success(otlp: Any) -> None:
    client, app, box = otlp
    no_ids = PbSpan(name="orphan")
    body = gzip.compress(export(chat_span(1), no_ids))
    response = await client.post("/v1/traces", data=body, headers={**PB, "Content-Encoding": "gzip"})
    answer = ExportTraceServiceResponse.FromString(await response.read())
    assert response.status == 200 and answer.partial_success.rejected_spans == 1
    assert answer.partial_success.error_message == "span 'orphan': trace_id must be 16 non-zero bytes"
    assert [letter.reason for letter in box.letters] == ["otlp: span 'orphan': trace_id must be 16 non-zero bytes"]
    assert await app.flush_due() == 1 and len(box.sessions) == 1 and box.sessions[0].steps[0].action.text == "hi"


async def test_a_mapping_failure_costs_its_trace_not_the_receiver(otlp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client, app, box = otlp

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("mapping bug")

    monkeypatch.setattr(receiver_module, "map_trace", broken)
    assert (await client.post("/v1/traces", data=export(chat_span(1)), headers=PB)).status == 200
    await app.flush_due()
    assert [letter.reason for letter in box.letters] == [
        f"otlp: trace {1:032x}: mapping failed: RuntimeError('mapping bug')"]
    monkeypatch.undo()
    assert (await client.post("/v1/traces", data=export(chat_span(1, trace=3)), headers=PB)).status == 200
    await app.flush_due()
    assert len(box.sessions) == 1 and (await client.get("/v1/art/health")).status == 200


async def test_an_unreachable_upstream_is_a_502_and_an_error_step(tmp_path: Path) -> None:
    box = LetterBox(tmp_path / "reg.json")
    proxy = RecordingProxy(f"http://127.0.0.1:{free_port()}/v1", SessionBook(box),  # type: ignore[arg-type]
                           DeadLetters(box, "capture.proxy"), max_body_bytes=4096)  # type: ignore[arg-type]
    async with TestClient(TestServer(proxy.app)) as client:
        response = await client.post("/v1/chat/completions", json={"model": "m", "messages": [
            {"role": "user", "content": "hello"}]}, headers={"X-ART-Session": "s1"})
        assert response.status == 502 and response.headers["X-ART-Session"] == "s1"
        assert (await client.post("/v1/art/sessions/s1/complete", json={})).status == 200
    [session] = box.sessions
    assert [(s.observation, s.error) for s in session.steps] == [
        ("hello", "upstream unreachable: ClientConnectorError")]
    assert session.completed is not None and session.completed[1].value == "error"


def test_keys_quoted_by_upstream_errors_are_redacted() -> None:
    text = "upstream answered 401: Incorrect API key provided: sk-proj-abc***********wxyz. Also sk-live-1234567"
    assert redact(text, "Bearer sk-live-1234567") == (
        "upstream answered 401: Incorrect API key provided: [redacted]. Also [redacted]")
