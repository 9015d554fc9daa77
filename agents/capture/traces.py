"""Spans wait here until their trace is whole; then the trace is mapped once.

A trace is ready ``settle_s`` after its root span arrived (exporters send children first, but
spans from other processes may trail), or ``idle_s`` after its last span when no root ever comes.
Spans of a trace already mapped are ignored when they are retries of spans it had, and returned
as late otherwise (for the dead-letter topic): nothing is dropped silently. The buffer is bounded;
``full`` tells the receiver to answer 503 so exporters retry later.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from agents.capture.otlp_decode import Span


@dataclass
class OpenTrace:
    spans: dict[str, Span] = field(default_factory=dict)
    last_seen: float = 0.0
    root_at: float | None = None


class TraceBuffer:
    def __init__(self, *, settle_s: float, idle_s: float, max_spans: int, remember: int = 100_000) -> None:
        self.settle_s = settle_s
        self.idle_s = idle_s
        self.max_spans = max_spans
        self.remember = remember
        self.open: dict[str, OpenTrace] = {}
        self.mapped: OrderedDict[str, frozenset[str]] = OrderedDict()  # trace id -> its span ids
        self.span_count = 0

    @property
    def full(self) -> bool:
        return self.span_count >= self.max_spans

    def add(self, spans: Iterable[Span], now: float) -> list[tuple[Span, str]]:
        """Buffer ``spans``; returns the late ones with the reason."""
        late: list[tuple[Span, str]] = []
        for span in spans:
            done = self.mapped.get(span.trace_id)
            if done is not None:
                if span.span_id not in done:
                    late.append((span, f"span arrived after trace {span.trace_id} was mapped "
                                       "(raise capture.trace_settle_s if this repeats)"))
                continue
            trace = self.open.setdefault(span.trace_id, OpenTrace(last_seen=now))
            if span.span_id not in trace.spans:
                trace.spans[span.span_id] = span
                self.span_count += 1
            trace.last_seen = now
            if not span.parent_span_id and trace.root_at is None:
                trace.root_at = now
        return late

    def due(self, now: float) -> list[str]:
        return [tid for tid, t in self.open.items()
                if (t.root_at is not None and now - t.root_at >= self.settle_s) or now - t.last_seen >= self.idle_s]

    def take(self, trace_id: str) -> list[Span]:
        trace = self.open.pop(trace_id)
        self.span_count -= len(trace.spans)
        self.mapped[trace_id] = frozenset(trace.spans)
        while len(self.mapped) > self.remember:
            self.mapped.popitem(last=False)
        return list(trace.spans.values())
