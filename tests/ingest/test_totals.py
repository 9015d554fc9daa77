"""One rule for a session's running totals: what the SDK reports while a session runs equals what the
stream's fold computes from the same events read back from the real broker (``schemas.totals``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agents.sync_tracking import SyncTracker
from schemas.models import SessionStatus, StepRecorded, Think, UseTool
from schemas.topics import Topics
from streams.state import fold_many
from tests.ingest.helpers import make_tracker
from tests.ingest.test_sdk import consume_all


def test_sdk_totals_equal_the_folds(kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    tracker = make_tracker(kafka_bootstrap, topics, tmp_path / "spool", tmp_path / "reg.json")
    with SyncTracker(tracker) as sync:
        session = sync.start_session(agent_name="totals", objective="o", model="m", group_id="g")
        session.record_step(observation="", thought="t", action=UseTool(tool="calc", input="1"), tokens=5,
                            cost=0.25, execution_time_ms=40)
        session.record_step(observation="", thought="t", action=UseTool(tool="search", input="q"), tokens=7,
                            error="timeout", execution_time_ms=60)
        session.record_step(observation="", thought="t", action=Think(note="n"), tokens=1)
        session.record_step(observation="", thought="t", action=UseTool(tool="calc", input="2"), tokens=3,
                            cost=0.5)
        sdk = session.metadata
        session.complete("x", SessionStatus.succeeded)
    events = asyncio.run(consume_all(kafka_bootstrap, topics.session_events.name, 6))
    stream = fold_many(None, events, now=1.0).state.metadata()
    assert sdk == stream
    assert (sdk.step_count, sdk.error_count, sdk.efficiency) == (4, 1, 0.75)  # steps without an error / steps
    assert (sdk.total_tokens, sdk.total_cost, sdk.execution_time_ms, sdk.tools_used) == (16, 0.75, 100,
                                                                                        ["calc", "search"])
    assert sum(isinstance(e.payload, StepRecorded) for e in events) == 4
