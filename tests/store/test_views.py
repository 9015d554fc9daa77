"""Analyst views on a real store, with numbers worked out by hand."""

from __future__ import annotations

from typing import Any


def test_agent_performance_per_agent_and_reward_version(store: Any) -> None:
    runs = [("a1", "alpha", "succeeded", 2), ("a2", "alpha", "succeeded", 4), ("a3", "alpha", "failed", 10),
            ("a4", "alpha", "succeeded", 6), ("b1", "beta", "failed", 3)]
    store.insert("trajectories", [list(r) for r in runs], column_names=["session_id", "agent_name", "status",
                                                                        "step_count"])
    rewards = [("a1", "v1", 1.0), ("a2", "v1", 0.8), ("a3", "v1", 0.0), ("a4", "v1", 0.6), ("b1", "v1", 0.2),
               ("a1", "v2", 0.5)]
    store.insert("rewards", [list(r) for r in rewards], column_names=["session_id", "reward_version", "total"])
    got = store.query("SELECT agent_name, reward_version, trajectories, success_rate, p50_steps, p90_steps, "
                      "avg_steps, round(avg_reward, 6) FROM agent_performance ORDER BY agent_name, reward_version"
                      ).result_rows
    # quantileExact(q) is the element at floor(q * n) of the sorted steps [2, 4, 6, 10]: p50 6, p90 10
    assert got == [("alpha", "v1", 4, 0.75, 6, 10, 5.5, 0.6), ("alpha", "v2", 1, 1.0, 2, 2, 2.0, 0.5),
                   ("beta", "v1", 1, 0.0, 3, 3, 3.0, 0.2)]
