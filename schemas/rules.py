"""Rules a session event must satisfy beyond its schema, written once.

The stream dead-letters events that break them (``violation``), the sink's Python path skips them
(``violation_of_dict``, no pydantic on its hot path), and the sink's ClickHouse path never stores them
(``VALID_SQL``, the WHERE clause of ``store.ingest``'s views). All three read ``RULES``; a test runs
the SQL in ClickHouse over the same cases as the Python (tests/test_rules.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas.models import SessionEvent


@dataclass(frozen=True)
class Rule:
    """``broken(session_id, seq, kind)`` in Python and ``broken_sql`` over the columns of the same
    names; ``reason`` says why, for the dead letter."""

    broken: Callable[[str, int, str], bool]
    broken_sql: str
    reason: Callable[[str, int, str], str]


RULES: tuple[Rule, ...] = (
    Rule(lambda sid, seq, kind: not sid, "session_id = ''", lambda sid, seq, kind: "empty session_id"),
    Rule(lambda sid, seq, kind: seq < 0, "seq < 0", lambda sid, seq, kind: f"negative seq {seq}"),
    Rule(lambda sid, seq, kind: seq == 0 and kind != "session_started", "seq = 0 AND kind != 'session_started'",
         lambda sid, seq, kind: f"{kind} at seq 0: a session must begin with session_started (step before start)"),
    Rule(lambda sid, seq, kind: seq > 0 and kind == "session_started", "seq > 0 AND kind = 'session_started'",
         lambda sid, seq, kind: f"session_started at seq {seq}: only seq 0 may start a session"),
)

#: true for an event that breaks no rule, over columns ``session_id``, ``seq`` and ``kind``
VALID_SQL = " AND ".join(f"NOT ({rule.broken_sql})" for rule in RULES)


def check(session_id: str, seq: int, kind: str) -> str | None:
    """Why an event with these fields breaks a rule (the first one it breaks), or None."""
    for rule in RULES:
        if rule.broken(session_id, seq, kind):
            return rule.reason(session_id, seq, kind)
    return None


def violation(event: SessionEvent) -> str | None:
    """Why ``event`` breaks a rule, or None when it is acceptable."""
    return check(event.session_id, event.seq, event.payload.kind)


def violation_of_dict(data: dict[str, Any]) -> str | None:
    """The same rules on a decoded dict (the sink's hot path skips pydantic)."""
    return check(data.get("session_id") or "", data["seq"], data["payload"]["kind"])
