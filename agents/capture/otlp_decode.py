"""OTLP/HTTP trace payloads (protobuf or JSON) -> plain ``Span`` values, decoded by ``opentelemetry-proto``.

OTLP/JSON is the protobuf JSON mapping with one difference: trace and span ids are hex, not base64
(opentelemetry-proto's spec, "JSON Protobuf Encoding"). They are converted before
``google.protobuf.json_format`` parses the rest, so both encodings land in the same message.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

STATUS_ERROR = 2


class PayloadError(ValueError):
    """The whole payload is unreadable; the message is the dead letter's reason."""


@dataclass(frozen=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    events: tuple[SpanEvent, ...]
    resource: dict[str, Any]
    raw: bytes  # the span as protobuf, for a dead letter

    @property
    def duration_ms(self) -> int:
        return max(0, (self.end_ns - self.start_ns) // 1_000_000)

    def attr(self, *names: str) -> Any:
        """The first of ``names`` set on the span, else on its resource."""
        for name in names:
            if name in self.attributes:
                return self.attributes[name]
        for name in names:
            if name in self.resource:
                return self.resource[name]
        return None


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        out[pair.key] = any_value(pair.value)
    return out


_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(obj: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        value = obj.get(name)
        if isinstance(value, str) and value:
            try:
                obj[name] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise PayloadError(f"{name} {value[:40]!r} is not hex") from None


def _walk_spans(doc: dict[str, Any]) -> None:
    for resource_spans in doc.get("resourceSpans") or doc.get("resource_spans") or []:
        for scope_spans in (resource_spans or {}).get("scopeSpans") or (resource_spans or {}).get("scope_spans") or []:
            for span in (scope_spans or {}).get("spans") or []:
                if isinstance(span, dict):
                    _hex_ids_to_base64(span)
                    for link in span.get("links") or []:
                        if isinstance(link, dict):
                            _hex_ids_to_base64(link)


def parse_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    if "json" in content_type:
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise PayloadError(f"invalid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise PayloadError("JSON payload is not an object")
        try:
            _walk_spans(doc)
            json_format.ParseDict(doc, message, ignore_unknown_fields=True)
        except (json_format.ParseError, AttributeError, TypeError) as exc:
            raise PayloadError(f"not an OTLP trace request: {str(exc)[:300]}") from None
        return message
    if "protobuf" not in content_type:
        raise PayloadError(f"unsupported content type {content_type!r} (application/x-protobuf or application/json)")
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise PayloadError(f"invalid protobuf: {exc}") from None
    return message


def spans_of(request: ExportTraceServiceRequest) -> tuple[list[Span], list[tuple[bytes, str]]]:
    """The spans, and (raw, reason) for each that lacks valid ids."""
    spans: list[Span] = []
    bad: list[tuple[bytes, str]] = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for pb in scope_spans.spans:
                assert isinstance(pb, PbSpan)
                raw = pb.SerializeToString()
                if len(pb.trace_id) != 16 or not any(pb.trace_id):
                    bad.append((raw, f"span {pb.name!r}: trace_id must be 16 non-zero bytes"))
                    continue
                if len(pb.span_id) != 8 or not any(pb.span_id):
                    bad.append((raw, f"span {pb.name!r}: span_id must be 8 non-zero bytes"))
                    continue
                events = tuple(SpanEvent(e.name, e.time_unix_nano, attributes(e.attributes)) for e in pb.events)
                spans.append(Span(
                    trace_id=binascii.hexlify(pb.trace_id).decode(), span_id=pb.span_id.hex(),
                    parent_span_id=pb.parent_span_id.hex() if any(pb.parent_span_id) else "", name=pb.name,
                    start_ns=pb.start_time_unix_nano, end_ns=pb.end_time_unix_nano, status_code=pb.status.code,
                    status_message=pb.status.message, attributes=attributes(pb.attributes), events=events,
                    resource=resource, raw=raw))
    return spans, bad
