"""What a session-event record must satisfy to enter the pipeline: one verdict for everyone.

The stream dead-letters what ``admit`` refuses; the sink's ClickHouse landing views refuse the same
records (their SQL is generated from ``schemas.limits`` and the same rules, ``store.ingest``), and
its Python path calls ``admit`` itself. Schema-level bounds (finite numbers, counts, times) live on
the pydantic models; the rules here are the ones that relate fields to each other or to the record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas.errors import CodecError
from schemas.limits import MAX_EVENT_BYTES, MAX_SEQ
from schemas.models import SessionEvent, SessionStarted

if TYPE_CHECKING:
    from schemas.codec import Codec


class Refused(Exception):
    """A record that must be dead-lettered; the message is the reason."""


def violation(event: SessionEvent) -> str | None:
    """Why ``event`` breaks a rule, or None when it is acceptable."""
    if not event.session_id:
        return "empty session_id"
    if event.seq < 0:
        return f"negative seq {event.seq}"
    if event.seq > MAX_SEQ:
        return f"seq {event.seq} beyond the limit of {MAX_SEQ} events per session"
    is_start = isinstance(event.payload, SessionStarted)
    if event.seq == 0 and not is_start:
        return f"{event.payload.kind} at seq 0: a session must begin with session_started (step before start)"
    if event.seq > 0 and is_start:
        return f"session_started at seq {event.seq}: only seq 0 may start a session"
    return None


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
