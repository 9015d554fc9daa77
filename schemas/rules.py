"""What a session-event record must satisfy to enter the pipeline: one verdict for everyone.

The stream dead-letters what ``admit`` refuses; the sink's ClickHouse landing views refuse the same
records (``store.ingest`` generates their SQL from ``schemas.limits``, the models' bounds and
``valid_sql`` below), and its Python path calls ``admit`` itself. Schema-level bounds (finite numbers,
counts, times) live on the pydantic models; the rules here relate fields to each other. Each rule is
written once (``RULES``), in Python and SQL side by side; tests/test_rules.py runs the SQL in
ClickHouse over the same cases as the Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from schemas.errors import CodecError
from schemas.limits import MAX_EVENT_BYTES, MAX_SEQ
from schemas.models import SessionEvent


@dataclass(frozen=True)
class Rule:
    """``broken(session_id, seq, kind)`` in Python and ``broken_sql`` over the columns of the same
    names (``{kind}``: the expression for the payload's kind); ``reason`` says why, for the dead letter."""

    broken: Callable[[str, int, str], bool]
    broken_sql: str
    reason: Callable[[str, int, str], str]


RULES: tuple[Rule, ...] = (
    Rule(lambda sid, seq, kind: not sid, "session_id = ''", lambda sid, seq, kind: "empty session_id"),
    Rule(lambda sid, seq, kind: seq < 0, "seq < 0", lambda sid, seq, kind: f"negative seq {seq}"),
    Rule(lambda sid, seq, kind: seq > MAX_SEQ, f"seq > {MAX_SEQ}",
         lambda sid, seq, kind: f"seq {seq} beyond the limit of {MAX_SEQ} events per session"),
    Rule(lambda sid, seq, kind: seq == 0 and kind != "session_started", "seq = 0 AND {kind} != 'session_started'",
         lambda sid, seq, kind: f"{kind} at seq 0: a session must begin with session_started (step before start)"),
    Rule(lambda sid, seq, kind: seq > 0 and kind == "session_started", "seq > 0 AND {kind} = 'session_started'",
         lambda sid, seq, kind: f"session_started at seq {seq}: only seq 0 may start a session"),
)


def valid_sql(kind: str = "kind") -> str:
    """True for an event that breaks no rule, over columns ``session_id`` and ``seq`` and ``kind``."""
    return " AND ".join(f"NOT ({rule.broken_sql.format(kind=kind)})" for rule in RULES)


def check(session_id: str, seq: int, kind: str) -> str | None:
    """Why an event with these fields breaks a rule (the first one it breaks), or None."""
    for rule in RULES:
        if rule.broken(session_id, seq, kind):
            return rule.reason(session_id, seq, kind)
    return None


if TYPE_CHECKING:
    from schemas.codec import Codec


class Refused(Exception):
    """A record that must be dead-lettered; the message is the reason."""


def violation(event: SessionEvent) -> str | None:
    """Why ``event`` breaks a rule, or None when it is acceptable."""
    return check(event.session_id, event.seq, event.payload.kind)


def size_violation(raw: bytes | None) -> str | None:
    if raw is not None and len(raw) > MAX_EVENT_BYTES:
        return f"record of {len(raw)} bytes exceeds the limit of {MAX_EVENT_BYTES} bytes per session event"
    return None


def admit(codec: Codec, key: bytes | None, raw: bytes | None) -> SessionEvent:
    """The event in ``raw``, or ``Refused`` with the reason (size, decoding, model bounds, rules,
    a record key that is not its session id)."""
    reason = size_violation(raw)
    if reason:
        raise Refused(reason)
    try:
        event = codec.decode(raw, expect=SessionEvent)
    except CodecError as exc:
        raise Refused(str(exc)) from None
    if not codec.is_canonical(raw, event):  # type: ignore[arg-type]  # decoded, so not None
        raise Refused(f"{event.avro_name} body is not in canonical Avro form (a negative union or enum index, "
                      "duplicate map keys or an over-long number)")
    reason = violation(event)
    if reason:
        raise Refused(f"rule violated: {reason}")
    if key is not None and key != event.session_id.encode():
        raise Refused(f"rule violated: record key {key[:64]!r} is not the session_id {event.session_id[:64]!r}")
    return event
