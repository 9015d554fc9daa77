"""Shared helpers for ingestion tests: agents that emit known runs, and polling ClickHouse."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.tracking import Tracker
from schemas.codec import Codec
from schemas.models import SessionStatus, UseTool
from schemas.registry import LocalRegistry
from schemas.topics import Topics


def make_tracker(bootstrap: str, topics: Topics, spool_dir: Path, registry: Path | None = None,
                 **kwargs: Any) -> Tracker:
    return Tracker(bootstrap, topics, Codec(LocalRegistry(registry)), spool_dir, **kwargs)


async def run_agent(tracker: Tracker, agent: int, steps: int, group: str | None = None) -> str:
    """One agent: start, ``steps`` steps with known tokens/cost/tools, complete. Returns the session id."""
    session = await tracker.start_session(agent_name=f"agent-{agent % 5}", objective=f"task {agent}",
                                          group_id=group, model="tiny", success_criteria=["done"])
    for i in range(steps):
        await session.record_step(
            observation=f"obs {agent}/{i}", thought=f"thinking about {i}",
            action=UseTool(tool=f"tool{i % 3}", input=f"in {i}"), action_input=f"in {i}",
            tool_result=f"out {i}", error="boom" if i % 7 == 6 else None, execution_time_ms=10 + i,
            tokens=100 + i, cost=0.01, step_metadata={"agent": str(agent), "i": str(i)})
        await asyncio.sleep(0)
    await session.complete("done", SessionStatus.succeeded)
    return session.session_id


def wait_for(predicate: Callable[[], Any], timeout_s: float = 60.0, interval_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s (last value {last!r})")


def scalar(client: Any, sql: str) -> Any:
    return client.query(sql).result_rows[0][0]


def assert_exact(client: Any, ids: list[str], steps: int, tokens_per_session: int, timeout_s: float = 120) -> None:
    """Each session once, each step once, every event mirrored once, complete, tokens as sent."""
    from tests.ingest.test_pipeline import counts

    n = len(ids)
    try:
        wait_for(lambda: counts(client, ids)[0] >= n and counts(client, ids)[2] >= n * steps, timeout_s=timeout_s)
    except AssertionError:
        expected = (n, n, n * steps, n * steps, n * (steps + 2))
        raise AssertionError(f"not every run landed within {timeout_s} s: trajectories, distinct, steps, distinct, "
                             f"events {counts(client, ids)} of {expected}") from None
    time.sleep(2)  # any late duplicate would land now
    found = counts(client, ids)
    expected = (n, n, n * steps, n * steps, n * (steps + 2))
    assert found == expected, f"trajectories, distinct, steps, distinct, events: {found} != {expected}"
    bad = client.query("""SELECT session_id, step_count, closed_by, missing_seqs FROM trajectories
        WHERE session_id IN {ids:Array(String)} AND (step_count != {s:Int64} OR closed_by != 'completed'
        OR length(missing_seqs) > 0)""", parameters={"ids": ids, "s": steps}).result_rows
    assert bad == [], bad
    total = client.query("SELECT sum(total_tokens) FROM trajectories WHERE session_id IN {ids:Array(String)}",
                         parameters={"ids": ids}).result_rows[0][0]
    assert total == n * tokens_per_session, (total, n * tokens_per_session)
