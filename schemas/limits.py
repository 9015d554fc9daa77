"""The bounds every session event must respect, in one place.

They keep one bad record from wedging what follows it: a step too large for the producer, a seq so
far ahead that its gap bookkeeping or trajectory explodes, a cost whose sum overflows to infinity,
a time outside what ClickHouse's DateTime64 can hold. The pydantic models (``schemas.models``), the
event rules (``schemas.rules``), the SDK and the worker read them from here, and the ClickHouse
landing views (``store.ingest``) are generated from them, so Python and ClickHouse refuse the same
records (``tests/ingest/test_verdicts.py`` ties the two).
"""

from __future__ import annotations

from datetime import UTC, datetime

MAX_EVENT_BYTES = 512 * 1024
"""One encoded session event (header included). The SDK refuses larger ones; the stream
dead-letters them."""

MAX_TRAJECTORY_BYTES = 8 * 1024 * 1024
"""What one session may accumulate (the sum of its events' sizes): a trajectory must stay far
below the producer's and broker's message limits (``MAX_MESSAGE_BYTES``)."""

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Producer request / consumer fetch size for topics that carry trajectories (the broker takes up
to 20 MB)."""

MAX_SEQ = 100_000
"""Highest seq (events per session - 1): bounds gap bookkeeping and ``missing_seqs``."""

MAX_COUNT = 10**12
"""Tokens, execution milliseconds and step numbers: non-negative and at most this, so sums over
``MAX_SEQ`` steps stay inside a signed 64-bit long."""

MAX_MAGNITUDE = 1e12
"""Absolute bound of costs and step rewards (finite, so sums stay finite)."""

TIME_MIN = datetime(2000, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2100, 1, 1, tzinfo=UTC)
"""Event times must lie in [TIME_MIN, TIME_MAX): ClickHouse stores anything as raw ticks, Python's
datetime overflows past year 9999."""


def epoch_micros(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


TIME_MIN_MICROS = epoch_micros(TIME_MIN)
TIME_MAX_MICROS = epoch_micros(TIME_MAX)
