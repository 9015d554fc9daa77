"""Waiting for the pipeline: a batch of runs counts once ClickHouse holds a reward for every one.

Why wait on ClickHouse and not on our own judge call: the runs go through the same log, stream
judge, RULER and sink as any agent's, so what the loop trains on and what the evaluation reports are
the stored rows an analyst can query, not numbers only this process saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel

from learning.errors import LearningError


class Judged(BaseModel):
    """The stored reward of one run (RULER components, ``reward_version`` of the config)."""

    session_id: str
    total: float
    success: float
    efficiency: float
    advantage: float


def fetch_rewards(client: Client, session_ids: list[str], reward_version: str) -> dict[str, Judged]:
    if not session_ids:
        return {}
    rows = client.query("SELECT session_id, total, success, efficiency, advantage FROM rewards FINAL "
                        "WHERE reward_version = {rv:String} AND session_id IN {ids:Array(String)}",
                        parameters={"rv": reward_version, "ids": session_ids}).named_results()
    return {r["session_id"]: Judged.model_validate(r) for r in rows}


def wait_for_rewards(client: Client, session_ids: list[str], reward_version: str, timeout_s: float,
                     progress: Callable[[int, int], None] | None = None, poll_s: float = 0.5) -> dict[str, Judged]:
    """Every run's reward, polled until all are stored; ``LearningError`` names how many are missing."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = fetch_rewards(client, session_ids, reward_version)
        if progress is not None:
            progress(len(got), len(session_ids))
        if len(got) >= len(set(session_ids)):
            return got
        if time.monotonic() > deadline:
            raise LearningError(f"{len(set(session_ids)) - len(got)} of {len(set(session_ids))} runs have no "
                                f"{reward_version} reward after {timeout_s:.0f} s: is `art up` running "
                                "(stream worker and sink)?")
        time.sleep(poll_s)
