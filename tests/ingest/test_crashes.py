"""Kill -9 anywhere loses nothing and doubles nothing: worker, sink, and the broker itself."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from agents.tracking import Tracker
from schemas.models import SessionStatus, UseTool
from tests.ingest.helpers import assert_exact
from tests.ingest.stack import RunningStack

pytestmark = pytest.mark.slow


async def slow_agents(stack: RunningStack, n: int, steps: int, pause_s: float, tag: str,
                      during: list[tuple[float, str]]) -> tuple[list[str], int]:
    """``n`` agents emitting ``steps`` steps with pauses; kills children by name at given times.
    Returns the session ids and how many events the tracker re-sent."""
    async def killer() -> None:
        start = time.monotonic()
        for at, name in during:
            await asyncio.sleep(max(0.0, at - (time.monotonic() - start)))
            os.kill(stack.info.children[name], signal.SIGKILL)

    async def agent(tracker: Tracker, i: int) -> str:
        session = await tracker.start_session(agent_name=f"{tag}-{i % 3}", objective=f"{tag} {i}")
        for s in range(steps):
            await session.record_step(observation=f"o{s}", thought="t", action=UseTool(tool="calc", input=str(s)),
                                      tokens=s)
            await asyncio.sleep(pause_s)
        await session.complete("ok", SessionStatus.succeeded)
        return session.session_id

    async with Tracker.from_config(stack.cfg, retry_interval_s=0.5) as tracker:
        kill = asyncio.create_task(killer())
        ids = await asyncio.gather(*(agent(tracker, i) for i in range(n)))
        await kill
    return list(ids), tracker.resent


def test_kill_9_worker_then_sink_mid_run(tmp_path: Path) -> None:
    with RunningStack(tmp_path / "data") as stack:
        ids, resent = asyncio.run(slow_agents(stack, 20, 40, 0.15, "k9", during=[(2.0, "worker-0"),
                                                                                  (5.0, "sink-0")]))
        assert resent == 0  # a child restart rewrites the stack's card, but the log was not lost
        assert_exact(stack.client(), ids, 40, sum(range(40)))
        assert stack.info.children["worker-0"] and stack.info.children["sink-0"]


def test_broker_restart_mid_run_spools_and_completes_exactly(tmp_path: Path) -> None:
    with RunningStack(tmp_path / "data") as stack:
        epoch = stack.info.log_epoch
        ids, resent = asyncio.run(slow_agents(stack, 10, 30, 0.2, "br", during=[(1.0, "broker")]))  # before the sink
        assert resent > 0  # the log was lost: what the store did not have was sent again
        assert stack.info.log_epoch != epoch  # the supervisor noticed and bumped the epoch
        assert_exact(stack.client(), ids, 30, sum(range(30)))
