"""`art otlp`: the OTLP/HTTP receiver (``POST /v1/traces``, protobuf or JSON) for GenAI spans.

Answers as the OTLP spec asks: 200 with ``partial_success`` when some spans were refused, 400 for
an unreadable payload, 413 for an oversized one (all dead-lettered with the reason), 503 with
Retry-After while its buffer is full, so exporters back off and retry instead of losing spans.
Handlers never raise: whatever breaks is a dead letter, and the next request is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence

from aiohttp import web
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agents.capture.deadletters import DeadLetters
from agents.capture.http import json_error, read_limited
from agents.capture.otlp_decode import PayloadError, Span, parse_request, spans_of
from agents.capture.otlp_map import map_trace
from agents.capture.traces import TraceBuffer
from agents.tracking import Tracker

log = logging.getLogger(__name__)


class OtlpReceiver:
    def __init__(self, tracker: Tracker, dead: DeadLetters, buffer: TraceBuffer, *, max_body_bytes: int,
                 prices: Mapping[str, Sequence[float]] | None = None, flush_interval_s: float = 0.1) -> None:
        self.tracker = tracker
        self.dead = dead
        self.buffer = buffer
        self.max_body_bytes = max_body_bytes
        self.prices = dict(prices or {})
        self.flush_interval_s = flush_interval_s
        self.sessions = 0
        self.spans = 0
        self._flusher: asyncio.Task[None] | None = None
        self.app = web.Application(client_max_size=max_body_bytes)
        self.app.router.add_post("/v1/traces", self.export)
        self.app.router.add_get("/v1/art/health", self.health)
        self.app.on_startup.append(self._start)
        self.app.on_shutdown.append(self._shutdown)

    async def _start(self, app: web.Application) -> None:
        self._flusher = asyncio.create_task(self._flush_forever())

    async def _shutdown(self, app: web.Application) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for trace_id in list(self.buffer.open):  # what waits is mapped now rather than lost
            await self._emit(trace_id, self.buffer.take(trace_id))

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "sessions": self.sessions, "spans": self.spans,
                                  "open_traces": len(self.buffer.open), "buffered_spans": self.buffer.span_count,
                                  "dead_letters": self.dead.count})

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush_due()
            except Exception:  # e.g. the tracker refused: log it and keep mapping what comes next
                log.exception("flushing due traces failed")

    async def flush_due(self, now: float | None = None) -> int:
        due = self.buffer.due(time.monotonic() if now is None else now)
        for trace_id in due:
            await self._emit(trace_id, self.buffer.take(trace_id))
        return len(due)

    async def _emit(self, trace_id: str, spans: list[Span]) -> None:
        """Map one whole trace and send it as one session (rejects as dead letters)."""
        try:
            mapping = map_trace(spans, self.prices)
        except Exception as exc:  # a mapping bug must cost this trace, not the receiver
            log.exception("mapping trace %s failed", trace_id)
            for span in spans:
                await self.dead.put(span.raw, f"otlp: trace {trace_id}: mapping failed: {exc!r}")
            return
        for span, reason in mapping.rejects:
            await self.dead.put(span.raw, f"otlp: trace {trace_id} span {span.span_id}: {reason}")
        session = mapping.session
        if session is None:
            return
        tracked = await self.tracker.start_session(
            agent_name=session.agent_name, objective=session.objective, group_id=session.group_id,
            model=session.model, agent_config=session.agent_config, session_id=session.session_id)
        for step in session.steps:
            await tracked.record(step)
        await tracked.complete(session.final_answer, session.status)
        self.sessions += 1

    async def export(self, request: web.Request) -> web.Response:
        if self.buffer.full:
            return json_error(503, "receiver buffer full: retry later", {"Retry-After": "1"})
        content_type = request.content_type
        raw, too_big = await read_limited(request, self.max_body_bytes)
        if too_big:
            reason = f"otlp: payload larger than {self.max_body_bytes} bytes (first bytes kept)"
            await self.dead.put(raw, reason)
            return json_error(413, reason)
        try:
            message = parse_request(raw, content_type)
            spans, bad = spans_of(message)
        except PayloadError as exc:
            await self.dead.put(raw, f"otlp: {exc}")
            return json_error(400, str(exc))
        except Exception as exc:  # the decoder itself failed: still the payload's problem, never ours to crash on
            await self.dead.put(raw, f"otlp: undecodable payload: {exc!r}")
            return json_error(400, f"undecodable payload: {exc.__class__.__name__}")
        for span_raw, reason in bad:
            await self.dead.put(span_raw, f"otlp: {reason}")
        late = self.buffer.add(spans, time.monotonic())
        for span, reason in late:
            await self.dead.put(span.raw, f"otlp: trace {span.trace_id} span {span.span_id}: {reason}")
        self.spans += len(spans) - len(late)
        return self._answer(content_type, len(bad) + len(late),
                            "; ".join([r for _, r in bad][:3] + [r for _, r in late][:3]))

    @staticmethod
    def _answer(content_type: str, rejected: int, message: str) -> web.Response:
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = message[:1000]
        if "json" in content_type:
            return web.Response(body=json_format.MessageToJson(response).encode(), content_type="application/json")
        return web.Response(body=response.SerializeToString(), content_type="application/x-protobuf")
