"""Rules a session event must satisfy beyond its schema. Shared by the stream and the sink, so
both reject exactly the same events (the stream dead-letters them, the sink skips them)."""

from __future__ import annotations

from typing import Any

from schemas.models import SessionEvent, SessionStarted


def violation(event: SessionEvent) -> str | None:
    """Why ``event`` breaks a rule, or None when it is acceptable."""
    if not event.session_id:
        return "empty session_id"
    if event.seq < 0:
        return f"negative seq {event.seq}"
    is_start = isinstance(event.payload, SessionStarted)
    if event.seq == 0 and not is_start:
        return f"{event.payload.kind} at seq 0: a session must begin with session_started (step before start)"
    if event.seq > 0 and is_start:
        return f"session_started at seq {event.seq}: only seq 0 may start a session"
    return None


def violation_of_dict(data: dict[str, Any]) -> str | None:
    """The same rules on a decoded dict (the sink's hot path skips pydantic)."""
    if not data.get("session_id"):
        return "empty session_id"
    seq = data["seq"]
    if seq < 0:
        return f"negative seq {seq}"
    kind = data["payload"]["kind"]
    if seq == 0 and kind != "session_started":
        return f"{kind} at seq 0: a session must begin with session_started (step before start)"
    if seq > 0 and kind == "session_started":
        return f"session_started at seq {seq}: only seq 0 may start a session"
    return None
