"""OTLP payloads (protobuf and JSON) decode to the same spans; unreadable ones say why. And the
trace buffer: a trace is mapped once, when whole; late spans are returned, retries ignored."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from agents.capture.otlp_decode import PayloadError, parse_request, spans_of
from agents.capture.traces import TraceBuffer
from tests.capture.spans import span

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")


def _request() -> ExportTraceServiceRequest:
    pb = PbSpan(trace_id=TRACE_ID, span_id=bytes.fromhex("eee19b7ec3c1b174"), name="chat m", kind=3,
                start_time_unix_nano=1_000_000, end_time_unix_nano=3_000_000,
                attributes=[KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")),
                            KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=3)),
                            KeyValue(key="gen_ai.response.finish_reasons", value=AnyValue(
                                array_value=ArrayValue(values=[AnyValue(string_value="stop")])))])
    pb.events.add(name="gen_ai.evaluation.result", time_unix_nano=2_000_000,
                  attributes=[KeyValue(key="gen_ai.evaluation.score.value", value=AnyValue(double_value=0.5))])
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=[pb])])
    resource.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="svc")))
    return ExportTraceServiceRequest(resource_spans=[resource])


def test_protobuf_and_json_decode_to_the_same_spans() -> None:
    request = _request()
    from_pb, bad = spans_of(parse_request(request.SerializeToString(), "application/x-protobuf"))
    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                              "scopeSpans": [{"spans": [{
                                  "traceId": TRACE_ID.hex().upper(), "spanId": "EEE19B7EC3C1B174", "name": "chat m",
                                  "kind": 3, "startTimeUnixNano": "1000000", "endTimeUnixNano": "3000000",
                                  "attributes": [
                                      {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                      {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "3"}},
                                      {"key": "gen_ai.response.finish_reasons",
                                       "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}}],
                                  "events": [{"name": "gen_ai.evaluation.result", "timeUnixNano": "2000000",
                                              "attributes": [{"key": "gen_ai.evaluation.score.value",
                                                              "value": {"doubleValue": 0.5}}]}]}]}]}]}
    from_json, bad_json = spans_of(parse_request(json.dumps(doc).encode(), "application/json"))
    assert bad == bad_json == []
    [a], [b] = from_pb, from_json
    assert a.trace_id == TRACE_ID.hex() and a.span_id == "eee19b7ec3c1b174" and a.parent_span_id == ""
    assert a.attributes == {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3,
                            "gen_ai.response.finish_reasons": ["stop"]}
    assert (a.resource, a.duration_ms, a.events[0].attributes) == ({"service.name": "svc"}, 2,
                                                                   {"gen_ai.evaluation.score.value": 0.5})
    assert a == b


@pytest.mark.parametrize(("body", "content_type", "reason"), [
    (b"\xff\xff\xff\x07garbage", "application/x-protobuf", "invalid protobuf"),
    (b"{not json", "application/json", "invalid JSON"),
    (b"[1, 2]", "application/json", "JSON payload is not an object"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "application/json",
     "traceId 'zz' is not hex"),
    (b'{"resourceSpans": 5}', "application/json", "not an OTLP trace request"),
    (b"x", "text/plain", "unsupported content type 'text/plain'"),
])
def test_unreadable_payloads_say_why(body: bytes, content_type: str, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_request(body, content_type)


def test_spans_without_valid_ids_are_refused_one_by_one() -> None:
    request = _request()
    request.resource_spans[0].scope_spans[0].spans.add(name="no ids")
    spans, bad = spans_of(request)
    assert len(spans) == 1 and [reason for _, reason in bad] == ["span 'no ids': trace_id must be 16 non-zero bytes"]


def test_a_trace_is_due_after_its_root_settles_or_when_idle() -> None:
    buffer = TraceBuffer(settle_s=1.0, idle_s=10.0, max_spans=3)
    assert buffer.add([span("c1", "chat", {}, parent="a1", trace="t1"), span("x1", "chat", {}, trace="t2",
                                                                             parent="zz")], now=0.0) == []
    assert buffer.add([span("a1", "agent", {}, trace="t1")], now=0.5) == []
    assert buffer.full and buffer.due(1.4) == [] and buffer.due(1.5) == ["t1"]
    assert sorted(s.span_id for s in buffer.take("t1")) == ["a1", "c1"] and not buffer.full
    assert buffer.due(9.9) == [] and buffer.due(10.0) == ["t2"]
    late = buffer.add([span("a1", "agent", {}, trace="t1"), span("c7", "chat", {}, trace="t1", parent="a1")], now=2)
    assert [(s.span_id, r.split(" (")[0]) for s, r in late] == [("c7", "span arrived after trace t1 was mapped")]
    assert "t1" not in buffer.open  # the retried a1 was ignored, not re-opened
