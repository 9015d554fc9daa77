"""The session-event rules, one definition (``schemas.rules.RULES``) read two ways: on models (the
stream's and the sink's Python verdict, ``admit``) and as SQL (the sink's ClickHouse views). The SQL
runs in ClickHouse here over the same cases as the Python."""

from __future__ import annotations

from typing import Any

from schemas.limits import MAX_SEQ
from schemas.models import Answer, SessionCompleted, SessionEvent, SessionStarted, SessionStatus, StepRecorded
from schemas.rules import check, valid_sql, violation
from store.clickhouse import literal

PAYLOADS = {"session_started": SessionStarted(objective="o", model="m"),
            "step_recorded": StepRecorded(step_number=0, observation="", thought="", action=Answer(text="x")),
            "session_completed": SessionCompleted(status=SessionStatus.succeeded)}
CASES: list[tuple[str, int, str, str | None]] = [
    ("s", 0, "session_started", None),
    ("s", 1, "step_recorded", None),
    ("s", 7, "session_completed", None),
    ("", 0, "session_started", "empty session_id"),
    ("s", -1, "step_recorded", "negative seq -1"),
    ("s", 0, "step_recorded", "step_recorded at seq 0: a session must begin with session_started "
                              "(step before start)"),
    ("s", 0, "session_completed", "session_completed at seq 0: a session must begin with session_started "
                                  "(step before start)"),
    ("s", 3, "session_started", "session_started at seq 3: only seq 0 may start a session"),
    ("s", MAX_SEQ, "step_recorded", None),
    ("s", MAX_SEQ + 1, "step_recorded", f"seq {MAX_SEQ + 1} beyond the limit of {MAX_SEQ} events per session"),
    ("", -2, "session_started", "empty session_id"),  # the first rule broken is the reason
]


def test_models_and_dicts_break_the_same_rules_with_the_same_reasons() -> None:
    for sid, seq, kind, reason in CASES:
        assert check(sid, seq, kind) == reason
        if sid and 0 <= seq <= MAX_SEQ:  # the model itself refuses the others
            event = SessionEvent(session_id=sid, seq=seq, agent_name="a", payload=PAYLOADS[kind])
            assert violation(event) == reason


def test_the_sql_accepts_exactly_what_the_python_accepts(store: Any) -> None:
    values = ", ".join(f"({literal(sid)}, {seq}, {literal(kind)})" for sid, seq, kind, _ in CASES)
    rows = store.query(f"SELECT session_id, seq, kind, {valid_sql()} FROM values("
                       f"'session_id String, seq Int64, kind String', {values})").result_rows
    assert [(sid, seq, kind, bool(ok)) for sid, seq, kind, ok in rows] == [
        (sid, seq, kind, reason is None) for sid, seq, kind, reason in CASES]
